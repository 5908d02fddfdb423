"""What every Triton op in ``kernels/`` shares: interpreter detection, input checks, the
autocast rule, the device guard around every launch, the autotune wrapper, and the
description of a kernel config that the code-generation check compiles.

Kept small on purpose: each op's kernels, launchers and autograd live in its own file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterable, Mapping, Sequence

import torch
import triton
import triton.language as tl

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_NUMEL = 2**31 - 1  # the kernels address elements with int32 offsets


def is_interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(*tensors: torch.Tensor, op: str) -> None:
    """Triton needs CUDA tensors, or CPU tensors under the interpreter; all on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {sorted(map(str, devices))}")
    device = next(iter(devices))
    if device.type == "cuda":
        return
    if device.type == "cpu" and is_interpreting():
        return
    hint = " (CPU tensors run only under TRITON_INTERPRET=1)" if device.type == "cpu" else ""
    raise ValueError(f"{op}: Triton kernels need CUDA tensors, got device {device}{hint}")


def check_tensor(t: Any, name: str, *, op: str, ndim: int | None = None,
                 dtypes: Iterable[torch.dtype] = SUPPORTED_DTYPES) -> None:
    """TypeError for a non-tensor or unsupported dtype, ValueError for a wrong rank."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    dtypes = tuple(dtypes)
    if t.dtype not in dtypes:
        raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported: {', '.join(map(str, dtypes))}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {tuple(t.shape)}")


# ---------------------------------------------------------------------------------------
# Device and precision state: the device guard and the autocast rule of every custom op
# ---------------------------------------------------------------------------------------

def device_guard(t: torch.Tensor) -> ContextManager:
    """``torch.cuda.device(t.device)`` for a CUDA tensor, a no-op context otherwise.

    Triton launches on the CURRENT CUDA device, not the tensors' one: every launch runs
    inside ``with device_guard(x):`` so ``cuda:1`` tensors are worked on by ``cuda:1``."""
    if t.device.type == "cuda":
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


AUTOCAST_DEVICE_TYPES = ("cuda", "cpu")
_AUTOCAST_LIBS: list = []  # keeps the torch.library fragments (and so the registrations) alive
_AUTOCAST_REGISTERED: set[str] = set()


def _autocast_cast(value: Any, device_type: str, dtype: torch.dtype) -> Any:
    """PyTorch's lower_precision_fp cast: floating tensors on ``device_type`` other than
    float64 become ``dtype``; everything else (ints, int8 indices, other devices) is kept."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and value.device.type == device_type and value.dtype != torch.float64:
            return value.to(dtype)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_autocast_cast(v, device_type, dtype) for v in value)
    return value


def register_autocast(op, device_types: Sequence[str] = AUTOCAST_DEVICE_TYPES) -> None:
    """Autocast for the custom op ``op`` as PyTorch has it for ``conv2d`` (lower_precision_fp):
    inside ``torch.autocast(device_type, dtype=D)`` its floating tensor arguments on that
    device type are cast to D (the autocast dtype of the moment, fp16 or bf16) and the op
    runs with autocast off, so the Triton kernel works in D and returns D.

    ``torch.library.register_autocast`` (torch 2.11 and 2.14) casts to ONE dtype fixed at
    registration, which would run a bf16 autocast region in fp16; this rule reads
    ``torch.get_autocast_dtype`` at each call instead. The cast sits above autograd in the
    dispatcher, so autograd records it and an fp32 leaf still gets an fp32 gradient.
    Registered for the forward ops only: their backward ops get the dtypes of the saved
    forward tensors from autograd, as ``convolution_backward`` does (PyTorch lists no
    backward op for autocast). Works under torch.compile (traced like any autocast op).

    ``op``: a ``torch.library.custom_op`` (CustomOpDef) or its OpOverload."""
    overload = getattr(op, "_opoverload", op)
    if not isinstance(overload, torch._ops.OpOverload):
        raise TypeError(f"register_autocast: expected a torch.library.custom_op, got {type(op).__name__}")
    qualname = overload._schema.name  # "namespace::name"
    namespace, name = qualname.split("::")
    for device_type in device_types:
        if f"{qualname}/{device_type}" in _AUTOCAST_REGISTERED:
            continue
        key = "Autocast" + torch._C._dispatch_key_for_device(device_type)
        exclude = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key))

        def kernel(_keyset, *args, _device_type=device_type, _exclude=exclude):
            dtype = torch.get_autocast_dtype(_device_type)
            with torch._C._ExcludeDispatchKeyGuard(_exclude):
                return overload(*_autocast_cast(args, _device_type, dtype))

        lib = torch.library.Library(namespace, "FRAGMENT")
        lib.impl(name, kernel, key, with_keyset=True)
        _AUTOCAST_LIBS.append(lib)
        _AUTOCAST_REGISTERED.add(f"{qualname}/{device_type}")


