"""Which layers a profile names, and how: the layer groups of a model and the
``record_function`` ranges that mark them in a trace.

* eager and triton variants: forward pre/post hooks on the role-named modules
  (:class:`LayerMarkers`) open and close a range per layer group (:func:`layer_groups`:
  ``conv1+relu1``, ``lrn1+pool1``, ... the bench's per-layer unit names) and one per module
  inside a group of several;
* compiled variants: hooks do not survive torch.compile (dynamo traces them: a graph break at
  every layer) and a ``record_function`` inside a compiled forward is dropped (inductor's
  ``_remove_profiler_ops``), so each group is compiled as its own piece and marked from an
  uncompiled wrapper (:func:`compile_per_layer`): no fusion across layers.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.autograd.profiler import record_function

from alexnet_fast.model import AlexNetConfig
from alexnet_fast.profiling.flops import layer_units

__all__ = ["LayerGroup", "LayerMarkers", "is_alexnet", "layer_groups", "compile_per_layer"]


@dataclass(frozen=True)
class LayerGroup:
    """One marked layer: ``members`` are children of the module at ``container`` ("" = the
    model itself), called in this order; ``name`` is what the trace shows."""

    name: str
    container: str
    members: tuple[str, ...]

    def modules(self, model: nn.Module) -> list[nn.Module]:
        parent = model.get_submodule(self.container) if self.container else model
        return [parent.get_submodule(m) for m in self.members]


def is_alexnet(model: nn.Module) -> bool:
    return (isinstance(getattr(model, "config", None), AlexNetConfig)
            and isinstance(getattr(model, "features", None), nn.Sequential)
            and isinstance(getattr(model, "classifier", None), nn.Sequential))


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The layers a profile marks, in forward order.

    This project's AlexNet (its role names, any variant): the bench's per-layer units
    (:func:`profiling.flops.layer_units`: ``conv1+relu1``, ``lrn1+pool1`` -- the fused pair, not
    the separate ``lrn1`` and ``pool1`` --, ``pool5``, ``fc6+relu6``, ..., ``fc8``; ``avgpool``
    for the torchvision preset) plus the dropouts (``drop6``, ``drop7``), so every variant's
    bars have the same segments. Any other model: each leaf module by its qualified name
    (``nn.Identity`` left out: what :func:`kernels.apply` leaves of an absorbed ReLU / pool).
    """
    if not is_alexnet(model):
        return [LayerGroup(name, name.rpartition(".")[0], (name.rpartition(".")[2],))
                for name, m in model.named_modules()
                if name and not list(m.children()) and not isinstance(m, nn.Identity)]
    fused = {m for u in layer_units(model.config) if u.fused_pair for m in u.modules}
    units = {(u.container, u.modules[0]): u for u in layer_units(model.config)
             if u.fused_pair or not set(u.modules) <= fused}
    order = [("features", n) for n in model.features._modules]
    order += [("", "avgpool")] if getattr(model, "avgpool", None) is not None else []
    order += [("classifier", n) for n in model.classifier._modules]
    groups, i = [], 0
    while i < len(order):
        container, name = order[i]
        unit = units.get((container, name))
        members = unit.modules if unit is not None else (name,)
        if [n for _, n in order[i:i + len(members)]] != list(members):
            raise ValueError(f"layer_groups: {container or 'model'}.{name} is not followed by {members[1:]}")
        groups.append(LayerGroup(unit.name if unit is not None else name, container, tuple(members)))
        i += len(members)
    return groups


class LayerMarkers:
    """Forward pre/post hooks opening and closing a ``record_function`` per layer group and
    per module inside a group of several (modules that are ``nn.Identity`` get none). For
    uncompiled models only (module docstring). ``names``: marker name -> "layer" | "module"."""

    def __init__(self, model: nn.Module, groups: Sequence[LayerGroup]):
        self.model, self.groups = model, list(groups)
        self.names: dict[str, str] = {}
        self._handles: list[Any] = []
        self._open: list[tuple[str, record_function]] = []

    def _enter(self, name: str):
        def hook(_module, _args):
            rf = record_function(name)
            rf.__enter__()
            self._open.append((name, rf))
        return hook

    def _exit(self, name: str):
        def hook(_module, _args, _out):
            if not self._open or self._open[-1][0] != name:
                raise RuntimeError(f"layer markers out of order: closing {name!r}, open "
                                   f"{[n for n, _ in self._open]}")
            self._open.pop()[1].__exit__(None, None, None)
        return hook

    def __enter__(self) -> "LayerMarkers":
        for group in self.groups:
            active = [(n, m) for n, m in zip(group.members, group.modules(self.model)) if not isinstance(m, nn.Identity)]
            if not active:
                continue
            self.names[group.name] = "layer"
            inner = len(active) > 1
            for k, (name, module) in enumerate(active):
                if k == 0:
                    self._handles.append(module.register_forward_pre_hook(self._enter(group.name)))
                if inner:
                    self.names.setdefault(name, "module")
                    self._handles.append(module.register_forward_pre_hook(self._enter(name)))
                    self._handles.append(module.register_forward_hook(self._exit(name)))
                if k == len(active) - 1:
                    self._handles.append(module.register_forward_hook(self._exit(group.name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        while self._open:  # a forward that raised between a pre- and a post-hook
            self._open.pop()[1].__exit__(None, None, None)


class _Marked(nn.Module):
    """An uncompiled wrapper naming a compiled piece in the trace."""

    def __init__(self, name: str, piece: nn.Module):
        super().__init__()
        self.marker, self.piece = name, piece

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with record_function(self.marker):
            return self.piece(x)


def compile_per_layer(model: nn.Module, groups: Sequence[LayerGroup], compile_mode: str) -> dict[str, str]:
    """Replace each group of this project's AlexNet by one compiled piece (the group's modules
    in an ``nn.Sequential``, compiled by ``build_variant``) inside a :class:`_Marked`
    wrapper; returns the marker names."""
    from alexnet_fast.variants import build_variant

    if not is_alexnet(model):
        raise ValueError("compile scope 'layers' needs this project's AlexNet (its layer roles); "
                         "profile a user's model with compile scope 'model'")
    by_container: dict[str, list[LayerGroup]] = {}
    for g in groups:
        by_container.setdefault(g.container, []).append(g)
    for container, gs in by_container.items():
        parent = model.get_submodule(container) if container else model
        pieces = OrderedDict()
        for g in gs:
            seq = nn.Sequential(OrderedDict((m, parent.get_submodule(m)) for m in g.members))
            pieces[g.name] = _Marked(g.name, build_variant(seq, "compile", compile_mode=compile_mode, copy_model=False))
        if container:  # features / classifier: a Sequential of the marked pieces
            setattr(model, container, nn.Sequential(pieces))
        else:  # avgpool, a direct child of the model
            for name, piece in pieces.items():
                setattr(model, name, piece)
    return {g.name: "layer" for g in groups}
