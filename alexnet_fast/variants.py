"""Model variants: one way to turn an AlexNet into the variant the study measures.

``build_variant(model, name)`` returns a copy of ``model`` as:

* ``eager``: the model as it is.
* ``compile``: ``model.compile(mode=compile_mode)`` (torch.compile in place, so the
  state_dict keys stay those of the eager model).
* ``triton``: the Triton kernels swapped in by :func:`kernels.apply` (matched on the
  model's dataflow graph, so any nn.Module works, not only this project's AlexNet): every
  conv whose only consumer is a ReLU becomes a fused :class:`kernels.nn.Conv2dReLU`, every
  LRN whose only consumer is a max-pool the fused :class:`kernels.nn.LRNMaxPool2d`, and the
  remaining conv / LRN / max-pool layers their Triton twins.
* ``triton+compile``: the ``triton`` model under ``torch.compile`` (the Triton ops are
  custom ops, so the compiler traces around them without graph breaks).

Swapped modules keep their parameters, so every variant has the same state_dict keys and
values and any checkpoint loads into any variant.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

VARIANTS = ("eager", "compile", "triton", "triton+compile")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def build_variant(model: nn.Module, name: str, *, compile_mode: str = "default",
                  copy_model: bool = True, verbose: bool = False) -> nn.Module:
    """Return ``model`` (any nn.Module) as variant ``name`` (one of :data:`VARIANTS`).

    ``compile_mode`` is torch.compile's mode for the compiled variants. The input model is
    left untouched unless ``copy_model=False``. ``verbose=True`` prints what the triton
    variants replaced and what they left, and why (:func:`kernels.apply`).
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile_mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_variant expects an nn.Module, got {type(model).__name__}")
    if copy_model:
        model = copy.deepcopy(model)
    if name.startswith("triton"):
        import kernels

        model = kernels.apply(model, verbose=verbose)
    if name.endswith("compile"):
        # nn.Module.compile compiles in place: the module (and its state_dict keys) stay.
        model.compile(mode=None if compile_mode == "default" else compile_mode)
    return model
