"""The implicit-GEMM Triton kernels of the convolution ops (forward, dgrad, wgrad) and their K-loop
helpers, shared by ``kernels/conv2d_relu.py`` and ``kernels/conv2d_relu_lrn.py``: the forward's
main loop is :func:`conv_fwd_tile`, each op's forward kernel adds its own epilogue. The launch side
is ``kernels/_conv_launch.py``; checks, custom ops, autograd and codegen specs are the op files'.

Kernels (one GEMM view each; the group is program axis 1):
* ``conv2d_relu_fwd_kernel``: M = N*P*Q output pixels, N = K/groups, reduction over
  C/groups*R*S gathered from x (im2col on the fly); epilogue: + bias, ReLU, cast, store.
* ``conv2d_relu_dgrad_kernel``: dx = g convolved with the flipped weight, g the output
  gradient with the ReLU mask applied. Program axis 2 is the stride phase ((h + pad) mod
  stride): inside one phase only the taps r = phase + stride*j meet an output row, so the
  reduction covers K/groups*ceil(R/s)*ceil(S/s) terms, not s^2 times as many (conv1: 16 phases).
* ``conv2d_relu_wgrad_kernel``: dw[k, (c, r, s)] = sum over N*P*Q of g times the gathered
  input; program axis 2 splits that long reduction (deterministic fp32 partials summed
  afterwards); the first column of tiles also sums the bias gradient, in a loop of its own.

The K loops, as lean as a GEMM's. No K loop divides by a runtime value: the address generation of CUTLASS's "optimized"
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
"""

import triton
import triton.language as tl


def codegen_specs() -> list:
    """None of its own: the ops' specs compile these kernels (the codegen check's coverage sees them)."""
    return []


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
def conv_fwd_tile(
    x_ptr, w_ptr, group,
    H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w,
    sx_n, sx_c, sx_h, sx_w,
    sw_k, sw_c, sw_r, sw_s,
    sy_n, sy_p, sy_q,
    GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
    FLAT_K: tl.constexpr, IMAGE_ROWS: tl.constexpr, EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """The forward main loop of this program's output tile of ``group`` (program axis 0: the tiles): the fp32
    accumulator sum_{c,r,s} x[n, c, p*sh-ph+r, q*sw-pw+s] * w[k, c, r, s] (BLOCK_M x BLOCK_N), the
    rows' offsets in y (strides sy_*, without the channel), the row mask, the output channels k of
    the columns and their mask. Each forward kernel adds its own epilogue.

    GEMM_M = N*P*Q, GEMM_N = K/groups, GEMM_K = C/groups*R*S.
    Reduction order: taps (r, s) outer, blocks of BLOCK_K channels inner (1-D index math,
    contiguous channel loads for channels_last); FLAT_K walks the flat (c, r, s) index
    instead, for few channels (conv1: C=3) where channel blocks would be mostly padding.
    """
    pid = tl.program_id(0)
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

    return acc, y_row, mask_m, k_out, mask_n


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
    """y[n, k, p, q] = relu(bias[k] + sum_{c,r,s} x[n, c, p*sh-ph+r, q*sw-pw+s] * w[k, c, r, s]):
    :func:`conv_fwd_tile`, then + bias, ReLU (``RELU``), cast and store.
    """
    acc, y_row, mask_m, k_out, mask_n = conv_fwd_tile(
        x_ptr, w_ptr, tl.program_id(1), H, W, P, Q, R, S, stride_h, stride_w, pad_h, pad_w,
        sx_n, sx_c, sx_h, sx_w, sw_k, sw_c, sw_r, sw_s, sy_n, sy_p, sy_q,
        GEMM_M, GEMM_N, GEMM_K, C_PER_GROUP, BATCH,
        FLAT_K, IMAGE_ROWS, EVEN_K, INPUT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
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
