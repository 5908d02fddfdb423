"""2-D max pooling in Triton, forward and backward; any kernel size, stride and padding
(ceil_mode False, dilation 1). AlexNet uses overlapping 3x3 windows at stride 2.

Forward returns the max and, when a gradient is needed, the window-local argmax
``kh * KW + kw`` as **int8**: a 3x3 window has 9 positions, so one byte holds it, against
8 bytes for PyTorch's int64 flat index (4 for int32). At AlexNet's three pools that is 1
byte instead of 8 per pooled value, and the backward needs no division to find the window
of an index. int8 bounds the window at 127 positions (11x11); larger windows pool forward
only, and ask for a gradient with a clear ValueError.

Semantics are PyTorch's, bit for bit in the forward: a window scans row-major, starting
at its first in-bounds element; a value replaces the running max if it is greater or NaN.
So ties go to the FIRST maximal element, NaN propagates and the LAST NaN of a window holds
the argmax, padding never wins (padding <= kernel/2 leaves every window an element).

Backward is a gather (no atomics): each input element sums the output gradients of the
at most ceil(KH/SH) x ceil(KW/SW) windows that contain it and chose it, so overlapping
windows add up.

Layouts: NCHW (contiguous) and NHWC (``torch.channels_last``) in, the same layout out.
Dtypes fp32 / fp16 / bf16 (compared exactly; gradients summed in fp32). CUDA tensors, or
CPU tensors under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import triton
import triton.language as tl

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import (KernelSpec, autotuned, check_device, check_numel, check_tensor, device_guard,
                             int_pair, is_channels_last, kernel_specs, layout_name, max_pool_grad_at,
                             memory_format_of, pixel_channel_tile, register_autocast, tile_offsets)
from alexnet_fast.kernels.lrn import lrn_denominator, pow_fp32

__all__ = ["max_pool2d", "max_pool2d_fwd", "max_pool2d_bwd", "codegen_specs", "pool_geometry"]

OP = "max_pool2d"
MAX_WINDOW_FOR_INT8 = 127  # window positions an int8 argmax can name


# ---------------------------------------------------------------------------------------
# Triton helpers (shared with kernels/lrn_max_pool.py; the backward gather is _common.max_pool_grad_at)
# ---------------------------------------------------------------------------------------

@triton.jit
def max_window_update(v, valid, best, best_pos, pos):
    """One step of PyTorch's max-pool scan at window position ``pos``: take ``v`` where it is
    valid and the window's first valid element, greater than the max so far, or NaN."""
    take = valid & ((v > best) | (v != v) | (best_pos < 0))
    return tl.where(take, v, best), tl.where(take, pos, best_pos)


@triton.jit
def max_window_scan(x_ptr, n, c, p, mask, C, H, W, OW, size, alpha_over_size, beta, k,
                    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                    PH: tl.constexpr, PW: tl.constexpr, CHANNELS_LAST: tl.constexpr, LRN: tl.constexpr):
    """(max, int8-able window-local argmax) over the window of output pixel p (fp32, int32):
    PyTorch's row-major scan of x, or with ``LRN`` of the LRN output x * D^(-beta)
    (kernels/lrn.py; size, alpha_over_size, beta, k are ignored without it)."""
    oh = p // OW
    ow = p % OW
    best = tl.full(mask.shape, float("-inf"), dtype=tl.float32)
    best_pos = tl.full(mask.shape, -1, dtype=tl.int32)
    for kh in tl.static_range(KH):
        ih = oh * SH - PH + kh
        for kw in tl.static_range(KW):
            iw = ow * SW - PW + kw
            valid = mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            offs, c_step = tile_offsets(n, c, ih * W + iw, C, H * W, CHANNELS_LAST)
            v = tl.load(x_ptr + offs, mask=valid, other=0.0).to(tl.float32)
            if LRN:
                d = lrn_denominator(x_ptr, offs, c, valid, C, c_step, size, alpha_over_size, k)
                v = v * pow_fp32(d, -beta)
            best, best_pos = max_window_update(v, valid, best, best_pos, kh * KW + kw)
    return best, best_pos


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------

