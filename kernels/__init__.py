"""Triton kernels for AlexNet: fused conv + ReLU, LRN, overlapping max-pool, LRN + pool.

Each op lives in one file with its kernels, launchers and autograd (:func:`op_modules`);
``kernels.nn`` has the nn.Module wrappers and ``kernels.apply`` swaps them into any model.
Tensors must be CUDA tensors, or CPU tensors under TRITON_INTERPRET=1 (set before triton is
imported, i.e. before importing this package).

The public functions are attributes of the package: ``kernels.max_pool2d(x, 3, 2)``. An op
file is named by the op, not by its function (``kernels/max_pool.py`` holds ``max_pool2d``,
``kernels/lrn.py`` ``local_response_norm``), so no function shadows its module and
``import kernels.max_pool`` is the module, whatever was imported first. (``conv2d_relu.py`` and
``conv2d_relu_lrn.py`` still share their functions' names; it gets the same rule after the kernel work in flight.)
"""

import importlib
import pkgutil
from types import ModuleType

from alexnet_fast.kernels import _compat  # noqa: F401  (version shims for the oldest supported triton, applied on import)
from alexnet_fast.kernels.conv2d_relu import conv2d_relu
from alexnet_fast.kernels.conv2d_relu_lrn import conv2d_relu_lrn
from alexnet_fast.kernels.lrn import local_response_norm
from alexnet_fast.kernels.lrn_max_pool import lrn_max_pool2d
from alexnet_fast.kernels.max_pool import max_pool2d

from alexnet_fast.kernels import nn  # noqa: E402  (the module wrappers)
from alexnet_fast.kernels.apply import apply  # noqa: E402  (swap the ops into any nn.Module)

__all__ = ["conv2d_relu", "conv2d_relu_lrn", "local_response_norm", "max_pool2d", "lrn_max_pool2d", "nn", "apply", "op_modules"]


def op_modules() -> list[ModuleType]:
    """The op files: every module of this package that names its op (``OP``), in name order."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
               if not info.ispkg]
    return [m for m in modules if isinstance(getattr(m, "OP", None), str)]
