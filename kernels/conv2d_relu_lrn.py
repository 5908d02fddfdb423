"""Conv + bias + ReLU + cross-channel LRN in one Triton kernel: LRN in the conv's epilogue.

``conv2d_relu_lrn(x, w, b, stride, padding, groups, size, alpha, beta, k)`` equals
``F.local_response_norm(F.relu(F.conv2d(x, w, b, stride, padding, 1, groups)), size, alpha,
beta, k)`` (PyTorch's alpha convention: D_c = k + alpha/size * sum of a^2 over channels
[c - size//2, c + (size-1)//2], y = a * D^-beta), forward and backward.

The forward is the implicit GEMM of ``kernels/conv2d_relu.py`` (the same main loop,
``kernels._conv_gemm.conv_fwd_tile``) with a wider epilogue on the fp32 accumulator: + bias,
ReLU (NaN kept), then LRN across the tile's columns -- the window sum is ``size`` shifted copies
of a^2 (``tl.gather`` along the channel axis), D^-beta as exp2(-beta * log2 D) -- and one store.
That needs every channel LRN reads in the program's tile: BLOCK_N is the channels per group
rounded up to a power of two, and a layer of two groups (paper conv2, 2 x 128) computes both
groups' accumulators in one program and normalizes across them (its windows cross the group
boundary). :func:`fused_problem` says when that does not hold (more than 256 channels in all,
more than 2 groups, two groups of a width that is not a power of two); the op then runs
``kernels.conv2d_relu`` and ``kernels.local_response_norm`` instead, and ``kernels.apply``
reports the reason.

Backward. LRN's backward needs the pre-LRN activation a = relu(conv) (it is also the ReLU mask);
D is recomputed from a through L1/L2 (size x (size + 2) cached loads an element, as
``kernels/lrn.py``) rather than stored: storing D would add a 4-byte write an element to the
forward and a 4-byte read to the backward (paper conv1 at batch 128: 149 MB each way). So a
training forward stores y and a (``SAVE_RELU``; inference stores y only), and the backward is
one memory-bound kernel -- LRN backward and the ReLU mask fused -- ahead of the conv's own dgrad
and wgrad (``alexnet_fast::conv2d_relu_dgrad`` / ``_wgrad``).

DRAM bytes (profiling/flops.py, ``conv_lrn_traffic``): against conv + ReLU then the fused
LRN + max-pool that the triton variant ran before, LRN in the epilogue moves the activation's
round trip rather than removing it -- the pool now reads the LRN output instead of the ReLU
output -- so inference moves the same bytes; training saves one activation read (the backward's
LRN + ReLU kernel reads a once instead of LRN + pool reading a and the ReLU mask reading it
again) and pays one write (a, stored next to y): also even. What it saves is the LRN's own pass
against every unfused pipeline (eager: 8 full passes, see the table).

Why the max-pool is not in the epilogue too: AlexNet's 3x3 / stride 2 windows overlap, and an
M tile is BLOCK_M images at ONE output pixel (the image-major walk) or a run of pixels of one
image row: a pooled output needs a 3x3 patch of conv pixels, which lie in 9 different tiles.
Fusing it needs tiles of 2-D pixel patches with a halo recomputed: a tile of t x t pool outputs
reads (2t + 1)^2 conv pixels for its 4t^2, +27% MMAs at t = 4 (+13% at t = 8, whose 17 x 17 patch
at 128 channels is a 37 K-element accumulator per image, beyond a program's registers), or
atomics across programs (a float max with its argmax). It would save the LRN output's write and
read: 2 x 74 MB (conv1) + 2 x 48 MB (conv2) at batch 128 in bf16, forward.

Layouts, dtypes, strides, errors: those of ``kernels.conv2d_relu`` (NCHW or channels_last, any
strides; fp32 / fp16 / bf16, one dtype, autocast as F.conv2d), plus the LRN arguments of
``kernels.local_response_norm`` (size >= 1, alpha >= 0, k > 0, finite).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import (
    TRITON_PTR, KernelSpec, autotuned, check_grad, kernel_specs, device_guard, is_channels_last, layout_name,
    memory_format_of, pixel_channel_tile, register_autocast, tile_offsets,
)
from alexnet_fast.kernels._conv_gemm import conv_fwd_tile
from alexnet_fast.kernels._conv_launch import (
    _AUTOTUNE_KEYS, _FAST_PATH_ARGS, _HEURISTICS, _fwd_launch, _output_hw, _precision, _weight_for, dot_kind,
)
from alexnet_fast.kernels.conv2d_relu import _check_inputs, conv2d_relu
from alexnet_fast.kernels.lrn import check_lrn_args, local_response_norm, lrn_fwd, lrn_input_grad, pow_fp32

__all__ = ["conv2d_relu_lrn", "fused_problem", "codegen_specs"]

OP = "conv2d_relu_lrn"


# =======================================================================================
# Triton kernels
# =======================================================================================

@triton.jit
def _bias_relu(acc, bias_ptr, k_out, mask_n, HAS_BIAS: tl.constexpr):
    """+ bias (fp32) and ReLU on an accumulator; NaN stays NaN, as in F.relu."""
    if HAS_BIAS:
        acc += tl.load(bias_ptr + k_out, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    return tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _window_sum(sq, BLOCK_M: tl.constexpr, WIDTH: tl.constexpr, SIZE: tl.constexpr):
    """sum of ``sq`` (BLOCK_M x WIDTH) over columns [c - SIZE//2, c + (SIZE-1)//2] for each column
    c, columns outside the tile counting as zero: SIZE - 1 gathers along the channel axis."""
    cols = tl.arange(0, WIDTH)
    win = sq
    for i in tl.static_range(SIZE):
        if i != SIZE // 2:
            src = cols + (i - SIZE // 2)
            idx = tl.minimum(tl.maximum(src, 0), WIDTH - 1)
            shifted = tl.gather(sq, tl.broadcast_to(idx[None, :], (BLOCK_M, WIDTH)), 1)
            win += tl.where(((src >= 0) & (src < WIDTH))[None, :], shifted, 0.0)
    return win


@triton.jit
def _store_tile(y_ptr, a_ptr, a, win, y_row, k_out, mask_m, mask_n, sy_k, alpha_over_size, beta, k,
                SAVE_RELU: tl.constexpr):
    """y = a * (k + alpha/size * win)^-beta stored in y's dtype; a too when ``SAVE_RELU``."""
    y = a * pow_fp32(k + alpha_over_size * win, -beta)
    offs = y_row[:, None] + (k_out * sy_k)[None, :]
    mask = mask_m[:, None] & mask_n[None, :]
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    if SAVE_RELU:
        tl.store(a_ptr + offs, a.to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit
def conv2d_relu_lrn_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, a_ptr,
    H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w,
    sx_n, sx_c, sx_h, sx_w,
    sw_k, sw_c, sw_r, sw_s,
    sy_n, sy_k, sy_p, sy_q,
    GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
    alpha_over_size, beta, k,
    HAS_BIAS: tl.constexpr, SAVE_RELU: tl.constexpr, SIZE: tl.constexpr, GROUPS: tl.constexpr,
    FLAT_K: tl.constexpr, IMAGE_ROWS: tl.constexpr, EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """y = LRN(relu(bias + conv(x, w))) over all K = GROUPS * GEMM_N channels of BLOCK_M output
    pixels; a = relu(bias + conv) stored too when ``SAVE_RELU`` (what the backward reads).

    Grid (cdiv(GEMM_M, BLOCK_M), 1): one program holds every channel (GEMM_N <= BLOCK_N; with
    GROUPS = 2, GEMM_N == BLOCK_N: both groups' accumulators, LRN's windows crossing between them).
    y and a share strides (sy_*)."""
    acc, y_row, mask_m, k_out, mask_n = conv_fwd_tile(
        x_ptr, w_ptr, 0, H, W, P, Q, R, S, stride_h, stride_w, pad_h, pad_w,
        sx_n, sx_c, sx_h, sx_w, sw_k, sw_c, sw_r, sw_s, sy_n, sy_p, sy_q,
        GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
        FLAT_K, IMAGE_ROWS, EVEN_K, INPUT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
    a = _bias_relu(acc, bias_ptr, k_out, mask_n, HAS_BIAS)
    if GROUPS == 1:
        win = _window_sum(a * a, BLOCK_M, BLOCK_N, SIZE)
        _store_tile(y_ptr, a_ptr, a, win, y_row, k_out, mask_m, mask_n, sy_k, alpha_over_size, beta, k, SAVE_RELU)
    else:  # two groups: the second group's accumulator, then LRN across both (channel g*BLOCK_N + n)
        acc1, _, _, k_out1, mask_n1 = conv_fwd_tile(
            x_ptr, w_ptr, 1, H, W, P, Q, R, S, stride_h, stride_w, pad_h, pad_w,
            sx_n, sx_c, sx_h, sx_w, sw_k, sw_c, sw_r, sw_s, sy_n, sy_p, sy_q,
            GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
            FLAT_K, IMAGE_ROWS, EVEN_K, INPUT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
        a1 = _bias_relu(acc1, bias_ptr, k_out1, mask_n1, HAS_BIAS)
        both = tl.reshape(tl.permute(tl.join(a, a1), (0, 2, 1)), (BLOCK_M, 2 * BLOCK_N))  # channel g*BLOCK_N + n
        win = _window_sum(both * both, BLOCK_M, 2 * BLOCK_N, SIZE)
        win0, win1 = tl.split(tl.permute(tl.reshape(win, (BLOCK_M, 2, BLOCK_N)), (0, 2, 1)))
        _store_tile(y_ptr, a_ptr, a, win0, y_row, k_out, mask_m, mask_n, sy_k, alpha_over_size, beta, k, SAVE_RELU)
        _store_tile(y_ptr, a_ptr, a1, win1, y_row, k_out1, mask_m, mask_n1, sy_k, alpha_over_size, beta, k,
                    SAVE_RELU)


@triton.jit
def lrn_relu_bwd_kernel(a_ptr, dy_ptr, g_ptr, C, HW, size, alpha_over_size, beta, k,
                        CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """g = dL/d(conv + bias): LRN's backward from a = relu(conv) and dy = dL/dy (D recomputed,
    kernels/lrn.py's ``lrn_input_grad``), then the ReLU mask (0 where a <= 0; a NaN a passes its
    gradient, as threshold_backward). Grid (N * cdiv(HW, BLOCK_P), cdiv(C, BLOCK_C))."""
    n, hw, c, mask = pixel_channel_tile(HW, C, BLOCK_P, BLOCK_C)
    dx = lrn_input_grad(a_ptr, dy_ptr, dy_ptr, n, c, hw, mask, C, HW, 1, 1, 1, size, alpha_over_size, beta, k,
                        1, 1, 1, 1, 0, 0, CHANNELS_LAST, False)
    offs, _ = tile_offsets(n, c, hw, C, HW, CHANNELS_LAST)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(g_ptr + offs, tl.where(a <= 0.0, 0.0, dx).to(g_ptr.dtype.element_ty), mask=mask)


# =======================================================================================
# Launchers
# =======================================================================================

def _tile_channels(k_per_group: int) -> int:
    """BLOCK_N of the fused forward: the channels of a group, a power of two >= 16 (tl.dot's least)."""
    return max(16, triton.next_power_of_2(k_per_group))


def fused_problem(out_channels: int, groups: int) -> str | None:
    """Why a conv of ``out_channels`` in ``groups`` groups cannot take LRN in its epilogue (one
    program must hold every channel LRN reads), None when it can."""
    k_per_group = out_channels // max(groups, 1)
    width = _tile_channels(k_per_group) * groups
    if groups > configs.CONV2D_RELU_LRN_MAX_GROUPS:
        return (f"groups={groups}: the fused epilogue holds at most {configs.CONV2D_RELU_LRN_MAX_GROUPS} groups' "
                f"accumulators in one program")
    if groups > 1 and k_per_group != _tile_channels(k_per_group):
        return (f"{k_per_group} channels per group is not a power of two >= 16: two groups' tiles side by side "
                f"would put padding between the channels LRN's window crosses")
    if width > configs.CONV2D_RELU_LRN_MAX_CHANNELS:
        return (f"{out_channels} channels need a {width}-wide tile; the fused epilogue takes at most "
                f"{configs.CONV2D_RELU_LRN_MAX_CHANNELS}")
    return None


def _lrn_fwd_launch(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], y: torch.Tensor,
                    a: Optional[torch.Tensor], stride: Sequence[int], padding: Sequence[int], groups: int,
                    lrn: tuple, precision: str):
    """(kernel arguments, grid) of the fused forward (real or meta tensors): the conv's own
    arguments (kernels._conv_launch._fwd_launch) plus LRN's; ``a`` None stores y only."""
    args, _ = _fwd_launch(x, weight, bias, y, stride, padding, groups, True, precision)
    size, alpha, beta, k = lrn
    del args["RELU"]
    args.update(a_ptr=a if a is not None else y, alpha_over_size=alpha / size, beta=beta, k=k,
                SAVE_RELU=a is not None, SIZE=size, GROUPS=groups, BLOCK_N=_tile_channels(weight.shape[0] // groups))
    gemm_m = args["GEMM_M"]

    def grid(meta):
        return (triton.cdiv(gemm_m, meta["BLOCK_M"]), 1)

    return args, grid


def fast_path(args: dict, dot: str) -> bool:
    """The conv's channels-last rule (kernels._conv_launch.fast_path) for the fused table: not the
    flat walk, unit channel strides, counts and strides multiples of 16, a batch every BLOCK_M divides."""
    units, multiples, _, _ = _FAST_PATH_ARGS["fwd"]
    table = configs.CONV2D_RELU_LRN_CONFIGS[dot].get("fast", [])
    return (bool(table) and not args["FLAT_K"] and all(args[a] == 1 for a in units)
            and all(args[a] % 16 == 0 for a in multiples)
            and args["BATCH"] % max(cfg["BLOCK_M"] for cfg in table) == 0)


def _table_key(args: dict, dtype: torch.dtype) -> str:
    dot = dot_kind(dtype, args["INPUT_PRECISION"])
    path = "fast" if fast_path(args, dot) else "gather"
    return f"{dot}/{path}/n{args['BLOCK_N']}x{args['GROUPS']}"


def _tables(block_n: int, groups: int) -> dict[str, list[dict]]:
    """Every table key of this tile width, BLOCK_N filled in (the launch rule, not a tunable)."""
    return {f"{dot}/{path}/n{block_n}x{groups}": [{**cfg, "BLOCK_N": block_n} for cfg in table]
            for dot, paths in configs.CONV2D_RELU_LRN_CONFIGS.items() for path, table in paths.items()}


_LAUNCHED = triton.heuristics(_HEURISTICS["fwd"])(conv2d_relu_lrn_fwd_kernel)
_LAUNCHED.__name__ = conv2d_relu_lrn_fwd_kernel.__name__  # what launch spies and logs read


def _launch_fwd(args: dict, grid, x: torch.Tensor) -> None:
    block_n, groups = args.pop("BLOCK_N"), args["GROUPS"]
    interp = {**configs.CONV2D_RELU_LRN_INTERPRETER_CONFIG, "BLOCK_N": block_n}
    key = _table_key({**args, "BLOCK_N": block_n}, x.dtype)
    tuned = autotuned(_LAUNCHED, _tables(block_n, groups), interp, key, _AUTOTUNE_KEYS["fwd"], batch=x.shape[0])
    with device_guard(x):
        tuned[grid](**args)


def conv2d_relu_lrn_fwd(x, weight, bias, stride, padding, groups, lrn: tuple, save_relu: bool):
    """Forward launcher (no autograd): (y, a), a = relu(conv) when ``save_relu`` else an empty
    tensor; both in x's memory format."""
    stride, padding = _check_inputs(x, weight, bias, stride, padding, groups, True)
    problem = fused_problem(weight.shape[0], groups)
    if problem:
        raise ValueError(f"{OP}: {problem}")
    N, _, H, W = x.shape
    K, _, R, S = weight.shape
    P, Q = _output_hw(H, W, R, S, stride, padding)
    fmt = memory_format_of(x)
    y = torch.empty((N, K, P, Q), dtype=x.dtype, device=x.device, memory_format=fmt)
    a = torch.empty_like(y) if save_relu else y.new_empty((0,))
    if y.numel():
        args, grid = _lrn_fwd_launch(x, _weight_for(weight, x), bias.contiguous() if bias is not None else None,
                                     y, a if save_relu else None, stride, padding, groups, lrn, _precision(x))
        if groups > 1 and x.device.type == "cuda" and (
                not fast_path(args, dot_kind(x.dtype, args["INPUT_PRECISION"]))
                or torch.cuda.get_device_capability(x.device)[0] not in TWO_GROUP_MAJORS):
            # two groups' accumulators off the channels-last path spill (312 B on sm_90, bf16), and on
            # sm_100 the two-group main loop is 32x the GEMM's (TWO_GROUP_ARCHS): conv + ReLU, then
            # LRN, inside this op (a is the conv's output, what the backward reads)
            a = conv2d_relu(x, weight, bias, stride, padding, groups)
            return lrn_fwd(a, *lrn), (a if save_relu else y.new_empty((0,)))
        _launch_fwd(args, grid, x)
    return y, a


def lrn_relu_bwd(grad: torch.Tensor, a: torch.Tensor, lrn: tuple) -> torch.Tensor:
    """dL/d(conv + bias) from dL/dy and the saved a = relu(conv), in a's memory format."""
    if a.dim() != 4:
        raise ValueError(f"{OP}: backward needs the ReLU output the forward stores when a gradient is "
                         f"required; got {tuple(a.shape)} (the forward ran without save_relu)")
    check_grad(grad, a, a.shape, op=f"{OP} backward")
    fmt = memory_format_of(a)
    a = a.contiguous(memory_format=fmt)
    grad = grad.contiguous(memory_format=fmt)
    g = torch.empty_like(a)
    if a.numel():
        N, C, H, W = a.shape
        size, alpha, beta, k = lrn
        grid = lambda meta: (N * triton.cdiv(H * W, meta["BLOCK_P"]), triton.cdiv(C, meta["BLOCK_C"]))  # noqa: E731
        tuned = autotuned(lrn_relu_bwd_kernel, configs.LRN_CONFIGS, configs.LRN_INTERPRETER, layout_name(fmt),
                          ("C", "HW", "size"), batch=N)
        with device_guard(a):
            tuned[grid](a, grad, g, C, H * W, size, alpha / size, beta, k, CHANNELS_LAST=fmt == torch.channels_last)
    return g


# =======================================================================================
# Custom ops (eager + torch.compile) and autograd
# =======================================================================================

@torch.library.custom_op("alexnet_fast::conv2d_relu_lrn", mutates_args=())
def _conv2d_relu_lrn_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int],
                        padding: list[int], groups: int, size: int, alpha: float, beta: float, k: float,
                        save_relu: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return conv2d_relu_lrn_fwd(x, weight, bias, stride, padding, groups, (size, alpha, beta, k), save_relu)


@_conv2d_relu_lrn_op.register_fake
def _(x, weight, bias, stride, padding, groups, size, alpha, beta, k, save_relu):
    P, Q = _output_hw(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], stride, padding)
    y = torch.empty((x.shape[0], weight.shape[0], P, Q), dtype=x.dtype, device=x.device,
                    memory_format=memory_format_of(x))
    return y, (torch.empty_like(y) if save_relu else y.new_empty((0,)))


@torch.library.custom_op("alexnet_fast::lrn_relu_bwd", mutates_args=())
def _lrn_relu_bwd_op(grad: torch.Tensor, a: torch.Tensor, size: int, alpha: float, beta: float,
                     k: float) -> torch.Tensor:
    return lrn_relu_bwd(grad, a, (size, alpha, beta, k))


@_lrn_relu_bwd_op.register_fake
def _(grad, a, size, alpha, beta, k):
    return torch.empty(a.shape, dtype=a.dtype, device=a.device, memory_format=memory_format_of(a))


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding, groups, size, alpha, beta, k, _ = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.conv = (list(stride), list(padding), groups)
    ctx.lrn = (size, alpha, beta, k)
    ctx.has_bias = bias is not None
    ctx.input_shape = list(x.shape)
    ctx.channels_last = is_channels_last(x)


def _backward(ctx, grad_y, _grad_a):
    x, weight, a = ctx.saved_tensors
    stride, padding, groups = ctx.conv
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    g = torch.ops.alexnet_fast.lrn_relu_bwd(grad_y.to(a.dtype), a, *ctx.lrn)  # shared by dgrad and wgrad
    dx = dw = db = None
    if need_x:
        dx = torch.ops.alexnet_fast.conv2d_relu_dgrad(g, weight, ctx.input_shape, stride, padding, groups,
                                                      ctx.channels_last)
    if need_w or (need_b and ctx.has_bias):
        dw, db = torch.ops.alexnet_fast.conv2d_relu_wgrad(g, x, weight, stride, padding, groups)
    return (dx, dw if need_w else None, db if need_b and ctx.has_bias else None) + (None,) * 8


_conv2d_relu_lrn_op.register_autograd(_backward, setup_context=_setup_context)
register_autocast(_conv2d_relu_lrn_op)


def conv2d_relu_lrn(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                    stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0, groups: int = 1,
                    size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> torch.Tensor:
    """``F.local_response_norm(F.relu(F.conv2d(x, weight, bias, stride, padding, 1, groups)), size,
    alpha, beta, k)`` with LRN in the conv kernel's epilogue, differentiable in x, weight and bias.

    Arguments as :func:`kernels.conv2d_relu` and :func:`kernels.local_response_norm`; the result
    has x's dtype and memory format. Where :func:`fused_problem` names a reason, the two ops run
    one after the other (same result). Raises TypeError / ValueError for bad inputs (conv's
    checks, then size >= 1, alpha >= 0, k > 0, finite)."""
    autocast = isinstance(x, torch.Tensor) and x.device.type in ("cuda", "cpu") \
        and torch.is_autocast_enabled(x.device.type)
    stride, padding = _check_inputs(x, weight, bias, stride, padding, groups, True, same_dtype=not autocast)
    check_lrn_args(x, size, alpha, beta, k, op=OP)
    if fused_problem(weight.shape[0], groups):
        return local_response_norm(conv2d_relu(x, weight, bias, stride, padding, groups), size, alpha, beta, k)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    y, _ = torch.ops.alexnet_fast.conv2d_relu_lrn(x, weight, bias, list(stride), list(padding), groups, size,
                                                  float(alpha), float(beta), float(k), save)
    return y


# =======================================================================================
# Code-generation check
# =======================================================================================

def _signature(dtype: torch.dtype, constexprs: dict) -> dict[str, str]:
    """Triton types of the fused forward's arguments: pointers in ``dtype``, the LRN floats fp32,
    i32 sizes and strides, the constexprs."""
    return {n: "constexpr" if n in constexprs else TRITON_PTR[dtype] if n.endswith("_ptr")
            else "fp32" if n in ("alpha_over_size", "beta", "k") else "i32"
            for n in conv2d_relu_lrn_fwd_kernel.arg_names}


_BWD_ARG_TYPES = {"a_ptr": "*x", "dy_ptr": "*x", "g_ptr": "*x", "C": "i32", "HW": "i32", "size": "i32",
                  "alpha_over_size": "fp32", "beta": "fp32", "k": "fp32"}
_PRECISIONS = (("fp16", torch.float16, "ieee"), ("bf16", torch.bfloat16, "ieee"), ("fp32", torch.float32, "tf32"),
               ("fp32", torch.float32, "ieee"))


def _spec_name(cfg: dict, block_n: int, groups: int, path: str, dtype: torch.dtype, precision: str) -> str:
    return (f"{cfg['BLOCK_M']}x{block_n}x{cfg['BLOCK_K']}_w{cfg['num_warps']}_s{cfg['num_stages']}_g{groups}_{path}"
            + (f"_{precision}" if dtype == torch.float32 else ""))


# Why a two-group launch exceeds the register gate (1.3x the reference GEMM of its 64x128 tile):
# measured sm_90 bf16 241 registers, no spill, A and B in 3 buffers by LDGSTS, wgmma at depth 1,
# loop 0.91x the GEMM's -- pipelined like it; what it holds beyond the GEMM is the second group's
# accumulator and the 256-channel LRN epilogue (a, a^2, the window sum), live at once.
TWO_GROUPS_REGISTER_EXCEPTION = (
    "two groups in one program (LRN's windows cross the group boundary): the first group's 64x128 "
    "fp32 activation stays live through the second group's main loop and the LRN epilogue holds a, "
    "a^2 and the window sum of 256 channels; on sm_80 / sm_90 the main loop is pipelined like the "
    "reference GEMM's")
# The archs a two-group fused program runs on. sm_100 (measured, paper conv2 b128 bf16 64x128x64 w8 s3):
# 249 registers and a main loop of 3,806 SASS instructions per K-step against the reference GEMM's
# 119 (issue ceiling 0.02: 2,542 "other" instructions, tensor-memory traffic of the two accumulators),
# so on sm_100 the op runs conv + ReLU, then LRN, and the check compiles two-group specs for these only.
TWO_GROUP_ARCHS = (80, 90)
TWO_GROUP_MAJORS = (8, 9)


def _launch_specs(layers: Sequence[tuple], batches: Sequence[int]) -> list[KernelSpec]:
    """Launch-faithful specs of the fused forward: every config of the path each launch takes, at
    ``layers`` ((preset, layer, input (C, H, W), weight shape, stride, padding, groups, (size,
    alpha, beta, k))) and ``batches``, channels-last activations and KRSC weights (meta tensors),
    fp16 / bf16 / fp32-as-TF32; the flat walk (conv1's 3 channels) keeps the conv's exception."""
    from alexnet_fast.kernels.conv2d_relu import FLAT_K_PIPELINE_EXCEPTION, _constexpr_args

    constexpr_names = set(_constexpr_args(conv2d_relu_lrn_fwd_kernel))
    specs = []
    for dtype_name, dtype, precision in _PRECISIONS[:3]:
        dot = dot_kind(dtype, precision)
        for batch in batches:
            for preset, layer, (c, h, w), wshape, stride, padding, groups, lrn in layers:
                meta = dict(dtype=dtype, device="meta")
                P, Q = _output_hw(h, w, wshape[2], wshape[3], (stride, stride), (padding, padding))
                x = torch.empty((batch, c, h, w), memory_format=torch.channels_last, **meta)
                weight = torch.empty(wshape, memory_format=torch.channels_last, **meta)
                y = torch.empty((batch, wshape[0], P, Q), memory_format=torch.channels_last, **meta)
                args, grid = _lrn_fwd_launch(x, weight, torch.empty((wshape[0],), **meta), y, torch.empty_like(y),
                                             (stride, stride), (padding, padding), groups, lrn, precision)
                block_n = args.pop("BLOCK_N")
                path = "fast" if fast_path(args, dot) else "gather"
                runtime = {n: (v.dtype if isinstance(v, torch.Tensor) else v) for n, v in args.items()
                           if n not in constexpr_names}
                fixed = {n: v for n, v in args.items() if n in constexpr_names}
                for cfg in configs.CONV2D_RELU_LRN_CONFIGS[dot][path]:
                    tile = {**{n: v for n, v in cfg.items() if n.isupper()}, "BLOCK_N": block_n}
                    values = {**args, **tile}
                    heur = {n: rule(values) for n, rule in _HEURISTICS["fwd"].items()}
                    specs.append(KernelSpec(
                        op=OP, kernel=conv2d_relu_lrn_fwd_kernel.__name__,
                        config=_spec_name(cfg, block_n, groups, path, dtype, "tf32"), fn=conv2d_relu_lrn_fwd_kernel,
                        constexprs={**fixed, **tile, **heur}, args=runtime, shape=f"{preset} {layer} b{batch} NHWC",
                        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], dtype=dtype_name, expects_mma=True,
                        extra={"input_precision": precision, "table": dot, "flat_k": bool(args["FLAT_K"]),
                               "gemm_tile": (cfg["BLOCK_M"], block_n, cfg["BLOCK_K"]), "grid": grid(cfg),
                               **({"pipeline_exception": FLAT_K_PIPELINE_EXCEPTION} if args["FLAT_K"] else
                                  {"pipeline_exception": TWO_GROUPS_REGISTER_EXCEPTION, "archs": TWO_GROUP_ARCHS}
                                  if groups == 2 else {})}))
    return specs


def codegen_specs(layers: Sequence[tuple] = (), batches: Sequence[int] = (),
                  launches: Sequence[tuple] = ()) -> list[KernelSpec]:
    """Specs of this op for the codegen check (``profiling/codegen/``). Generic ones of the fused
    forward: every config of every dot and path at 128 channels (conv1's 96 rounded up; GROUPS 1)
    and 2 x 128 (conv2; GROUPS 2, fast path only), fp16 / bf16 / fp32-as-TF32 on tensor cores and fp32 "ieee" on
    FMA, with the worst-case launch constexprs (masked channel blocks; rows of pixels on the gather
    path, the flat walk there at GROUPS 1). Then the launch-faithful ones at ``layers`` and
    ``batches`` (:func:`_launch_specs`), and the backward kernel's (LRN backward + the ReLU mask)
    through kernels._common.kernel_specs on LRN's tiles, with ``launches`` ((label, sizes) of
    channels-last LRN layers) as launch-faithful rows."""
    specs = []
    for dtype_name, dtype, precision in _PRECISIONS:
        dot = dot_kind(dtype, precision)
        for path, table in configs.CONV2D_RELU_LRN_CONFIGS[dot].items():
            for groups in (1, 2):
                if groups == 2 and path != "fast":
                    # two groups launch only on the fast path on a GPU (conv2d_relu_lrn_fwd): the gather
                    # path's 2 x 128 tile spills (measured 64x128x32 w8: bf16 208 / 312 / 36 B on
                    # sm_80 / sm_90 / sm_100, TF32 240 / 136 / 64 B), so no GPU compiles it: no spec
                    continue
                for cfg in table:
                    constexprs = {"HAS_BIAS": True, "SAVE_RELU": True, "SIZE": 5, "GROUPS": groups,
                                  "FLAT_K": path == "gather" and groups == 1, "IMAGE_ROWS": path == "fast",
                                  "EVEN_K": False, "INPUT_PRECISION": precision, "BLOCK_N": 128,
                                  **{n: v for n, v in cfg.items() if n.isupper()}}
                    specs.append(KernelSpec(op=OP, kernel=conv2d_relu_lrn_fwd_kernel.__name__,
                                            config=_spec_name(cfg, 128, groups, path, dtype, precision),
                                            fn=conv2d_relu_lrn_fwd_kernel, signature=_signature(dtype, constexprs),
                                            constexprs=constexprs, num_warps=cfg["num_warps"],
                                            num_stages=cfg["num_stages"], dtype=dtype_name, expects_mma=dot != "fma",
                                            extra={"input_precision": precision, "table": dot,
                                                   **({"archs": TWO_GROUP_ARCHS} if groups == 2 else {})}))
    bwd_launches = [(label.replace(" lrn", " conv+relu+lrn", 1), sizes) for label, sizes in launches]
    return (specs + _launch_specs(layers, batches)
            + kernel_specs(OP, lrn_relu_bwd_kernel, _BWD_ARG_TYPES, {}, configs.LRN_CONFIGS, bwd_launches))
