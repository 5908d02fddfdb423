"""Launch configurations of every Triton kernel, kept as data in one place.

Each op reads its own table here; the code-generation check (profiling/codegen.py)
compiles every entry for sm_80 and sm_90. ``INTERPRETER`` entries are the single config
used under TRITON_INTERPRET=1 (big blocks interpret fastest; autotuning needs a GPU).
"""

# ---------------------------------------------------------------------------------------
# conv2d_relu (kernels/conv2d_relu.py)
# ---------------------------------------------------------------------------------------

# Implicit-GEMM tiles of the three conv kernels. Each entry is one GPU autotune candidate
# (autotune key: the GEMM sizes M, N, K, the dot precision, and the dtype). GEMM views:
#   fwd   M = N*P*Q output pixels,      N = K/groups out channels, K = C/groups*R*S
#   dgrad M = N*H*W input pixels (per stride phase), N = C/groups, K = K/groups*R*S (per phase)
#   wgrad M = K/groups out channels,    N = C/groups*R*S,          K = N*P*Q (split-K)
# Every entry must compile for sm_80 and sm_90 with no spills and fit shared memory in fp32
# (TF32: 4-byte operands), the worst case: (BLOCK_M + BLOCK_N) * BLOCK_K * 4 * num_stages
# <= 164 KB. The code-generation check (profiling/codegen.py) proves it.
CONV2D_RELU_GPU_CONFIGS: dict[str, list[dict[str, int]]] = {
    "fwd": [
        dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    ],
    "dgrad": [
        dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=128, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    ],
    "wgrad": [
        dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
        dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
        dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
    ],
}

# The one config used under TRITON_INTERPRET=1 for all three kernels: huge tiles, because
# the interpreter pays ~0.2 ms of Python per op per program, little per element (measured,
# CPU time, paper AlexNet conv1-5 fwd+dgrad+wgrad at batch 1, fp32: 128x128x64 ~45 s,
# 256x128x128 20 s, 512x128x256 14.5 s; conv1's dgrad is most of it). Not a GPU config.
CONV2D_RELU_INTERPRETER_CONFIG: dict[str, int] = dict(
    BLOCK_M=512, BLOCK_N=128, BLOCK_K=256, GROUP_M=8, num_warps=4, num_stages=1)

# wgrad splits its N*P*Q reduction over programs when the output tiles alone would leave
# the GPU idle: aim for this many programs per SM, each split covering at least
# CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK reduction elements (partials are summed in fp32).
CONV2D_RELU_WGRAD_PROGRAMS_PER_SM = 2
CONV2D_RELU_WGRAD_MIN_SPLIT_CHUNK = 1024


# ---------------------------------------------------------------------------------------
# lrn, max_pool2d, lrn_max_pool2d (kernels/lrn.py, kernels/max_pool2d.py,
# kernels/lrn_max_pool2d.py)
# ---------------------------------------------------------------------------------------
