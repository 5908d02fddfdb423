"""The launch side of the implicit-GEMM convolutions (``kernels/_conv_gemm.py``): the kernels by
name with their heuristics and autotune keys, the config tables per arch and dot, the fast-path
rule, and the argument builders (``_fwd_launch``, ``_dgrad_launch``, ``_wgrad_launch``) that the
op files' launchers and the code-generation check's launch-faithful specs share.


Config tables: the fast path (``fast_path``: channels-last, unit channel strides, channel counts
and strides multiples of 16, a batch every tile divides) autotunes over its arch's tables
(``kernels.configs.CONV2D_RELU_GPU_CONFIGS[arch]``: BLOCK_K 64, 128-wide tiles on sm_90); the rest
(NCHW, conv1, odd channel counts, other batches) over the gather table's smaller tiles, which do
not spill on the masked row walk.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._conv_gemm import conv2d_relu_dgrad_kernel, conv2d_relu_fwd_kernel, conv2d_relu_wgrad_kernel


_KERNELS = {
    "fwd": conv2d_relu_fwd_kernel,
    "dgrad": conv2d_relu_dgrad_kernel,
    "wgrad": conv2d_relu_wgrad_kernel,
}
# Constexprs that depend on the config the autotuner picks as well as on the arguments, set at
# each launch (triton.heuristics, inside the autotuner): EVEN_K -- the channels reduced per tap
# are whole BLOCK_K blocks, so the K loop needs no channel mask.
_HEURISTICS = {
    "fwd": {"EVEN_K": lambda a: a["C_PER_GROUP"] % a["BLOCK_K"] == 0,
            "IMAGE_ROWS": lambda a: not a["FLAT_K"] and a["BATCH"] % a["BLOCK_M"] == 0},
    "dgrad": {"EVEN_K": lambda a: a["K_PER_GROUP"] % a["BLOCK_K"] == 0,
              "IMAGE_ROWS": lambda a: a["BATCH"] % a["BLOCK_M"] == 0},
    "wgrad": {"IMAGE_LANES": lambda a: a["BATCH"] % a["BLOCK_K"] == 0},
}


def launch_constexprs(kernel: str, args: dict, config: dict) -> dict:
    """The constexprs of ``_HEURISTICS[kernel]`` for launch arguments ``args`` and ``config``."""
    values = {**args, **config}
    return {name: rule(values) for name, rule in _HEURISTICS[kernel].items()}


def _with_heuristics(fn, rules):
    """``fn`` under ``triton.heuristics(rules)``, named as ``fn`` (what launch spies and logs read)."""
    wrapped = triton.heuristics(rules)(fn)
    wrapped.__name__ = fn.__name__
    return wrapped


_LAUNCHED = {name: _with_heuristics(fn, _HEURISTICS[name]) for name, fn in _KERNELS.items()}
# What changes the best config, besides the dtypes (Triton adds them) and the batch (autotuned()
# keeps one tuner per batch): the GEMM sizes, the reduction order, the dot precision and the
# memory layout, seen as the channel strides of the operands (1 in channels-last / KRSC).
_AUTOTUNE_KEYS = {
    "fwd": ["GEMM_M", "GEMM_N", "GEMM_K", "FLAT_K", "INPUT_PRECISION", "sx_c", "sw_c"],
    "dgrad": ["GEMM_M", "GEMM_N", "GEMM_K", "INPUT_PRECISION", "sg_k", "sw_c"],
    "wgrad": ["GEMM_M", "GEMM_N", "GEMM_K", "FLAT_K", "INPUT_PRECISION", "sg_k", "sx_c"],
}


# Config tables (kernels/configs.py): per arch family with a table of its own, per dot --
# "mma" (fp16/bf16 tensor cores), "tf32" (fp32 on tensor cores), "fma" (fp32 "ieee", all archs)
# -- for the channels-last fast path; the gathered launches take CONV2D_RELU_GATHER_CONFIGS
CONFIG_ARCHS = tuple(sorted(configs.CONV2D_RELU_GPU_CONFIGS))
DOTS = ("mma", "tf32", "fma")
GATHER = "gather"  # the table "arch" of the gathered launches (every arch)


def config_arch(capability: Sequence[int]) -> int:
    """The table a GPU of compute capability (major, minor) uses: that of its major arch when
    kernels.configs has one (sm_90 for 9.x), else sm_80's (8.x and any other)."""
    arch = 10 * capability[0]
    return arch if arch in configs.CONV2D_RELU_GPU_CONFIGS else 80


