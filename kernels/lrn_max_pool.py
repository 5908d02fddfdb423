"""Fused cross-channel LRN + max-pool in Triton, forward and backward: AlexNet's
``lrn1 -> pool1`` and ``lrn2 -> pool2`` (LRN size 5, pool 3x3 stride 2) in one pass.

Forward reads the activation x once and writes only the pooled output and, when a
gradient is needed, the int8 window-local argmax (kernels/max_pool.py says why int8).
Each program computes the LRN value ``x * D^(-beta)`` (kernels/lrn.py) at every position
of its windows from cached loads, and keeps PyTorch's max-pool scan (first max on ties,
NaN propagates). The LRN output is never written to memory. The LRN values are compared
in fp32 before rounding to the input dtype; rounding is monotonic, so the output equals
the separate ops' output, though with fp16/bf16 input two values that round to the same
number may pick a different (equally maximal) argmax than the separate ops would.

Backward reads the pooled gradient, the argmax and the saved input x, and writes dx:
for each input element it gathers the LRN-output gradient dy of the `size` neighbouring
channels from the windows that chose them (no atomics), recomputes D as kernels/lrn.py
does, and applies the LRN backward. Lanes whose dy is zero (all but at most one in four
at 3x3 / stride 2) skip the D loads; the NaNs PyTorch's autograd gives there (0 * NaN)
come from kernels/lrn.py's nonfinite_near.

Against the separate Triton ops (LRN, then max-pool) it saves 2*E*b bytes forward and 2*E*b
backward per image (E = C*H*W elements, b bytes each): 3.8 MB per image per training step
in fp16 over AlexNet's two pairs. The byte model is :func:`profiling.flops.lrn_max_pool2d_traffic`.

Layouts: NCHW (contiguous) and NHWC (``torch.channels_last``) in, the same layout out.
Dtypes fp32 / fp16 / bf16 with fp32 math inside. CUDA tensors, or CPU tensors under
``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import triton
import triton.language as tl

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import (KernelSpec, autotuned, check_grad, device_guard, kernel_specs, layout_name,
                             memory_format_of, pixel_channel_tile, register_autocast, tile_offsets)
from alexnet_fast.kernels.lrn import check_lrn_args, lrn_input_grad
from alexnet_fast.kernels.lrn import KERNEL_ARG_TYPES as LRN_ARG_TYPES
from alexnet_fast.kernels.max_pool import KERNEL_ARG_TYPES as POOL_ARG_TYPES
from alexnet_fast.kernels.max_pool import (ALEXNET_POOL, check_indices, check_int8_window, empty_pool_outputs,
                                max_window_scan, pool_geometry)

__all__ = ["lrn_max_pool2d", "lrn_max_pool2d_fwd", "lrn_max_pool2d_bwd", "codegen_specs"]

OP = "lrn_max_pool2d"


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------

@triton.jit
def lrn_max_pool2d_fwd_kernel(x_ptr, out_ptr, idx_ptr, C, H, W, OH, OW, size, alpha_over_size, beta, k,
                              KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                              PH: tl.constexpr, PW: tl.constexpr, WITH_INDICES: tl.constexpr,
                              CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """out = window max of LRN(x), idx = int8 window-local argmax (if WITH_INDICES).
    Grid: (N * cdiv(OH * OW, BLOCK_P), cdiv(C, BLOCK_C)); a tile is output pixels x channels."""
    n, p, c, mask = pixel_channel_tile(OH * OW, C, BLOCK_P, BLOCK_C)
    best, best_pos = max_window_scan(x_ptr, n, c, p, mask, C, H, W, OW, size, alpha_over_size, beta, k,
                                     KH, KW, SH, SW, PH, PW, CHANNELS_LAST, True)
    out_offs, _ = tile_offsets(n, c, p, C, OH * OW, CHANNELS_LAST)
    tl.store(out_ptr + out_offs, best.to(out_ptr.dtype.element_ty), mask=mask)
    if WITH_INDICES:
        tl.store(idx_ptr + out_offs, best_pos.to(tl.int8), mask=mask)


@triton.jit
def lrn_max_pool2d_bwd_kernel(x_ptr, dout_ptr, idx_ptr, dx_ptr, C, H, W, OH, OW, size, alpha_over_size,
                              beta, k, KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr,
                              SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                              CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx from dout (pooled gradient), the int8 argmax and x (module docstring).
    Grid: (N * cdiv(H * W, BLOCK_P), cdiv(C, BLOCK_C)); a tile is input pixels x channels."""
    n, hw, c, mask = pixel_channel_tile(H * W, C, BLOCK_P, BLOCK_C)
    # the LRN backward with its upstream gradient (of the never stored LRN output)
    # gathered from the pooled gradient
    dx = lrn_input_grad(x_ptr, dout_ptr, idx_ptr, n, c, hw, mask, C, H * W, W, OH, OW, size, alpha_over_size,
                        beta, k, KH, KW, SH, SW, PH, PW, CHANNELS_LAST, True)
    offs, _ = tile_offsets(n, c, hw, C, H * W, CHANNELS_LAST)
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Launchers and custom ops
# ---------------------------------------------------------------------------------------

