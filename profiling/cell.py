"""What one measured cell runs, shared by the one-device engine (:mod:`profiling.engine`)
and the two-rank layouts (:mod:`profiling.layout_bench`): its inputs, the outputs it is
judged on, and the training step it times -- all under the precision policy of
:mod:`alexnet_fast.precision`.

* inference: logits of one forward pass (``eval()``, ``no_grad``, autocast).
* train, checked: the parameter gradients of one forward + backward of the mean
  cross-entropy in ``eval()`` mode (dropout, the only train/eval difference in AlexNet, off),
  loss-scaled by the one rule (:func:`alexnet_fast.precision.scaled_grads`).
* train, timed: ``train()`` mode, forward and loss under autocast, scaled backward, SGD with
  the paper's recipe (:data:`SGD`) through the GradScaler; TF32 flags held for the whole step.

And what a per-layer cell runs (one unit of :func:`profiling.flops.layer_units`, e.g.
``conv2+relu2``, as a model of its own: :class:`LayerBlock`), kernel-level: operands in the
compute dtype (the unit's modules and its input cast to it, no autocast, so the time is the
kernel's and not a weight cast's), the input the eager fp32 model's real activation:

* ``fwd``: the unit's output (``no_grad``);
* ``bwd``: the gradients a training step needs from the unit -- its input's (except for the
  unit that reads the image) and its parameters' -- of ``sum(out * g)`` for a fixed ``g``;
  the forward runs once, the timed step is the backward alone (``retain_graph``).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.model import AlexNet, AlexNetConfig, make_config
from alexnet_fast.precision import Precision, policy, scaled_grads
from alexnet_fast.profiling.flops import (add_rates, bytes_model_for, chain_units, layer_units, model_cost,
                                          needs_input_grad)
from alexnet_fast.profiling.judge import Reference

__all__ = ["SGD", "inputs", "inference_step", "eager_step", "checked_grads", "train_step", "param_grads", "reference",
           "LayerBlock", "unit_block", "unit_inputs", "layer_forward", "layer_backward", "layer_reference",
           "AlexNetSource", "frames_compiled", "compile_cache"]

SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}  # the paper's recipe


def inputs(config: AlexNetConfig, batch_size: int, seed: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell's images, N(0, 1), and random targets: the same for every variant, layout and
    rank (drawn on CPU from ``seed + batch_size``)."""
    gen = torch.Generator().manual_seed(seed + batch_size)
    size = config.input_size
    x = torch.randn(batch_size, config.in_channels, size, size, generator=gen)
    target = torch.randint(0, config.num_classes, (batch_size,), generator=gen)
    return x.to(device), target.to(device)


def param_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter gradients by the eager model's names (torch.compile's ``_orig_mod.`` dropped)."""
    return {n.replace("_orig_mod.", ""): p.grad.detach().clone()
            for n, p in model.named_parameters() if p.grad is not None}


def inference_step(model: nn.Module, x: torch.Tensor, precision: Precision) -> Callable[[], torch.Tensor]:
    """One forward without grad under the policy (call inside ``precision.flags()``)."""
    def step() -> torch.Tensor:
        with torch.no_grad(), precision.autocast(x.device):
            return model(x)

    return step


def checked_grads(model: nn.Module, x: torch.Tensor, target: torch.Tensor, precision: Precision,
                  grads: Callable[[nn.Module], dict[str, torch.Tensor]] = param_grads) -> tuple[dict[str, torch.Tensor], float]:
    """Unscaled gradients of the mean cross-entropy in eval mode, and the loss scale used.
    ``grads`` collects them by the single model's names (a layout gathers its shards)."""
    model.eval()

    def backward(scale: float) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with precision.autocast(x.device):
            loss = F.cross_entropy(model(x).float(), target)
        (loss * scale).backward()
        return grads(model)

    with precision.flags():
        result = scaled_grads(backward, precision)
    model.zero_grad(set_to_none=True)
    return result


