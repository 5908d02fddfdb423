"""``alexnet-fast bench --model module:callable``: a user's model as the source of the
engine's whole-model cells (and the GPU suite's ``anchor`` cells: KernelBench's AlexNet).

The same cells, equivalence checks (logits and every parameter gradient against eager fp32
and fp64), timings and result rows as for this project's AlexNet (:mod:`profiling.engine`);
what differs is only where the model, its inputs and its FLOPs come from:

* the model comes from the factory (:func:`alexnet_fast.user_model.load_model`), at its own
  input size; the triton variants are what :func:`kernels.apply` makes of it (printed once);
* no reduced size: without a GPU the interpreted Triton rows check the model as it is, at the
  check batch size (``--check-batch-size``), so give a small model for that;
* no per-layer rows and one device (those use this project's AlexNet roles);
* FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (multiply-adds only; no byte
  model), rows carry ``preset = "model <spec>"``.

:func:`profiling.plan.fit_plan_to_model` points a bench plan at the model.
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.user_model import load_model
from alexnet_fast.profiling.flops import add_rates

__all__ = ["UserModelSource"]

INTERPRETED_NOTE = "Triton interpreter on CPU: equivalence at the model's own size; timing would mean nothing"


def _flops(model: nn.Module, x: torch.Tensor, target: torch.Tensor, pass_: str) -> int:
    """Multiply-add FLOPs (x2) of one inference forward or one forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).eval()
    with FlopCounterMode(display=False) as counter:
        if pass_ == "inference":
            with torch.no_grad():
                model(x)
        else:
            F.cross_entropy(model(x), target).backward()
    return int(counter.get_total_flops())


class UserModelSource:
    """A ``--model`` factory as the engine's model source: the model (built once, seeded),
    inputs of its own shape, FLOPs by FlopCounterMode."""

    interpreted_note = INTERPRETED_NOTE

    def __init__(self, spec: str, input_size: int | None, seed: int, device: torch.device):
        self.user = load_model(spec, input_size=input_size)
        self.seed, self.device = seed, device
        self._model: nn.Module | None = None
        self._inputs: dict[int, tuple] = {}
        self._flops: dict[str, int] = {}
        self._num_classes: int | None = None
        self._explained = False

    def explain(self) -> None:
        """Print once what the triton variants replace in the model (:func:`kernels.apply`)."""
        if self._explained:
            return
        from alexnet_fast import kernels

        _, report = kernels.apply(self.user.build(), return_report=True)
        print(f"bench --model {self.user.spec}: what the triton variants replace\n{report}", file=sys.stderr)
        self._explained = True

    def model(self) -> nn.Module:
        if self._model is None:
            torch.manual_seed(self.seed)
            self._model = self.user.build().to(self.device)
        return self._model

    def inputs(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if batch not in self._inputs:
            if self._num_classes is None:
                self._num_classes = self.user.num_classes()
            gen = torch.Generator().manual_seed(self.seed + batch)
            x = torch.randn(batch, *self.user.input_shape, generator=gen)
            target = torch.randint(0, self._num_classes, (batch,), generator=gen)
            self._inputs[batch] = (x.to(self.device), target.to(self.device))
        return self._inputs[batch]

    def fields(self) -> dict:
        return {"preset": f"model {self.user.spec}", "width_mult": None, "input_size": self.user.input_shape[1],
                "model": self.user.spec}

    def add_rates(self, row: dict, variant: str, precision: str, batch: int, pass_: str) -> dict:
        if pass_ not in self._flops:
            x, target = self.inputs(1)
            self._flops[pass_] = _flops(self.model(), x, target, pass_)
        return add_rates(row, self._flops[pass_] * batch, None, "flop_counter (MACs only)", batch)