def dot_kind(dtype: torch.dtype, precision: str) -> str:
    """The dot of a launch: "fma" (fp32 "ieee"), "tf32" (fp32 as TF32) or "mma" (fp16/bf16)."""
    if dtype == torch.float32:
        return "fma" if precision == "ieee" else "tf32"
    return "mma"


def config_table(arch: int | str, dot: str) -> dict[str, list[dict[str, int]]]:
    """kernel name -> configs, for an arch of CONFIG_ARCHS (the fast path) or GATHER, and a dot."""
    if dot == "fma":
        return configs.CONV2D_RELU_GPU_CONFIGS_FMA
    if arch == GATHER:
        return configs.CONV2D_RELU_GATHER_CONFIGS
    return configs.CONV2D_RELU_GPU_CONFIGS[arch][dot]


# What the fast path's launches have in common, and its generic codegen specs assume: unit channel
# strides (the reduction's contiguous axis), and channel counts and every other stride of the
# operands multiples of 16 (16-byte aligned rows: what cp.async needs), and a batch that every
# tile of the table divides (the image-major walks). Per kernel: the unit strides, the values
# that must be multiples of 16, the tile dimension the batch must be a multiple of, the walk.
_FAST_PATH_ARGS = {
    "fwd": (("sx_c", "sw_c"), ("C_PER_GROUP", "GEMM_N", "sx_n", "sx_h", "sx_w", "sw_k", "sw_r", "sw_s"),
            "BLOCK_M", "IMAGE_ROWS"),
    "dgrad": (("sg_k", "sw_c"), ("K_PER_GROUP", "GEMM_N", "sg_n", "sg_p", "sg_q", "sw_k", "sw_r", "sw_s"),
              "BLOCK_M", "IMAGE_ROWS"),
    "wgrad": (("sg_k", "sx_c"), ("C_PER_GROUP", "GEMM_M", "sg_pix", "sx_n", "sx_h", "sx_w", "sx_pix"),
              "BLOCK_K", "IMAGE_LANES"),
}


def fast_batch_multiple(kernel: str, arch: int, dot: str) -> int:
    """The batch a fast-path launch of ``kernel`` must be a multiple of on ``arch``'s ``dot``
    table: every tile's BLOCK_M (fwd, dgrad: a tile of images at one pixel) or BLOCK_K (wgrad: a
    K-step of images at one pixel), so the table's every config takes its image-major walk."""
    block = _FAST_PATH_ARGS[kernel][2]
    return max(cfg[block] for cfg in config_table(arch, dot)[kernel])


def fast_path(kernel: str, args: dict, arch: int, dot: str) -> bool:
    """Whether a launch takes ``arch``'s channels-last tables: not the flat walk, unit channel
    strides, channel counts and strides multiples of 16, a batch that fast_batch_multiple divides
    (conv2-conv5 of AlexNet, channels-last, at batch 128 or 256). The rest -- NCHW, conv1's 3
    channels, odd channel counts, other batches -- takes the gather table, whose smaller tiles do
    not spill on the masked (n, p, q)-row walk (the big channels-last tiles do: 150-2,100 B)."""
    units, multiples, _, _ = _FAST_PATH_ARGS[kernel]
    return (dot != "fma" and not args.get("FLAT_K", False) and all(args[a] == 1 for a in units)
            and all(args[a] % 16 == 0 for a in multiples)
            and args["BATCH"] % fast_batch_multiple(kernel, arch, dot) == 0)


