"""Launch configurations of every Triton kernel, kept as data in one place.

Each op reads its own table here; the code-generation check (profiling/codegen/)
compiles every entry for sm_80, sm_90 and sm_100. ``INTERPRETER`` entries are the single config
used under TRITON_INTERPRET=1 (big blocks interpret fastest; autotuning needs a GPU).
"""

# ---------------------------------------------------------------------------------------
# conv2d_relu (kernels/conv2d_relu.py)
# ---------------------------------------------------------------------------------------

# Implicit-GEMM tiles of the three conv kernels, one GPU autotune candidate per entry, per arch
# family and per dot (autotune key: the GEMM sizes M, N, K, the reduction order, the dot
# precision, the channel strides, the dtypes; one tuner per batch).
# GEMM views:
#   fwd   M = N*P*Q output pixels,      N = K/groups out channels, K = C/groups*R*S
#   dgrad M = N*H*W input pixels (per stride phase), N = C/groups, K = K/groups*R*S (per phase)
#   wgrad M = K/groups out channels,    N = C/groups*R*S,          K = N*P*Q (split-K)
# The channels-last launches (kernels.conv2d_relu.fast_path: unit channel strides, channel counts
# and strides multiples of 16 -- conv2-conv5 of both presets) use
# CONV2D_RELU_GPU_CONFIGS[arch][dot][kernel]: arch 100 on Blackwell (compute capability 10.x), 90 on
# Hopper (compute capability 9.x), 80 everywhere else (8.x, and any GPU without a table of its own; an entry
# above a GPU's shared memory per block, e.g. 99 KB on sm_86/sm_89, is skipped by the autotuner);
# dot "mma" for fp16/bf16, "tf32" for fp32 as TF32 (torch.backends.cudnn.allow_tf32): the same
# tiles with half the BLOCK_K, as many bytes per K-step. A short GPU run (the GPU suite's autotune
# limit) tries the first 2 entries of each table: those are the best guesses, chosen on the
# codegen check's figures at AlexNet's layers, batch 128 (alexnet-fast codegen, reports/codegen.md:
# registers, shared memory, the main loop's issue ceiling -- tensor cycles over issue cycles per
# K-step, >= 0.85 required on sm_90 for the first two -- and the waves of each launch on 132 / 108 SMs).
# Every entry compiles for its arch with no spill, within shared memory, with a main loop of at
# most 1.25x the instructions of Triton's tutorial GEMM at the same tile and at most 1.3x its
# registers (the gates of profiling/codegen/). BLOCK_K = 64 (32 for TF32) amortizes the loop's
# fixed cost: 128x64x32 w8 reaches an issue ceiling of only 0.80 even in the tutorial GEMM.
CONV2D_RELU_GPU_CONFIGS: dict[int, dict[str, dict[str, list[dict[str, int]]]]] = {
    90: {
        "mma": {
            "fwd": [
                # loop 88-95 instructions (0.81-0.87x the GEMM's 109), issue ceiling 2.7-2.9,
                # 108-110 registers and 99 KB smem: 2 CTAs/SM; paper conv3 507 CTAs, 1.92 waves
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
                # the 192-wide groups (paper conv4) without a padded half tile, twice the CTAs for
                # the 13x13 layers (conv3: 3.84 waves, last 84% full); 63-64 registers, 2 CTAs/SM
                # (99 KB), ceiling 1.33-1.41
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=4),
                # 256-wide layers (torchvision conv4, conv5): 148 KB, 181-189 registers, 1 CTA/SM,
                # ceiling 4.1-4.7
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "dgrad": [
                # loop 84 (0.77x the GEMM's), ceiling 3.05, 109 registers, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
                # N = C/groups is 48 at paper conv2, 64 at torchvision conv2: a 64-wide tile; 74-76
                # registers, 2 CTAs/SM, ceiling 1.62
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=4),
                # 256 / 384 channels (conv3-5): 184 registers, 1 CTA/SM, ceiling 5.4
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "wgrad": [
                # loop 85-94 (0.78-0.86x), ceiling 2.7-3.0, 108-118 registers, 2 CTAs/SM; split-K
                # fills one wave of 2 CTAs per SM (conv3: 4 splits, 216 CTAs)
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
                # 48 / 64 channels per tap (paper / torchvision conv2) and 64-row K/groups blocks:
                # 68-89 registers, 66 KB, 3 CTAs/SM, ceiling 1.41-1.56
                dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
                # 190-195 registers, 1 CTA/SM, ceiling 5.2
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
        },
        "tf32": {  # the 16-bit tiles at half the BLOCK_K; TF32 runs at half the tensor rate
            "fwd": [
                # 116 registers, 99 KB, 2 CTAs/SM, ceiling 2.7-2.9
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
                # 64 registers, ceiling 1.33-1.41
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "dgrad": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "wgrad": [
                # wgrad's TF32 operands are M- and N-major (transposed for the wgmma), so fewer
                # candidates pass: 174 registers, 1 CTA/SM, ceiling 1.90
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
                # 138 registers, 3 CTAs/SM, ceiling 0.96 (128x64x32 w8: 1.45x the GEMM's registers)
                dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
            ],
        },
    },
    # sm_100 (B200: tcgen05, the accumulator in tensor memory, 8,192 dense 16-bit FLOP per clock per
    # SM, twice sm_90's): measured with triton 3.8 at AlexNet's conv2-conv5, batch 128 (alexnet-fast
    # codegen --arch 100). sm_90's tables do not carry over: at twice the tensor rate their 8-warp
    # 64-wide tiles issue too slowly (128x64x64 w8 fwd/dgrad: issue ceiling 0.61-0.65, TF32
    # 128x64x32 w8 0.54-0.64) and the 4-warp 64x64 wgrad spills 4-8 B; with the accumulator out of
    # the registers, 4 warps hold a 128x128 tile (146-168 registers, 2 CTAs/SM) at twice the
    # 8-warp tile's issue ceiling. Every entry: no spill, at most 1.12x the reference GEMM's
    # registers, a loop of at most 1.07x its instructions, issue ceiling >= 0.93.
    100: {
        "mma": {
            "fwd": [
                # loop 144-155 (1.07x the GEMM's 145), ceiling 1.65-1.78, 168 registers, 99 KB: 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
                # 178 registers, 148 KB, 1 CTA/SM, ceiling 1.73-1.93; no 64-wide tile passes here
                # (128x64x64: w4 1.44x the GEMM's registers, w8 ceiling 0.61-0.64)
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
                # 117 registers (1.19x), ceiling 1.12-1.20, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "dgrad": [
                # 146 registers (0.97x), ceiling 2.15, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
                # the 48 / 64 channels of conv2: 92-94 registers, ceiling 1.16, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
                # 154-158 registers, 1 CTA/SM, ceiling 2.31
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "wgrad": [
                # 234 registers, as many as the reference GEMM writing fp32 (wgrad's split-K partials);
                # ceiling 2.12, 2 CTAs/SM (8-warp 128x128: 133 registers, 1 CTA/SM, ceiling 1.22)
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
                # conv2's 48 / 64 channels per tap: 134 registers (1.06x), 75 KB, 3 CTAs/SM, ceiling 1.12
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
                # 242 registers (1.03x), 1 CTA/SM, ceiling 2.23
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
            ],
        },
        "tf32": {  # the 16-bit tiles at half the BLOCK_K; TF32 runs at half the tensor rate
            "fwd": [
                # 200 registers (0.85x), ceiling 1.65-1.78, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
                # 145 registers (1.16x), ceiling 1.04-1.10, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "dgrad": [
                # 225 registers (0.96x), ceiling 1.53, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
                # 121 registers, ceiling 0.93, 2 CTAs/SM
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "wgrad": [
                # 238 registers (1.02x), ceiling 1.19, 2 CTAs/SM (8 warps: ceiling 0.83)
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
                # 244 registers (1.04x), 1 CTA/SM, ceiling 1.35 (64-wide TF32 tiles: ceiling 0.42-0.67)
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
        },
    },
    # sm_80 (mma.sync, tensor cores at half sm_90's rate per SM: every loop has an issue ceiling
    # of 1.6-3.2 here). BLOCK_K 32 and 3-4 stages as Triton's tutorial GEMM tunes for the A100;
    # 128x128x32 w8: 176-200 registers, 1 CTA/SM (paper conv3 fwd 507 CTAs on 108 SMs, 4.69
    # waves); 128x64x32 w4: 156-168 registers, 3 CTAs/SM; 4-warp 128x128 tiles need ~250.
    80: {
        "mma": {
            "fwd": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "dgrad": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
            ],
            "wgrad": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
            ],
        },
        "tf32": {
            "fwd": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
            ],
            "dgrad": [
                dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
            ],
            "wgrad": [
                # TF32 wgrad reads both operands transposed (M- and N-major in memory), so its loop
                # is heavier than the GEMM's: 128x128x32 w8 1.27x (over the gate); 128x128x16 w8 s4
                # 1.11x, but its reference GEMM spills 8 B on sm_80
                dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=3),
                dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=4),
            ],
        },
    },
}

