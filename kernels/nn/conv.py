"""``Conv2dReLU``: an ``nn.Conv2d`` whose forward is the fused Triton conv + bias + ReLU;
``Conv2dReLULRN``: the same with LRN in the epilogue.

Input (N, C, H, W), NCHW or channels_last, fp32 / fp16 / bf16 (the weight's dtype); the
output keeps the input's memory format. Parameters, state_dict keys and the init are those
of ``nn.Conv2d``, so checkpoints move freely between the two.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from alexnet_fast.kernels._common import conv_problem
from alexnet_fast.kernels.conv2d_relu import conv2d_relu
from alexnet_fast.kernels.conv2d_relu_lrn import conv2d_relu_lrn


def _check_supported(padding: Any, dilation: Any, padding_mode: str) -> None:
    """ValueError for what the Triton kernels do not implement (the one rule: conv_problem)."""
    problem = conv_problem(padding, dilation, padding_mode)
    if problem:
        raise ValueError(f"Conv2dReLU: {problem}")


class Conv2dReLU(nn.Conv2d):
    """``relu(conv2d(x))`` (or plain conv + bias with ``relu=False``) in one Triton kernel.

    Same constructor as ``nn.Conv2d`` plus ``relu``; dilation must be 1, padding ints (not
    'same'/'valid'), padding_mode 'zeros'. Build one from an existing conv with
    :meth:`from_conv`, which shares its Parameter objects.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 relu: bool = True, device=None, dtype=None) -> None:
        _check_supported(padding, dilation, padding_mode)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                         device=device, dtype=dtype)
        self.relu = bool(relu)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, relu: bool = True) -> "Conv2dReLU":
        """A Conv2dReLU holding ``conv``'s own weight and bias Parameters (no copy: the
        state_dict is identical and optimizers keep working), in ``conv``'s train/eval mode."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"Conv2dReLU.from_conv expects an nn.Conv2d, got {type(conv).__name__}")
        module = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                     padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                     bias=conv.bias is not None, padding_mode=conv.padding_mode, relu=relu,
                     device="meta", dtype=conv.weight.dtype)
        module.weight = conv.weight
        if conv.bias is not None:
            module.bias = conv.bias
        module.train(conv.training)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_relu(x, self.weight, self.bias, self.stride, self.padding, self.groups, relu=self.relu)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", relu={self.relu}"


class Conv2dReLULRN(Conv2dReLU):
    """``local_response_norm(relu(conv2d(x)))`` with LRN in the conv kernel's epilogue
    (:func:`kernels.conv2d_relu_lrn`; the op itself falls back to conv + ReLU then LRN where one
    program cannot hold the layer's channels). Built by :meth:`from_modules` from the conv (its
    Parameters, shared) and the ``nn.LocalResponseNorm`` (size, alpha, beta, k; no parameters),
    so the state_dict is the conv's."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", size: int = 5,
                 alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, relu: bool = True, device=None,
                 dtype=None) -> None:
        if relu is not True:
            raise ValueError("Conv2dReLULRN: the ReLU is part of the op (relu must be True)")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, padding_mode=padding_mode, relu=True, device=device, dtype=dtype)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    @classmethod
    def from_modules(cls, conv: nn.Conv2d, lrn: nn.LocalResponseNorm) -> "Conv2dReLULRN":
        if not isinstance(lrn, nn.LocalResponseNorm):
            raise TypeError(f"Conv2dReLULRN.from_modules expects an nn.LocalResponseNorm, got {type(lrn).__name__}")
        module = cls.from_conv(conv)
        module.size, module.alpha, module.beta, module.k = lrn.size, lrn.alpha, lrn.beta, lrn.k
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_relu_lrn(x, self.weight, self.bias, self.stride, self.padding, self.groups,
                               self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", lrn(size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k})"
