"""The bench engine: runs a :class:`profiling.plan.BenchPlan`, one cell after another, and
writes the tidy results table (:mod:`profiling.results`) after every cell.

For every cell the engine builds the variant with :func:`alexnet_fast.build_variant` (the
only way variants are built), checks it against eager with the same weights and input
(:mod:`profiling.judge`: the one equivalence rule), and only then times it
(:func:`profiling.timers.measure`: the one timer). Precision is the one policy of
:mod:`alexnet_fast.precision` (autocast over fp32 weights, fp16 loss-scaled, TF32 flags for
the whole step); what a cell runs is :mod:`profiling.cell`. A cell that fails its check is
recorded ``failed`` and not timed. The first call of every built variant is timed on its own
(``compile_s``: tracing, compiling and autotuning for the compiled variants), then the
steady state.

Two-rank layout cells run in :mod:`profiling.layout_bench` with the same cell, judge and
timer, so their rows carry the same columns.

Per-layer rows time each unit of :func:`profiling.flops.layer_units` (conv+ReLU, LRN, pool,
fused LRN+pool, FC) on the eager model's real activations (captured under the precision's
autocast, so a unit sees the dtype it sees in the model), forward only, each unit built as
its own small model by ``build_variant`` (so the triton variant swaps exactly the kernels
that unit uses).

Without a GPU, Triton runs in its interpreter: the triton variants are then checked at a
reduced size (``plan.check``) and their rows say ``interpreted`` with no time.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import sys
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from alexnet_fast.model import AlexNet, make_config
from alexnet_fast.precision import policy
from profiling import layout_bench
from profiling.cell import checked_grads, inference_step, inputs, reference, train_step
from profiling.flops import bytes_model_for, layer_units, model_cost, unit_cost
from profiling.judge import Reference, floor, judge, verdict_columns
from profiling.plan import TRITON_OPS, BenchPlan, VariantSpec
from profiling.results import environment, write_results
from profiling.roofline import device_peaks
from profiling.telemetry import Telemetry, merge_samples
from profiling.timers import fixed_threads, measure, time_first_call

__all__ = ["Harness", "add_rates", "one_line", "INTERPRETED_NOTE"]

INTERPRETED_NOTE = "Triton interpreter on CPU: equivalence at reduced size only; timing would mean nothing"
NO_BF16_NOTE = "Triton's interpreter has no bf16 arithmetic"


class LayerBlock(nn.Module):
    """One per-layer unit as a model of its own: ``.features`` holds copies of the unit's
    modules under their role names, so ``build_variant`` swaps them like in AlexNet."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.features = nn.Sequential(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _unit_block(model: AlexNet, unit) -> LayerBlock:
    parent = model if unit.container == "" else getattr(model, unit.container)
    return LayerBlock(OrderedDict((m, copy.deepcopy(getattr(parent, m))) for m in unit.modules))


def _unit_inputs(model: AlexNet, units, x: torch.Tensor, precision: str) -> dict[str, torch.Tensor]:
    """The eager model's activation entering each unit under the precision's autocast (pre-hooks)."""
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for unit in units:
        parent = model if unit.container == "" else getattr(model, unit.container)
        module = getattr(parent, unit.modules[0])

        def hook(_m, args, name=unit.name):
            acts.setdefault(name, args[0].detach().clone())

        handles.append(module.register_forward_pre_hook(hook))
    try:
        inference_step(model.eval(), x, policy(precision))()
    finally:
        for h in handles:
            h.remove()
    return acts


def _compile_cache(cold: bool):
    """An empty inductor cache for the block (cold compiles), or the user's cache."""
    if not cold:
        return contextlib.nullcontext()
    from torch._inductor.utils import fresh_inductor_cache

    return fresh_inductor_cache()


def add_rates(row: dict, flops: int, nbytes: int | None, bytes_model: str, batch_size: int) -> dict:
    """FLOPs, bytes, intensity and the achieved rates of a timed row."""
    row["flops"] = flops
    row["bytes_model"] = bytes_model
    if nbytes:
        row["bytes"] = nbytes
        row["intensity"] = flops / nbytes
    ms = row.get("median_ms")
    if ms:
        row["images_per_s"] = batch_size / (ms * 1e-3)
        row["gflops_per_s"] = flops / (ms * 1e-3) / 1e9
        if nbytes:
            row["gbytes_per_s"] = nbytes / (ms * 1e-3) / 1e9
    return row