# Tensor-core tiles for the gathered launches -- NCHW activations (channel stride != 1), the
# few-channel flat walk (conv1, C=3) or channel counts / strides that are not multiples of 16
# (kernels.conv2d_relu.fast_path) -- on every arch: there every operand element is a load of
# its own (nothing is copied asynchronously), so deep buffering buys nothing and the big
# channels-last tiles spill (measured, triton 3.8: 128x128x64 w8 fwd 196-236 B on sm_90,
# 128x256x64 4-5 KB, conv1's flat walk 228 B at 128x128x64); these spill nothing on sm_80 or sm_90.
_CONV2D_RELU_GATHER_TILES = [
    dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
    dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
    dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
]
CONV2D_RELU_GATHER_CONFIGS: dict[str, list[dict[str, int]]] = {
    "fwd": _CONV2D_RELU_GATHER_TILES,
    "dgrad": _CONV2D_RELU_GATHER_TILES,
    "wgrad": _CONV2D_RELU_GATHER_TILES[:2] + [
        dict(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4)],
}

# FMA dot: fp32 with TF32 disallowed ("ieee"). The FMA dot holds both operand tiles in
# registers, so the tensor-core tiles spill (4-440 bytes on sm_80); these do not.
# sm_100's ptxas holds the 8-warp tile's dgrad to 128 registers and spills 16 B (sm_80: 142, sm_90:
# 127, no spill); with a register budget of 160 on sm_100 only (maxnreg, as the fused LRN + pool
# tiles below) it spills nothing.
_CONV2D_RELU_FMA_TILES = [
    dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, GROUP_M=8, num_warps=8, num_stages=2, maxnreg={100: 160}),
    dict(BLOCK_M=64, BLOCK_N=32, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=2),
    dict(BLOCK_M=32, BLOCK_N=64, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=2),
]
CONV2D_RELU_GPU_CONFIGS_FMA: dict[str, list[dict[str, int]]] = {
    "fwd": _CONV2D_RELU_FMA_TILES,
    "dgrad": _CONV2D_RELU_FMA_TILES,
    "wgrad": _CONV2D_RELU_FMA_TILES,
}