def train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, precision: Precision,
               init_scale: float | None = None) -> Callable[[], None]:
    """A timed training step (module docstring): puts ``model`` in train mode and returns the
    step. ``init_scale``: the GradScaler's start (the scale the check settled on)."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    scaler = precision.grad_scaler(x.device, init_scale)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision.flags():
            with precision.autocast(x.device):
                loss = F.cross_entropy(model(x).float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return step


def eager_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, pass_: str, precision: Precision,
               init_scale: float | None = None) -> Callable[[], object]:
    """The step of the eager model a variant's speedup is measured against (in the same
    paired rounds): the inference or the training step of ``model``, as the variant's."""
    if pass_ == "inference":
        return inference_step(model.eval(), x, precision)
    return train_step(model, x, target, precision, init_scale=init_scale)


def reference(model: nn.Module, x: torch.Tensor, target: torch.Tensor, pass_: str,
              precision: str | Precision = "fp32") -> Reference:
    """The eager references of a cell (:class:`profiling.judge.Reference`) from ``model``
    (left untouched): fp32 and fp64 with TF32 off, and eager in ``precision`` under the
    policy; the logits of an eval-mode forward (``inference``) or the parameter gradients of
    the mean cross-entropy (``train``, eval mode, loss scaled by the rule)."""
    def run(prec: Precision, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        eager = copy.deepcopy(model).to(dtype).eval()
        xd = x.to(dtype)
        with prec.flags():
            if pass_ == "inference":
                return {"logits": inference_step(eager, xd, prec)()}
        return checked_grads(eager, xd, target, prec)[0]

    fp32 = policy("fp32")
    prec = policy(precision) if isinstance(precision, str) else precision
    same = None if prec == fp32 else run(prec, torch.float32)
    return Reference(run(fp32, torch.float32), run(fp32, torch.float64), same)


# ---------------------------------------------------------------------- per-layer cells
class LayerBlock(nn.Module):
    """One per-layer unit as a model of its own: ``.features`` holds copies of the unit's
    modules under their role names, so ``build_variant`` swaps them like in AlexNet."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.features = nn.Sequential(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def unit_block(model: nn.Module, unit) -> LayerBlock:
    """Copies of ``unit``'s modules of ``model`` (this project's AlexNet) as a LayerBlock."""
    from collections import OrderedDict

    parent = model if unit.container == "" else getattr(model, unit.container)
    return LayerBlock(OrderedDict((m, copy.deepcopy(getattr(parent, m))) for m in unit.modules))


def unit_inputs(model: nn.Module, units, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The eager fp32 model's activation entering each unit (forward pre-hooks, one pass)."""
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for unit in units:
        parent = model if unit.container == "" else getattr(model, unit.container)
        module = getattr(parent, unit.modules[0])

        def hook(_m, args, name=unit.name):
            acts.setdefault(name, args[0].detach().clone())

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with policy("fp32").flags():
            inference_step(model.eval(), x, policy("fp32"))()
    finally:
        for h in handles:
            h.remove()
    return acts


def _grads(out: torch.Tensor, x: torch.Tensor, module: nn.Module, g: torch.Tensor, *,
           retain_graph: bool) -> dict[str, torch.Tensor]:
    params = [(n.replace("_orig_mod.", ""), q) for n, q in module.named_parameters() if q.requires_grad]
    leaves = ([("x", x)] if x.requires_grad else []) + params
    grads = torch.autograd.grad(out, [t for _, t in leaves], g, retain_graph=retain_graph)
    return {name: gr for (name, _), gr in zip(leaves, grads)}