def one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class Harness:
    """Runs a :class:`BenchPlan` and writes the tidy results table after every job."""

    def __init__(self, plan: BenchPlan, output_dir: str | os.PathLike, *, progress: bool | None = None,
                 build_variant: Callable[..., nn.Module] | None = None):
        self.plan = plan
        self.output_dir = Path(output_dir)
        self.progress = progress
        if build_variant is None:
            from alexnet_fast.variants import build_variant
        self.build_variant = build_variant
        self.device = torch.device(plan.device)
        self.rows: list[dict[str, Any]] = []
        self.run_id = time.strftime("%Y%m%dT%H%M%S")
        self._refs: dict[tuple, Any] = {}
        self.telemetry = Telemetry(self.device)
        self._env: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up
    def _config(self, reduced: bool = False):
        p = self.plan
        if reduced:
            return make_config(p.preset, width_mult=p.check.width_mult, input_size=p.check.input_size)
        return make_config(p.preset, width_mult=p.width_mult, input_size=p.input_size)

    def _base_model(self, reduced: bool = False) -> AlexNet:
        key = ("model", reduced)
        if key not in self._refs:
            torch.manual_seed(self.plan.seed)
            self._refs[key] = AlexNet(self._config(reduced)).to(self.device)
        return self._refs[key]

    def _inputs(self, batch_size: int, reduced: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("inputs", batch_size, reduced)
        if key not in self._refs:
            self._refs[key] = inputs(self._config(reduced), batch_size, self.plan.seed, self.device)
        return self._refs[key]

    def _reference(self, batch_size: int, pass_: str, precision: str, reduced: bool = False) -> Reference:
        key = ("ref", batch_size, pass_, precision, reduced)
        if key not in self._refs:
            x, target = self._inputs(batch_size, reduced)
            self._refs[key] = reference(self._base_model(reduced), x, target, pass_, precision)
        return self._refs[key]

    def _row(self, **fields) -> dict[str, Any]:
        p = self.plan
        row = {
            "layout": "single", "preset": p.preset, "width_mult": p.width_mult,
            "input_size": self._config().input_size, "warmup": p.warmup, "repeats": p.repeats,
            "run_id": self.run_id, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        row.update(self._env)
        row.update(fields)
        return row

    # ------------------------------------------------------------------ jobs
    def jobs(self) -> list[tuple[dict[str, Any], Callable[[], list[dict]]]]:
        """(what, job) pairs; each job returns result rows, ``what`` describes it (and fills
        the row recorded if the job raises)."""
        p = self.plan
        jobs: list[tuple[dict[str, Any], Callable[[], list[dict]]]] = [
            ({"scope": "peak", "layer": "gemm+copy"}, self._peaks_job)]

        def what(scope, variant, precision, **kw):
            return {"scope": scope, "variant": variant.name, "label": variant.label, "precision": precision,
                    "compile_mode": variant.compile_mode if variant.compiled else "-", **kw}

        for layout in p.layouts:
            for precision in p.precisions:
                for pass_ in p.passes:
                    for variant in p.variants:
                        # interpreted: one check at the reduced size, whatever the timed batches
                        interpreted = variant.uses_triton and p.interpreted
                        for batch in [p.check.batch_size] if interpreted else p.batch_sizes:
                            jobs.append((what("model", variant, precision, layer="model", layout=layout,
                                              batch_size=batch, **{"pass": pass_}),
                                         lambda lay=layout, v=variant, pr=precision, b=batch, ps=pass_:
                                         [self._model_row(lay, v, pr, b, ps)]))
        if p.layers:
            for precision in p.precisions:
                for variant in p.variants:
                    jobs.append((what("layer", variant, precision, layer="layers", **{"pass": "inference"}),
                                 lambda v=variant, pr=precision: self._layer_rows(v, pr)))
        return jobs

    def run(self) -> list[dict[str, Any]]:
        p = self.plan
        cudnn_before = torch.backends.cudnn.benchmark
        dev = torch.device(p.device)  # every launch and allocation of the run on the plan's device (cuda:N)
        on_device = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
        try:
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = p.cudnn_benchmark
            with fixed_threads(p.threads), on_device:
                self._env = environment(p.device, torch.get_num_threads())
                self._env["cudnn_benchmark"] = p.cudnn_benchmark if self.device.type == "cuda" else None
                self._env["compile_cache"] = "cold (fresh inductor cache per cell)" if p.cold_compile else "warm"
                self._env["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                self._env["precision_policy"] = "autocast, fp32 weights (alexnet_fast.precision)"
                jobs = self.jobs()
                if self.device.type == "cuda":  # profiling/suites.py: the estimate, most informative first
                    from profiling.suites import estimate_jobs, format_duration, order_jobs

                    jobs = order_jobs(jobs)
                    print(f"bench: {len(jobs)} jobs, estimated {format_duration(estimate_jobs(w for w, _ in jobs))}",
                          file=sys.stderr)
                from tqdm import tqdm

                bar = tqdm(jobs, desc="bench", unit="job", file=sys.stderr,
                           disable=(None if self.progress is None else not self.progress))
                for what, job in bar:
                    bar.set_postfix_str(" ".join(str(v) for k, v in what.items() if k not in ("scope", "variant")))
                    try:
                        with _compile_cache(p.cold_compile):
                            new_rows = job()
                    except Exception as e:  # one broken cell must not end the matrix
                        traceback.print_exc(file=sys.stderr)
                        new_rows = [self._row(**what, status="error", note=one_line(e))]
                    self.rows.extend(new_rows)
                    write_results(self.rows, self.output_dir)
                    gc.collect()
        finally:  # also on Ctrl-C: the process's cuDNN setting and the NVML handle are not ours to keep
            self.telemetry.close()
            torch.backends.cudnn.benchmark = cudnn_before
        return self.rows

    # ------------------------------------------------------------------ peaks
    def _peaks_job(self) -> list[dict]:
        p = self.plan
        precisions = tuple(pr for pr in p.precisions if pr != "tf32" or self.device.type == "cuda")
        peaks = device_peaks(p.device, precisions, threads=p.threads, gemm_n=p.peak_gemm_n,
                             copy_mib=p.peak_copy_mib)
        rows = [self._row(scope="peak", layer="gemm", op="gemm", precision=pr, status="peak", layout="-",
                          gflops_per_s=v, note=peaks.source) for pr, v in peaks.gflops.items()]
        rows.append(self._row(scope="peak", layer="copy", op="copy", precision="-", status="peak", layout="-",
                              gbytes_per_s=peaks.gbytes_per_s, note=peaks.source))
        return rows

    # ------------------------------------------------------------------ whole model
    def _time(self, fn: Callable[[], object]) -> dict[str, Any]:
        before = self.telemetry.sample()
        t = measure(fn, device=self.device, warmup=self.plan.warmup, repeats=self.plan.repeats,
                    threads=self.plan.threads)
        return {**t.columns(), **merge_samples(before, self.telemetry.sample())}

    def _build(self, model: nn.Module, variant: VariantSpec) -> nn.Module:
        torch._dynamo.reset()  # static shapes per cell, and compile time not shared between cells
        return self.build_variant(copy.deepcopy(model), variant.name, compile_mode=variant.compile_mode,
                                  copy_model=False)

    def _check_and_time_model(self, variant: VariantSpec, precision: str, batch_size: int, pass_: str,
                              reduced: bool, timed: bool) -> dict[str, Any]:
        """Equivalence of one model cell, then (if ``timed`` and equivalent) its timing."""
        prec = policy(precision)
        x, target = self._inputs(batch_size, reduced)
        ref = self._reference(batch_size, pass_, precision, reduced)
        model = self._build(self._base_model(reduced), variant)
        out: dict[str, Any] = {}
        if pass_ == "inference":
            step = inference_step(model.eval(), x, prec)
            with prec.flags():
                out["compile_s"], logits = time_first_call(step, self.device)
            verdict = judge({"logits": logits}, ref, floor(precision, pass_))
        else:
            grads, out["loss_scale"] = checked_grads(model, x, target, prec)
            verdict = judge(grads, ref, floor(precision, pass_))
            step = train_step(model, x, target, prec, init_scale=out["loss_scale"])
        out.update(verdict_columns(verdict, pass_))
        if timed and out["equivalent"]:
            if pass_ == "train":
                out["compile_s"], _ = time_first_call(step, self.device)
            out.update(self._time(step))
        del model
        return out

    def _model_row(self, layout: str, variant: VariantSpec, precision: str, batch_size: int, pass_: str) -> dict:
        base = dict(scope="model", layer="model", op="model", variant=variant.name, label=variant.label,
                    compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                    batch_size=batch_size, **{"pass": pass_}, layout=layout)
        interpreted = variant.uses_triton and self.plan.interpreted
        if interpreted:
            c = self.plan.check
            base.update(width_mult=c.width_mult, input_size=c.input_size,
                        check_size=f"w{c.width_mult}@{c.input_size} b{c.batch_size}")
            if precision == "bf16":
                return self._row(**base, status="error", note=NO_BF16_NOTE)
        else:
            base["check_size"] = "full"
        if layout != "single":
            result = self._layout_result(layout, variant, precision, batch_size, pass_, interpreted)
        else:
            result = self._check_and_time_model(variant, precision, batch_size, pass_, reduced=interpreted,
                                                timed=not interpreted)
        row = self._row(**{**base, **result})
        if interpreted or not row["equivalent"]:  # the interpreter's time is no speed; a failed cell has none
            for key in [k for k in row if k.endswith("_ms") or k in ("timer", "images_per_s")]:
                del row[key]
        if interpreted:
            row.update(status="interpreted" if row["equivalent"] else "failed", compile_s=None, note=INTERPRETED_NOTE)
            return row
        row["status"] = "ok" if row["equivalent"] else "failed"
        cost = model_cost(self._config(), batch_size, precision, pass_=pass_)
        model_name = bytes_model_for(variant.name)
        return add_rates(row, cost.flops, cost.bytes(model_name) if pass_ == "inference" else None,
                         model_name, batch_size)

    def _layout_result(self, layout: str, variant: VariantSpec, precision: str, batch_size: int, pass_: str,
                       interpreted: bool) -> dict[str, Any]:
        """A two-rank cell (:func:`profiling.layout_bench.bench_layout`), at the check size
        when interpreted."""
        p, c = self.plan, self.plan.check
        return layout_bench.bench_layout(
            layout, variant.name, precision, batch_size, pass_, preset=p.preset,
            width_mult=c.width_mult if interpreted else p.width_mult,
            input_size=c.input_size if interpreted else p.input_size, warmup=p.warmup, repeats=p.repeats,
            compile_mode=variant.compile_mode, device=self.device.type, world_size=p.layout_world_size,
            seed=p.seed, timed=not interpreted)

    # ------------------------------------------------------------------ per layer
    def _layer_rows(self, variant: VariantSpec, precision: str) -> list[dict]:
        """Per-layer rows of one variant. Without a GPU, the units the triton variants swap
        (conv+ReLU, LRN, pool) run interpreted at the reduced size; the others (FC) are the
        same PyTorch modules in every variant and are timed at full size."""
        p = self.plan
        interpreted = variant.uses_triton and p.interpreted
        rows = []
        for reduced in (False, True) if interpreted else (False,):
            config = self._config(reduced)
            units = [u for u in layer_units(config)
                     if u.name in p.layers and (not interpreted or (u.op in TRITON_OPS) == reduced)]
            if not units:
                continue
            batch = p.check.batch_size if reduced else p.layer_batch_size
            base_size = {"width_mult": p.check.width_mult, "input_size": p.check.input_size,
                         "check_size": f"w{p.check.width_mult}@{p.check.input_size} b{batch}"} \
                if reduced else {"check_size": "full"}
            if reduced and precision == "bf16":
                rows += [self._row(scope="layer", layer=u.name, op=u.op, variant=variant.name, label=variant.label,
                                   precision=precision, **base_size, status="error", note=NO_BF16_NOTE)
                         for u in units]
                continue
            model = self._base_model(reduced)
            x, _ = self._inputs(batch, reduced)
            acts = _unit_inputs(copy.deepcopy(model), units, x, precision)
            for unit in units:
                base = dict(scope="layer", layer=unit.name, op=unit.op, variant=variant.name, label=variant.label,
                            compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                            batch_size=batch, **{"pass": "inference"}, **base_size)
                try:
                    rows.append(self._layer_row(base, model, unit, acts[unit.name], variant, precision, batch,
                                                reduced))
                except Exception as e:
                    traceback.print_exc(file=sys.stderr)
                    rows.append(self._row(**base, status="error", note=one_line(e)))
        order = {name: i for i, name in enumerate(p.layers)}
        return sorted(rows, key=lambda r: order.get(r["layer"], len(order)))

    def _layer_row(self, base, model, unit, act, variant, precision, batch, reduced) -> dict:
        prec = policy(precision)
        block = _unit_block(model, unit).eval()
        fp32 = policy("fp32")
        with fp32.flags(), torch.no_grad():
            ref = Reference({"out": block(act.float().clone())}, {"out": copy.deepcopy(block).double()(act.double())},
                            None if precision == "fp32" else {"out": inference_step(block, act.clone(), prec)()})
        built = self._build(block, variant).eval()
        step = inference_step(built, act, prec)
        with prec.flags():
            compile_s, out = time_first_call(step, self.device)
            verdict = judge({"out": out}, ref, floor(precision, "inference"))
            row = self._row(**base, compile_s=compile_s, **verdict_columns(verdict, "inference"))
            if reduced:
                row["compile_s"] = None  # the first call ran the interpreter: not a compile time
            if not row["equivalent"]:
                row["status"] = "failed"
            elif reduced:
                row.update(status="interpreted", note="Triton interpreter on CPU: equivalence at reduced size only")
            else:
                row["status"] = "ok"
                row.update(self._time(step))  # no unit writes into its input
        cost = unit_cost(unit, batch, precision)
        model_name = bytes_model_for(variant.name)
        row["intensity"] = cost.intensity(model_name)
        if row["status"] == "ok":
            add_rates(row, cost.flops, cost.bytes(model_name), model_name, batch)
        else:
            row.update(flops=cost.flops, bytes=cost.bytes(model_name), bytes_model=model_name)
        del built
        return row