# The one config used under TRITON_INTERPRET=1 for all three kernels: huge tiles, because
# the interpreter pays ~0.2 ms of Python per op per program, little per element (measured,
# CPU time, paper AlexNet conv1-5 fwd+dgrad+wgrad at batch 1, fp32: 128x128x64 ~45 s,
# 256x128x128 20 s, 512x128x256 14.5 s; conv1's dgrad is most of it). Not a GPU config.
CONV2D_RELU_INTERPRETER_CONFIG: dict[str, int] = dict(
    BLOCK_M=512, BLOCK_N=128, BLOCK_K=256, GROUP_M=8, num_warps=4, num_stages=1)

# fwd and wgrad reduce taps (r, s) outer x blocks of channels inner; with fewer than this
# many channels per group (conv1: 3) they walk the flat (c, r, s) index instead, since a
# channel block (BLOCK_K >= 16 for tensor cores) would be mostly padding.
CONV2D_RELU_FLAT_K_MAX_CHANNELS = 16

# wgrad splits its N*P*Q reduction over programs when the output tiles alone would leave
# the GPU idle: aim for this many programs per SM, each split covering at least
# CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK reduction elements (partials are summed in fp32).
CONV2D_RELU_WGRAD_PROGRAMS_PER_SM = 2
CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK = 1024