def layer_forward(block: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The ``fwd`` step of a per-layer cell: the unit's output without grad."""
    def step() -> torch.Tensor:
        with torch.no_grad():
            return block(x)

    return step


def layer_backward(block: nn.Module, x: torch.Tensor, g: torch.Tensor, *,
                   input_grad: bool) -> Callable[[], dict[str, torch.Tensor]]:
    """The ``bwd`` step of a per-layer cell: runs the forward once (with grad) and returns the
    step that computes the gradients of ``sum(out * g)`` again at each call."""
    xg = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(input_grad)
    out = block(xg)

    def step() -> dict[str, torch.Tensor]:
        return _grads(out, xg, block, g, retain_graph=True)

    return step


def layer_reference(block: nn.Module, act: torch.Tensor, g: torch.Tensor, precision: str, *,
                    input_grad: bool) -> dict[str, Reference]:
    """The eager references of a per-layer cell, per pass (``fwd``: the output; ``bwd``: the
    gradients): fp32 and fp64 with TF32 off, and eager in ``precision`` (operands cast to its
    dtype, TF32 as the precision says) when eager can run it here -- PyTorch has no CPU
    half-precision LRN, and the judge then uses eager fp32's error with the precision's floor."""
    def run(dtype: torch.dtype, prec: Precision) -> tuple[dict, dict]:
        b = copy.deepcopy(block).to(dtype).eval()
        x = act.to(dtype)
        with prec.flags():
            with torch.no_grad():
                out = b(x)
            grads = layer_backward(b, x, g.to(dtype), input_grad=input_grad)()
        return {"out": out}, grads

    fp32 = policy("fp32")
    (f32, b32), (f64, b64) = run(torch.float32, fp32), run(torch.float64, fp32)
    same_f = same_b = None
    prec = policy(precision)
    if precision != "fp32":
        try:
            same_f, same_b = run(prec.dtype, prec)
        except (RuntimeError, NotImplementedError):  # e.g. "avg_pool3d_out_frame" not implemented for 'Half'
            same_f = same_b = None
    return {"fwd": Reference(f32, f64, same_f), "bwd": Reference(b32, b64, same_b)}


class AlexNetSource:
    """This project's AlexNet at one size for the engine's cells: the model (seeded), inputs,
    each unit's activation and references (computed once), and the FLOP/byte model."""

    def __init__(self, preset: str, width_mult: float, input_size: int | None, seed: int, device: torch.device):
        self.config = make_config(preset, width_mult=width_mult, input_size=input_size)
        self.seed, self.device = seed, device
        self._model: nn.Module | None = None
        self._inputs: dict[int, tuple] = {}
        self._acts: dict[int, dict] = {}
        self._refs: dict[tuple, tuple] = {}

    def model(self) -> nn.Module:
        if self._model is None:
            torch.manual_seed(self.seed)
            self._model = AlexNet(self.config).to(self.device)
        return self._model

    def inputs(self, batch: int):
        if batch not in self._inputs:
            self._inputs[batch] = inputs(self.config, batch, self.seed, self.device)
        return self._inputs[batch]

    def fields(self) -> dict:
        return {"preset": self.config.name, "width_mult": self.config.width_mult, "input_size": self.config.input_size}

    def unit(self, name: str):
        found = [u for u in layer_units(self.config) + chain_units(self.config) if u.name == name]
        if not found:
            raise ValueError(f"no unit {name!r} in {self.config.name} at width {self.config.width_mult}")
        return found[0]

    def activation(self, unit, batch: int) -> torch.Tensor:
        """The eager model's input to ``unit`` at ``batch`` (all units' computed once)."""
        if batch not in self._acts:
            x, _ = self.inputs(batch)
            units = layer_units(self.config) + chain_units(self.config)
            self._acts[batch] = unit_inputs(copy.deepcopy(self.model()), units, x)
        return self._acts[batch][unit.name]

    def layer_refs(self, unit, block, act: torch.Tensor, precision: str, batch: int):
        """(the references of :func:`layer_reference`, the output gradient) of ``unit``: once per
        (unit, precision, batch)."""
        key = (unit.name, precision, batch)
        if key not in self._refs:
            gen = torch.Generator().manual_seed(self.seed + 7)
            with torch.no_grad():
                out_shape = block(act[:1]).shape[1:]
            g = torch.randn((act.shape[0], *out_shape), generator=gen).to(self.device)
            self._refs[key] = (layer_reference(block, act, g, precision, input_grad=needs_input_grad(unit)), g)
        return self._refs[key]

    def add_rates(self, row: dict, variant: str, precision: str, batch: int, pass_: str) -> dict:
        cost = model_cost(self.config, batch, precision, pass_=pass_)
        name = bytes_model_for(variant)
        return add_rates(row, cost.flops, cost.bytes(name) if pass_ == "inference" else None, name, batch)


def frames_compiled() -> int:
    """torch.compile frames compiled so far in this process (dynamo's counter)."""
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])


def compile_cache(cold: bool):
    """An empty inductor cache for the cell (cold compiles), or the run's cache."""
    if not cold:
        return contextlib.nullcontext()
    from torch._inductor.utils import fresh_inductor_cache

    return fresh_inductor_cache()
