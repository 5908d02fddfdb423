"""Fused 2-D convolution + bias + ReLU in Triton: forward and backward as implicit GEMMs.

Layouts and dtypes
------------------
* ``x``: (N, C, H, W), NCHW or channels_last (NHWC) -- any strides work, the kernels take
  them as arguments. ``weight``: (K, C/groups, R, S), any strides. ``bias``: (K,) or None.
* fp32, fp16, bf16; x, weight and bias share one dtype (inside ``torch.autocast`` the op
  casts them to the autocast dtype first, like F.conv2d). Products accumulate in fp32; the
  bias and the ReLU are applied to the fp32 accumulator, then the result is cast once.
* fp32 on a GPU runs ``tl.dot`` in TF32 exactly when ``torch.backends.cudnn.allow_tf32``
  is True (what cuDNN does for F.conv2d), otherwise in full fp32 ("ieee").
* The output has the input's memory format: channels_last in, channels_last out,
  contiguous NCHW otherwise. Gradients come back in the formats of x and weight.
* Any stride >= 1, zero padding >= 0 (the output must be at least 1x1), any groups that
  divide C and K. Dilation is always 1 (``kernels.nn.Conv2dReLU`` refuses others).

The fast path: channels-last
----------------------------
Every GEMM reduces over channels (and taps). With channels-last activations and KRSC weights
(``weight.to(memory_format=torch.channels_last)``: c innermost of r, s, c) each operand
tile is contiguous along one axis, and the channel counts per group are kernel ARGUMENTS
(``C_PER_GROUP``, ``K_PER_GROUP``), so at launch the JIT sees unit channel strides (constexpr
1) and the channel counts, strides and masks divisible by 16. Triton then turns the operand
loads into 16-byte asynchronous copies (cp.async / LDGSTS) into a ``num_stages``-deep
shared-memory ring, with async wgmma on sm_90: the structure of Triton's own tutorial GEMM at
the same tile (proven by the codegen check's launch-faithful rows, built from
:func:`real_launches`). That needs channels per group that are multiples of 16 -- AlexNet's
conv2-conv5 in both presets. conv1 (C=3) uses the flat (c, r, s) reduction (``FLAT_K``),
which cannot be aligned for cp.async (:data:`FLAT_K_PIPELINE_EXCEPTION`).
A channels-last activation met by a KCRS weight gets a KRSC copy of the weight per call.

NCHW inputs keep working as the slower path, with no conversion: the same kernels read
them through their strides, but the channel axis is then strided, every element a separate
2-byte (fp16) load, and nothing is pipelined (wgrad alone copies an NCHW gradient and input
channels-last first: its walk needs their pixels equally spaced). The output stays NCHW. Convert once
(``x.to(memory_format=torch.channels_last)``, as the triton variants of
``alexnet_fast.variants`` do for the whole model) to get the fast path.

The kernels and their K loops are ``kernels/_conv_gemm.py``, the config tables, heuristics and
argument builders ``kernels/_conv_launch.py`` (shared with ``kernels/conv2d_relu_lrn.py``).

The ReLU gradient uses the saved OUTPUT, so no pre-activation is kept: :func:`relu_grad`
applies PyTorch's own ``threshold_backward`` once (0 where y <= 0, the gradient elsewhere,
NaN outputs included) and dgrad and wgrad share the result, so their operands are plain
loads the compiler can pipeline (a mask applied inside the kernels kept the operand in
registers: 2 buffers instead of 3, wgmma waited at once, 1.6-1.9x the registers). The
forward ReLU keeps NaN (``F.relu(nan)`` is NaN).

Strides: x, weight, grad_out and the saved output are read through their strides (any
view works, expanded stride-0 ones included); the bias is made contiguous by the launcher
(one (K,) copy at most).

Launch: every launch runs inside ``device_guard`` of its tensors. On a GPU each kernel is
autotuned over the table of its path and arch (the FMA table for fp32 "ieee")
by ``kernels._common.autotuned``: one tuner per batch size, keyed on the GEMM sizes, the
reduction order, the dot precision and the operands' channel strides (the memory layout),
plus the dtypes; under TRITON_INTERPRET=1 one config, ``CONV2D_RELU_INTERPRETER_CONFIG``,
is used. All index arithmetic is int32: every tensor must span fewer than 2**31 elements
(checked).

Public API: :func:`conv2d_relu` (autograd-aware, registered as the torch custom ops
``alexnet_fast::conv2d_relu``, ``::conv2d_relu_dgrad`` and ``::conv2d_relu_wgrad`` so
torch.compile traces through forward and backward without graph breaks, with an autocast
rule); :func:`codegen_specs` for the code-generation check.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional, Sequence

import torch
import triton

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._conv_gemm import (  # noqa: F401  (the op's kernels, named where its launches are)
    conv2d_relu_dgrad_kernel, conv2d_relu_fwd_kernel, conv2d_relu_wgrad_kernel,
)
# the launch side (re-exported: the codegen specs and tests read them here)
from alexnet_fast.kernels._conv_launch import (  # noqa: F401
    _AUTOTUNE_KEYS, _FAST_PATH_ARGS, _HEURISTICS, _KERNELS, _LAUNCHED, CONFIG_ARCHS, DOTS, GATHER,
    _device_arch, _dgrad_launch, _fwd_launch, _output_hw, _precision, _table_key, _weight_for, _wgrad_krsc,
    _wgrad_launch, _wgrad_split_chunk, config_arch, config_table, dgrad_tap_bits, dot_kind, dot_precision,
    fast_batch_multiple, fast_path, launch_constexprs, pixel_stride, use_flat_k, wgrad_splits, wgrad_step,
)
from alexnet_fast.kernels._common import (
    SUPPORTED_DTYPES, TRITON_PTR, KernelSpec, autotuned, check_device, check_tensor, check_int,
    conv_problem, device_guard, int_pair, is_channels_last, memory_format_of, register_autocast,
)

__all__ = ["conv2d_relu", "conv2d_relu_fwd", "conv2d_relu_dgrad", "conv2d_relu_wgrad", "relu_grad",
           "dot_precision", "use_flat_k", "wgrad_splits", "codegen_specs"]


OP = "conv2d_relu"
_INT32_LIMIT = 2**31


def _launch(kernel: str, grid, like: torch.Tensor, args: dict, batch: int) -> None:
    """Run ``kernel`` ('fwd' | 'dgrad' | 'wgrad') on ``like``'s device (device_guard): on a
    GPU autotuned over the config table of its path (fast_path: its arch's; else the gather
    table) and dot, one tuner per batch size; under TRITON_INTERPRET=1 with the one interpreter
    config. ``grid`` maps the meta-parameters to the launch grid."""
    tables = {"fma": config_table(GATHER, "fma")[kernel]}
    for dot in ("mma", "tf32"):
        tables[f"{GATHER}/{dot}"] = config_table(GATHER, dot)[kernel]
        tables.update({f"sm{arch}/{dot}": config_table(arch, dot)[kernel] for arch in CONFIG_ARCHS})
    tuned = autotuned(_LAUNCHED[kernel], tables, configs.CONV2D_RELU_INTERPRETER_CONFIG,
                      _table_key(kernel, like, args), _AUTOTUNE_KEYS[kernel], batch=batch, device=like.device)
    with device_guard(like):
        tuned[grid](**args)


def _check_int32_indexable(t: torch.Tensor, name: str) -> None:
    span = 1 + sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()) if size > 0)
    if span >= _INT32_LIMIT:
        raise ValueError(f"{OP}: {name} spans {span} elements; the kernels index with int32 "
                         f"(limit {_INT32_LIMIT - 1}); split the batch")


def _check_inputs(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, groups: Any,
                  relu: Any, same_dtype: bool = True) -> tuple[tuple[int, int], tuple[int, int]]:
    """Validate the forward arguments; return (stride, padding) as pairs.

    TypeError: a non-tensor, an unsupported dtype, dtypes that differ (unless not
    ``same_dtype``: inside autocast, which casts them all), a non-int groups, a non-bool
    relu. ValueError: wrong rank, devices, channels that disagree with the weight and
    groups, stride < 1, padding < 0 or a string, an empty output, int32 overflow.
    """
    check_tensor(x, "x", op=OP, ndim=4, dtypes=SUPPORTED_DTYPES)
    check_tensor(weight, "weight", op=OP, ndim=4, dtypes=SUPPORTED_DTYPES)
    if same_dtype and weight.dtype != x.dtype:
        raise TypeError(f"{OP}: weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    if bias is not None:
        check_tensor(bias, "bias", op=OP, ndim=1, dtypes=SUPPORTED_DTYPES)
        if same_dtype and bias.dtype != x.dtype:
            raise TypeError(f"{OP}: bias dtype {bias.dtype} differs from x dtype {x.dtype}")
        check_device(x, weight, bias, op=OP)
    else:
        check_device(x, weight, op=OP)
    check_int(groups, "groups", op=OP, minimum=0)
    problem = conv_problem(padding)
    if problem:
        raise ValueError(f"{OP}: {problem}")
    if not isinstance(relu, bool):
        raise TypeError(f"{OP}: relu must be a bool, got {type(relu).__name__}")
    stride = int_pair(stride, "stride", op=OP, minimum=1)
    padding = int_pair(padding, "padding", op=OP, minimum=0)

    N, C, H, W = x.shape
    K, c_per_group, R, S = weight.shape
    if min(C, H, W) < 1 or min(K, c_per_group, R, S) < 1:
        raise ValueError(f"{OP}: empty x {tuple(x.shape)} or weight {tuple(weight.shape)} (only the batch may be 0)")
    if groups < 1 or C % groups or K % groups:
        raise ValueError(f"{OP}: groups={groups} must be >= 1 and divide both the input channels "
                         f"({C}) and the output channels ({K})")
    if c_per_group * groups != C:
        raise ValueError(f"{OP}: x has {C} channels but weight {tuple(weight.shape)} with groups={groups} "
                         f"expects {c_per_group * groups} (weight.shape[1] * groups)")
    if bias is not None and bias.shape[0] != K:
        raise ValueError(f"{OP}: bias has {bias.shape[0]} elements, weight has {K} output channels")
    P, Q = _output_hw(H, W, R, S, stride, padding)
    if P < 1 or Q < 1:
        raise ValueError(f"{OP}: input {H}x{W} with padding {padding} is smaller than the {R}x{S} kernel "
                         f"(output would be {P}x{Q})")
    for t, name in ((x, "x"), (weight, "weight")):
        _check_int32_indexable(t, name)
    if N * K * P * Q >= _INT32_LIMIT:
        raise ValueError(f"{OP}: output of {N * K * P * Q} elements exceeds int32 indexing; split the batch")
    return stride, padding


def conv2d_relu_fwd(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    stride: Sequence[int], padding: Sequence[int], groups: int,
                    relu: bool) -> torch.Tensor:
    """Forward launcher (no autograd): relu(conv2d(x, weight, bias)) in x's memory format."""
    stride, padding = _check_inputs(x, weight, bias, stride, padding, groups, relu)
    N, C, H, W = x.shape
    K, _, R, S = weight.shape
    P, Q = _output_hw(H, W, R, S, stride, padding)
    y = torch.empty((N, K, P, Q), dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    if y.numel() == 0:
        return y
    bias = bias.contiguous() if bias is not None else None
    args, grid = _fwd_launch(x, _weight_for(weight, x), bias, y, stride, padding, groups, relu, _precision(x))
    _launch("fwd", grid, x, args, batch=N)
    return y


def relu_grad(grad_out: torch.Tensor, out: torch.Tensor, relu: bool) -> torch.Tensor:
    """The gradient the dgrad and wgrad kernels reduce: ``grad_out`` with the ReLU mask of
    the saved output applied when ``relu`` -- PyTorch's own ``threshold_backward`` (0 where
    out <= 0; NaN outputs pass their gradient, exactly as F.relu's backward), one
    memory-bound pass shared by both kernels so their operands are plain loads that the
    compiler pipelines -- in the output's memory format (a stride-0 ``y.sum()`` gradient
    becomes dense: the kernels' fast path wants channels contiguous)."""
    check_tensor(grad_out, "grad_out", op=OP, ndim=4)
    if grad_out.shape != out.shape or grad_out.dtype != out.dtype:
        raise ValueError(f"{OP}: grad_out {tuple(grad_out.shape)} {grad_out.dtype} does not match "
                         f"the output {tuple(out.shape)} {out.dtype}")
    check_device(grad_out, out, op=OP)
    if relu:
        grad_out = torch.ops.aten.threshold_backward(grad_out, out, 0)
    same = all(a == b for a, b, n in zip(grad_out.stride(), out.stride(), out.shape) if n > 1)
    return grad_out if same else torch.empty_like(out).copy_(grad_out)


def conv2d_relu_dgrad(grad: torch.Tensor, weight: torch.Tensor, input_shape: Sequence[int],
                      stride: Sequence[int], padding: Sequence[int], groups: int,
                      channels_last: bool) -> torch.Tensor:
    """Gradient w.r.t. the input, shape ``input_shape``, channels_last or NCHW as asked.
    ``grad``: the output gradient with the ReLU mask applied (:func:`relu_grad`), any strides."""
    check_tensor(grad, "grad", op=OP, ndim=4)
    check_device(grad, weight, op=OP)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    dx = torch.empty(tuple(input_shape), dtype=weight.dtype, device=weight.device, memory_format=memory_format)
    if dx.numel() == 0:
        return dx
    args, grid = _dgrad_launch(grad, _weight_for(weight, grad), dx, tuple(stride), padding, groups,
                               _precision(weight))
    _launch("dgrad", grid, weight, args, batch=dx.shape[0])
    return dx


def conv2d_relu_wgrad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                      stride: Sequence[int], padding: Sequence[int], groups: int,
                      splits: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. the weight (in the weight's memory format and dtype) and the bias
    (shape (K,), same dtype). ``grad``: the output gradient with the ReLU mask applied
    (:func:`relu_grad`), any strides. ``splits`` overrides the split of the N*P*Q reduction
    that :func:`wgrad_splits` picks on a GPU (1 under the interpreter; tests use it)."""
    check_tensor(grad, "grad", op=OP, ndim=4)
    check_device(grad, x, weight, op=OP)
    N, C, H, W = x.shape
    K, c_per_group, R, S = weight.shape
    P, Q = grad.shape[2:]
    gemm_m, gemm_n, gemm_k = K // groups, c_per_group * R * S, N * P * Q
    dw = torch.empty_like(weight)
    db = torch.empty((K,), dtype=weight.dtype, device=weight.device)
    if gemm_k == 0:
        return dw.zero_(), db.zero_()
    # wgrad walks the pixels (n, p, q) of the gradient and (n, h, w) of the input as one axis
    # each: an NCHW one (the slow path) is copied channels-last first
    if pixel_stride(grad) is None:
        grad = grad.contiguous(memory_format=torch.channels_last)
    if pixel_stride(x) is None:
        x = x.contiguous(memory_format=torch.channels_last)
    step = wgrad_step(_device_arch(x) if x.device.type == "cuda" else None)
    if splits is not None:
        chunk = triton.cdiv(triton.cdiv(gemm_k, splits), step) * step
    elif x.device.type == "cuda":
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        chunk = _wgrad_split_chunk(gemm_m, gemm_n, gemm_k, groups, sms, _device_arch(x))
    else:  # the interpreter: no SMs to fill
        chunk = triton.cdiv(gemm_k, step) * step
    splits = triton.cdiv(gemm_k, chunk)
    krsc = _wgrad_krsc(weight)
    dw_partial = torch.empty((splits, K, gemm_n), dtype=torch.float32, device=x.device)
    db_partial = torch.empty((splits, K), dtype=torch.float32, device=x.device)
    args, grid = _wgrad_launch(grad, x, weight, dw_partial, db_partial, chunk, stride, padding,
                               groups, _precision(x))
    _launch("wgrad", grid, x, args, batch=N)
    dw_sum = dw_partial.sum(0)
    dw.copy_(dw_sum.view(K, R, S, c_per_group).permute(0, 3, 1, 2) if krsc else dw_sum.view(weight.shape))
    db.copy_(db_partial.sum(0))
    return dw, db



# =======================================================================================
# Custom ops (eager + torch.compile) and autograd
# =======================================================================================

@torch.library.custom_op("alexnet_fast::conv2d_relu", mutates_args=())
def _conv2d_relu_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    stride: list[int], padding: list[int], groups: int, relu: bool) -> torch.Tensor:
    return conv2d_relu_fwd(x, weight, bias, stride, padding, groups, relu)


@_conv2d_relu_op.register_fake
def _(x, weight, bias, stride, padding, groups, relu):
    P, Q = _output_hw(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], stride, padding)
    return torch.empty((x.shape[0], weight.shape[0], P, Q), dtype=x.dtype, device=x.device,
                       memory_format=memory_format_of(x))


@torch.library.custom_op("alexnet_fast::conv2d_relu_dgrad", mutates_args=())
def _dgrad_op(grad: torch.Tensor, weight: torch.Tensor, input_shape: list[int],
              stride: list[int], padding: list[int], groups: int, channels_last: bool) -> torch.Tensor:
    return conv2d_relu_dgrad(grad, weight, input_shape, stride, padding, groups, channels_last)


@_dgrad_op.register_fake
def _(grad, weight, input_shape, stride, padding, groups, channels_last):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(input_shape, dtype=weight.dtype, device=weight.device, memory_format=memory_format)


@torch.library.custom_op("alexnet_fast::conv2d_relu_wgrad", mutates_args=())
def _wgrad_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: list[int],
              padding: list[int], groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    return conv2d_relu_wgrad(grad, x, weight, stride, padding, groups)


@_wgrad_op.register_fake
def _(grad, x, weight, stride, padding, groups):
    return torch.empty_like(weight), weight.new_empty((weight.shape[0],))


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding, groups, relu = inputs
    ctx.save_for_backward(x, weight, output)
    ctx.conv = (list(stride), list(padding), groups, relu)
    ctx.has_bias = bias is not None
    ctx.input_shape = list(x.shape)
    ctx.channels_last = is_channels_last(x)


def _backward(ctx, grad_out):
    x, weight, out = ctx.saved_tensors
    stride, padding, groups, relu = ctx.conv
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    need_b = need_b and ctx.has_bias
    grad = relu_grad(grad_out.to(out.dtype), out, relu)  # one pass, shared by both ops
    dx = dw = db = None
    if need_x:
        dx = torch.ops.alexnet_fast.conv2d_relu_dgrad(
            grad, weight, ctx.input_shape, stride, padding, groups, ctx.channels_last)
    if need_w or need_b:
        dw, db = torch.ops.alexnet_fast.conv2d_relu_wgrad(grad, x, weight, stride, padding, groups)
    return dx, dw if need_w else None, db if need_b else None, None, None, None, None


_conv2d_relu_op.register_autograd(_backward, setup_context=_setup_context)
# inside torch.autocast the op runs in the autocast dtype, like F.conv2d (lower precision)
register_autocast(_conv2d_relu_op)


def conv2d_relu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0, groups: int = 1,
                relu: bool = True) -> torch.Tensor:
    """``relu(F.conv2d(x, weight, bias, stride, padding, groups=groups))`` in one Triton kernel
    (plain conv + bias when ``relu=False``), differentiable in x, weight and bias.

    x: (N, C, H, W) NCHW or channels_last; weight: (K, C/groups, R, S); bias: (K,) or None;
    all fp32, fp16 or bf16 (one dtype), on one CUDA device (CPU only under
    TRITON_INTERPRET=1). stride: int or pair >= 1; padding: int or pair >= 0 (zeros).
    Inside ``torch.autocast`` the op runs in the autocast dtype (fp16/bf16), like F.conv2d.
    Returns (N, K, P, Q) in x's dtype and memory format. Raises TypeError / ValueError as
    listed in :func:`_check_inputs`.
    """
    # inside torch.autocast for x's device the op casts x, weight and bias to the autocast
    # dtype first (register_autocast), so mixed dtypes are fine there, as for F.conv2d
    autocast = isinstance(x, torch.Tensor) and x.device.type in ("cuda", "cpu") \
        and torch.is_autocast_enabled(x.device.type)
    stride, padding = _check_inputs(x, weight, bias, stride, padding, groups, relu, same_dtype=not autocast)
    return torch.ops.alexnet_fast.conv2d_relu(x, weight, bias, list(stride), list(padding), groups, relu)


# =======================================================================================
# Code-generation check
# =======================================================================================

# (dtype name, torch dtype, dot precision, config table) compiled for every config
_CODEGEN_PRECISIONS = (
    ("fp32", torch.float32, "tf32"),
    ("fp16", torch.float16, "ieee"),
    ("bf16", torch.bfloat16, "ieee"),
    ("fp32", torch.float32, "ieee"),
)


def _config_name(cfg: dict) -> str:
    return f"{cfg['BLOCK_M']}x{cfg['BLOCK_N']}x{cfg['BLOCK_K']}_w{cfg['num_warps']}_s{cfg['num_stages']}"


def _configs_by_arch(name: str, dot: str, fast: bool) -> list[tuple[dict, dict[int, int]]]:
    """The distinct configs of kernel ``name`` for ``dot`` over every config arch -- of the fast
    path's tables, or of the gather (or FMA) table, which every arch uses -- each with {arch: its
    position in that arch's table} (the position is the autotuner's order)."""
    found: dict[str, tuple[dict, dict[int, int]]] = {}
    for arch in CONFIG_ARCHS:
        for rank, cfg in enumerate(config_table(arch if fast else GATHER, dot)[name]):
            found.setdefault(_config_name(cfg), (cfg, {}))[1][arch] = rank
    return list(found.values())


def _path_suffix(dot: str, fast: bool) -> str:
    """Config-name suffix of a spec's path: "" (fast path), "_gather" (the gather table)."""
    return "" if fast or dot == "fma" else "_gather"


def _signature(fn, dtype: torch.dtype) -> dict[str, str]:
    """Triton types of ``fn``'s arguments: pointers in ``dtype`` (the fp32 wgrad partials
    excepted), i32 sizes and strides, constexpr meta-parameters."""
    sig = {}
    for name in fn.arg_names:
        if name in _constexpr_args(fn):
            sig[name] = "constexpr"
        elif name.endswith("_partial_ptr"):
            sig[name] = "*fp32"
        elif name.endswith("_ptr"):
            sig[name] = TRITON_PTR[dtype]
        else:
            sig[name] = "i32"
    return sig


def _constexpr_args(fn) -> list[str]:
    """Names of ``fn``'s tl.constexpr arguments (a JITFunction, or the interpreter's
    InterpretedFunction: both keep the Python function as ``fn.fn``)."""
    params = inspect.signature(fn.fn).parameters.values()
    return [p.name for p in params if "constexpr" in str(p.annotation)]


def codegen_specs(layers: Sequence[tuple] = (), batches: Sequence[int] = (),
                  sms: Mapping[int, int] | None = None) -> list[KernelSpec]:
    """One :class:`KernelSpec` per (kernel, path, reduction order, GPU config, dtype/precision)
    for the codegen check (``profiling/codegen/``): fwd (with bias and ReLU), dgrad and wgrad
    (with the ReLU mask).
    Tensor-core configs in fp16, bf16 and fp32-as-TF32 (suffix ``_tf32``), from the fast path's
    per-arch tables and from the gather table (suffix ``_gather``, fwd and wgrad in both reduction
    orders: ``_flatk`` for the flat (c, r, s) one); FMA configs in fp32 "ieee" (suffix ``_ieee``, no
    tensor cores: ``expects_mma`` False). Generic: sizes and strides plain i32 and the launch-time
    constexprs at their worst (masked channel blocks, rows of pixels) -- what any launch of the
    config compiles at worst; a fast-path spec has what fast_path guarantees (unit channel strides
    as constexpr 1, channel counts and the other strides divisible by 16). ``extra["archs"]``: the
    config archs whose tables hold the config (the check compiles it for those),
    ``extra["autotune_rank"]``: its position there. Then the launch-faithful specs of ``layers``
    at ``batches`` on GPUs of ``sms`` SMs per config arch (:func:`real_shape_specs`)."""
    specs = []
    for name, fn in _KERNELS.items():
        for dtype_name, dtype, precision in _CODEGEN_PRECISIONS:
            dot = dot_kind(dtype, precision)
            for fast in ((True, False) if dot != "fma" else (False,)):
                orders = (False, True) if "FLAT_K" in fn.arg_names and not fast else (None if not fast else False,)
                units, multiples, _, walk = _FAST_PATH_ARGS[name] if fast else ((), (), None, None)
                for cfg, ranks in _configs_by_arch(name, dot, fast):
                    meta = {k: v for k, v in cfg.items() if k.isupper()}
                    for flat_k in orders:
                        constexprs = {"INPUT_PRECISION": precision, **meta, **{a: 1 for a in units}}
                        if "RELU" in fn.arg_names:
                            constexprs["RELU"] = True
                        if "HAS_BIAS" in fn.arg_names:
                            constexprs["HAS_BIAS"] = True
                        if "FLAT_K" in fn.arg_names:
                            constexprs["FLAT_K"] = bool(flat_k)
                        if "TAP_BITS" in fn.arg_names:
                            constexprs["TAP_BITS"] = True
                        constexprs.update({k: False for k in _HEURISTICS[name]})
                        if fast:  # fast_path's batch: always the image-major walk
                            constexprs[walk] = True
                        suffix = _path_suffix(dot, fast) + ("_flatk" if flat_k else "")
                        if dtype == torch.float32:
                            suffix += f"_{precision}"
                        signature = {a: ("constexpr" if a in units else t) for a, t in _signature(fn, dtype).items()}
                        specs.append(KernelSpec(
                            op=OP, kernel=fn.__name__, config=_config_name(cfg) + suffix,
                            fn=fn, signature=signature, constexprs=constexprs,
                            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], dtype=dtype_name,
                            expects_mma=dot != "fma",
                            extra={"input_precision": precision, "flat_k": bool(flat_k), "table": dot,
                                   "archs": tuple(ranks), "autotune_rank": ranks,
                                   **({"divisible_by_16": multiples + ("BATCH",)} if fast else {}),
                                   **({"maxnreg": cfg["maxnreg"]} if cfg.get("maxnreg") else {})},
                        ))
    return specs + real_shape_specs(layers, batches, sms or {})


