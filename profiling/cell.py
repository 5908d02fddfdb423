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
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.model import AlexNetConfig
from alexnet_fast.precision import Precision, policy, scaled_grads
from profiling.judge import Reference

__all__ = ["SGD", "inputs", "inference_step", "checked_grads", "train_step", "param_grads", "reference"]

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


def reference(model: nn.Module, x: torch.Tensor, target: torch.Tensor, pass_: str,
              precision: str = "fp32") -> Reference:
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
    same = None if precision == "fp32" else run(policy(precision), torch.float32)
    return Reference(run(fp32, torch.float32), run(fp32, torch.float64), same)