_KEY = ("C", "H", "W", "OH", "OW", "size", "KH", "KW", "SH", "SW", "PH", "PW")


def _launch(kernel, table, tensors, x: torch.Tensor, OH: int, OW: int, pixels: int, lrn: tuple,
            geometry: tuple, **extra) -> None:
    """Launch ``kernel`` autotuned over ``table`` (configs.LRN_MAX_POOL2D_FWD_CONFIGS or _BWD_CONFIGS)
    on tiles of ``pixels`` (output pixels forward, input pixels backward)."""
    N, C, H, W = x.shape
    size, alpha, beta, k = lrn
    kh, kw, sh, sw, ph, pw = geometry
    grid = lambda meta: (N * triton.cdiv(pixels, meta["BLOCK_P"]), triton.cdiv(C, meta["BLOCK_C"]))  # noqa: E731
    layout = layout_name(memory_format_of(x))
    tuned = autotuned(kernel, table, configs.LRN_MAX_POOL2D_INTERPRETER, layout, _KEY, batch=N)
    with device_guard(x):
        tuned[grid](*tensors, C, H, W, OH, OW, size, alpha / size, beta, k, KH=kh, KW=kw, SH=sh, SW=sw,
                    PH=ph, PW=pw, CHANNELS_LAST=layout == "nhwc", **extra)


def _check(x, size, alpha, beta, k, kernel_size, stride, padding, with_indices, *, op):
    check_lrn_args(x, size, alpha, beta, k, op=op)
    geometry = pool_geometry(x, kernel_size, stride, padding, op=op)
    if with_indices:
        check_int8_window(geometry[0], geometry[1], op=op)
    return geometry


@torch.library.custom_op("alexnet_fast::lrn_max_pool2d_fwd", mutates_args=())
def lrn_max_pool2d_fwd(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kh: int, kw: int,
                       sh: int, sw: int, ph: int, pw: int, with_indices: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused LRN + max-pool forward (custom op): (out, idx) as ``max_pool2d_fwd`` returns,
    for max_pool2d(local_response_norm(x))."""
    *_, oh, ow = _check(x, size, alpha, beta, k, (kh, kw), (sh, sw), (ph, pw), with_indices, op=OP)
    x = x.contiguous(memory_format=memory_format_of(x))
    out, idx = empty_pool_outputs(x, oh, ow, with_indices)
    if out.numel():
        _launch(lrn_max_pool2d_fwd_kernel, configs.LRN_MAX_POOL2D_FWD_CONFIGS, (x, out, idx if with_indices else out),
                x, oh, ow, oh * ow,
                (size, alpha, beta, k), (kh, kw, sh, sw, ph, pw), WITH_INDICES=with_indices)
    return out, idx


@lrn_max_pool2d_fwd.register_fake
def _lrn_max_pool2d_fwd_fake(x, size, alpha, beta, k, kh, kw, sh, sw, ph, pw, with_indices):
    *_, oh, ow = pool_geometry(x, (kh, kw), (sh, sw), (ph, pw), op=OP)
    return empty_pool_outputs(x, oh, ow, with_indices)


@torch.library.custom_op("alexnet_fast::lrn_max_pool2d_bwd", mutates_args=())
def lrn_max_pool2d_bwd(grad: torch.Tensor, idx: torch.Tensor, x: torch.Tensor, size: int, alpha: float,
                       beta: float, k: float, kh: int, kw: int, sh: int, sw: int, ph: int,
                       pw: int) -> torch.Tensor:
    """Fused LRN + max-pool backward (custom op): dL/dx in x's layout from dL/dout, the
    int8 argmax and the forward's input x."""
    op = "lrn_max_pool2d backward"
    *_, oh, ow = _check(x, size, alpha, beta, k, (kh, kw), (sh, sw), (ph, pw), True, op=op)
    check_grad(grad, x, (x.shape[0], x.shape[1], oh, ow), op=op)
    check_indices(idx, grad.shape, op=op)
    fmt = memory_format_of(x)
    x = x.contiguous(memory_format=fmt)
    grad = grad.contiguous(memory_format=fmt)
    idx = idx.contiguous(memory_format=fmt)
    dx = torch.empty_like(x)
    if dx.numel():
        _launch(lrn_max_pool2d_bwd_kernel, configs.LRN_MAX_POOL2D_BWD_CONFIGS, (x, grad, idx, dx),
                x, oh, ow, x.shape[2] * x.shape[3],
                (size, alpha, beta, k), (kh, kw, sh, sw, ph, pw))
    return dx


@lrn_max_pool2d_bwd.register_fake
def _lrn_max_pool2d_bwd_fake(grad, idx, x, size, alpha, beta, k, kh, kw, sh, sw, ph, pw):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))


