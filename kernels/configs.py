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