@triton.jit
def max_pool2d_fwd_kernel(x_ptr, out_ptr, idx_ptr, C, H, W, OH, OW,
                          KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                          PH: tl.constexpr, PW: tl.constexpr, WITH_INDICES: tl.constexpr,
                          CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """out = window max, idx = int8 window-local argmax (if WITH_INDICES).
    Grid: (N * cdiv(OH * OW, BLOCK_P), cdiv(C, BLOCK_C)); a tile is output pixels x channels."""
    n, p, c, mask = pixel_channel_tile(OH * OW, C, BLOCK_P, BLOCK_C)
    best, best_pos = max_window_scan(x_ptr, n, c, p, mask, C, H, W, OW, 0, 0.0, 0.0, 1.0,
                                     KH, KW, SH, SW, PH, PW, CHANNELS_LAST, False)
    out_offs, _ = tile_offsets(n, c, p, C, OH * OW, CHANNELS_LAST)
    tl.store(out_ptr + out_offs, best.to(out_ptr.dtype.element_ty), mask=mask)
    if WITH_INDICES:
        tl.store(idx_ptr + out_offs, best_pos.to(tl.int8), mask=mask)


@triton.jit
def max_pool2d_bwd_kernel(dout_ptr, idx_ptr, dx_ptr, C, H, W, OH, OW,
                          KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                          PH: tl.constexpr, PW: tl.constexpr,
                          CHANNELS_LAST: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx by gathering dout over the windows that chose each input.
    Grid: (N * cdiv(H * W, BLOCK_P), cdiv(C, BLOCK_C)); a tile is input pixels x channels."""
    n, hw, c, mask = pixel_channel_tile(H * W, C, BLOCK_P, BLOCK_C)
    dx = max_pool_grad_at(dout_ptr, idx_ptr, n, c, hw // W, hw % W, mask, C, OH, OW,
                          KH, KW, SH, SW, PH, PW, CHANNELS_LAST)
    offs, _ = tile_offsets(n, c, hw, C, H * W, CHANNELS_LAST)
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Validation and launchers
# ---------------------------------------------------------------------------------------

def pool_geometry(x: torch.Tensor, kernel_size: Any, stride: Any, padding: Any, *,
                  op: str) -> tuple[int, int, int, int, int, int, int, int]:
    """Validated ``(KH, KW, SH, SW, PH, PW, OH, OW)`` of a max-pool over 4-D ``x``, with
    PyTorch's rules: stride None (or empty) means kernel_size, padding at most half the
    kernel, output at least 1x1 (ceil_mode False)."""
    kh, kw = int_pair(kernel_size, "kernel_size", op=op, minimum=1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = (kh, kw)
    sh, sw = int_pair(stride, "stride", op=op, minimum=1)
    ph, pw = int_pair(padding, "padding", op=op, minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding should be at most half of the kernel size, got padding="
                         f"{(ph, pw)} and kernel_size={(kh, kw)}")
    H, W = x.shape[-2:]
    oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output size is too small: input {H}x{W} with kernel_size {(kh, kw)}, "
                         f"stride {(sh, sw)}, padding {(ph, pw)} gives {oh}x{ow}")
    return kh, kw, sh, sw, ph, pw, oh, ow


def check_int8_window(kh: int, kw: int, *, op: str) -> None:
    if kh * kw > MAX_WINDOW_FOR_INT8:
        raise ValueError(f"{op}: the backward stores the argmax within the window as int8, so a "
                         f"window may hold at most {MAX_WINDOW_FOR_INT8} positions; kernel_size "
                         f"{(kh, kw)} has {kh * kw}")


def check_pool_input(x: Any, *, op: str) -> None:
    check_tensor(x, "input", op=op, ndim=4)
    check_device(x, op=op)
    check_numel(x, op=op)


_KEY = ("C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW")


def _launch(kernel, tensors, layout: str, N: int, C: int, H: int, W: int, OH: int, OW: int,
            pixels: int, geometry: tuple[int, ...], **extra) -> None:
    """Launch ``kernel`` over tiles of ``pixels`` (output pixels forward, input pixels backward)."""
    kh, kw, sh, sw, ph, pw = geometry
    grid = lambda meta: (N * triton.cdiv(pixels, meta["BLOCK_P"]), triton.cdiv(C, meta["BLOCK_C"]))  # noqa: E731
    tuned = autotuned(kernel, configs.MAX_POOL2D_CONFIGS, configs.MAX_POOL2D_INTERPRETER, layout, _KEY, batch=N)
    with device_guard(tensors[0]):
        tuned[grid](*tensors, C, H, W, OH, OW, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw,
                    CHANNELS_LAST=layout == "nhwc", **extra)


def empty_pool_outputs(x: torch.Tensor, oh: int, ow: int, with_indices: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty (out, idx) of a pool forward over ``x`` (also the fused LRN + pool's): out in x's
    dtype and layout, idx int8 in the same layout, or an empty int8 tensor without indices."""
    fmt = memory_format_of(x)
    shape = (x.shape[0], x.shape[1], oh, ow)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if with_indices:
        idx = torch.empty(shape, dtype=torch.int8, device=x.device, memory_format=fmt)
    else:
        idx = torch.empty(0, dtype=torch.int8, device=x.device)
    return out, idx


@torch.library.custom_op("alexnet_fast::max_pool2d_fwd", mutates_args=())
def max_pool2d_fwd(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                   with_indices: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-pool forward (custom op): (out, idx); idx is the int8 window-local argmax in out's
    layout, or an empty int8 tensor when ``with_indices`` is False."""
    check_pool_input(x, op=OP)
    *_, oh, ow = pool_geometry(x, (kh, kw), (sh, sw), (ph, pw), op=OP)
    if with_indices:
        check_int8_window(kh, kw, op=OP)
    fmt = memory_format_of(x)
    x = x.contiguous(memory_format=fmt)
    out, idx = empty_pool_outputs(x, oh, ow, with_indices)
    if out.numel():
        N, C, H, W = x.shape
        _launch(max_pool2d_fwd_kernel, (x, out, idx if with_indices else out), layout_name(fmt),
                N, C, H, W, oh, ow, oh * ow, (kh, kw, sh, sw, ph, pw), WITH_INDICES=with_indices)
    return out, idx


@max_pool2d_fwd.register_fake
def _max_pool2d_fwd_fake(x, kh, kw, sh, sw, ph, pw, with_indices):
    *_, oh, ow = pool_geometry(x, (kh, kw), (sh, sw), (ph, pw), op=OP)
    return empty_pool_outputs(x, oh, ow, with_indices)


def _grad_input(like: torch.Tensor, H: int, W: int, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((like.shape[0], like.shape[1], H, W), dtype=like.dtype, device=like.device,
                       memory_format=fmt)


def check_indices(idx: Any, shape, *, op: str) -> None:
    check_tensor(idx, "indices", op=op, ndim=4, dtypes=(torch.int8,))
    if tuple(idx.shape) != tuple(shape):
        raise ValueError(f"{op}: indices have shape {tuple(idx.shape)}, expected {tuple(shape)} "
                         f"(was the forward run with with_indices=True?)")


@torch.library.custom_op("alexnet_fast::max_pool2d_bwd", mutates_args=())
def max_pool2d_bwd(grad: torch.Tensor, idx: torch.Tensor, H: int, W: int, kh: int, kw: int,
                   sh: int, sw: int, ph: int, pw: int, channels_last: bool) -> torch.Tensor:
    """Max-pool backward (custom op): dL/dx (N, C, H, W) from dL/dout and the int8 argmax;
    dx is channels_last if ``channels_last`` (the forward input's layout)."""
    op = "max_pool2d backward"
    check_tensor(grad, "grad", op=op, ndim=4)
    check_indices(idx, grad.shape, op=op)
    check_device(grad, idx, op=op)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    grad = grad.contiguous(memory_format=fmt)
    idx = idx.contiguous(memory_format=fmt)
    dx = _grad_input(grad, H, W, channels_last)
    if dx.numel():
        N, C, OH, OW = grad.shape
        _launch(max_pool2d_bwd_kernel, (grad, idx, dx), layout_name(fmt), N, C, H, W, OH, OW, H * W,
                (kh, kw, sh, sw, ph, pw))
    return dx


@max_pool2d_bwd.register_fake
def _max_pool2d_bwd_fake(grad, idx, H, W, kh, kw, sh, sw, ph, pw, channels_last):
    return _grad_input(grad, H, W, channels_last)


def _max_pool2d_setup_context(ctx, inputs, output):
    x, kh, kw, sh, sw, ph, pw, with_indices = inputs
    _, idx = output
    ctx.save_for_backward(idx)
    ctx.with_indices = with_indices
    ctx.args = (x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, is_channels_last(x))


def _max_pool2d_backward(ctx, grad, _grad_idx):
    if not ctx.with_indices:
        raise RuntimeError("max_pool2d: the forward ran with with_indices=False, so it kept no argmax "
                           "for the backward; call kernels.max_pool2d, which asks for it when needed")
    (idx,) = ctx.saved_tensors
    return (max_pool2d_bwd(grad, idx, *ctx.args),) + (None,) * 7


max_pool2d_fwd.register_autograd(_max_pool2d_backward, setup_context=_max_pool2d_setup_context)
register_autocast(max_pool2d_fwd)


def max_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """``max_pool2d(x, kernel_size, stride=None, padding=0)``: ``F.max_pool2d`` with
    dilation 1 and ceil_mode False.

    x: (N, C, H, W), NCHW or channels_last, fp32/fp16/bf16; returns (N, C, OH, OW) in x's
    dtype and layout. kernel_size / stride / padding: int or (h, w). Keeps an int8 argmax
    only when x requires grad (grad mode on); then kernel_h * kernel_w <= 127.
    """
    check_pool_input(x, op=OP)
    kh, kw, sh, sw, ph, pw, _, _ = pool_geometry(x, kernel_size, stride, padding, op=OP)
    with_indices = torch.is_grad_enabled() and x.requires_grad
    if with_indices:
        check_int8_window(kh, kw, op=OP)
    out, _ = max_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, with_indices)
    return out


# ---------------------------------------------------------------------------------------
# Code generation check
# ---------------------------------------------------------------------------------------

KERNEL_ARG_TYPES = {"x_ptr": "*x", "out_ptr": "*x", "dout_ptr": "*x", "dx_ptr": "*x", "idx_ptr": "*i8",
              "C": "i32", "H": "i32", "W": "i32", "OH": "i32", "OW": "i32"}
ALEXNET_POOL = {"KH": 3, "KW": 3, "SH": 2, "SW": 2, "PH": 0, "PW": 0}


def codegen_specs(launches: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[KernelSpec]:
    """Every (kernel, GPU tile config, layout, dtype) at AlexNet's 3x3 / stride 2 pool; then each
    NHWC config launch-faithfully at ``launches`` ((label, sizes) of pool layers: C, H, W, OH, OW;
    see ``_common.kernel_specs``)."""
    return (kernel_specs(OP, max_pool2d_fwd_kernel, KERNEL_ARG_TYPES, {**ALEXNET_POOL, "WITH_INDICES": True},
                         configs.MAX_POOL2D_CONFIGS, launches)
            + kernel_specs(OP, max_pool2d_bwd_kernel, KERNEL_ARG_TYPES, ALEXNET_POOL, configs.MAX_POOL2D_CONFIGS,
                           launches))