def _device_arch(t: torch.Tensor) -> int:
    """The config arch of ``t``'s GPU (sm_80's tables where there is none: the interpreter)."""
    return config_arch(torch.cuda.get_device_capability(t.device)) if t.device.type == "cuda" else 80


def _table_key(kernel: str, like: torch.Tensor, args: dict) -> str:
    dot, arch = dot_kind(like.dtype, args["INPUT_PRECISION"]), _device_arch(like)
    if dot == "fma":
        return "fma"
    return f"sm{arch}/{dot}" if fast_path(kernel, args, arch, dot) else f"{GATHER}/{dot}"



def dot_precision(dtype: torch.dtype, device_type: str, allow_tf32: bool) -> str:
    """``tl.dot`` input precision: "tf32" for fp32 on CUDA when cuDNN may use TF32
    (``torch.backends.cudnn.allow_tf32``), "ieee" otherwise (fp16/bf16 ignore it)."""
    if dtype == torch.float32 and device_type == "cuda" and allow_tf32:
        return "tf32"
    return "ieee"


def use_flat_k(c_per_group: int, R: int = 1, S: int = 1) -> bool:
    """Walk the flat (c, r, s) reduction index -- few channels per group (e.g. conv1's 3), or a
    filter whose tap bits do not fit (R + S > 31) -- rather than taps outer x channel blocks inner."""
    return c_per_group < configs.CONV2D_RELU_FLAT_K_MAX_CHANNELS or R + S > _TAP_BITS_LIMIT


# The tap bits of a reduction walk (_bit_range) live in one int32: R + S <= 31 (forward, wgrad)
# or ceil(R/sh) + ceil(S/sw) <= 31 (dgrad, taps of one stride phase)
_TAP_BITS_LIMIT = 31


def dgrad_tap_bits(R: int, S: int, stride: Sequence[int]) -> bool:
    """Whether the dgrad kernel tests its taps by bits (one AND per row and K-step) rather than
    by comparisons: the taps of one stride phase fit the 31 bits of ``_bit_range``."""
    return triton.cdiv(R, stride[0]) + triton.cdiv(S, stride[1]) <= _TAP_BITS_LIMIT


def _precision(x: torch.Tensor) -> str:
    return dot_precision(x.dtype, x.device.type, torch.backends.cudnn.allow_tf32)


def _output_hw(H: int, W: int, R: int, S: int, stride: Sequence[int], padding: Sequence[int]) -> tuple[int, int]:
    return (H + 2 * padding[0] - R) // stride[0] + 1, (W + 2 * padding[1] - S) // stride[1] + 1


def _weight_for(weight: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """The weight as the kernels read it next to ``activation``: KRSC (channels_last, the
    channels of a tap contiguous) when the activation is channels-last, so both operands are
    contiguous along the reduction; as given otherwise. One copy of the (small) weight per
    call when a channels-last activation meets a KCRS weight."""
    if activation.shape[1] > 1 and activation.stride(1) == 1 and weight.shape[1] > 1 and weight.stride(1) != 1:
        return weight.contiguous(memory_format=torch.channels_last)
    return weight


def _fwd_launch(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], y: torch.Tensor,
                stride: Sequence[int], padding: Sequence[int], groups: int, relu: bool, precision: str):
    """(kernel arguments, grid) of the forward for these tensors (real or meta: the
    code-generation check builds its launch-faithful specs from this)."""
    N, C, H, W = x.shape
    K, c_per_group, R, S = weight.shape
    P, Q = y.shape[2:]
    gemm_m, gemm_n, gemm_k = N * P * Q, K // groups, c_per_group * R * S

    def grid(meta):
        return (triton.cdiv(gemm_m, meta["BLOCK_M"]) * triton.cdiv(gemm_n, meta["BLOCK_N"]), groups)

    args = dict(
        x_ptr=x, w_ptr=weight, bias_ptr=bias if bias is not None else weight, y_ptr=y,
        H=H, W=W, P=P, Q=Q, R=R, S=S,
        stride_h=stride[0], stride_w=stride[1], pad_h=padding[0], pad_w=padding[1],
        sx_n=x.stride(0), sx_c=x.stride(1), sx_h=x.stride(2), sx_w=x.stride(3),
        sw_k=weight.stride(0), sw_c=weight.stride(1), sw_r=weight.stride(2), sw_s=weight.stride(3),
        sy_n=y.stride(0), sy_k=y.stride(1), sy_p=y.stride(2), sy_q=y.stride(3),
        GEMM_M=gemm_m, GEMM_N=gemm_n, GEMM_K=gemm_k, C_PER_GROUP=c_per_group, BATCH=N,
        HAS_BIAS=bias is not None, RELU=relu, FLAT_K=use_flat_k(c_per_group, R, S), INPUT_PRECISION=precision,
    )
    return args, grid


