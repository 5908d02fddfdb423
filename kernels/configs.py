"""Launch configurations of every Triton kernel, kept as data in one place.

Each op reads its own table here; the code-generation check (profiling/codegen.py)
compiles every entry for sm_80 and sm_90. ``INTERPRETER`` entries are the single config
used under TRITON_INTERPRET=1 (big blocks interpret fastest; autotuning needs a GPU).
"""

# ---------------------------------------------------------------------------------------
# conv2d_relu (kernels/conv2d_relu.py)
# ---------------------------------------------------------------------------------------

# Implicit-GEMM tiles of the three conv kernels, one GPU autotune candidate per entry
# (autotune key: the GEMM sizes M, N, K, the reduction order, the dot precision, the dtype).
# GEMM views:
#   fwd   M = N*P*Q output pixels,      N = K/groups out channels, K = C/groups*R*S
#   dgrad M = N*H*W input pixels (per stride phase), N = C/groups, K = K/groups*R*S (per phase)
#   wgrad M = K/groups out channels,    N = C/groups*R*S,          K = N*P*Q (split-K)
# Every entry must compile for sm_80 and sm_90 with no register spills and within shared
# memory (164 KB sm_80, 227 KB sm_90) even with unspecialized strides (every element
# gathered with its own address: the worst case, NCHW). Measured with triton 3.8
# (profiling/codegen.py-style compiles): 128x128 tiles and 4-warp 128x64 / 64x64x64 tiles
# spill 100-660 bytes there, so they are not candidates.

# Tensor-core dot: fp16, bf16, and fp32 as TF32 (torch.backends.cudnn.allow_tf32).
CONV2D_RELU_GPU_CONFIGS: dict[str, list[dict[str, int]]] = {
    "fwd": [
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    ],
    "dgrad": [
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    ],
    "wgrad": [
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    ],
}

# FMA dot: fp32 with TF32 disallowed ("ieee"). The FMA dot holds both operand tiles in
# registers, so the tensor-core tiles spill (4-440 bytes on sm_80); these do not.
_CONV2D_RELU_FMA_TILES = [
    dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, GROUP_M=8, num_warps=8, num_stages=2),
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
_LRN_MAX_POOL2D_NCHW = (
    {"BLOCK_P": 64, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
    # 8 warps: at 4 the backward spilled 4 bytes on sm_80 (fp16/bf16, 128 registers)
    {"BLOCK_P": 128, "BLOCK_C": 4, "num_warps": 8, "num_stages": 1},
    {"BLOCK_P": 64, "BLOCK_C": 8, "num_warps": 8, "num_stages": 1},
)
LRN_MAX_POOL2D_FWD_CONFIGS = {
    "nchw": _LRN_MAX_POOL2D_NCHW,
    "nhwc": (
        {"BLOCK_P": 16, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 8, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 32, "BLOCK_C": 16, "num_warps": 4, "num_stages": 1},
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
