"""nn.Module wrappers of the Triton LRN, max-pool and fused LRN + max-pool ops.

Each is built from the PyTorch module(s) it replaces (``from_module`` / ``from_modules``);
none has parameters or buffers, so swapping them into a model leaves its state_dict alone.
Inputs: (N, C, H, W), NCHW or channels_last, fp32/fp16/bf16, on CUDA (or CPU under
TRITON_INTERPRET=1).
"""

from __future__ import annotations

from torch import Tensor, nn

from alexnet_fast.kernels.lrn import local_response_norm
from alexnet_fast.kernels.lrn_max_pool import lrn_max_pool2d
from alexnet_fast.kernels.max_pool import max_pool2d

__all__ = ["LocalResponseNorm", "MaxPool2d", "LRNMaxPool2d"]


def _check_pool_options(dilation, return_indices: bool, ceil_mode: bool, *, what: str) -> None:
    """The Triton max-pool supports dilation 1, ceil_mode False and no returned indices."""
    if dilation not in (1, (1, 1), [1, 1]):
        raise ValueError(f"{what}: the Triton max-pool supports dilation=1 only, got dilation={dilation!r}")
    if ceil_mode:
        raise ValueError(f"{what}: the Triton max-pool supports ceil_mode=False only")
    if return_indices:
        raise ValueError(f"{what}: the Triton max-pool does not return indices (its argmax is an int8 "
                         f"window offset kept for its own backward); use nn.MaxPool2d")


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` computed by :func:`kernels.local_response_norm` (4-D input)."""

    @classmethod
    def from_module(cls, module: nn.LocalResponseNorm) -> "LocalResponseNorm":
        if not isinstance(module, nn.LocalResponseNorm):
            raise TypeError(f"LocalResponseNorm.from_module expects nn.LocalResponseNorm, got {type(module).__name__}")
        return cls(module.size, alpha=module.alpha, beta=module.beta, k=module.k)

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` computed by :func:`kernels.max_pool2d`; refuses dilation != 1,
    ceil_mode=True and return_indices=True with a ValueError."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        _check_pool_options(dilation, return_indices, ceil_mode, what="MaxPool2d")
        super().__init__(kernel_size, stride=stride, padding=padding, dilation=dilation,
                         return_indices=return_indices, ceil_mode=ceil_mode)

    @classmethod
    def from_module(cls, module: nn.MaxPool2d) -> "MaxPool2d":
        if not isinstance(module, nn.MaxPool2d):
            raise TypeError(f"MaxPool2d.from_module expects nn.MaxPool2d, got {type(module).__name__}")
        return cls(module.kernel_size, stride=module.stride, padding=module.padding, dilation=module.dilation,
                   return_indices=module.return_indices, ceil_mode=module.ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class LRNMaxPool2d(nn.Module):
    """LRN followed by max-pool, fused (:func:`kernels.lrn_max_pool2d`). No parameters."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
                 kernel_size=3, stride=None, padding=0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    @classmethod
    def from_modules(cls, lrn: nn.LocalResponseNorm, pool: nn.MaxPool2d) -> "LRNMaxPool2d":
        if not isinstance(lrn, nn.LocalResponseNorm):
            raise TypeError(f"LRNMaxPool2d.from_modules expects nn.LocalResponseNorm first, got {type(lrn).__name__}")
        if not isinstance(pool, nn.MaxPool2d):
            raise TypeError(f"LRNMaxPool2d.from_modules expects nn.MaxPool2d second, got {type(pool).__name__}")
        _check_pool_options(pool.dilation, pool.return_indices, pool.ceil_mode, what="LRNMaxPool2d")
        return cls(lrn.size, lrn.alpha, lrn.beta, lrn.k, pool.kernel_size, pool.stride, pool.padding)

    def forward(self, x: Tensor) -> Tensor:
        return lrn_max_pool2d(x, self.size, self.alpha, self.beta, self.k, self.kernel_size, self.stride,
                              self.padding)

    def extra_repr(self) -> str:
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")
