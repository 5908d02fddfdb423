"""Shared by test_lrn.py, test_max_pool.py and test_lrn_max_pool.py: layouts, inputs,
index conversions and the float64 PyTorch references of the LRN / pool ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import alexnet_fast.kernels._common as kernels_common
from alexnet_fast.kernels import configs

LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def in_layout(x: torch.Tensor, layout: str, requires_grad: bool = True) -> torch.Tensor:
    x = x.contiguous(memory_format=LAYOUTS[layout]).detach()
    return x.requires_grad_(requires_grad)


def assert_layout(t: torch.Tensor, layout: str) -> None:
    assert t.is_contiguous(memory_format=LAYOUTS[layout]), f"result not {layout}: strides {t.stride()}"


def windows_per_input(kernel: int, stride: int) -> int:
    """Most pooling windows that hold one input: the length of a pool-backward sum."""
    return (-(-kernel // stride)) ** 2  # ceil(kernel / stride) squared


def flat_to_window(flat: torch.Tensor, W: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """PyTorch's flat argmax (ih * W + iw) -> our window-local kh * kernel + kw."""
    OH, OW = flat.shape[-2:]
    oh = torch.arange(OH).view(OH, 1)
    ow = torch.arange(OW).view(1, OW)
    kh = flat // W - (oh * stride - padding)
    kw = flat % W - (ow * stride - padding)
    return kh * kernel + kw


def window_to_flat(local: torch.Tensor, W: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    OH, OW = local.shape[-2:]
    local = local.long()
    oh = torch.arange(OH).view(OH, 1)
    ow = torch.arange(OW).view(1, OW)
    return (oh * stride - padding + local // kernel) * W + (ow * stride - padding + local % kernel)


def use_interpreter_tile(monkeypatch, table: str, config: dict) -> None:
    """For this test, run the op whose interpreter tile is ``configs.<table>`` with
    ``config`` instead (e.g. a GPU tile, to check its masking and channel halos)."""
    monkeypatch.setattr(configs, table, dict(config))
    monkeypatch.setattr(kernels_common, "_TUNED", {})  # drop autotuners built with the old tile


def pool_reference(x: torch.Tensor, kernel: int, stride: int, padding: int, grad: torch.Tensor):
    """float64 PyTorch: (out, window-local argmax, dx) of F.max_pool2d."""
    x64 = x.detach().double().requires_grad_()
    out, flat = F.max_pool2d(x64, kernel, stride, padding, return_indices=True)
    out.backward(grad.double())
    return out.detach(), flat_to_window(flat, x.shape[-1], kernel, stride, padding), x64.grad


def lrn_reference(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, grad: torch.Tensor):
    """float64 PyTorch: (y, dx) of F.local_response_norm."""
    x64 = x.detach().double().requires_grad_()
    y = F.local_response_norm(x64, size, alpha, beta, k)
    y.backward(grad.double())
    return y.detach(), x64.grad
