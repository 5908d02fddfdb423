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

Kernels (one GEMM view each; the group is program axis 1)
---------------------------------------------------------
* ``conv2d_relu_fwd_kernel``: M = N*P*Q output pixels, N = K/groups, reduction over
  C/groups*R*S gathered from x (im2col on the fly); epilogue: + bias, ReLU, cast, store.
* ``conv2d_relu_dgrad_kernel``: dx = g convolved with the flipped weight, g the output
  gradient with the ReLU mask applied. Program axis 2 is the stride phase ((h + pad) mod
  stride): inside one phase only the taps r = phase + stride*j meet an output row, so the
  reduction covers K/groups*ceil(R/s)*ceil(S/s) terms instead of s^2 times as many masked
  ones (conv1: 16 phases, 3x3 of its 11x11 taps).
* ``conv2d_relu_wgrad_kernel``: dw[k, (c, r, s)] = sum over N*P*Q of g times the gathered
  input; program axis 2 splits that long reduction (deterministic fp32 partials summed
  afterwards); the programs of the first column of tiles also sum the bias gradient, in a
  loop of their own.

The K loops: as lean as a GEMM's (issue 20)
-------------------------------------------
No K loop divides by a runtime value: the address generation of CUTLASS's "optimized"
implicit-GEMM iterators. Row bases and masks are built once before the loop; each K-step adds
one scalar pointer delta -- next channel block, next tap column s, next tap row r -- chosen by
counters that wrap (``_next_k_step``, branch-free ``tl.where``), in one flattened loop (one
``scf.for``, which Triton's pipeliner keeps multi-buffered). Two walks, picked per launch by
``_HEURISTICS`` (``triton.heuristics`` under the autotuner, so they see the config):

* image-major (``IMAGE_ROWS`` in fwd/dgrad when BATCH % BLOCK_M == 0, ``IMAGE_LANES`` in wgrad
  when BATCH % BLOCK_K == 0: every launch of the fast path, e.g. batch 128): a GEMM row tile is
  BLOCK_M images at one pixel, a wgrad K-step BLOCK_K images at one output pixel, so whether a tap
  reads inside the image is one scalar per tile: the loop walks only the taps inside (no row mask;
  border pixels skip the padding's taps, ~10% of a 3x3 layer's MMAs at 13x13) and needs no mask
  at all with whole channel blocks (``EVEN_K``). Measured (reports/codegen.md, sm_90, fp16/bf16):
  0.76-1.04x the SASS instructions per K-step of Triton's tutorial GEMM at the same tile.
* rows of pixels (any batch; the gather table): per-row tap bits (``_bit_range``: one AND per row
  and K-step; dgrad compares when the taps of a phase exceed 31 bits, ``TAP_BITS``), the flat
  (c, r, s) walk of few channels and wgrad's pixel lanes advanced by carries (``_carry_lanes``).

Config tables: the fast path (``fast_path``: channels-last, unit channel strides, channel counts
and strides multiples of 16, a batch every tile divides) autotunes over its arch's tables
(``kernels.configs.CONV2D_RELU_GPU_CONFIGS[arch]``: BLOCK_K 64, 128-wide tiles on sm_90); the rest
(NCHW, conv1, odd channel counts, other batches) over the gather table's smaller tiles, which do
not spill on the masked row walk.

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
import triton.language as tl

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import (
    SUPPORTED_DTYPES,
    TRITON_PTR,
    KernelSpec,
    autotuned,
    check_device,
    check_tensor,
    check_int,
    device_guard,
    int_pair,
    is_channels_last,
    memory_format_of,
    register_autocast,
)

__all__ = ["conv2d_relu", "conv2d_relu_fwd", "conv2d_relu_dgrad", "conv2d_relu_wgrad", "relu_grad",
           "dot_precision", "use_flat_k", "wgrad_splits", "codegen_specs"]

OP = "conv2d_relu"
_INT32_LIMIT = 2**31


# =======================================================================================
# Triton kernels
# =======================================================================================

@triton.jit
def _grouped_tile(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Map a linear program id to a (tile_m, tile_n) pair, GROUP_M rows of tiles at a time
    (neighbouring programs share operand tiles in L2)."""
    width = GROUP_M * num_pid_n
    first_m = (pid // width) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % group_rows
    pid_n = (pid % width) // group_rows
    return pid_m, pid_n


@triton.jit
def _bit_range(lo, hi, n):
    """Bits [lo, hi) of an int32, both ends clamped to [0, n] (none when hi <= lo): per GEMM row,
    the taps of one filter axis that read inside the tensor. n <= 31."""
    lo = tl.minimum(tl.maximum(lo, 0), n)
    hi = tl.minimum(tl.maximum(hi, lo), n)
    return (1 << hi) - (1 << lo)


@triton.jit
def _next_k_step(left, s, r_bit, s_bit, per_group, S, s_first, BLOCK_K: tl.constexpr):
    """One step of an implicit GEMM's reduction walk -- blocks of BLOCK_K channels inner, then tap
    column s, then tap row r -- by counters that wrap, with no division. ``left``: channels of the
    group from the current block on; ``s``: the tap column; ``r_bit = 1 << r`` and
    ``s_bit = s_first << s`` the tap bits of ``_bit_range`` (s after the r bits). Returns the new
    state and whether the step moved to the next s (``next_s``) and to the next r (``next_r``),
    which choose the pointer delta of the step."""
    left -= BLOCK_K
    next_s = left <= 0
    left = tl.where(next_s, per_group, left)
    s = tl.where(next_s, s + 1, s)
    next_r = s == S
    s = tl.where(next_r, 0, s)
    s_bit = tl.where(next_r, s_first, tl.where(next_s, s_bit << 1, s_bit))
    r_bit = tl.where(next_r, r_bit << 1, r_bit)
    return left, s, r_bit, s_bit, next_s, next_r


@triton.jit
def _image_major_loop(acc, a_ptrs, b_ptrs, mask_n, steps, per_group, s_cnt,
                      a_step_c, a_step_s, a_step_r, b_step_c, b_step_s, b_step_r,
                      EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr, BLOCK_K: tl.constexpr):
    """The K loop of a tile of images at one pixel (fwd, dgrad ``IMAGE_ROWS``): ``steps`` K-steps
    over the taps inside -- blocks of BLOCK_K of ``per_group`` channels, ``s_cnt`` tap columns per
    row -- A (rows x channels) and B (channels x N) advanced by the scalar deltas of
    ``_next_k_step`` (next block, next column, next row); no mask on A, none at all with whole
    channel blocks (``EVEN_K``) but B's column mask."""
    offs_k = tl.arange(0, BLOCK_K)
    s = 0
    left = per_group
    for _ in range(0, steps):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
        else:
            mask_k = offs_k < left
            a = tl.load(a_ptrs, mask=mask_k[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
        left, s, _, _, next_s, next_r = _next_k_step(left, s, 0, 0, per_group, s_cnt, 0, BLOCK_K)
        a_ptrs += tl.where(next_r, a_step_r, tl.where(next_s, a_step_s, a_step_c))
        b_ptrs += tl.where(next_r, b_step_r, tl.where(next_s, b_step_s, b_step_c))
    return acc


@triton.jit
def conv2d_relu_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr,
    H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w,
    sx_n, sx_c, sx_h, sx_w,
    sw_k, sw_c, sw_r, sw_s,
    sy_n, sy_k, sy_p, sy_q,
    GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, FLAT_K: tl.constexpr, IMAGE_ROWS: tl.constexpr,
    EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """y[n, k, p, q] = relu(bias[k] + sum_{c,r,s} x[n, c, p*sh-ph+r, q*sw-pw+s] * w[k, c, r, s]).

    GEMM_M = N*P*Q, GEMM_N = K/groups, GEMM_K = C/groups*R*S; grid (tiles, groups).
    Reduction order: taps (r, s) outer, blocks of BLOCK_K channels inner (1-D index math,
    contiguous channel loads for channels_last); FLAT_K walks the flat (c, r, s) index
    instead, for few channels (conv1: C=3) where channel blocks would be mostly padding.
    """
    pid = tl.program_id(0)
    group = tl.program_id(1)
    pid_m, pid_n = _grouped_tile(pid, tl.cdiv(GEMM_M, BLOCK_M), tl.cdiv(GEMM_N, BLOCK_N), GROUP_M)
    RS = R * S
    c_per_group = C_PER_GROUP  # an argument: the JIT sees its divisibility by 16

    # columns: output channels of this group; rows: output pixels
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < GEMM_N
    k_out = group * GEMM_N + offs_n
    w_col = k_out * sw_k
    offs_c = tl.arange(0, BLOCK_K)
    c_blocks = tl.cdiv(c_per_group, BLOCK_K)
    rewind_c = (c_blocks - 1) * BLOCK_K
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if IMAGE_ROWS:
        # rows in (p, q, n) order: a tile is BLOCK_M images at one output pixel (p, q)
        # (BATCH % BLOCK_M == 0), so every tap is inside or outside the image for the whole
        # tile: the K loop walks only the taps inside (no row mask; border pixels skip the
        # padding's taps) by the scalar walk of _next_k_step
        n_blocks = BATCH // BLOCK_M
        pixel = pid_m // n_blocks
        images = (pid_m % n_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)
        mask_m = images < BATCH
        p = pixel // Q
        q = pixel % Q
        ih0 = p * stride_h - pad_h
        iw0 = q * stride_w - pad_w
        r_lo = tl.maximum(-ih0, 0)
        s_lo = tl.maximum(-iw0, 0)
        r_cnt = tl.maximum(tl.minimum(H - ih0, R) - r_lo, 0)
        s_cnt = tl.maximum(tl.minimum(W - iw0, S) - s_lo, 0)
        x_row = images * sx_n + group * c_per_group * sx_c + (ih0 + r_lo) * sx_h + (iw0 + s_lo) * sx_w
        a_ptrs = x_ptr + (x_row[:, None] + (offs_c * sx_c)[None, :])
        b_ptrs = w_ptr + (r_lo * sw_r + s_lo * sw_s) + ((offs_c * sw_c)[:, None] + w_col[None, :])
        a_step_s = sx_w - rewind_c * sx_c
        a_step_r = sx_h - (s_cnt - 1) * sx_w - rewind_c * sx_c
        b_step_s = sw_s - rewind_c * sw_c
        b_step_r = sw_r - (s_cnt - 1) * sw_s - rewind_c * sw_c
        acc = _image_major_loop(acc, a_ptrs, b_ptrs, mask_n, r_cnt * s_cnt * c_blocks, c_per_group, s_cnt,
                                BLOCK_K * sx_c, a_step_s, a_step_r, BLOCK_K * sw_c, b_step_s, b_step_r,
                                EVEN_K, INPUT_PRECISION, BLOCK_K)
        y_row = images * sy_n + p * sy_p + q * sy_q
    else:
        # rows in (n, p, q) order (any batch)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        mask_m = offs_m < GEMM_M
        img = offs_m // (P * Q)
        p = (offs_m % (P * Q)) // Q
        q = offs_m % Q
        # a row past the end gets ih0 = -R: every tap r < R then reads row ih < 0 (masked)
        ih0 = tl.where(mask_m, p * stride_h - pad_h, -R)
        iw0 = q * stride_w - pad_w
        x_row = img * sx_n + group * c_per_group * sx_c + ih0 * sx_h + iw0 * sx_w
        y_row = img * sy_n + p * sy_p + q * sy_q
        if FLAT_K:
            # the flat reduction index (c, r, s), s fastest, of each lane, decomposed once and
            # advanced by carries (_carry_lanes)
            c, r, s, ds, dr, dc = _mixed_radix_lanes(0, R, S, BLOCK_K)
            offs_k = tl.arange(0, BLOCK_K)
            for k0 in range(0, GEMM_K, BLOCK_K):
                mask_k = offs_k < GEMM_K - k0
                ih = ih0[:, None] + r[None, :]
                iw = iw0[:, None] + s[None, :]
                a_mask = (ih.to(tl.uint32) < H) & (iw.to(tl.uint32) < W) & mask_k[None, :]
                a = tl.load(x_ptr + (x_row[:, None] + (c * sx_c + r * sx_h + s * sx_w)[None, :]),
                            mask=a_mask, other=0.0)
                b = tl.load(w_ptr + ((c * sw_c + r * sw_r + s * sw_s)[:, None] + w_col[None, :]),
                            mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
                r, s, _, wrap_r = _carry_lanes(r, s, dr, ds, R, S, R, S)
                c += tl.where(wrap_r, dc + 1, dc)
        else:
            # CUTLASS-style "optimized" walk: pointers of tap (0, 0), channel block 0, built once;
            # each K-step adds one scalar delta (next channel block, next tap s, next tap row r)
            # chosen by counters that wrap, so the loop does no division by runtime values
            a_ptrs = x_ptr + (x_row[:, None] + (offs_c * sx_c)[None, :])
            b_ptrs = w_ptr + ((offs_c * sw_c)[:, None] + w_col[None, :])
            a_step_s = sx_w - rewind_c * sx_c
            a_step_r = sx_h - (S - 1) * sx_w - rewind_c * sx_c
            b_step_s = sw_s - rewind_c * sw_c
            b_step_r = sw_r - (S - 1) * sw_s - rewind_c * sw_c
            # per row, the taps (r, s) that read inside the image, as bits (r: 0..R-1, s: R..R+S-1;
            # use_flat_k takes R + S > 31 to the flat walk); a row past the end gets none
            taps_ok = _bit_range(-ih0, H - ih0, R) | (_bit_range(-iw0, W - iw0, S) << R)
            taps_ok = tl.where(mask_m, taps_ok, 0)
            s_first = 1 << R
            r_bit = 1
            s_bit = s_first
            s = 0
            c_left = c_per_group  # channels of the group from this block on
            for _ in range(0, RS * c_blocks):
                tap = r_bit | s_bit
                row_ok = (taps_ok & tap) == tap
                if EVEN_K:  # whole channel blocks: no channel mask
                    a = tl.load(a_ptrs, mask=row_ok[:, None], other=0.0)
                    b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
                else:
                    mask_c = offs_c < c_left
                    a = tl.load(a_ptrs, mask=row_ok[:, None] & mask_c[None, :], other=0.0)
                    b = tl.load(b_ptrs, mask=mask_c[:, None] & mask_n[None, :], other=0.0)
                acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
                c_left, s, r_bit, s_bit, next_s, next_r = _next_k_step(c_left, s, r_bit, s_bit, c_per_group, S,
                                                                       s_first, BLOCK_K)
                a_ptrs += tl.where(next_r, a_step_r, tl.where(next_s, a_step_s, BLOCK_K * sx_c))
                b_ptrs += tl.where(next_r, b_step_r, tl.where(next_s, b_step_s, BLOCK_K * sw_c))

    # epilogue on the fp32 accumulator
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k_out, mask=mask_n, other=0.0).to(tl.float32)
        acc += bias[None, :]
    if RELU:  # NaN stays NaN, as in F.relu (a plain maximum would return 0)
        acc = tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)
    y_offs = y_row[:, None] + (k_out * sy_k)[None, :]
    tl.store(y_ptr + y_offs, acc.to(y_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def conv2d_relu_dgrad_kernel(
    g_ptr, w_ptr, dx_ptr,
    H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w,
    sg_n, sg_k, sg_p, sg_q,
    sw_k, sw_c, sw_r, sw_s,
    sdx_n, sdx_c, sdx_h, sdx_w,
    GEMM_M, GEMM_N, GEMM_K, K_PER_GROUP, BATCH,
    IMAGE_ROWS: tl.constexpr, TAP_BITS: tl.constexpr, EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """dx[n, c, h, w] = sum_{k,r,s} g[n, k, (h+ph-r)/sh, (w+pw-s)/sw] * w[k, c, r, s] over the
    taps where the division is exact and in range; g is the output gradient with the ReLU
    mask already applied (strides sg_*).

    Grid (tiles, groups, stride_h*stride_w phases). Phase (a, b) holds the input pixels with
    (h + pad_h) % stride_h == a and (w + pad_w) % stride_w == b; its taps are r = a + sh*jr,
    s = b + sw*js. GEMM_M = N*ceil(H/sh)*ceil(W/sw) (largest phase), GEMM_N = C/groups,
    GEMM_K = K/groups*ceil(R/sh)*ceil(S/sw) (largest phase). Reduction order: taps
    outer, blocks of BLOCK_K output channels inner.
    """
    pid = tl.program_id(0)
    group = tl.program_id(1)
    phase = tl.program_id(2)
    pid_m, pid_n = _grouped_tile(pid, tl.cdiv(GEMM_M, BLOCK_M), tl.cdiv(GEMM_N, BLOCK_N), GROUP_M)
    k_per_group = K_PER_GROUP  # arguments: the JIT sees their divisibility by 16
    batch = BATCH

    # this phase: first input row/col, pixel counts, tap counts
    phase_h = phase // stride_w
    phase_w = phase % stride_w
    h0 = (phase_h - pad_h % stride_h + stride_h) % stride_h
    w0 = (phase_w - pad_w % stride_w + stride_w) % stride_w
    rows = (H - h0 + stride_h - 1) // stride_h
    cols = (W - w0 + stride_w - 1) // stride_w
    taps_r = (R - phase_h + stride_h - 1) // stride_h
    taps_s = (S - phase_w + stride_w - 1) // stride_w

    # columns: input channels of the group
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < GEMM_N
    w_col = offs_n * sw_c  # weight dim 1 is the channel within the group
    w_base = group * k_per_group * sw_k
    k_blocks = tl.cdiv(k_per_group, BLOCK_K)
    offs_k = tl.arange(0, BLOCK_K)  # output channel within the group, from the block start
    rewind_k = (k_blocks - 1) * BLOCK_K
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if IMAGE_ROWS:
        # rows in (i, j, n) order: a tile is BLOCK_M images at one input pixel of the phase
        # (BATCH % BLOCK_M == 0), so the K loop walks only the taps whose output pixel exists
        # (oh0 - P < jr <= oh0, ow0 - Q < js <= ow0) with no row mask, as the forward kernel
        n_blocks = batch // BLOCK_M
        pixel = pid_m // n_blocks
        images = (pid_m % n_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)
        inside = pixel < rows * cols  # the largest phase sets the grid
        mask_m = (images < batch) & inside
        i = pixel // tl.maximum(cols, 1)
        j = pixel % tl.maximum(cols, 1)
        oh0 = i + (h0 + pad_h - phase_h) // stride_h
        ow0 = j + (w0 + pad_w - phase_w) // stride_w
        jr_lo = tl.maximum(oh0 - P + 1, 0)
        js_lo = tl.maximum(ow0 - Q + 1, 0)
        jr_cnt = tl.where(inside, tl.maximum(tl.minimum(taps_r, oh0 + 1) - jr_lo, 0), 0)
        js_cnt = tl.maximum(tl.minimum(taps_s, ow0 + 1) - js_lo, 0)
        g_row = images * sg_n + group * k_per_group * sg_k + (oh0 - jr_lo) * sg_p + (ow0 - js_lo) * sg_q
        a_ptrs = g_ptr + (g_row[:, None] + (offs_k * sg_k)[None, :])
        b_ptrs = w_ptr + (w_base + (phase_h + stride_h * jr_lo) * sw_r + (phase_w + stride_w * js_lo) * sw_s) \
            + ((offs_k * sw_k)[:, None] + w_col[None, :])
        a_step_s = -sg_q - rewind_k * sg_k
        a_step_r = -sg_p + (js_cnt - 1) * sg_q - rewind_k * sg_k
        b_step_s = stride_w * sw_s - rewind_k * sw_k
        b_step_r = stride_h * sw_r - (js_cnt - 1) * stride_w * sw_s - rewind_k * sw_k
        acc = _image_major_loop(acc, a_ptrs, b_ptrs, mask_n, jr_cnt * js_cnt * k_blocks, k_per_group, js_cnt,
                                BLOCK_K * sg_k, a_step_s, a_step_r, BLOCK_K * sw_k, b_step_s, b_step_r,
                                EVEN_K, INPUT_PRECISION, BLOCK_K)
        dx_row = images * sdx_n + (h0 + stride_h * i) * sdx_h + (w0 + stride_w * j) * sdx_w
    else:
        # rows in (n, i, j) order (any batch): input pixels of this phase, h = h0 + sh*i
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        mask_m = offs_m < batch * rows * cols
        pixels = tl.maximum(rows * cols, 1)  # an empty phase is fully masked; avoid / 0
        img = offs_m // pixels
        i = (offs_m % pixels) // tl.maximum(cols, 1)
        j = offs_m % tl.maximum(cols, 1)
        # output row/col reached by tap jr = js = 0; a row past the end gets oh0 = -1, so every
        # tap reads output row oh = oh0 - jr < 0 (masked)
        oh0 = tl.where(mask_m, i + (h0 + pad_h - phase_h) // stride_h, -1)
        ow0 = j + (w0 + pad_w - phase_w) // stride_w
        g_row = img * sg_n + group * k_per_group * sg_k + oh0 * sg_p + ow0 * sg_q
        # the walk of the forward kernel (_next_k_step): pointers of tap (jr, js) = (0, 0) and
        # channel block 0, one scalar delta per K-step; the taps jr (js) a row reaches inside
        # the output are oh0 - P < jr <= oh0 (ow0 - Q < js <= ow0)
        a_ptrs = g_ptr + (g_row[:, None] + (offs_k * sg_k)[None, :])
        b_ptrs = w_ptr + (w_base + phase_h * sw_r + phase_w * sw_s) + ((offs_k * sw_k)[:, None] + w_col[None, :])
        a_step_s = -sg_q - rewind_k * sg_k
        a_step_r = -sg_p + (taps_s - 1) * sg_q - rewind_k * sg_k
        b_step_s = stride_w * sw_s - rewind_k * sw_k
        b_step_r = stride_h * sw_r - (taps_s - 1) * stride_w * sw_s - rewind_k * sw_k
        if TAP_BITS:  # taps_r + taps_s <= 31 (launcher)
            taps_ok = _bit_range(oh0 - P + 1, oh0 + 1, taps_r) | (_bit_range(ow0 - Q + 1, ow0 + 1, taps_s) << taps_r)
            taps_ok = tl.where(mask_m, taps_ok, 0)
        s_first = 1 << tl.minimum(taps_r, 31)
        r_bit = 1
        s_bit = s_first
        jr = 0
        js = 0
        k_left = k_per_group  # output channels of the group from this block on
        for _ in range(0, taps_r * taps_s * k_blocks):
            if TAP_BITS:
                tap = r_bit | s_bit
                row_ok = (taps_ok & tap) == tap
            else:  # many taps: compare (unsigned: a negative row wraps to a huge one)
                row_ok = ((oh0 - jr).to(tl.uint32) < P) & ((ow0 - js).to(tl.uint32) < Q)
            if EVEN_K:  # whole channel blocks: no channel mask
                a = tl.load(a_ptrs, mask=row_ok[:, None], other=0.0)
                b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
            else:
                mask_k = offs_k < k_left
                a = tl.load(a_ptrs, mask=row_ok[:, None] & mask_k[None, :], other=0.0)
                b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
            k_left, js, r_bit, s_bit, next_s, next_r = _next_k_step(k_left, js, r_bit, s_bit, k_per_group, taps_s,
                                                                    s_first, BLOCK_K)
            if not TAP_BITS:
                jr = tl.where(next_r, jr + 1, jr)
            a_ptrs += tl.where(next_r, a_step_r, tl.where(next_s, a_step_s, BLOCK_K * sg_k))
            b_ptrs += tl.where(next_r, b_step_r, tl.where(next_s, b_step_s, BLOCK_K * sw_k))
        dx_row = img * sdx_n + (h0 + stride_h * i) * sdx_h + (w0 + stride_w * j) * sdx_w
    dx_offs = dx_row[:, None] + ((group * GEMM_N + offs_n) * sdx_c)[None, :]
    tl.store(dx_ptr + dx_offs, acc.to(dx_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _mixed_radix_lanes(first, MID, INNER, BLOCK_K: tl.constexpr):
    """Lanes first + j, j < BLOCK_K, of a reduction index in mixed radix (outer, mid, inner),
    mid < MID, inner < INNER -- output pixels (image, p, q) in wgrad, filter entries (c, r, s) in
    the flat forward walk -- divided out once, before a K loop, and the digits of the step
    BLOCK_K that advance them (``_carry_lanes``): d_inner < INNER, d_mid < MID."""
    lane = first + tl.arange(0, BLOCK_K)
    return (lane // (MID * INNER), lane // INNER % MID, lane % INNER,
            BLOCK_K % INNER, BLOCK_K // INNER % MID, BLOCK_K // (MID * INNER))


@triton.jit
def _carry_lanes(mid, inner, d_mid, d_inner, mid_end, inner_end, MID, INNER):
    """Advance per-lane mixed-radix digits (mid, inner) by the step (d_mid, d_inner) with no
    division: inner wraps (- INNER, carrying 1 into mid) once it reaches inner_end, then mid
    likewise at mid_end (the ends are MID and INNER, or lower for digits kept relative to a
    first valid value); one wrap each suffices since d_mid < MID and d_inner < INNER. Returns
    the digits and both wrap masks (the caller carries the second into its outer digit)."""
    inner += d_inner
    wrap_inner = inner >= inner_end
    inner = tl.where(wrap_inner, inner - INNER, inner)
    mid += tl.where(wrap_inner, d_mid + 1, d_mid)
    wrap_mid = mid >= mid_end
    mid = tl.where(wrap_mid, mid - MID, mid)
    return mid, inner, wrap_inner, wrap_mid


@triton.jit
def conv2d_relu_wgrad_kernel(
    g_ptr, x_ptr, dw_partial_ptr, db_partial_ptr,
    H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w,
    sg_k, sg_pix,
    sx_n, sx_c, sx_h, sx_w, sx_pix,
    sdw_c, sdw_t,
    GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, SPLIT_CHUNK, BATCH,
    FLAT_K: tl.constexpr, IMAGE_LANES: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """dw[k, c, r, s] = sum_{n,p,q} g[n, k, p, q] * x[n, c, p*sh-ph+r, q*sw-pw+s] and
    db[k] = sum_{n,p,q} g[n, k, p, q]; g is the output gradient with the ReLU mask already
    applied. The pixels of g and x are equally spaced (the launcher makes them so): g element
    (n, k, p, q) at k*sg_k + ((n*P + p)*Q + q)*sg_pix, x pixel (n, h, w) at ((n*H + h)*W + w)*sx_pix
    (= n*sx_n + h*sx_h + w*sx_w).

    GEMM_M = K/groups, GEMM_N = C/groups*R*S, GEMM_K = N*P*Q. Grid (tiles, groups, splits):
    split z reduces over [z*SPLIT_CHUNK, (z+1)*SPLIT_CHUNK) and writes fp32 partials
    dw_partial[z, k, col] (K x C/groups*R*S) and db_partial[z, k], col = c*sdw_c + (r*S+s)*sdw_t:
    KCRS order (sdw_c = R*S, sdw_t = 1) or, for a KRSC weight, KRSC (sdw_c = 1,
    sdw_t = C/groups: contiguous channel runs).
    Columns: a tile holds one tap (r, s) and BLOCK_N channels (1-D index math); FLAT_K tiles
    the flat (c, r, s) index instead, for few channels (see the forward kernel). The reduction
    lanes are output pixels, decomposed once (``_mixed_radix_lanes``) and advanced by carries (``_carry_lanes``).
    """
    pid = tl.program_id(0)
    group = tl.program_id(1)
    split = tl.program_id(2)
    RS = R * S
    c_per_group = C_PER_GROUP  # an argument: the JIT sees its divisibility by 16
    if FLAT_K:
        num_pid_n = tl.cdiv(GEMM_N, BLOCK_N)
    else:
        num_pid_n = RS * tl.cdiv(c_per_group, BLOCK_N)
    pid_m, pid_n = _grouped_tile(pid, tl.cdiv(GEMM_M, BLOCK_M), num_pid_n, GROUP_M)
    k_total = tl.num_programs(1) * GEMM_M

    # rows: output channels of this group
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < GEMM_M
    k_out = group * GEMM_M + offs_m
    g_row = k_out * sg_k
    # columns: filter entries (c, r, s), as per-column r and s (FLAT_K) or one tap per tile
    if FLAT_K:
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # flat (c, r, s)
        mask_n = offs_n < GEMM_N
        c = offs_n // RS
        r = (offs_n % RS) // S
        s = offs_n % S
        x_col = (group * c_per_group + c) * sx_c + r * sx_h + s * sx_w
        dw_col = c * sdw_c + (r * S + s) * sdw_t
        p_lo = 0
        p_hi = P
        q_lo = 0
        q_hi = Q
    else:
        c_blocks = tl.cdiv(c_per_group, BLOCK_N)
        r = pid_n // c_blocks // S
        s = pid_n // c_blocks % S
        c = (pid_n % c_blocks) * BLOCK_N + tl.arange(0, BLOCK_N)  # channel within the group
        mask_n = c < c_per_group
        x_col = (group * c_per_group + c) * sx_c
        dw_col = c * sdw_c + (r * S + s) * sdw_t
        # the output rows p (columns q) whose input row p*sh - ph + r lies inside the image
        p_lo = tl.maximum(pad_h - r + stride_h - 1, 0) // stride_h
        p_hi = tl.minimum(tl.maximum(H + pad_h - r + stride_h - 1, 0) // stride_h, P)
        q_lo = tl.maximum(pad_w - s + stride_w - 1, 0) // stride_w
        q_hi = tl.minimum(tl.maximum(W + pad_w - s + stride_w - 1, 0) // stride_w, Q)

    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if IMAGE_LANES:
        # reduction order (p, q, n): a K-step reduces BLOCK_K images at one output pixel, so its
        # lanes are images at fixed offsets (BATCH % BLOCK_K == 0) and the walk is scalar, as in
        # the forward kernel (_next_k_step: image blocks inner, then q, then p), over the pixels
        # whose input pixel (p*sh - ph + r, q*sw - pw + s) lies inside the image (all pixels for
        # FLAT_K, whose columns have taps of their own, masked per column). Split z takes the
        # K-steps [z, z + 1) * SPLIT_CHUNK / BLOCK_K of that walk.
        n_blocks = BATCH // BLOCK_K
        p_cnt = tl.maximum(p_hi - p_lo, 0)
        q_cnt = tl.maximum(q_hi - q_lo, 1)
        steps_per_split = SPLIT_CHUNK // BLOCK_K
        t0 = split * steps_per_split
        steps = tl.maximum(tl.minimum(steps_per_split, p_cnt * tl.maximum(q_hi - q_lo, 0) * n_blocks - t0), 0)
        pixel = t0 // n_blocks
        p = p_lo + pixel // q_cnt
        q = q_lo + pixel % q_cnt
        q_first = q - q_lo
        images = (t0 % n_blocks) * BLOCK_K + offs_k
        a_ptrs = g_ptr + (g_row[:, None] + (images * (P * Q * sg_pix) + (p * Q + q) * sg_pix)[None, :])
        x_pixel = (p * stride_h - pad_h) * sx_h + (q * stride_w - pad_w) * sx_w
        if not FLAT_K:
            x_pixel += r * sx_h + s * sx_w
        b_ptrs = x_ptr + ((images * sx_n + x_pixel)[:, None] + x_col[None, :])
        rewind_n = (n_blocks - 1) * BLOCK_K
        a_step_q = sg_pix - rewind_n * (P * Q * sg_pix)
        a_step_p = (Q - q_cnt + 1) * sg_pix - rewind_n * (P * Q * sg_pix)
        b_step_q = stride_w * sx_w - rewind_n * sx_n
        b_step_p = stride_h * sx_h - (q_cnt - 1) * stride_w * sx_w - rewind_n * sx_n
        left = BATCH - (t0 % n_blocks) * BLOCK_K
        for _ in range(0, steps):
            a = tl.load(a_ptrs, mask=mask_m[:, None], other=0.0)
            if FLAT_K:  # the tap of each column: its input pixel, inside or not
                ih = p * stride_h - pad_h + r
                iw = q * stride_w - pad_w + s
                b_mask = (ih.to(tl.uint32) < H) & (iw.to(tl.uint32) < W) & mask_n
                b = tl.load(b_ptrs, mask=b_mask[None, :], other=0.0)
            else:
                b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
            acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
            left, q_first, _, _, next_q, next_p = _next_k_step(left, q_first, 0, 0, BATCH, q_cnt, 0, BLOCK_K)
            if FLAT_K:
                q = q_lo + q_first
                p = tl.where(next_p, p + 1, p)
            a_ptrs += tl.where(next_p, a_step_p, tl.where(next_q, a_step_q, BLOCK_K * (P * Q * sg_pix)))
            b_ptrs += tl.where(next_p, b_step_p, tl.where(next_q, b_step_q, BLOCK_K * sx_n))
    else:
        # reduction order (n, p, q) for any batch: lanes are output pixels, decomposed once
        # (_mixed_radix_lanes) and advanced BLOCK_K pixels per K-step by carries; the input pixel of a
        # lane is tracked as its index (img*H + ih)*W + iw (x's pixels are equally spaced: the
        # launcher makes them so), relative to the rows/columns inside for this tap, so an
        # unsigned compare tests both ends
        k_start = split * SPLIT_CHUNK
        k_end = tl.minimum(k_start + SPLIT_CHUNK, GEMM_K)
        img, p, q, dq, dp, dimg = _mixed_radix_lanes(k_start, P, Q, BLOCK_K)
        lane_p = p - p_lo
        lane_q = q - q_lo
        x_pix = (img * H + p * stride_h - pad_h) * W + q * stride_w - pad_w
        if not FLAT_K:
            x_pix += r * W + s
        pix_step = dimg * H * W + dp * stride_h * W + dq * stride_w
        pix_wrap_q = stride_h * W - Q * stride_w
        pix_wrap_p = H * W - P * stride_h * W
        a_ptrs = g_ptr + (g_row[:, None] + ((k_start + offs_k) * sg_pix)[None, :])
        for k0 in range(k_start, k_end, BLOCK_K):
            in_range = offs_k < k_end - k0
            a = tl.load(a_ptrs, mask=mask_m[:, None] & in_range[None, :], other=0.0)
            if FLAT_K:  # per column tap: the input row/col of every (lane, column) pair
                ih = (lane_p * stride_h - pad_h)[:, None] + r[None, :]
                iw = (lane_q * stride_w - pad_w)[:, None] + s[None, :]
                b_mask = (ih.to(tl.uint32) < H) & (iw.to(tl.uint32) < W) & in_range[:, None] & mask_n[None, :]
            else:
                lane_ok = (lane_p.to(tl.uint32) < p_hi - p_lo) & (lane_q.to(tl.uint32) < q_hi - q_lo) & in_range
                b_mask = lane_ok[:, None] & mask_n[None, :]
            b = tl.load(x_ptr + ((x_pix * sx_pix)[:, None] + x_col[None, :]), mask=b_mask, other=0.0)
            acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
            lane_p, lane_q, wrap_q, wrap_p = _carry_lanes(lane_p, lane_q, dp, dq, P - p_lo, Q - q_lo, P, Q)
            x_pix += pix_step + tl.where(wrap_q, pix_wrap_q, 0) + tl.where(wrap_p, pix_wrap_p, 0)
            a_ptrs += BLOCK_K * sg_pix

    dw_offs = split * k_total * GEMM_N + (k_out * GEMM_N)[:, None] + dw_col[None, :]
    tl.store(dw_partial_ptr + dw_offs, acc, mask=mask_m[:, None] & mask_n[None, :])
    # the first column of tiles also sums the bias gradient, in a loop of its own: summing
    # the dot's operand inside the main loop would hold it in registers and stop the
    # pipelining of its loads (measured: 2 buffers instead of 3, wgmma waited at once)
    if pid_n == 0:
        k_start = split * SPLIT_CHUNK
        k_end = tl.minimum(k_start + SPLIT_CHUNK, GEMM_K)
        bias_acc = tl.zeros((BLOCK_M,), dtype=tl.float32)
        g_ptrs = g_ptr + (g_row[:, None] + ((k_start + offs_k) * sg_pix)[None, :])
        for k0 in range(k_start, k_end, BLOCK_K):
            a = tl.load(g_ptrs, mask=mask_m[:, None] & (offs_k < k_end - k0)[None, :], other=0.0)
            bias_acc += tl.sum(a.to(tl.float32), axis=1)
            g_ptrs += BLOCK_K * sg_pix
        tl.store(db_partial_ptr + split * k_total + k_out, bias_acc, mask=mask_m)


# =======================================================================================
# Launchers: validation, launch configs, output allocation
# =======================================================================================

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


def _check_int32_indexable(t: torch.Tensor, name: str) -> None:
    span = 1 + sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()) if size > 0)
    if span >= _INT32_LIMIT:
        raise ValueError(f"{OP}: {name} spans {span} elements; the kernels index with int32 "
                         f"(limit {_INT32_LIMIT - 1}); split the batch")


def _output_hw(H: int, W: int, R: int, S: int, stride: Sequence[int], padding: Sequence[int]) -> tuple[int, int]:
    return (H + 2 * padding[0] - R) // stride[0] + 1, (W + 2 * padding[1] - S) // stride[1] + 1


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
            raise ValueError(f"{OP}: wgrad needs an {name} with equally spaced pixels (channels-last), "
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
