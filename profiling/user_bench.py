"""``alexnet-fast bench --model module:callable``: the harness on a user's model.

The same cells, equivalence checks (logits and every parameter gradient against eager fp32
and fp64), timings and result rows as for this project's AlexNet; what differs:

* the model comes from the factory (:func:`alexnet_fast.user_model.load_model`), at its own
  input size; the triton variants are what :func:`kernels.apply` makes of it (printed once);
* no reduced size: without a GPU the interpreted Triton rows check the model as it is, at the
  check batch size (``--check-batch-size``), so give a small model for that;
* no per-layer rows and one device (those use this project's AlexNet roles);
* FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (multiply-adds only; no byte
  model), rows carry ``preset = "model <spec>"``;
* timed rows carry the TF32 flags in force inside the timed step, ``tf32_matmul``
  (``torch.backends.cuda.matmul.allow_tf32``) and ``tf32_cudnn``
  (``torch.backends.cudnn.allow_tf32``), read while it runs: an external figure to compare
  with (KernelBench's fp32 is cuDNN TF32 on, matmul TF32 off) is matched by what ran, not by
  the precision's label.

:func:`profiling.plan.fit_plan_to_model` points the plan at the model; :func:`make_harness`
picks the harness class in ``profiling.bench.run``.
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.user_model import load_model
from profiling.engine import INTERPRETED_NOTE, Harness, add_rates

__all__ = ["make_harness", "UserModelHarness"]

RATE_COLUMNS = ("flops", "bytes", "bytes_model", "intensity", "images_per_s", "gflops_per_s", "gbytes_per_s")


def make_harness(plan, output_dir, *, progress=None) -> Harness:
    """:class:`UserModelHarness` when the plan names a user's model, else the harness."""
    if getattr(plan, "model", None):
        return UserModelHarness(plan, output_dir, progress=progress)
    return Harness(plan, output_dir, progress=progress)


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


class UserModelHarness(Harness):
    """:class:`profiling.engine.Harness` on the model of ``plan.model``."""

    def __init__(self, plan, output_dir, *, progress=None, build_variant=None):
        super().__init__(plan, output_dir, progress=progress, build_variant=build_variant)
        self.user = load_model(plan.model, input_size=plan.model_input_size)
        self._flop_cache: dict[str, int] = {}
        self._tf32_seen: dict[str, bool] = {}
        if any(v.uses_triton for v in plan.variants):
            import kernels

            _, report = kernels.apply(self.user.build(), return_report=True)
            print(f"bench --model {plan.model}: what the triton variants replace\n{report}", file=sys.stderr)

    def _base_model(self, reduced: bool = False) -> nn.Module:  # one size: no reduced model
        if "user_model" not in self._refs:
            torch.manual_seed(self.plan.seed)
            self._refs["user_model"] = self.user.build().to(self.device)
        return self._refs["user_model"]

    def _inputs(self, batch_size: int, reduced: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("inputs", batch_size)
        if key not in self._refs:
            if "num_classes" not in self._refs:
                self._refs["num_classes"] = self.user.num_classes()
            gen = torch.Generator().manual_seed(self.plan.seed + batch_size)
            x = torch.randn(batch_size, *self.user.input_shape, generator=gen)
            target = torch.randint(0, self._refs["num_classes"], (batch_size,), generator=gen)
            self._refs[key] = (x.to(self.device), target.to(self.device))
        return self._refs[key]

    def _build(self, model, variant):
        """The harness's variant of ``model``, with a forward pre-hook (outside any compiled
        graph) that notes the TF32 flags each call runs under."""
        built = super()._build(model, variant)
        built.register_forward_pre_hook(self._note_tf32)
        return built

    def _note_tf32(self, _module, _args) -> None:
        self._tf32_seen = {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                           "tf32_cudnn": torch.backends.cudnn.allow_tf32}

    def _time(self, fn):
        """The harness's timing of ``fn``, plus the TF32 flags of its last timed call."""
        self._tf32_seen = {}
        timing = super()._time(fn)
        return {**timing, **self._tf32_seen}

    def _row(self, **fields):
        row = super()._row(**fields)
        row.update(preset=f"model {self.user.spec}", width_mult=None, input_size=self.user.input_shape[1])
        if str(row.get("check_size", "")).startswith("w"):  # interpreted rows: the model's own size
            row["check_size"] = f"model size b{row.get('batch_size')}"
        return row

    def _model_row(self, layout, variant, precision, batch_size, pass_) -> dict:
        row = super()._model_row(layout, variant, precision, batch_size, pass_)
        if row.get("note") == INTERPRETED_NOTE:
            row["note"] = "Triton interpreter on CPU: equivalence at the model's own size; timing would mean nothing"
        for k in RATE_COLUMNS:  # the base row's rates are this project's AlexNet's: replace them
            row.pop(k, None)
        if pass_ not in self._flop_cache:
            x, target = self._inputs(1)
            self._flop_cache[pass_] = _flops(self._base_model(), x, target, pass_)
        add_rates(row, self._flop_cache[pass_] * batch_size, None, "flop_counter (MACs only)", batch_size)
        return row