def _setup_context(ctx, inputs, output):
    x, *hyper, with_indices = inputs
    _, idx = output
    ctx.save_for_backward(idx, x)
    ctx.hyper = tuple(hyper)
    ctx.with_indices = with_indices


def _backward(ctx, grad, _grad_idx):
    if not ctx.with_indices:
        raise RuntimeError("lrn_max_pool2d: the forward ran with with_indices=False, so it kept no argmax "
                           "for the backward; call kernels.lrn_max_pool2d, which asks for it when needed")
    idx, x = ctx.saved_tensors
    return (lrn_max_pool2d_bwd(grad, idx, x, *ctx.hyper),) + (None,) * 11


lrn_max_pool2d_fwd.register_autograd(_backward, setup_context=_setup_context)
register_autocast(lrn_max_pool2d_fwd)


def lrn_max_pool2d(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size,
                   stride=None, padding=0) -> torch.Tensor:
    """``lrn_max_pool2d(x, size, alpha, beta, k, kernel_size, stride=None, padding=0)`` ==
    ``F.max_pool2d(F.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding)``
    in one kernel (and one backward kernel).

    x: (N, C, H, W), NCHW or channels_last, fp32/fp16/bf16; returns (N, C, OH, OW) in x's
    dtype and layout. Keeps the int8 argmax and x for the backward only when x requires
    grad (grad mode on).
    """
    with_indices = isinstance(x, torch.Tensor) and torch.is_grad_enabled() and x.requires_grad
    kh, kw, sh, sw, ph, pw, _, _ = _check(x, size, alpha, beta, k, kernel_size, stride, padding,
                                          with_indices, op=OP)
    out, _ = lrn_max_pool2d_fwd(x, size, float(alpha), float(beta), float(k), kh, kw, sh, sw, ph, pw,
                                with_indices)
    return out


# ---------------------------------------------------------------------------------------
# Code generation check
# ---------------------------------------------------------------------------------------

KERNEL_ARG_TYPES = {**LRN_ARG_TYPES, **POOL_ARG_TYPES}


def codegen_specs(launches: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[KernelSpec]:
    """Every (kernel, GPU tile config, layout, dtype) at AlexNet's LRN size 5 / 3x3 stride 2 pool
    (LRN size is a runtime argument; the pool geometry is compiled in); then each NHWC config
    launch-faithfully at ``launches`` ((label, sizes) of fused LRN + pool layers)."""
    return (kernel_specs(OP, lrn_max_pool2d_fwd_kernel, KERNEL_ARG_TYPES, {**ALEXNET_POOL, "WITH_INDICES": True},
                         configs.LRN_MAX_POOL2D_FWD_CONFIGS, launches)
            + kernel_specs(OP, lrn_max_pool2d_bwd_kernel, KERNEL_ARG_TYPES, ALEXNET_POOL,
                           configs.LRN_MAX_POOL2D_BWD_CONFIGS, launches))
