"""Model variants: one way to turn an AlexNet into the variant the study measures.

``build_variant(model, name)`` returns a copy of ``model`` as:

* ``eager``: the model as it is.
* ``compile``: ``model.compile(mode=compile_mode)`` (torch.compile in place, so the
  state_dict keys stay those of the eager model).
* ``triton``: the Triton kernels swapped in by :func:`kernels.apply` (matched on the
  model's dataflow graph, so any nn.Module works, not only this project's AlexNet): every
  conv whose only consumer is a ReLU becomes a fused :class:`kernels.nn.Conv2dReLU` (with the
  LRN after it in its epilogue, :class:`kernels.nn.Conv2dReLULRN`, unless ``fuse_conv_lrn=False``:
  the paper's conv1, conv2), every
  LRN whose only consumer is a max-pool the fused :class:`kernels.nn.LRNMaxPool2d`, and the
  remaining conv / LRN / max-pool layers their Triton twins.
* ``triton+compile``: the ``triton`` model under ``torch.compile`` (the Triton ops are
  custom ops, so the compiler traces around them without graph breaks).

The two Triton variants run channels-last (NHWC), the layout their kernels are fast in: the
conv weights become KRSC (``torch.channels_last``, in place), the input is converted once
where it enters ``features`` (a forward pre-hook), and every Triton op keeps its input's
layout, so no layer converts between NCHW and NHWC (the flatten before fc6 reorders, as it
must). The same holds on CPU, where the kernels run interpreted: the tests check this path.
``eager`` and ``compile`` stay as PyTorch runs them (NCHW).

Swapped modules keep their parameters, so every variant has the same state_dict keys and
values and any checkpoint loads into any variant.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from alexnet_fast.vocabulary import COMPILE_MODES, VARIANTS  # noqa: F401 (re-exported: the names variants take)


def _input_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: a 4-D image input in channels-last (no copy if it already is)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last),) + tuple(args[1:])
    return args


def _run_channels_last(model: nn.Module) -> nn.Module:
    """Conv weights to KRSC in place; the model's image input converted once at its entry."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_input_channels_last)
    return model


def build_variant(model: nn.Module, name: str, *, compile_mode: str = "default",
                  copy_model: bool = True, verbose: bool = False, compile_backend: str = "inductor",
                  fuse_conv_lrn: bool = True) -> nn.Module:
    """Return ``model`` (any nn.Module) as variant ``name`` (one of :data:`VARIANTS`).

    ``compile_mode`` is torch.compile's mode for the compiled variants; ``compile_backend``
    its backend (``inductor``; the GPU suite's CPU smoke run uses ``aot_eager``: the same
    graph capture, guards, recompiles and AOT autograd, no code generation). The input model is
    left untouched unless ``copy_model=False``. ``verbose=True`` prints what the triton
    variants replaced and what they left, and why (:func:`kernels.apply`). ``fuse_conv_lrn``
    (triton variants): conv -> ReLU -> LRN as one op (True) or conv + ReLU, then LRN + pool.
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
        from alexnet_fast import kernels

        model, report = kernels.apply(model, verbose=verbose, return_report=True, fuse_conv_lrn=fuse_conv_lrn)
        if report.replaced:  # a model with nothing to replace stays as it is
            model = _run_channels_last(model)
    if name.endswith("compile"):
        # nn.Module.compile compiles in place: the module (and its state_dict keys) stay.
        if compile_backend == "inductor":
            model.compile(mode=None if compile_mode == "default" else compile_mode)
        else:
            model.compile(backend=compile_backend)
    return model
