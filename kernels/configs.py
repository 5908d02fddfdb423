"""Launch configurations of every Triton kernel, kept as data in one place.

Each op reads its own table here; the code-generation check (profiling/codegen.py)
compiles every entry for sm_80 and sm_90. ``INTERPRETER`` entries are the single config
used under TRITON_INTERPRET=1 (big blocks interpret fastest; autotuning needs a GPU).
"""

# ---------------------------------------------------------------------------------------
# conv2d_relu (kernels/conv2d_relu.py)
# ---------------------------------------------------------------------------------------



# ---------------------------------------------------------------------------------------
# lrn, max_pool2d, lrn_max_pool2d (kernels/lrn.py, kernels/max_pool2d.py,
# kernels/lrn_max_pool2d.py)
# ---------------------------------------------------------------------------------------
# A program handles one image's tile of BLOCK_P pixels x BLOCK_C channels (pixels of the
# output for the pools). NCHW is contiguous along pixels, NHWC along channels, so each
# layout has its own tiles; GPU runs autotune over the list (key: shape), the interpreter
# uses the single *_INTERPRETER tile (big: fewer interpreted programs). Forward and
# backward kernels of an op share a table. These ops are memory-bound: tiles aim at wide
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
LRN_MAX_POOL2D_CONFIGS = {
    "nchw": (
        {"BLOCK_P": 64, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 128, "BLOCK_C": 4, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 64, "BLOCK_C": 8, "num_warps": 8, "num_stages": 1},
    ),
    "nhwc": (
        {"BLOCK_P": 8, "BLOCK_C": 32, "num_warps": 4, "num_stages": 1},
        {"BLOCK_P": 16, "BLOCK_C": 32, "num_warps": 8, "num_stages": 1},
        {"BLOCK_P": 8, "BLOCK_C": 64, "num_warps": 8, "num_stages": 1},
    ),
}
LRN_MAX_POOL2D_INTERPRETER = {"BLOCK_P": 512, "BLOCK_C": 64, "num_warps": 4, "num_stages": 1}