# conv2d_relu_lrn (kernels/conv2d_relu_lrn.py): the forward's tile holds every channel of the
# layer, because LRN's channel window runs in its epilogue: BLOCK_N is no tunable but the channels
# per group rounded up to a power of two (>= 16, set by the launcher), and a layer of two groups
# (paper conv2: 2 x 128) runs both groups' accumulators in one program (GROUPS = 2), a 256-channel
# tile. These tables give the rest, per dot and path ("fast": the channels-last rule of
# kernels._conv_launch.fast_path; "gather": the rest, conv1's flat walk included).
CONV2D_RELU_LRN_CONFIGS: dict[str, dict[str, list[dict[str, int]]]] = {
    # measured (launch-faithful codegen rows, triton 3.8, paper b128, bf16): conv2 (2 x 128) on sm_90
    # 241 registers, no spill, A and B in 3 buffers by LDGSTS, wgmma waited at depth 1, loop 0.91x
    # the tutorial GEMM's (sm_80: 179, 2 buffers, 1.02x) -- over the register gate (1.3x the 64x128
    # GEMM's 66: two groups' accumulators and the LRN epilogue); conv1 (flat walk) 178 / 207, no
    # spill. BLOCK_M 128 spills on both (conv1 316 B, conv2 472 B on sm_90): not listed.
    "mma": {
        "fast": [dict(BLOCK_M=64, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3)],
        "gather": [dict(BLOCK_M=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3)],
    },
    "tf32": {
        "fast": [dict(BLOCK_M=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3)],
        "gather": [dict(BLOCK_M=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=2)],
    },
    "fma": {"gather": [dict(BLOCK_M=32, BLOCK_K=16, GROUP_M=8, num_warps=8, num_stages=2)]},
}
# the widest tile the fused epilogue takes (all groups' channels), and the most groups per program
CONV2D_RELU_LRN_MAX_CHANNELS = 256
CONV2D_RELU_LRN_MAX_GROUPS = 2
# under TRITON_INTERPRET=1: big tiles, as CONV2D_RELU_INTERPRETER_CONFIG
CONV2D_RELU_LRN_INTERPRETER_CONFIG: dict[str, int] = dict(
    BLOCK_M=512, BLOCK_K=256, GROUP_M=8, num_warps=4, num_stages=1)

# ---------------------------------------------------------------------------------------
# lrn, max_pool2d, lrn_max_pool2d (kernels/lrn.py, kernels/max_pool2d.py,
# kernels/lrn_max_pool2d.py)
# ---------------------------------------------------------------------------------------
# A program handles one image's tile of BLOCK_P pixels x BLOCK_C channels (pixels of the
# output for the pools). NCHW is contiguous along pixels, NHWC along channels, so each
# layout has its own tiles; GPU runs autotune over the list (key: shape), the interpreter
# uses the single *_INTERPRETER tile (big: fewer interpreted programs). Forward and
# backward kernels of an op share a table, except the fused lrn_max_pool2d. These ops are memory-bound: tiles aim at wide
# coalesced loads with 2-4 elements a thread, because the LRN backward and the fused
# kernels hold ~100-150 registers at 8 (sm_80/sm_90 compile check) and need occupancy.

LRN_CONFIGS = {
    "nchw": (
        {"BLOCK_P": 128, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 256, "BLOCK_C": 4, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 64, "BLOCK_C": 8, "num_warps": 4, "num_stages": 1},
    ),
    "nhwc": (
        {"BLOCK_P": 32, "BLOCK_C": 32, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 16, "BLOCK_C": 64, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 16, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1},
    ),
}
LRN_INTERPRETER = {"BLOCK_P": 512, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1}

