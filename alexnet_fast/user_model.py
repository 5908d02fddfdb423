"""A user's model for ``alexnet-fast bench --model module:callable``.

``module:callable`` names a factory: ``module`` is imported (the current directory is on the
import path, as for ``python -m``), ``callable`` is an attribute of it (dotted names reach into
classes or objects) that is called with no arguments and returns either an ``nn.Module`` or
``(nn.Module, input_size)``, where ``input_size`` is ``S`` (a 3 x S x S input), ``(H, W)``
(3 channels) or ``(C, H, W)``. ``--input-size S`` overrides the height and width. Every
problem is a :class:`ModelSpecError` (a ValueError) that names it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["ModelSpecError", "UserModel", "load_model"]

_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


class ModelSpecError(ValueError):
    """A ``--model`` spec that cannot give a model: bad syntax, missing module or attribute,
    a factory that fails or does not return an nn.Module, a bad input size."""


@dataclass(frozen=True)
class UserModel:
    """A validated factory: ``build()`` returns a fresh model; ``input_shape`` is (C, H, W)."""

    spec: str
    factory: Callable[[], Any]
    input_shape: tuple[int, int, int]

    def build(self) -> nn.Module:
        model, _ = _call(self.spec, self.factory)
        return model

    def num_classes(self) -> int:
        """Run the model once (batch 1, eval, no grad) and return its number of logits;
        ModelSpecError if it fails or does not give (N, classes) logits."""
        model = self.build().eval()
        x = torch.randn(1, *self.input_shape)
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as e:
            raise ModelSpecError(f"--model {self.spec}: the model fails on a {tuple(x.shape)} input: "
                                 f"{type(e).__name__}: {e}") from e
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
            what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelSpecError(f"--model {self.spec}: the model returns {what} for a batch of 1; the bench "
                                 f"needs (N, classes) logits")
        return int(out.shape[1])


def _input_shape(spec: str, size: Any) -> tuple[int, int, int]:
    dims = (size,) * 2 if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else None
    if dims is not None and len(dims) == 2:
        dims = (3, *dims)
    if dims is None or len(dims) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                  for d in dims):
        raise ModelSpecError(f"--model {spec}: input size {size!r} is not S, (H, W) or (C, H, W) of positive ints")
    return dims


def _call(spec: str, factory: Callable[[], Any]) -> tuple[nn.Module, Any]:
    try:
        out = factory()
    except Exception as e:
        raise ModelSpecError(f"--model {spec}: calling the factory failed: {type(e).__name__}: {e}") from e
    size = None
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module):
        out, size = out
    if not isinstance(out, nn.Module):
        raise ModelSpecError(f"--model {spec}: the factory returned {type(out).__name__}, not an nn.Module "
                             f"(or an (nn.Module, input_size) pair)")
    return out, size


def load_model(spec: str, input_size: int | None = None) -> UserModel:
    """The factory named by ``spec`` (``module:callable``), called once to validate it."""
    if not isinstance(spec, str) or not (m := _SPEC.match(spec.strip())):
        raise ModelSpecError(f"--model {spec!r}: expected module:callable, e.g. alexnet_fast.examples:flat_alexnet")
    module_name, attr = m["module"], m["attr"]
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ModelSpecError(f"--model {spec}: no module named {e.name!r} (searched the current directory "
                                 f"and sys.path)") from e
        raise ModelSpecError(f"--model {spec}: importing {module_name} failed: {e}") from e
    except Exception as e:
        raise ModelSpecError(f"--model {spec}: importing {module_name} failed: {type(e).__name__}: {e}") from e
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ModelSpecError(f"--model {spec}: {module_name} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelSpecError(f"--model {spec}: {module_name}.{attr} is a {type(factory).__name__}, not callable")
    _, size = _call(spec, factory)
    if input_size is not None:
        channels = _input_shape(spec, size)[0] if size is not None else 3
        shape = _input_shape(spec, (channels, input_size, input_size))
    elif size is None:
        raise ModelSpecError(f"--model {spec}: no input size: return (model, input_size) from the factory or "
                             f"give --input-size")
    else:
        shape = _input_shape(spec, size)
    return UserModel(spec.strip(), factory, shape)
