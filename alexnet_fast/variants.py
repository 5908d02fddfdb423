"""Model variants: one way to turn an AlexNet into the variant the study measures.

``build_variant(model, name)`` returns a copy of ``model`` as:

* ``eager``: the model as it is.
* ``compile``: ``model.compile(mode=compile_mode)`` (torch.compile in place, so the
  state_dict keys stay those of the eager model).
* ``triton``: the Triton kernels swapped in by module role -- every ``convI`` followed by
  ``reluI`` becomes a fused :class:`kernels.nn.Conv2dReLU` (the ReLU becomes Identity),
  every ``lrnI`` followed by ``poolI`` becomes the fused :class:`kernels.nn.LRNMaxPool2d`
  (the pool becomes Identity), and the remaining LRN / max-pool layers their Triton twins.
* ``triton+compile``: the ``triton`` model under ``torch.compile`` (the Triton ops are
  custom ops, so the compiler traces around them without graph breaks).

Swapped modules keep their parameters, so every variant has the same state_dict keys and
values and any checkpoint loads into any variant.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from alexnet_fast.vocabulary import COMPILE_MODES, VARIANTS  # noqa: F401 (re-exported: the names variants take)


def _swap_triton(model: nn.Module) -> nn.Module:
    from kernels.nn import Conv2dReLU, LocalResponseNorm, LRNMaxPool2d, MaxPool2d

    features = model.features
    names = list(features._modules)
    for i, name in enumerate(names):
        module = features._modules[name]
        nxt_name = names[i + 1] if i + 1 < len(names) else None
        nxt = features._modules[nxt_name] if nxt_name else None
        if isinstance(module, nn.Conv2d) and not isinstance(module, Conv2dReLU):
            fuse_relu = isinstance(nxt, nn.ReLU)
            features._modules[name] = Conv2dReLU.from_conv(module, relu=fuse_relu)
            if fuse_relu:
                features._modules[nxt_name] = nn.Identity()
        elif isinstance(module, nn.LocalResponseNorm) and not isinstance(module, (LocalResponseNorm, LRNMaxPool2d)):
            if isinstance(nxt, nn.MaxPool2d):
                features._modules[name] = LRNMaxPool2d.from_modules(module, nxt)
                features._modules[nxt_name] = nn.Identity()
            else:
                features._modules[name] = LocalResponseNorm.from_module(module)
        elif isinstance(module, nn.MaxPool2d) and not isinstance(module, MaxPool2d):
            features._modules[name] = MaxPool2d.from_module(module)
    return model


def build_variant(model: nn.Module, name: str, *, compile_mode: str = "default",
                  copy_model: bool = True) -> nn.Module:
    """Return ``model`` as variant ``name`` (one of :data:`VARIANTS`).

    ``compile_mode`` is torch.compile's mode for the compiled variants. The input model is
    left untouched unless ``copy_model=False``.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile_mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if not hasattr(model, "features"):
        raise ValueError("build_variant expects an alexnet_fast AlexNet (a model with .features)")
    if copy_model:
        model = copy.deepcopy(model)
    if name.startswith("triton"):
        model = _swap_triton(model)
    if name.endswith("compile"):
        # nn.Module.compile compiles in place: the module (and its state_dict keys) stay.
        model.compile(mode=None if compile_mode == "default" else compile_mode)
    return model