# Why the few-channel flat reduction (conv1, C=3: FLAT_K) is exempt from the pipelining gates
# of the codegen check; its figures are reported as measured.
FLAT_K_PIPELINE_EXCEPTION = (
    "C=3 flat (c, r, s) reduction: a tap row starts 3*w elements into an NHWC image and a KRSC "
    "weight row 363*k (121*3) elements in, so nothing is provably aligned beyond one element, "
    "below cp.async's 4-byte minimum for 16-bit types; its loads stay register gathers (fwd: A and "
    "B, wgrad: the image operand B). Only padding the image to 4 channels would change that")


def _launch_args(fn, args: dict) -> tuple[dict, dict]:
    """Split launcher arguments into (runtime args with tensors given by dtype, constexprs)."""
    constexpr = set(_constexpr_args(fn))
    runtime = {k: (v.dtype if isinstance(v, torch.Tensor) else v) for k, v in args.items() if k not in constexpr}
    return runtime, {k: v for k, v in args.items() if k in constexpr}


def real_launches(layers: Sequence[tuple], batch: int, dtype: torch.dtype, precision: str, arch: int, sms: int):
    """(kernel name, shape label, runtime args, constexprs, grid) of the three kernels at every
    conv layer of ``layers`` ((preset, layer, input (C, H, W), weight shape, stride, padding,
    groups)), as the launchers build them on a GPU of config arch ``arch`` with ``sms`` SMs
    (wgrad's split) for channels-last activations and KRSC weights (meta tensors: no memory);
    ``grid`` maps a config to the launch grid. conv1's dgrad is left out: the model never asks
    for the gradient of its input image. wgrad's label names its splits."""
    meta = dict(dtype=dtype, device="meta")
    out = []
    for preset, layer, (c, h, w), wshape, stride, padding, groups in layers:
        K, _, R, S = wshape
        st, pad = (stride, stride), (padding, padding)
        P, Q = _output_hw(h, w, R, S, st, pad)
        x = torch.empty((batch, c, h, w), memory_format=torch.channels_last, **meta)
        weight = torch.empty(wshape, memory_format=torch.channels_last, **meta)
        bias = torch.empty((K,), **meta)
        y = torch.empty((batch, K, P, Q), memory_format=torch.channels_last, **meta)
        label = f"{preset} {layer} b{batch} NHWC"
        launches = [("fwd", label, *_fwd_launch(x, weight, bias, y, st, pad, groups, True, precision))]
        if layer != "conv1":
            launches.append(("dgrad", label, *_dgrad_launch(y, weight, x, st, pad, groups, precision)))
        gemm_n, gemm_k = wshape[1] * R * S, batch * P * Q
        chunk = _wgrad_split_chunk(K // groups, gemm_n, gemm_k, groups, sms, arch)
        splits = triton.cdiv(gemm_k, chunk)
        partial = torch.empty((splits, K, gemm_n), dtype=torch.float32, device="meta")
        launches.append(("wgrad", f"{label} split {splits}",
                         *_wgrad_launch(y, x, weight, partial, partial[:, :, 0], chunk, st, pad, groups, precision)))
        for name, shape, args, grid in launches:
            runtime, constexprs = _launch_args(_KERNELS[name], args)
            out.append((name, shape, runtime, constexprs, grid))
    return out


def real_shape_specs(layers: Sequence[tuple], batches: Sequence[int], sms: Mapping[int, int]) -> list[KernelSpec]:
    """Launch-faithful specs (KernelSpec.args): every tensor-core config of the three kernels
    at every conv layer of ``layers`` (see :func:`real_launches`) and batch of ``batches``, fp16,
    bf16 and fp32-as-TF32, channels-last, from the table each launch takes (fast_path: its arch's;
    conv1: the gather table), for each config arch whose table holds the config (one spec for the
    archs where the launch is the same); ``sms``: SMs per config arch. ``extra["grid"]``: the
    launch grid of the config."""
    missing = [arch for arch in CONFIG_ARCHS if arch not in sms] if layers and batches else []
    if missing:
        raise ValueError(f"{OP}: real_shape_specs needs the SM count of config archs {missing} (sms: {dict(sms)})")
    found: dict[tuple, KernelSpec] = {}
    for dtype_name, dtype, precision in _CODEGEN_PRECISIONS:
        dot = dot_kind(dtype, precision)
        if dot == "fma":
            continue
        for batch in batches:
            for arch in CONFIG_ARCHS:
                for name, label, runtime, constexprs, grid in real_launches(layers, batch, dtype, precision, arch,
                                                                            sms[arch]):
                    fn = _KERNELS[name]
                    fast = fast_path(name, {**runtime, **constexprs}, arch, dot)
                    for rank, cfg in enumerate(config_table(arch if fast else GATHER, dot)[name]):
                        tile = {k: v for k, v in cfg.items() if k.isupper()}
                        config = (_config_name(cfg) + _path_suffix(dot, fast)
                                  + ("_tf32" if dtype == torch.float32 else ""))
                        key = (fn.__name__, config, dtype_name, label)
                        if key in found:  # the same launch on another arch
                            found[key].extra["archs"] += (arch,)
                            found[key].extra["autotune_rank"][arch] = rank
                            continue
                        found[key] = KernelSpec(
                            op=OP, kernel=fn.__name__, config=config,
                            fn=fn, constexprs={**constexprs, **tile,
                                               **launch_constexprs(name, {**runtime, **constexprs}, tile)},
                            args=runtime, shape=label,
                            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], dtype=dtype_name,
                            expects_mma=True,
                            extra={"input_precision": precision, "flat_k": bool(constexprs.get("FLAT_K", False)),
                                   "table": dot, "gemm_tile": (cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]),
                                   "archs": (arch,), "autotune_rank": {arch: rank}, "grid": grid(cfg),
                                   # wgrad writes fp32 split-K partials: its reference GEMM writes fp32 too
                                   **({"out_dtype": "fp32"} if name == "wgrad" else {}),
                                   **({"maxnreg": cfg["maxnreg"]} if cfg.get("maxnreg") else {}),
                                   **({"pipeline_exception": FLAT_K_PIPELINE_EXCEPTION}
                                      if constexprs.get("FLAT_K") else {})},
                        )
    return list(found.values())