# Max-pool tiles index output pixels (forward) or input pixels (backward gather).
MAX_POOL2D_CONFIGS = {
    "nchw": (
        {"BLOCK_P": 128, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 64, "BLOCK_C": 8, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 256, "BLOCK_C": 4, "num_warps": 8, "num_stages": 1},
    ),
    "nhwc": (
        {"BLOCK_P": 16, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 8, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 16, "BLOCK_C": 64, "num_warps": 8, "num_stages": 1},
    ),
}
MAX_POOL2D_INTERPRETER = {"BLOCK_P": 1024, "BLOCK_C": 128, "num_warps": 4, "num_stages": 1}

# Fused LRN + max-pool: the forward computes LRN at every window position (KH*KW*(size+1)
# cached loads per output), the backward gathers pooled gradients for `size` channels.
# Unlike the other ops, forward and backward have their own tables: their register needs
# differ, and NHWC fp16/bf16 tiles must give a thread 4 channels (8-byte loads) at the real
# lrn1+pool1 / lrn2+pool2 launches (measured, triton 3.8, alexnet_fast codegen):
#   forward 4 channels a thread at 4 warps: 8 B loads, 113-116 registers (fp16/bf16), no spill;
#   backward 4 channels a thread at 4 warps spills 24 B on sm_80 (fp16, 96 registers), at 8
#   warps 98-105 registers and no spill; the old 2-channel tiles loaded 4 B, and the 8-warp
#   ones (16x32 w8, 8x64 w8) spilled 12 B on sm_90 / 16 B on sm_80.
# sm_100's ptxas (ptxas-blackwell 13.3, Triton's for sm_100) holds some of these kernels to 128
# registers (4 warps) or 64 (8 warps) and spills where sm_80 / sm_90's ptxas 12.9 takes what they
# need (fp32 forward at lrn1/lrn2: 128 registers + 8 B spilled, sm_90 148 and none; the NCHW 64x8
# backward: 64 + 4-16 B, sm_90 77). A register budget on sm_100 only (``maxnreg``: {arch:
# registers}, triton.Config(maxnreg=...)) lets it take 146 / 71 with no spill; given on sm_80 /
# sm_90 too, the same budget makes ptxas 12.9 take more registers than it needs (77 -> 72-84).
_SM100_REGISTER_BUDGET = {100: 160}
_LRN_MAX_POOL2D_NCHW = (
    {"BLOCK_P": 64, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
    # 8 warps: at 4 the backward spilled 4 bytes on sm_80 (fp16/bf16, 128 registers)
    {"BLOCK_P": 128, "BLOCK_C": 4, "num_warps": 8, "num_stages": 1},
    {"BLOCK_P": 64, "BLOCK_C": 8, "num_warps": 8, "num_stages": 1, "maxnreg": _SM100_REGISTER_BUDGET},
)
LRN_MAX_POOL2D_FWD_CONFIGS = {
    "nchw": _LRN_MAX_POOL2D_NCHW,
    "nhwc": (
        {"BLOCK_P": 16, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1, "maxnreg": _SM100_REGISTER_BUDGET},
        {"BLOCK_P": 8, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1, "maxnreg": _SM100_REGISTER_BUDGET},
        {"BLOCK_P": 32, "BLOCK_C": 16, "num_warps": 4, "num_stages": 1, "maxnreg": _SM100_REGISTER_BUDGET},
    ),
}
LRN_MAX_POOL2D_BWD_CONFIGS = {
    # not 128x4 w8: with the select-based max_pool_grad_at it spills 16 B on sm_90 in fp32 (64 registers)
    "nchw": (_LRN_MAX_POOL2D_NCHW[0], _LRN_MAX_POOL2D_NCHW[2]),
    "nhwc": (
        {"BLOCK_P": 32, "BLOCK_C": 32, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 16, "BLOCK_C": 64, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 8, "BLOCK_C": 128, "num_warps": 8, "num_stages": 1},
    ),
}
LRN_MAX_POOL2D_INTERPRETER = {"BLOCK_P": 512, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1}
