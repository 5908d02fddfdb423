"""Cross-channel local response normalization (LRN) in Triton: forward and backward.

Semantics are PyTorch's ``F.local_response_norm`` (alpha divided by ``size``; channels
outside ``[0, C)`` count as zero). For channel c of one pixel::

    D_c = k + alpha / size * sum_{j = c - size//2}^{c + (size-1)//2} x_j^2
    y_c = x_c * D_c^(-beta)

and with ``g = dL/dy`` the backward is::

    dL/dx_i = g_i * D_i^(-beta) - 2 * alpha * beta / size * x_i * sum_{c in T(i)} g_c * x_c * D_c^(-beta-1)

where ``T(i) = [i - (size-1)//2, i + size//2]`` are the channels whose window holds i (the
window mirrored: for an even size it is not the window itself).

Backward works from the saved input and RECOMPUTES D. The input is kept anyway (it is the
ReLU output the convolution's backward needs), so recomputing D reads no extra DRAM bytes:
every D_c is rebuilt from x through L1/L2, size x (size + 2) cached loads per element.
Saving D instead would add a 4-byte fp32 write per element to the forward, a 4-byte read to
the backward and a full-size activation held in between (AlexNet lrn1 at batch 128:
96 x 55 x 55 x 128 x 4 B = 149 MB).

NaN / inf as PyTorch: a NaN or inf input makes the same outputs and gradients NaN as
``F.local_response_norm`` and its autograd, which multiplies a zero gradient by a NaN
window too. The fused LRN + pool backward (most upstream gradients zero) lets those lanes
skip their D loads and takes their NaN from a scan of the 2*size - 1 neighbouring
channels (:func:`nonfinite_near`); computing every lane there spilled registers on
sm_80/sm_90, and the guard in the plain LRN backward did.

alpha >= 0 and k > 0 are required (ValueError otherwise), so D > 0 and D^(-beta) is exact
as exp2(-beta * log2 D); PyTorch also accepts a negative D with an integer beta.

Layouts: NCHW (contiguous) and NHWC (``torch.channels_last``) in, the same layout out; any
other strides are made NCHW-contiguous first. Dtypes fp32 / fp16 / bf16, fp32 math inside.
Tensors must be CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``.

This file also holds the pieces the pool and fused LRN + pool ops share: the NCHW/NHWC
tile addressing (:func:`tile_offsets`), the layout choice (:func:`memory_format_of`), the
autotuned launch (:func:`autotuned`) and the codegen spec builder (:func:`kernel_specs`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import triton
import triton.language as tl

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import (KernelSpec, autotuned, check_device, check_grad, check_int, check_numel,
                             check_tensor, device_guard, kernel_specs, layout_name, max_pool_grad_at,
                             memory_format_of, pixel_channel_tile, register_autocast, tile_offsets)

__all__ = ["local_response_norm", "lrn_fwd", "lrn_bwd", "codegen_specs"]

OP = "local_response_norm"


# ---------------------------------------------------------------------------------------
# Triton helpers (shared with kernels/lrn_max_pool.py)
# ---------------------------------------------------------------------------------------

@triton.jit
def pow_fp32(base, exponent):
    """base ** exponent for base > 0 (fp32); inf at 0 for exponent < 0, and NaN for base < 0
    even where torch.pow is finite (an integer exponent): callers keep base > 0."""
    return tl.exp2(exponent * tl.log2(base))


@triton.jit
def lrn_denominator(x_ptr, offs, c, mask, C, c_step, size, alpha_over_size, k):
    """D = k + alpha/size * sum of x^2 over channels [c - size//2, c + (size-1)//2], fp32.

    ``offs`` are the offsets of channel ``c`` (a tile); channels outside [0, C) are zero."""
    sum_sq = tl.zeros(offs.shape, dtype=tl.float32)
    first = -(size // 2)
    for i in range(size):
        cc = c + first + i
        m = mask & (cc >= 0) & (cc < C)
        v = tl.load(x_ptr + offs + (first + i) * c_step, mask=m, other=0.0).to(tl.float32)
        sum_sq += v * v
    return k + alpha_over_size * sum_sq


@triton.jit
def lrn_grad_term(x_ptr, offs, c, mask, C, c_step, size, alpha_over_size, beta, k, dy):
    """dy * x_c * D_c^(-beta-1) at channel c (fp32): one term of the LRN backward sum.

    Lanes outside ``mask`` get 0 and skip the loads (a lane with dy == 0 left out of
    ``mask`` gets its PyTorch NaN, where x_c or D_c is not finite, from :func:`nonfinite_near`)."""
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    d = lrn_denominator(x_ptr, offs, c, mask, C, c_step, size, alpha_over_size, k)
    return tl.where(mask, dy * x * pow_fp32(d, -beta - 1.0), 0.0)


@triton.jit
def nonfinite_near(x_ptr, offs, c, mask, C, c_step, size):
    """Where the LRN backward at channel c is NaN whatever the upstream gradient (PyTorch's
    autograd computes 0 * NaN there): a NaN among channels [c - (size-1), c + (size-1)] (it
    is in D_s for some s whose window holds c), or an inf among those s themselves,
    [c - (size-1)//2, c + size//2] (x_s * D_s^(-beta-1) = inf * 0). Lets the backward skip
    the D loads of lanes with a zero gradient and still give PyTorch's NaNs."""
    bad = tl.zeros(mask.shape, dtype=tl.int1)
    for j in range(2 * size - 1):
        shift = j - (size - 1)
        cc = c + shift
        m = mask & (cc >= 0) & (cc < C)
        v = tl.load(x_ptr + offs + shift * c_step, mask=m, other=0.0).to(tl.float32)
        holds_c = (shift >= -((size - 1) // 2)) & (shift <= size // 2)
        bad = bad | (v != v) | (holds_c & (tl.abs(v) == float("inf")))
    return bad


@triton.jit
def upstream_grad(dy_ptr, idx_ptr, n, c, hw, offs, mask, C, W, OH, OW,
                  KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                  PH: tl.constexpr, PW: tl.constexpr, CHANNELS_LAST: tl.constexpr, FROM_POOL: tl.constexpr):
    """dL/dy of the LRN output at (n, c, pixel hw), fp32: loaded from dy_ptr at ``offs``, or
    (FROM_POOL, the fused LRN + max-pool) gathered from the pooled gradient dy_ptr and the
    int8 argmax idx_ptr of an OH x OW pool over rows of W pixels."""
    if FROM_POOL:
        dy = max_pool_grad_at(dy_ptr, idx_ptr, n, c, hw // W, hw % W, mask, C, OH, OW,
                              KH, KW, SH, SW, PH, PW, CHANNELS_LAST)
    else:
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    return dy


@triton.jit
def lrn_input_grad(x_ptr, dy_ptr, idx_ptr, n, c, hw, mask, C, HW, W, OH, OW, size, alpha_over_size, beta, k,
                   KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                   PH: tl.constexpr, PW: tl.constexpr, CHANNELS_LAST: tl.constexpr, FROM_POOL: tl.constexpr):
    """dL/dx of the LRN at (n, c, pixel hw), fp32 (module docstring), D recomputed from x:
    g_c * D_c^(-beta) minus the neighbour sum over the channels whose window holds c. The
    upstream gradient g comes from :func:`upstream_grad` (a tensor, or with FROM_POOL the
    pooled gradient and argmax: W, OH, OW and the pool geometry matter only then)."""
    offs, c_step = tile_offsets(n, c, hw, C, HW, CHANNELS_LAST)
    dy = upstream_grad(dy_ptr, idx_ptr, n, c, hw, offs, mask, C, W, OH, OW, KH, KW, SH, SW, PH, PW,
                       CHANNELS_LAST, FROM_POOL)
    if FROM_POOL:
        # behind a 3x3 / stride 2 pool all but at most one lane in four have a zero upstream
        # gradient: those skip their D loads, and nonfinite_near restores the NaNs the skip
        # would drop. (A plain LRN gradient is seldom zero: every lane computes all, which
        # gives PyTorch's NaNs by itself and, unlike the skip, spills no registers.)
        bad = nonfinite_near(x_ptr, offs, c, mask, C, c_step, size)
        has_dy = mask & (dy != 0.0)
    else:
        bad = tl.zeros(mask.shape, dtype=tl.int1)
        has_dy = mask
    d = lrn_denominator(x_ptr, offs, c, has_dy, C, c_step, size, alpha_over_size, k)
    dx = tl.where(has_dy, dy * pow_fp32(d, -beta), 0.0)
    # sum over the channels whose window holds c: shifts -(size-1)//2 .. size//2
    acc = tl.zeros(mask.shape, dtype=tl.float32)
    first = -((size - 1) // 2)
    for i in range(size):
        cs = c + first + i
        m = mask & (cs >= 0) & (cs < C)
        offs_s = offs + (first + i) * c_step
        dy_s = upstream_grad(dy_ptr, idx_ptr, n, cs, hw, offs_s, m, C, W, OH, OW, KH, KW, SH, SW, PH, PW,
                             CHANNELS_LAST, FROM_POOL)
        if FROM_POOL:
            m = m & (dy_s != 0.0)
        acc += lrn_grad_term(x_ptr, offs_s, cs, m, C, c_step, size, alpha_over_size, beta, k, dy_s)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dx -= 2.0 * alpha_over_size * beta * x * acc
    return tl.where(bad, float("nan"), dx)


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------

@triton.jit
def lrn_fwd_kernel(x_ptr, y_ptr, C, HW, size, alpha_over_size, beta, k,
                   CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = x * D^(-beta). Grid: (N * cdiv(HW, BLOCK_P), cdiv(C, BLOCK_C))."""
    n, hw, c, mask = pixel_channel_tile(HW, C, BLOCK_P, BLOCK_C)
    offs, c_step = tile_offsets(n, c, hw, C, HW, CHANNELS_LAST)

    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    d = lrn_denominator(x_ptr, offs, c, mask, C, c_step, size, alpha_over_size, k)
    tl.store(y_ptr + offs, (x * pow_fp32(d, -beta)).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def lrn_bwd_kernel(x_ptr, dy_ptr, dx_ptr, C, HW, size, alpha_over_size, beta, k,
                   CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx from the input x and dy = dL/dy, recomputing D (module docstring). Grid as forward."""
    n, hw, c, mask = pixel_channel_tile(HW, C, BLOCK_P, BLOCK_C)
    dx = lrn_input_grad(x_ptr, dy_ptr, dy_ptr, n, c, hw, mask, C, HW, 1, 1, 1, size, alpha_over_size, beta, k,
                        1, 1, 1, 1, 0, 0, CHANNELS_LAST, False)
    offs, _ = tile_offsets(n, c, hw, C, HW, CHANNELS_LAST)
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------

def check_lrn_args(x: Any, size: Any, alpha: Any, beta: Any, k: Any, *, op: str) -> None:
    """Clear errors for a bad input tensor or LRN hyper-parameter."""
    check_tensor(x, "input", op=op, ndim=4)
    check_device(x, op=op)
    check_numel(x, op=op)
    check_int(size, "size", op=op, minimum=1)
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{op}: {name} must be finite, got {value}")
    # D^-beta is computed as exp2(-beta * log2(D)), exact for D > 0 only (torch.pow also
    # takes a negative D to an integer power): alpha >= 0 and k > 0 keep D >= k > 0.
    if alpha < 0 or k <= 0:
        raise ValueError(f"{op}: needs alpha >= 0 and k > 0 (so the denominator k + alpha/size * sum x^2 "
                         f"is positive), got alpha={alpha}, k={k}")


# ---------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------

_KEY = ("C", "HW", "size")


def _launch(kernel, tensors: Sequence[torch.Tensor], x: torch.Tensor, layout: str,
            size: int, alpha: float, beta: float, k: float) -> None:
    N, C, H, W = x.shape
    HW = H * W
    grid = lambda meta: (N * triton.cdiv(HW, meta["BLOCK_P"]), triton.cdiv(C, meta["BLOCK_C"]))  # noqa: E731
    tuned = autotuned(kernel, configs.LRN_CONFIGS, configs.LRN_INTERPRETER, layout, _KEY, batch=N)
    with device_guard(x):
        tuned[grid](*tensors, C, HW, size, alpha / size, beta, k, CHANNELS_LAST=layout == "nhwc")


def _empty_like_layout(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))


@torch.library.custom_op("alexnet_fast::lrn_fwd", mutates_args=())
def lrn_fwd(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """LRN forward (custom op). x: (N, C, H, W) NCHW or NHWC; y in x's layout and dtype."""
    check_lrn_args(x, size, alpha, beta, k, op=OP)
    fmt = memory_format_of(x)
    x = x.contiguous(memory_format=fmt)
    y = torch.empty_like(x)
    if x.numel():
        _launch(lrn_fwd_kernel, (x, y), x, layout_name(fmt), size, alpha, beta, k)
    return y


@lrn_fwd.register_fake
def _lrn_fwd_fake(x, size, alpha, beta, k):
    return _empty_like_layout(x)


@torch.library.custom_op("alexnet_fast::lrn_bwd", mutates_args=())
def lrn_bwd(grad: torch.Tensor, x: torch.Tensor, size: int, alpha: float, beta: float,
            k: float) -> torch.Tensor:
    """LRN backward (custom op): dL/dx from dL/dy and the forward's input x (D recomputed)."""
    check_lrn_args(x, size, alpha, beta, k, op="local_response_norm backward")
    check_grad(grad, x, x.shape, op="local_response_norm backward")
    fmt = memory_format_of(x)
    x = x.contiguous(memory_format=fmt)
    grad = grad.contiguous(memory_format=fmt)
    dx = torch.empty_like(x)
    if x.numel():
        _launch(lrn_bwd_kernel, (x, grad, dx), x, layout_name(fmt), size, alpha, beta, k)
    return dx


@lrn_bwd.register_fake
def _lrn_bwd_fake(grad, x, size, alpha, beta, k):
    return _empty_like_layout(x)


def _lrn_setup_context(ctx, inputs, output):
    x, size, alpha, beta, k = inputs
    ctx.save_for_backward(x)
    ctx.hyper = (size, alpha, beta, k)


def _lrn_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return lrn_bwd(grad, x, *ctx.hyper), None, None, None, None


lrn_fwd.register_autograd(_lrn_backward, setup_context=_lrn_setup_context)
register_autocast(lrn_fwd)


def local_response_norm(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> torch.Tensor:
    """``local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0)``: same signature,
    defaults and result as ``F.local_response_norm`` for 4-D input.

    x: (N, C, H, W), NCHW or channels_last, fp32/fp16/bf16; returns the same shape, dtype and
    layout. Differentiable (backward in Triton); traced by torch.compile as the custom ops
    ``alexnet_fast::lrn_fwd`` / ``alexnet_fast::lrn_bwd``.
    """
    check_lrn_args(x, size, alpha, beta, k, op=OP)
    return lrn_fwd(x, size, float(alpha), float(beta), float(k))


# ---------------------------------------------------------------------------------------
# Code generation check
# ---------------------------------------------------------------------------------------

KERNEL_ARG_TYPES = {"x_ptr": "*x", "y_ptr": "*x", "dy_ptr": "*x", "dx_ptr": "*x", "C": "i32", "HW": "i32",
              "size": "i32", "alpha_over_size": "fp32", "beta": "fp32", "k": "fp32"}


def codegen_specs(launches: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[KernelSpec]:
    """Every (kernel, GPU tile config, layout, dtype) of this op, for the codegen check
    (profiling/codegen/); then each NHWC config launch-faithfully at ``launches`` ((label, sizes)
    of LRN layers: C, HW and the LRN arguments; see ``_common.kernel_specs``)."""
    return [spec for kernel in (lrn_fwd_kernel, lrn_bwd_kernel)
            for spec in kernel_specs(OP, kernel, KERNEL_ARG_TYPES, {}, configs.LRN_CONFIGS, launches)]