def _dgrad_launch(grad: torch.Tensor, weight: torch.Tensor, dx: torch.Tensor,
                  stride: Sequence[int], padding: Sequence[int], groups: int, precision: str):
    """(kernel arguments, grid) of the input gradient (real or meta tensors); ``grad`` is
    the output gradient with the ReLU mask applied."""
    N, C, H, W = dx.shape
    K, _, R, S = weight.shape
    P, Q = grad.shape[2:]
    sh, sw = stride
    gemm_m = N * triton.cdiv(H, sh) * triton.cdiv(W, sw)
    gemm_n = C // groups
    gemm_k = K // groups * triton.cdiv(R, sh) * triton.cdiv(S, sw)

    def grid(meta):
        return (triton.cdiv(gemm_m, meta["BLOCK_M"]) * triton.cdiv(gemm_n, meta["BLOCK_N"]), groups, sh * sw)

    args = dict(
        g_ptr=grad, w_ptr=weight, dx_ptr=dx,
        H=H, W=W, P=P, Q=Q, R=R, S=S,
        stride_h=sh, stride_w=sw, pad_h=padding[0], pad_w=padding[1],
        sg_n=grad.stride(0), sg_k=grad.stride(1), sg_p=grad.stride(2), sg_q=grad.stride(3),
        sw_k=weight.stride(0), sw_c=weight.stride(1), sw_r=weight.stride(2), sw_s=weight.stride(3),
        sdx_n=dx.stride(0), sdx_c=dx.stride(1), sdx_h=dx.stride(2), sdx_w=dx.stride(3),
        GEMM_M=gemm_m, GEMM_N=gemm_n, GEMM_K=gemm_k, K_PER_GROUP=K // groups, BATCH=N,
        TAP_BITS=dgrad_tap_bits(R, S, stride), INPUT_PRECISION=precision,
    )
    return args, grid


