"""Triton kernels for AlexNet: fused conv + ReLU, LRN, overlapping max-pool, LRN + pool.

Each op lives in one file with its kernels, launchers and autograd; ``kernels.nn`` has the
nn.Module wrappers. Tensors must be CUDA tensors, or CPU tensors under TRITON_INTERPRET=1.
Attributes load lazily, so ``import kernels`` does not import triton.
"""

import importlib

# public name -> module that defines it
_EXPORTS = {
    "conv2d_relu": "kernels.conv2d_relu",
    "local_response_norm": "kernels.lrn",
    "max_pool2d": "kernels.max_pool2d",
    "lrn_max_pool2d": "kernels.lrn_max_pool2d",
}

__all__ = list(_EXPORTS) + ["nn"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "nn":
        return importlib.import_module("kernels.nn")
    raise AttributeError(f"module 'kernels' has no attribute {name!r}")
