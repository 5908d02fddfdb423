"""nn.Module wrappers of the Triton ops; each is built from the PyTorch module it replaces
(same parameters, same state_dict keys)."""

import importlib

_EXPORTS = {
    "Conv2dReLU": "kernels.nn.conv",
    "LocalResponseNorm": "kernels.nn.pooling",
    "MaxPool2d": "kernels.nn.pooling",
    "LRNMaxPool2d": "kernels.nn.pooling",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kernels.nn' has no attribute {name!r}")