def wgrad_splits(reduction: int, tiles: int, sms: int) -> int:
    """How many programs share wgrad's N*P*Q reduction: as many as keep the grid within
    CONV2D_RELU_WGRAD_PROGRAMS_PER_SM programs on each of ``sms`` SMs (rounded down: rounding up
    put 270 CTAs on 264 slots at paper conv3 on an H100 -- a second wave of 6), each covering at
    least CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK terms; 1 when the tiles alone fill the GPU."""
    wanted = configs.CONV2D_RELU_WGRAD_PROGRAMS_PER_SM * sms // tiles
    return max(1, min(wanted, reduction // configs.CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK))


def wgrad_step(arch: int | None) -> int:
    """The granule of wgrad's split of its reduction: the largest BLOCK_K of the wgrad configs
    that may run -- those of ``arch``'s tables, or the interpreter's (``arch`` None) -- so every
    split is whole K-steps of every config (its image-lane walk needs it)."""
    if arch is None:
        return configs.CONV2D_RELU_INTERPRETER_CONFIG["BLOCK_K"]
    return max(cfg["BLOCK_K"] for table in (arch, GATHER) for dot in DOTS for cfg in config_table(table, dot)["wgrad"])


def _wgrad_split_chunk(gemm_m: int, gemm_n: int, gemm_k: int, groups: int, sms: int, arch: int) -> int:
    """Reduction terms per split (whole K-steps, wgrad_step) on a GPU of ``sms`` SMs and config
    arch ``arch``, for the tile count of its first tensor-core wgrad config."""
    ref = config_table(arch, "mma")["wgrad"][0]
    tiles = triton.cdiv(gemm_m, ref["BLOCK_M"]) * triton.cdiv(gemm_n, ref["BLOCK_N"]) * groups
    splits = wgrad_splits(gemm_k, tiles, sms)
    step = wgrad_step(arch)
    return triton.cdiv(triton.cdiv(gemm_k, splits), step) * step


def _wgrad_krsc(weight: torch.Tensor) -> bool:
    """dw is written in KRSC order when the weight is (channels contiguous), else KCRS."""
    return weight.shape[1] > 1 and weight.stride(1) == 1


def pixel_stride(t: torch.Tensor) -> Optional[int]:
    """The stride between consecutive pixels (n, h, w) of a 4-D tensor whose n, h, w dimensions
    are equally spaced (channels-last, or any view keeping them so; size-1 dimensions do not
    count), else None (NCHW: an image's last pixel and the next image's first are C*H*W apart)."""
    step = span = None
    for dim in (3, 2, 0):
        size, stride = t.shape[dim], t.stride(dim)
        if size == 1:
            continue
        if span is not None and stride != span:
            return None
        step = stride if step is None else step
        span = stride * size
    return 1 if step is None else step


def _wgrad_launch(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                  dw_partial: torch.Tensor, db_partial: torch.Tensor, chunk: int,
                  stride: Sequence[int], padding: Sequence[int], groups: int, precision: str):
    """(kernel arguments, grid) of the weight and bias gradients (real or meta tensors);
    ``grad`` has the ReLU mask applied, its pixels equally spaced (:func:`pixel_stride`);
    ``dw_partial`` (splits, K, C/groups*R*S) fp32 in the order :func:`_wgrad_krsc` picks."""
    for t, name in ((grad, "gradient"), (x, "input")):
        if pixel_stride(t) is None:
            raise ValueError(f"conv2d_relu_wgrad: wgrad needs an {name} with equally spaced pixels (channels-last), "
                             f"got strides {t.stride()}")
    N, C, H, W = x.shape
    K, c_per_group, R, S = weight.shape
    P, Q = grad.shape[2:]
    gemm_m, gemm_n, gemm_k = K // groups, c_per_group * R * S, N * P * Q
    flat_k = use_flat_k(c_per_group, R, S)
    splits = triton.cdiv(gemm_k, chunk)
    sdw_c, sdw_t = (1, c_per_group) if _wgrad_krsc(weight) else (R * S, 1)

    def grid(meta):
        n_tiles = (triton.cdiv(gemm_n, meta["BLOCK_N"]) if flat_k
                   else R * S * triton.cdiv(c_per_group, meta["BLOCK_N"]))
        return (triton.cdiv(gemm_m, meta["BLOCK_M"]) * n_tiles, groups, splits)

    args = dict(
        g_ptr=grad, x_ptr=x, dw_partial_ptr=dw_partial, db_partial_ptr=db_partial,
        H=H, W=W, P=P, Q=Q, R=R, S=S,
        stride_h=stride[0], stride_w=stride[1], pad_h=padding[0], pad_w=padding[1],
        sg_k=grad.stride(1), sg_pix=pixel_stride(grad),
        sx_n=x.stride(0), sx_c=x.stride(1), sx_h=x.stride(2), sx_w=x.stride(3), sx_pix=pixel_stride(x),
        sdw_c=sdw_c, sdw_t=sdw_t,
        GEMM_M=gemm_m, GEMM_N=gemm_n, GEMM_K=gemm_k, C_PER_GROUP=c_per_group, SPLIT_CHUNK=chunk, BATCH=N,
        FLAT_K=flat_k, INPUT_PRECISION=precision,
    )
    return args, grid
