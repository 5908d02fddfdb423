"""nn.Module wrappers of the Triton ops; each is built from the PyTorch module it replaces
(same parameters, same state_dict keys)."""

import importlib

_EXPORTS = {
    "Conv2dReLU": "alexnet_fast.kernels.nn.conv",
    "Conv2dReLULRN": "alexnet_fast.kernels.nn.conv",
    "LocalResponseNorm": "alexnet_fast.kernels.nn.pooling",
    "MaxPool2d": "alexnet_fast.kernels.nn.pooling",
    "LRNMaxPool2d": "alexnet_fast.kernels.nn.pooling",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'alexnet_fast.kernels.nn' has no attribute {name!r}")
