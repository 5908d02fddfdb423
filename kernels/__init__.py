"""Triton kernels for AlexNet: fused conv + ReLU, LRN, overlapping max-pool, LRN + pool.

Each op lives in one file with its kernels, launchers and autograd; ``kernels.nn`` has the
nn.Module wrappers. Tensors must be CUDA tensors, or CPU tensors under TRITON_INTERPRET=1
(which must be set before triton is imported, i.e. before importing this package).

The public functions share their names with the op files (``kernels.max_pool2d`` is the
function, ``kernels/max_pool2d.py`` its file): importing them here, eagerly, binds the
package attribute to the function after the import system has bound it to the module.
Reach a file's other contents with ``from kernels.max_pool2d import ...``.
"""

from kernels import _compat  # noqa: F401  (version shims for the oldest supported triton, applied on import)
from kernels.conv2d_relu import conv2d_relu
from kernels.lrn import local_response_norm
from kernels.lrn_max_pool2d import lrn_max_pool2d
from kernels.max_pool2d import max_pool2d

from kernels import nn  # noqa: E402  (the module wrappers)
from kernels.apply import apply  # noqa: E402  (swap the ops into any nn.Module)

__all__ = ["conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d", "nn", "apply"]