def is_channels_last(x: torch.Tensor) -> bool:
    """NHWC in memory (and not also trivially NCHW, e.g. C == 1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class KernelSpec:
    """One compile job for the code-generation check (``profiling/codegen/``).

    Two kinds of spec:

    - generic (``args`` is None): ``signature`` maps every argument of ``fn`` to a Triton type
      string ("*fp16", "i32", "fp32", "constexpr") and ``constexprs`` gives the value of each
      constexpr. Pointers are compiled 16-byte aligned, integers with no divisibility unless
      named in ``extra["divisible_by_16"]``: what *some* launch runs, not a particular one.
    - launch-faithful (``args`` given): ``args`` holds the runtime argument values of one real
      launch, every non-constexpr argument of ``fn`` by name -- ints as ints, floats as floats,
      pointers as the tensor or just its ``torch.dtype`` (a 16-byte aligned tensor of that dtype,
      as ``JITFunction.warmup`` takes it), None for an absent optional pointer. ``constexprs`` gives the
      constexpr arguments (tile sizes, flags) as the launcher passes them. The check derives the
      signature, constexprs and ``tt.divisibility`` attributes with Triton's own launcher code
      (``JITFunction``'s binder and ``_pack_args``), so an int equal to 1 becomes a constexpr, an
      int divisible by 16 gets divisibility 16, pointers their alignment, and ``do_not_specialize``
      is honoured exactly as at a launch. ``signature`` may then be left empty; if given it must
      agree with the derived one. ``shape`` labels the launch ("paper conv2 b128 NHWC") and is
      part of the spec id, so the same config appears once per real shape.

    ``dtype`` names the input precision this config is for; ``expects_mma`` says whether the
    kernel should use tensor cores (HMMA on sm_80, HGMMA/HMMA on sm_90, UTCHMMA on sm_100) for that dtype.
    ``extra`` carries optional flags for the check (see profiling/codegen/): ``in_use``,
    ``divisible_by_16`` (generic specs), ``min_load_bytes`` (narrowest acceptable widest global
    load), ``gemm_tile`` and ``input_precision`` (which reference GEMM a tensor-core spec is
    checked against; default: its BLOCK_M/N/K and INPUT_PRECISION constexprs) and
    ``pipeline_exception`` (why a launch-faithful tensor-core spec cannot pipeline like the
    reference: its failures become a documented exception), ``archs`` (the SM archs whose
    autotune tables hold the config: the check compiles it for those only; default all), ``maxnreg``
    ({arch: registers}: the entry's register budget on those archs), ``out_dtype`` ("fp32": the
    kernel writes fp32, and its reference GEMM does too),
    ``autotune_rank`` ({arch: position in that arch's table}; the first ones are what a short
    GPU run tries) and ``grid`` (a launch-faithful spec's launch grid: the report's waves).
    """

    op: str
    kernel: str
    config: str
    fn: Callable
    signature: dict[str, str] = field(default_factory=dict)
    constexprs: dict[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 2
    dtype: str = "fp32"
    expects_mma: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    args: Mapping[str, Any] | None = None
    shape: str = ""

    @property
    def launch_faithful(self) -> bool:
        """True when the spec carries the argument values of a real launch."""
        return self.args is not None


# dtype -> Triton pointer type string, for KernelSpec signatures
TRITON_PTR = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


# ---------------------------------------------------------------------------------------
# Channel-wise ops over NCHW / NHWC tiles (LRN, max-pool, fused LRN + max-pool): addressing,
# checks, the autotune wrapper and the codegen spec builder they share.
# ---------------------------------------------------------------------------------------

@triton.jit
def pixel_channel_tile(num_pixels, C, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's tile on the grid (N * cdiv(num_pixels, BLOCK_P), cdiv(C, BLOCK_C)):
    image n, pixel indices p (BLOCK_P x 1), channels c (1 x BLOCK_C), and the in-bounds mask."""
    num_p_blocks = tl.cdiv(num_pixels, BLOCK_P)
    n = tl.program_id(0) // num_p_blocks
    p = (tl.program_id(0) % num_p_blocks) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask = (p < num_pixels) & (c < C)
    return n, p, c, mask


@triton.jit
def tile_offsets(n, c, hw, C, HW, CHANNELS_LAST: tl.constexpr):
    """Element offsets of (image n, channel c, pixel hw = h * W + w) in an NCHW or NHWC
    tensor with C channels and HW pixels, and the offset step from one channel to the next."""
    if CHANNELS_LAST:
        offs = (n * HW + hw) * C + c
        c_step = 1
    else:
        offs = (n * C + c) * HW + hw
        c_step = HW
    return offs, c_step


@triton.jit
def max_pool_grad_at(dout_ptr, idx_ptr, n, c, ih, iw, mask, C, OH, OW,
                     KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                     PH: tl.constexpr, PW: tl.constexpr, CHANNELS_LAST: tl.constexpr):
    """Max-pool backward at input (n, c, ih, iw), fp32: the sum of dout over the windows that
    contain it and whose int8 window-local argmax (kernels/max_pool2d.py) names it, a gather
    over at most ceil(KH/SH) x ceil(KW/SW) windows. Here, not in max_pool2d.py, because the
    LRN backward (kernels/lrn.py) gathers its upstream gradient with it in the fused op."""
    acc = tl.zeros(mask.shape, dtype=tl.float32)
    oh_last = (ih + PH) // SH  # last window row containing ih (ih + PH >= 0)
    ow_last = (iw + PW) // SW
    for jh in tl.static_range((KH + SH - 1) // SH):
        oh = oh_last - jh
        kh = ih + PH - oh * SH  # row of ih inside window oh: >= 0 by construction
        ok_h = (oh >= 0) & (oh < OH) & (kh < KH)
        for jw in tl.static_range((KW + SW - 1) // SW):
            ow = ow_last - jw
            kw = iw + PW - ow * SW
            m = mask & ok_h & (ow >= 0) & (ow < OW) & (kw < KW)
            o_offs, _ = tile_offsets(n, c, oh * OW + ow, C, OH * OW, CHANNELS_LAST)
            chosen = tl.load(idx_ptr + o_offs, mask=m, other=-1).to(tl.int32)
            # load dout under the window mask only (a mask that depends on loaded data stops the
            # vectorized load), then keep it only where the window chose this input: tl.where
            # selects, so a NaN/inf of a window that chose another input does not leak
            g = tl.load(dout_ptr + o_offs, mask=m, other=0.0).to(tl.float32)
            acc += tl.where(chosen == kh * KW + kw, g, 0.0)
    return acc


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The layout an op keeps: channels_last for NHWC-dense input, else NCHW-contiguous."""
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def layout_name(memory_format: torch.memory_format) -> str:
    return "nhwc" if memory_format == torch.channels_last else "nchw"


def check_numel(x: torch.Tensor, *, op: str) -> None:
    if x.numel() > MAX_NUMEL:
        raise ValueError(f"{op}: {x.numel()} elements exceed the int32 addressing of the kernels "
                         f"({MAX_NUMEL}); split the batch")


def check_int(value: Any, name: str, *, op: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")


def int_pair(value: Any, name: str, *, op: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (each an int >= ``minimum``) as a 2-tuple: ValueError for a
    string (e.g. padding='same'), a sequence that is not a pair or a value < minimum,
    TypeError for anything that is not an int."""
    if isinstance(value, str):
        raise ValueError(f"{op}: {name}={value!r} is not supported; give an int or a pair of ints")
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for v in pair:
        check_int(v, name, op=op, minimum=minimum)
    return int(pair[0]), int(pair[1])


def conv_problem(padding: Any, dilation: Any = 1, padding_mode: str = "zeros") -> str | None:
    """Why the Triton convolutions cannot run a convolution with these settings, None when they
    can: zero padding given as ints, dilation 1. The one rule: ``kernels.nn.Conv2dReLU``,
    ``kernels.apply`` and the conv ops' input checks all ask it (stride, groups and the channel
    counts are the ops' own checks, with their TypeErrors)."""
    if isinstance(padding, str):
        return f"string padding={padding!r} is not supported (give an int or a pair of ints)"
    if padding_mode != "zeros":
        return f"padding_mode={padding_mode!r} is not supported (only 'zeros')"
    try:
        if int_pair(dilation, "dilation", op="conv", minimum=1) != (1, 1):
            return f"dilation={dilation} is not supported (only 1)"
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def check_grad(grad: Any, like: torch.Tensor, shape: Sequence[int], *, op: str) -> None:
    """The incoming gradient of a backward op: a tensor of ``shape`` with ``like``'s dtype and device."""
    check_tensor(grad, "grad", op=op, ndim=4)
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(f"{op}: grad has shape {tuple(grad.shape)}, expected {tuple(shape)}")
    if grad.dtype != like.dtype:
        raise TypeError(f"{op}: grad has dtype {grad.dtype}, expected {like.dtype}")
    check_device(grad, like, op=op)


_TUNED: dict[tuple, Any] = {}


def register_budget(cfg: Mapping[str, Any], arch: int | None) -> int | None:
    """The register budget a table entry gives its kernel on SM arch ``arch`` (its ``maxnreg``:
    {arch: registers}, for the archs whose ptxas would otherwise spill), else None."""
    return (cfg.get("maxnreg") or {}).get(arch)


def device_arch(device: torch.device | None) -> int | None:
    """10 * the major compute capability of a CUDA device (100 on a B200), None for any other."""
    if device is None or torch.device(device).type != "cuda":
        return None
    return 10 * torch.cuda.get_device_capability(device)[0]


def autotuned(kernel, table: Mapping[str, Sequence[dict]], interpreter_config: dict, layout: str,
              key: Sequence[str], *, batch: int, device: torch.device | None = None):
    """``kernel`` wrapped in triton.autotune over ``table[layout]``, or over the single
    ``interpreter_config`` under TRITON_INTERPRET=1 (no benchmarking).

    What changes the best config is the key: Triton's tuning cache keys on the values of
    the kernel arguments named in ``key`` (the shape) and on the tensor dtypes; the batch
    (seen only by the grid) and the memory ``layout`` are not kernel-argument values, so
    each (kernel, layout, batch) gets its own autotuner (and cache) here, and a config
    tuned at batch 1 is never reused at batch 256. The compiled binaries are shared: all
    wrap the one ``kernel``. A ``key`` name that is not an argument of ``kernel`` (which
    Triton would silently leave out of its key) is a ValueError. ``device``: the launch's, whose
    arch picks each entry's register budget (``register_budget``)."""
    unknown = [name for name in key if name not in kernel.arg_names]
    if unknown:
        raise ValueError(f"autotuned: key names {unknown} are not arguments of {kernel.__name__} "
                         f"(arguments: {list(kernel.arg_names)})")
    check_int(batch, "batch", op="autotuned", minimum=0)
    arch = None if is_interpreting() else device_arch(device)
    cache_key = (kernel, layout, batch, arch)
    if cache_key not in _TUNED:
        entries = [interpreter_config] if is_interpreting() else table[layout]
        triton_configs = [
            triton.Config({name: v for name, v in cfg.items() if name.isupper()},
                          num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
                          maxnreg=register_budget(cfg, arch))
            for cfg in entries
        ]
        _TUNED[cache_key] = triton.autotune(configs=triton_configs, key=list(key))(kernel)
    return _TUNED[cache_key]


# Triton pointer type -> the torch dtype a launch-faithful spec passes for it ("*x": the input's)
_POINTER_DTYPES = {"*i8": torch.int8, "*i32": torch.int32, "*fp32": torch.float32}
# Narrowest global load (bytes per access) an fp16/bf16 NHWC memory-bound kernel may use
MIN_LOAD_BYTES_16BIT_NHWC = 8


def kernel_specs(op: str, kernel, arg_types: Mapping[str, str], constexprs: Mapping[str, Any],
                 table: Mapping[str, Sequence[dict]],
                 launches: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[KernelSpec]:
    """One generic KernelSpec per (layout and tile config of ``table``, dtype fp32/fp16/bf16),
    then one launch-faithful spec per (launch, NHWC tile config, dtype).

    ``arg_types`` types every non-constexpr argument; the value ``"*x"`` stands for a
    pointer to the input dtype. ``constexprs`` fixes the constexprs other than the layout
    and the tile. ``launches``: (shape label, runtime values of the non-pointer arguments) of
    channels-last launches to compile as they run (the codegen check passes the model's); the
    pointers become tensors of their dtype, as at the launch. fp16/bf16 launch-faithful specs
    must load at least ``MIN_LOAD_BYTES_16BIT_NHWC`` bytes per access (``min_load_bytes``)."""
    names = list(kernel.arg_names)
    specs = []
    for layout, entries in table.items():
        for cfg in entries:
            tile = {name: v for name, v in cfg.items() if name.isupper()}
            values = {**constexprs, "CHANNELS_LAST": layout == "nhwc", **tile}
            missing = [a for a in names if a not in arg_types and a not in values]
            if missing:
                raise ValueError(f"{op}: no type or value for arguments {missing} of {kernel.__name__}")
            for dtype in SUPPORTED_DTYPES:
                ptr = TRITON_PTR[dtype]
                signature = {a: ("constexpr" if a in values else
                                 ptr if arg_types[a] == "*x" else arg_types[a]) for a in names}
                specs.append(KernelSpec(
                    op=op, kernel=kernel.__name__,
                    config=_config_name(layout, tile, cfg),
                    fn=kernel, signature=signature,
                    constexprs={a: v for a, v in values.items() if a in names},
                    num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
                    dtype=ptr.lstrip("*"),
                    expects_mma=False, extra={"maxnreg": cfg["maxnreg"]} if cfg.get("maxnreg") else {},
                ))
    for label, launch in launches:
        for cfg in table["nhwc"]:
            tile = {name: v for name, v in cfg.items() if name.isupper()}
            values = {**constexprs, "CHANNELS_LAST": True, **tile}
            for dtype in SUPPORTED_DTYPES:
                args = {a: (dtype if arg_types[a] == "*x" else _POINTER_DTYPES[arg_types[a]])
                        if arg_types[a].startswith("*") else launch[a]
                        for a in names if a not in values}
                specs.append(KernelSpec(
                    op=op, kernel=kernel.__name__, config=_config_name("nhwc", tile, cfg),
                    fn=kernel, constexprs={a: v for a, v in values.items() if a in names},
                    num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
                    dtype=TRITON_PTR[dtype].lstrip("*"), expects_mma=False,
                    extra={**({"min_load_bytes": MIN_LOAD_BYTES_16BIT_NHWC} if dtype.itemsize == 2 else {}),
                           **({"maxnreg": cfg["maxnreg"]} if cfg.get("maxnreg") else {})},
                    args=args, shape=label,
                ))
    return specs


def _config_name(layout: str, tile: Mapping[str, int], cfg: Mapping[str, Any]) -> str:
    return (f"{layout} " + " ".join(f"{n}={v}" for n, v in tile.items())
            + f" w{cfg['num_warps']} s{cfg['num_stages']}")

