"""`alexnet-fast bench`: the variant x precision x batch x pass x layout matrix.

For every cell the harness builds the variant with :func:`alexnet_fast.build_variant` (the
only way variants are built), checks it against eager fp32 with the same weights and input,
and only then times it:

* inference: logits of one forward pass (``eval()``, ``no_grad``);
* train: the gradients of one forward + backward (in ``eval()`` mode, so dropout -- the only
  train/eval difference in AlexNet -- does not make the two runs differ), then the timed
  training step (``train()``: forward, cross-entropy, backward, SGD with momentum 0.9 and
  weight decay 5e-4). Low precisions keep weights and gradients in that dtype (no autocast);
  fp16 scales the loss by :data:`LOSS_SCALE`.

Reported errors are against eager fp32: ``max|out - ref|`` and ``max|out - ref| / max|ref|``
per tensor (for gradients, the largest over all parameters). The verdict is against a float64
eager reference, the way inductor's own accuracy checks do it: for every checked tensor t
(the logits, or each parameter's gradient),

    rrmse(variant_t, fp64_t) <= ERROR_MULTIPLIER * rrmse(eager_fp32_t, fp64_t) + floor[precision]

with rrmse the relative root-mean-square error and the floors in :data:`TOLERANCES`. Why not a
flat tolerance against eager fp32: the early-layer gradients of AlexNet are ill-conditioned
(a ReLU or max-pool decision that flips under rounding reroutes gradient), so two correct
fp32 implementations differ by ~1e-2 on conv1's weight gradient while a wrong one is O(1)
away (see :data:`TOLERANCES`). A variant that fails is recorded ``failed`` and not timed. The first call of
every built variant is timed on its own (``compile_s``: tracing, compiling and autotuning for
the compiled variants), then the steady state with :func:`profiling.timers.measure`.

Per-layer rows time each unit of :func:`profiling.flops.layer_units` (conv+ReLU, LRN, pool,
fused LRN+pool, FC) on the eager model's real activations, forward only, each unit built as
its own small model by ``build_variant`` (so the triton variant swaps exactly the kernels
that unit uses).

Without a GPU, Triton runs in its interpreter: the triton variants are then checked at a
reduced size (``--check-width-mult``, ``--check-input-size``, ``--check-batch-size``) and
their rows say ``interpreted`` with no time. Two-device layouts come from
``alexnet_fast.layouts.bench_layout``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib
import importlib.util
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.model import AlexNet, make_config
from profiling.flops import bytes_model_for, layer_units, model_cost, unit_cost
from profiling.results import environment, write_results
from profiling.roofline import TORCH_DTYPES, device_peaks, precision_mode
from profiling.telemetry import Telemetry, merge_samples
from profiling.timers import fixed_threads, measure, time_first_call

__all__ = [
    "PASSES", "PRECISIONS", "LAYOUTS", "TOLERANCES", "VariantSpec", "ReducedSize", "BenchPlan",
    "default_plan", "Harness", "add_arguments", "run", "relative_error", "relative_rmse", "judge",
    "Reference", "ERROR_MULTIPLIER",
]

PASSES = ("inference", "train")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
LAYOUTS = ("single", "data_parallel", "model_parallel")
VARIANT_NAMES = ("eager", "compile", "triton", "triton+compile")

# Floor of the relative RMS error vs the fp64 reference, per precision: (logits, gradients),
# added to ERROR_MULTIPLIER x eager fp32's own error.
# Logits: the forward pass is a continuous function (ReLU and max are continuous), so its
# error is rounding only: fp32 allows reassociation; tf32/fp16 have a 10-bit mantissa (unit
# roundoff 4.9e-4), bf16 a 7-bit one (3.9e-3), ~8 layers deep with a margin of a few units
# per layer.
# Gradients: piecewise (the ReLU mask, the max-pool argmax); rounding flips a few decisions
# near a tie and each flip reroutes gradient into every earlier layer. Measured here (paper
# AlexNet, fp32, CPU): torch.compile's conv1 weight gradient is 0.8-2.6% from eager's while
# eager fp32 itself is 2e-6 from fp64 -- different flips, both correct. The floors are loose
# enough for that and still catch a wrong backward (O(1) errors); the kernels' own tests
# check each backward tightly.
ERROR_MULTIPLIER = 3.0
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 5e-2),
    "tf32": (2e-2, 1e-1),
    "fp16": (2e-2, 1e-1),
    "bf16": (8e-2, 2e-1),
}

SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}  # the paper's recipe
# Static loss scale of the fp16 training step (fp16 weights and gradients, no autocast):
# small gradients would flush to zero unscaled; paper-init fc8 gradients reach ~4, so 2^10
# keeps the largest well below fp16's 65504. bf16 has fp32's range and needs none.
LOSS_SCALE = {"fp16": 2.0**10}


@dataclass(frozen=True)
class VariantSpec:
    """A variant name of ``build_variant`` plus torch.compile's mode for the compiled ones."""

    name: str
    compile_mode: str = "default"

    @property
    def compiled(self) -> bool:
        return self.name.endswith("compile")

    @property
    def uses_triton(self) -> bool:
        return self.name.startswith("triton")

    @property
    def label(self) -> str:
        """``compile``, ``compile[max-autotune]``, ``triton`` ... (one name per plotted line)."""
        if self.compiled and self.compile_mode != "default":
            return f"{self.name}[{self.compile_mode}]"
        return self.name


@dataclass(frozen=True)
class ReducedSize:
    """Model size at which interpreted Triton variants are checked (no GPU)."""

    width_mult: float = 0.125
    input_size: int = 67
    batch_size: int = 2


@dataclass
class BenchPlan:
    """Everything one bench run does. :func:`default_plan` fits it to the device."""

    device: str
    variants: list[VariantSpec]
    precisions: list[str]
    batch_sizes: list[int]
    passes: list[str]
    layouts: list[str] = field(default_factory=lambda: ["single"])
    layers: list[str] = field(default_factory=list)  # unit names; [] = no per-layer rows
    layer_batch_size: int = 8
    preset: str = "paper"
    width_mult: float = 1.0
    input_size: int | None = None
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    check: ReducedSize = field(default_factory=ReducedSize)
    seed: int = 0
    peak_gemm_n: int | None = None  # measured-peak sizes (None: fit the device)
    peak_copy_mib: int | None = None
    cudnn_benchmark: bool = True  # GPU: let cuDNN pick its fastest algorithm per shape (eager and compile)
    cold_compile: bool = True  # every cell compiles with an empty inductor cache: compile_s is a cold compile
    model: str | None = None  # a user's model factory, module:callable (profiling/user_bench.py)
    model_input_size: int | None = None  # --input-size given with --model

    @property
    def interpreted(self) -> bool:
        """Triton variants run in the interpreter (no GPU)."""
        return torch.device(self.device).type != "cuda"


# modules the triton variants need (another engineer's work; merged separately)
TRITON_MODULES = ("kernels.conv2d_relu", "kernels.lrn", "kernels.max_pool2d", "kernels.lrn_max_pool2d",
                  "kernels.nn.conv", "kernels.nn.pooling")


# per-layer ops build_variant swaps for Triton kernels (FC layers stay PyTorch in every variant)
TRITON_OPS = ("conv_relu", "lrn", "pool", "lrn_pool")


def missing_triton_modules() -> list[str]:
    """The modules of :data:`TRITON_MODULES` not present in this checkout."""
    return [m for m in TRITON_MODULES if importlib.util.find_spec(m) is None]


def idle_cores() -> int:
    """Cores not busy when the run starts: ``cpu_count - round(1-min load average)``, at
    least 1. On a shared machine a thread per core is catastrophic once other processes hold
    cores (OpenMP threads wait at every barrier for a descheduled sibling: measured here
    with a load of 7.5 on 2 cores, paper AlexNet b4 inference 207 ms on 1 thread vs 580-849 ms
    on 2); on an idle machine this is every core."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(round(load))))


def default_plan(device: str | None = None) -> BenchPlan:
    """The embedded default, fitted to the device it finds.

    GPU: every variant, plain torch.compile also in max-autotune mode, fp32/tf32/fp16/bf16,
    batches 1, 32, 128 and 256, both passes, per-layer rows at batch 128; the two-device
    layouts too when there are two GPUs and ``alexnet_fast.layouts`` exists. A long run
    (every compiled cell compiles; max-autotune benchmarks its conv templates): trim it with
    the flags.
    CPU: the paper network at its real size (227x227, 60.9 M parameters), fp32 (PyTorch has
    no fp16/bf16 LRN on CPU), batches 1, 4 and 16, both passes, per-layer rows at batch 8,
    torch.compile in its default mode (max-autotune changes nothing for CPU convolutions and
    doubles the compile time), threads = the cores idle at the start (:func:`idle_cores`);
    the triton variants interpreted at reduced size for equivalence only. Finishes in a few
    minutes on 2 cores.

    The triton variants are left out (with a message) while the Triton kernels are not in
    this checkout (:func:`missing_triton_modules`).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    all_units = [u.name for u in layer_units(make_config("paper"))]
    plan = _default_plan(device, all_units)
    missing = missing_triton_modules()
    if missing:
        print(f"bench: triton variants left out of the default: {', '.join(missing)} not in this checkout",
              file=sys.stderr)
        plan.variants = [v for v in plan.variants if not v.uses_triton]
    return plan


def _default_plan(device: str, all_units: list[str]) -> BenchPlan:
    if torch.device(device).type == "cuda":
        layouts = ["single"]
        if torch.cuda.device_count() >= 2 and importlib.util.find_spec("alexnet_fast.layouts"):
            layouts += ["data_parallel", "model_parallel"]
        return BenchPlan(
            device=device,
            variants=[VariantSpec("eager"), VariantSpec("compile"), VariantSpec("compile", "max-autotune"),
                      VariantSpec("triton"), VariantSpec("triton+compile")],
            precisions=list(PRECISIONS), batch_sizes=[1, 32, 128, 256], passes=list(PASSES),
            layouts=layouts, layers=all_units, layer_batch_size=128, warmup=10, repeats=30,
        )
    return BenchPlan(
        device=device,
        variants=[VariantSpec("eager"), VariantSpec("compile"), VariantSpec("triton"),
                  VariantSpec("triton+compile")],
        precisions=["fp32"], batch_sizes=[1, 4, 16], passes=list(PASSES), layers=all_units,
        layer_batch_size=8, warmup=1, repeats=5, threads=idle_cores(),
    )


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max |out - ref|, max |out - ref| / max |ref|) in float64; NaN anywhere -> inf."""
    out64, ref64 = out.detach().double(), ref.detach().double()
    if out64.shape != ref64.shape:
        raise ValueError(f"shape {tuple(out64.shape)} differs from the reference {tuple(ref64.shape)}")
    diff = (out64 - ref64).abs()
    if diff.numel() == 0:
        return 0.0, 0.0
    if torch.isnan(diff).any():
        return float("inf"), float("inf")
    max_abs = diff.max().item()
    scale = ref64.abs().max().item()
    return max_abs, (max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")))


def relative_rmse(out: torch.Tensor, ref: torch.Tensor) -> float:
    """sqrt(mean((out - ref)^2)) / sqrt(mean(ref^2)) in float64; NaN -> inf; 0 if both are 0."""
    out64, ref64 = out.detach().double(), ref.detach().double()
    err = (out64 - ref64).pow(2).mean().sqrt().item()
    scale = ref64.pow(2).mean().sqrt().item()
    if math.isnan(err):
        return math.inf
    return err / scale if scale > 0 else (0.0 if err == 0 else math.inf)


@dataclass
class Reference:
    """Eager results for one input: fp32 (what errors are reported against), fp64 (what
    the verdict is against) and eager fp32's own relative RMS error per tensor."""

    fp32: dict[str, torch.Tensor]
    fp64: dict[str, torch.Tensor]
    eager_err: dict[str, float] = field(init=False)

    def __post_init__(self):
        if set(self.fp32) != set(self.fp64):
            raise ValueError("fp32 and fp64 references hold different tensors")
        self.eager_err = {k: relative_rmse(self.fp32[k], self.fp64[k]) for k in self.fp32}


def judge(outputs: dict[str, torch.Tensor], ref: Reference, floor: float) -> dict[str, Any]:
    """Errors of ``outputs`` vs eager fp32 (max abs / max rel over the tensors) and the
    verdict vs fp64 (see the module docstring), with the tensor closest to failing."""
    if set(outputs) != set(ref.fp32):
        raise ValueError(f"outputs {sorted(set(ref.fp32) ^ set(outputs))} are missing on one side")
    errs = {k: relative_error(outputs[k].float(), ref.fp32[k]) for k in ref.fp32}
    worst, worst_ratio, verdict = None, -1.0, {}
    for k in ref.fp32:
        err = relative_rmse(outputs[k], ref.fp64[k])
        allowed = ERROR_MULTIPLIER * ref.eager_err[k] + floor
        ratio = err / allowed if allowed > 0 else math.inf
        if ratio > worst_ratio:
            worst, worst_ratio = k, ratio
            verdict = {"fp64_err": err, "eager_fp64_err": ref.eager_err[k], "tolerance": allowed}
    return {"abs": max(e[0] for e in errs.values()), "rel": max(e[1] for e in errs.values()),
            "worst_tensor": worst, **verdict, "equivalent": worst_ratio <= 1.0}


def _grads(model: nn.Module, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Parameter gradients (unscaled by the loss scale, in float32 when scaled)."""
    return {_param_name(n): (p.grad.detach().float() / scale if scale != 1.0 else p.grad.detach().clone())
            for n, p in model.named_parameters() if p.grad is not None}


def _param_name(name: str) -> str:
    """Parameter name without torch.compile's ``_orig_mod.`` prefix."""
    return name.replace("_orig_mod.", "")


class LayerBlock(nn.Module):
    """One per-layer unit as a model of its own: ``.features`` holds copies of the unit's
    modules under their role names, so ``build_variant`` swaps them like in AlexNet."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.features = nn.Sequential(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _unit_block(model: AlexNet, unit) -> LayerBlock:
    from collections import OrderedDict

    parent = model if unit.container == "" else getattr(model, unit.container)
    return LayerBlock(OrderedDict((m, copy.deepcopy(getattr(parent, m))) for m in unit.modules))


def _unit_inputs(model: AlexNet, units, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The eager model's activation entering each unit (pre-hooks; classifier input flattened)."""
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for unit in units:
        parent = model if unit.container == "" else getattr(model, unit.container)
        module = getattr(parent, unit.modules[0])

        def hook(_m, args, name=unit.name):
            acts.setdefault(name, args[0].detach().clone())

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return acts


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
            config = self._config(reduced)
            gen = torch.Generator().manual_seed(self.plan.seed + batch_size)
            size = config.input_size
            x = torch.randn(batch_size, 3, size, size, generator=gen)
            target = torch.randint(0, config.num_classes, (batch_size,), generator=gen)
            self._refs[key] = (x.to(self.device), target.to(self.device))
        return self._refs[key]

    def _reference(self, batch_size: int, pass_: str, reduced: bool = False) -> Reference:
        """Eager logits (inference) or parameter gradients (train, eval mode) in fp32 and fp64."""
        key = ("ref", batch_size, pass_, reduced)
        if key not in self._refs:
            x, target = self._inputs(batch_size, reduced)
            results = {}
            for dtype in (torch.float32, torch.float64):
                model = copy.deepcopy(self._base_model(reduced)).to(dtype).eval()
                with precision_mode("fp32"):
                    if pass_ == "inference":
                        with torch.no_grad():
                            results[dtype] = {"logits": model(x.to(dtype))}
                    else:
                        F.cross_entropy(model(x.to(dtype)), target).backward()
                        results[dtype] = _grads(model)
                del model
            self._refs[key] = Reference(results[torch.float32], results[torch.float64])
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
                        if variant.uses_triton and p.interpreted and layout == "single":
                            jobs.append((what("model", variant, precision, layer="model", layout=layout,
                                              **{"pass": pass_}),
                                         lambda v=variant, pr=precision, ps=pass_: [self._interpreted_model_row(v, pr, ps)]))
                            continue
                        # interpreted: one check at the reduced size, whatever the timed batches
                        batches = [p.check.batch_size] if variant.uses_triton and p.interpreted else p.batch_sizes
                        for batch in batches:
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
        try:
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = p.cudnn_benchmark
            with fixed_threads(p.threads):
                self._env = environment(p.device, torch.get_num_threads())
                self._env["cudnn_benchmark"] = p.cudnn_benchmark if self.device.type == "cuda" else None
                self._env["compile_cache"] = "cold (fresh inductor cache per cell)" if p.cold_compile else "warm"
                self._env["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                jobs = self.jobs()
                if self.device.type == "cuda":  # GPU suite hook (profiling/suites.py): estimate, most informative first
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
                        new_rows = [self._row(**what, status="error", note=_one_line(e))]
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
        tele = merge_samples(before, self.telemetry.sample())
        return {"median_ms": t.median_ms, "p20_ms": t.p20_ms, "p80_ms": t.p80_ms, "min_ms": t.min_ms,
                "repeats": t.repeats, "warmup": t.warmup, "timer": t.method, "threads": t.threads, **tele}

    def _build(self, model: nn.Module, variant: VariantSpec, dtype: torch.dtype) -> nn.Module:
        torch._dynamo.reset()  # static shapes per cell, and compile time not shared between cells
        return self.build_variant(copy.deepcopy(model).to(dtype), variant.name,
                                  compile_mode=variant.compile_mode, copy_model=False)

    def _check_and_time_model(self, variant: VariantSpec, precision: str, batch_size: int, pass_: str,
                              reduced: bool, timed: bool) -> dict[str, Any]:
        """Equivalence of one model cell, then (if ``timed`` and equivalent) its timing."""
        logits_tol, grad_tol = TOLERANCES[precision]
        x, target = self._inputs(batch_size, reduced)
        ref = self._reference(batch_size, pass_, reduced)
        with precision_mode(precision) as dtype:
            model = self._build(self._base_model(reduced), variant, dtype)
            xin = x.to(dtype)
            out: dict[str, Any] = {}
            if pass_ == "inference":
                model.eval()
                with torch.no_grad():
                    out["compile_s"], logits = time_first_call(lambda: model(xin), self.device)
                verdict = judge({"logits": logits}, ref, logits_tol)
                out["max_abs_err"], out["max_rel_err"] = verdict.pop("abs"), verdict.pop("rel")
                out.update(verdict)
                step = lambda: model(xin)  # noqa: E731
                grad_ctx = torch.no_grad
            else:
                model.eval()  # dropout off: the gradients must match eager's exactly up to rounding
                scale = LOSS_SCALE.get(precision, 1.0)
                (F.cross_entropy(model(xin).float(), target) * scale).backward()
                verdict = judge(_grads(model, scale), ref, grad_tol)
                out["grad_max_abs_err"], out["grad_max_rel_err"] = verdict.pop("abs"), verdict.pop("rel")
                out.update(verdict)
                model.zero_grad(set_to_none=True)
                model.train()
                opt = torch.optim.SGD(model.parameters(), **SGD)

                params = [q for q in model.parameters() if q.requires_grad]

                def step():
                    opt.zero_grad(set_to_none=True)
                    (F.cross_entropy(model(xin).float(), target) * scale).backward()
                    if scale != 1.0:
                        torch._foreach_div_([q.grad for q in params], scale)
                    opt.step()

                grad_ctx = torch.enable_grad
            if timed and out["equivalent"]:
                with grad_ctx():
                    if pass_ == "train":
                        out["compile_s"], _ = time_first_call(step, self.device)
                    out.update(self._time(step))
        del model
        return out

    def _model_row(self, layout: str, variant: VariantSpec, precision: str, batch_size: int, pass_: str) -> dict:
        base = dict(scope="model", layer="model", op="model", variant=variant.name, label=variant.label,
                    compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                    batch_size=batch_size, **{"pass": pass_}, layout=layout)
        if layout != "single":
            return self._layout_row(base, layout, variant, precision, batch_size, pass_)
        result = self._check_and_time_model(variant, precision, batch_size, pass_, reduced=False, timed=True)
        row = self._row(**base, **result, check_size="full")
        row["status"] = "ok" if row["equivalent"] else "failed"
        cost = model_cost(self._config(), batch_size, precision, pass_=pass_)
        return _add_rates(row, cost.flops, cost.bytes(bytes_model_for(variant.name)) if pass_ == "inference" else None,
                          bytes_model_for(variant.name), batch_size)

    def _interpreted_model_row(self, variant: VariantSpec, precision: str, pass_: str) -> dict:
        """Triton without a GPU: equivalence at the reduced size, no time."""
        c = self.plan.check
        base = dict(scope="model", layer="model", op="model", variant=variant.name, label=variant.label,
                    compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                    batch_size=c.batch_size, **{"pass": pass_}, width_mult=c.width_mult, input_size=c.input_size,
                    check_size=f"w{c.width_mult}@{c.input_size} b{c.batch_size}")
        if precision == "bf16":
            return self._row(**base, status="error", note="Triton's interpreter has no bf16 arithmetic")
        result = self._check_and_time_model(variant, precision, c.batch_size, pass_, reduced=True, timed=False)
        row = self._row(**base, **result)
        row["status"] = "interpreted" if row["equivalent"] else "failed"
        row["compile_s"] = None  # the first call ran the interpreter: not a compile time
        row["note"] = "Triton interpreter on CPU: equivalence at reduced size only; timing would mean nothing"
        return row

    def _layout_row(self, base: dict, layout: str, variant: VariantSpec, precision: str, batch_size: int,
                    pass_: str) -> dict:
        from alexnet_fast.layouts import bench_layout

        layout_pass = "forward" if pass_ == "inference" else pass_  # the layouts' name for it
        p = self.plan
        interpreted = variant.uses_triton and p.interpreted
        c = p.check
        kwargs = dict(preset=p.preset, width_mult=c.width_mult if interpreted else p.width_mult,
                      input_size=c.input_size if interpreted else p.input_size,
                      warmup=p.warmup, repeats=p.repeats, compile_mode=variant.compile_mode)
        run_batch = c.batch_size if interpreted else batch_size
        res = bench_layout(layout, variant.name, precision, run_batch, layout_pass, **kwargs)
        equivalent = bool(res["equivalent"])
        row = self._row(**base, max_abs_err=res.get("max_abs_err"), max_rel_err=res.get("max_rel_err"),
                        equivalent=equivalent,
                        check_size=f"w{c.width_mult}@{c.input_size} b{c.batch_size}" if interpreted else "full",
                        comm_bytes=res.get("comm_bytes"), comm_bytes_model=res.get("comm_bytes_model"),
                        note=f"backend {res.get('backend')}, world size {res.get('world_size')}")
        if interpreted:
            row.update(status="interpreted" if equivalent else "failed", width_mult=c.width_mult,
                       input_size=c.input_size, batch_size=c.batch_size)
            return row
        row["status"] = "ok" if equivalent else "failed"
        if equivalent:
            row.update(median_ms=res["step_ms"], comm_ms=res.get("comm_ms"), timer="perf_counter (per rank)")
            cost = model_cost(self._config(), batch_size, precision, pass_=pass_)
            _add_rates(row, cost.flops, None, bytes_model_for(variant.name), batch_size)
        return row

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
                                   precision=precision, **base_size, status="error",
                                   note="Triton's interpreter has no bf16 arithmetic") for u in units]
                continue
            model = self._base_model(reduced)
            x, _ = self._inputs(batch, reduced)
            acts = _unit_inputs(copy.deepcopy(model), units, x)
            for unit in units:
                base = dict(scope="layer", layer=unit.name, op=unit.op, variant=variant.name, label=variant.label,
                            compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                            batch_size=batch, **{"pass": "inference"}, **base_size)
                try:
                    rows.append(self._layer_row(base, model, unit, acts[unit.name], variant, precision, batch,
                                                reduced))
                except Exception as e:
                    traceback.print_exc(file=sys.stderr)
                    rows.append(self._row(**base, status="error", note=_one_line(e)))
        order = {name: i for i, name in enumerate(p.layers)}
        return sorted(rows, key=lambda r: order.get(r["layer"], len(order)))

    def _layer_row(self, base, model, unit, act, variant, precision, batch, reduced) -> dict:
        tol = TOLERANCES[precision][0]
        block = _unit_block(model, unit).eval()
        with torch.no_grad(), precision_mode("fp32"):
            ref = Reference({"out": block(act.clone())}, {"out": copy.deepcopy(block).double()(act.double())})
        with precision_mode(precision) as dtype, torch.no_grad():
            built = self._build(block, variant, dtype).eval()
            xin = act.to(dtype)
            compile_s, out = time_first_call(lambda: built(xin.clone()), self.device)
            verdict = judge({"out": out}, ref, tol)
            row = self._row(**base, compile_s=compile_s, max_abs_err=verdict.pop("abs"),
                            max_rel_err=verdict.pop("rel"), **verdict)
            if reduced:
                row["compile_s"] = None  # the first call ran the interpreter: not a compile time
            if not row["equivalent"]:
                row["status"] = "failed"
            elif reduced:
                row.update(status="interpreted", note="Triton interpreter on CPU: equivalence at reduced size only")
            else:
                row["status"] = "ok"
                row.update(self._time(lambda: built(xin)))  # no unit writes into its input
        cost = unit_cost(unit, batch, precision)
        model_name = bytes_model_for(variant.name)
        row["intensity"] = cost.intensity(model_name)
        if row["status"] == "ok":
            _add_rates(row, cost.flops, cost.bytes(model_name), model_name, batch)
        else:
            row.update(flops=cost.flops, bytes=cost.bytes(model_name), bytes_model=model_name)
        del built
        return row


def _compile_cache(cold: bool):
    """An empty inductor cache for the block (cold compiles), or the user's cache."""
    if not cold:
        return contextlib.nullcontext()
    from torch._inductor.utils import fresh_inductor_cache

    return fresh_inductor_cache()


def _add_rates(row: dict, flops: int, nbytes: int | None, bytes_model: str, batch_size: int) -> dict:
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


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


# ---------------------------------------------------------------------- CLI
def _split(values: Iterable[str] | None) -> list[str] | None:
    """Repeatable and comma-separated flag values, flattened in order; None if not given."""
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        out.extend(s.strip() for s in v.split(",") if s.strip())
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", action="append", metavar="NAMES",
                        help=f"variants ({', '.join(VARIANT_NAMES)}); repeatable or comma-separated")
    parser.add_argument("--compile-mode", action="append", metavar="MODES",
                        help="torch.compile modes for the compiled variants (default, max-autotune, ...)")
    parser.add_argument("--precision", action="append", metavar="NAMES", help=f"{', '.join(PRECISIONS)}")
    parser.add_argument("--batch-size", action="append", metavar="SIZES", help="batch sizes, e.g. 1,32,128")
    parser.add_argument("--pass", dest="passes", action="append", metavar="PASSES", help="inference, train")
    parser.add_argument("--layer", action="append", metavar="UNITS",
                        help="per-layer units (conv1+relu1, lrn1, pool1, lrn1+pool1, ..., fc8), 'all' or 'none'")
    parser.add_argument("--layout", action="append", metavar="LAYOUTS", help=f"{', '.join(LAYOUTS)}")
    parser.add_argument("--output-dir", default="reports", help="where results.csv/json go (default: reports)")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    parser.add_argument("--model", default=None, metavar="MODULE:CALLABLE",
                        help="bench your own model: a factory returning an nn.Module or (nn.Module, input_size), "
                             "e.g. alexnet_fast.examples:small_flat_alexnet")
    parser.add_argument("--preset", default=None, help="paper (default) or torchvision")
    parser.add_argument("--width-mult", type=float, default=None, help="scale every layer's width")
    parser.add_argument("--input-size", type=int, default=None, help="input height = width")
    parser.add_argument("--layer-batch-size", type=int, default=None, help="batch of the per-layer rows")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (median and quantiles)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU work)")
    parser.add_argument("--check-width-mult", type=float, default=None, help="interpreted check: width")
    parser.add_argument("--check-input-size", type=int, default=None, help="interpreted check: input size")
    parser.add_argument("--check-batch-size", type=int, default=None, help="interpreted check: batch")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--peak-gemm-n", type=int, default=None, help="measured peak: GEMM size n (n x n @ n x n)")
    parser.add_argument("--peak-copy-mib", type=int, default=None, help="measured peak: MiB copied")
    parser.add_argument("--warm-compile-cache", action="store_true",
                        help="reuse inductor's on-disk cache (default: each cell compiles cold, so "
                             "'first call s' is a cold compile)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any cell failed its equivalence check or raised (default: 0, "
                             "failures are recorded in the results)")
    from profiling.gpu_suite import add_arguments as add_suite_arguments  # GPU suite hook: --suite, --dry-run

    add_suite_arguments(parser)


def _choose(values: list[str] | None, allowed: Iterable[str], what: str) -> list[str] | None:
    if values is None:
        return None
    allowed = list(allowed)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}")
    if not values:
        raise ValueError(f"no {what} given")
    return list(dict.fromkeys(values))


def plan_from_args(args: argparse.Namespace) -> BenchPlan:
    """The embedded default for the device, with every flag given overriding its part.
    ValueError names a bad value."""
    from alexnet_fast.variants import COMPILE_MODES

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available")
    plan = default_plan(device)
    names = _choose(_split(args.variant), VARIANT_NAMES, "variant")
    modes = _choose(_split(args.compile_mode), COMPILE_MODES, "compile mode")
    if names is not None or modes is not None:
        names = names or list(dict.fromkeys(v.name for v in plan.variants))
        modes = modes or ["default"]
        plan.variants = [VariantSpec(n, m) for n in names for m in (modes if n.endswith("compile") else ["default"])]
    plan.precisions = _choose(_split(args.precision), PRECISIONS, "precision") or plan.precisions
    if "tf32" in plan.precisions and torch.device(device).type != "cuda":
        raise ValueError("precision tf32 needs a CUDA device (Ampere or newer); this run is on CPU")
    batches = _split(args.batch_size)
    if batches is not None:
        try:
            plan.batch_sizes = [int(b) for b in batches]
        except ValueError:
            raise ValueError(f"--batch-size takes integers, got {batches}") from None
        if not plan.batch_sizes or min(plan.batch_sizes) < 1:
            raise ValueError(f"batch sizes must be positive integers, got {plan.batch_sizes}")
    plan.passes = _choose(_split(args.passes), PASSES, "pass") or plan.passes
    layouts = _choose(_split(args.layout), LAYOUTS, "layout")
    if layouts is not None:
        plan.layouts = layouts
    for field_name, flag in (("preset", "preset"), ("width_mult", "width_mult"), ("input_size", "input_size"),
                             ("layer_batch_size", "layer_batch_size"), ("warmup", "warmup"),
                             ("repeats", "repeats"), ("threads", "threads"), ("seed", "seed"),
                             ("peak_gemm_n", "peak_gemm_n"), ("peak_copy_mib", "peak_copy_mib")):
        value = getattr(args, flag)
        if value is not None:
            setattr(plan, field_name, value)
    plan.cold_compile = not args.warm_compile_cache
    check = {k: getattr(args, f"check_{k}") for k in ("width_mult", "input_size", "batch_size")}
    plan.check = replace(plan.check, **{k: v for k, v in check.items() if v is not None})
    if getattr(args, "model", None):  # a user's model (profiling/user_bench.py): its own input size, no layers
        from profiling.user_bench import fit_plan_to_model

        fit_plan_to_model(plan, args)
    config = make_config(plan.preset, width_mult=plan.width_mult, input_size=plan.input_size)  # validates
    make_config(plan.preset, width_mult=plan.check.width_mult, input_size=plan.check.input_size)
    units = [u.name for u in layer_units(config)]
    layers = _split(args.layer)
    if layers is not None:
        if layers == ["all"]:
            plan.layers = units
        elif layers == ["none"]:
            plan.layers = []
        else:
            plan.layers = _choose(layers, units, "layer")
    else:
        plan.layers = [u for u in plan.layers if u in units] if plan.preset == "paper" else units
    for layout in plan.layouts:
        if layout != "single" and importlib.util.find_spec("alexnet_fast.layouts") is None:
            raise ValueError(f"layout {layout!r} not available: alexnet_fast.layouts (two-device layouts, "
                             f"issue 6) is not installed in this checkout; use --layout single")
    if plan.threads is not None and plan.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {plan.threads}")
    if plan.repeats < 1 or plan.warmup < 0:
        raise ValueError("--repeats must be >= 1 and --warmup >= 0")
    return plan


def use_interpreter_without_gpu(device: str | None) -> None:
    """Without CUDA, Triton must run interpreted: set TRITON_INTERPRET=1 while triton is not
    yet imported (``import kernels``, even ``find_spec("kernels.x")``, imports it)."""
    cuda = torch.device(device).type == "cuda" if device else torch.cuda.is_available()
    if not cuda and "triton" not in sys.modules:
        os.environ.setdefault("TRITON_INTERPRET", "1")


def ensure_triton_mode(device: str) -> None:
    """ValueError unless Triton can run here: a GPU, or the interpreter (TRITON_INTERPRET=1
    set before triton was imported)."""
    if torch.device(device).type == "cuda":
        return
    use_interpreter_without_gpu(device)
    from kernels._common import is_interpreting

    if not is_interpreting():
        raise ValueError("no CUDA device, and Triton was imported without TRITON_INTERPRET=1: "
                         "set TRITON_INTERPRET=1 in the environment to check the triton variants on CPU")


def describe(plan: BenchPlan) -> str:
    v = ", ".join(x.label for x in plan.variants)
    return (f"device {plan.device}: variants [{v}] x precisions {plan.precisions} x batches {plan.batch_sizes} "
            f"x passes {plan.passes} x layouts {plan.layouts}; {len(plan.layers)} per-layer units at batch "
            f"{plan.layer_batch_size}; preset {plan.preset} width {plan.width_mult} input "
            f"{plan.input_size or 'preset'}; warmup {plan.warmup}, repeats {plan.repeats}, threads {plan.threads}")


def run(args: argparse.Namespace) -> int:
    use_interpreter_without_gpu(args.device)  # before anything imports triton
    if getattr(args, "suite", None) or getattr(args, "dry_run", False):  # GPU suite hook (profiling/gpu_suite.py)
        from profiling.gpu_suite import run as run_suite

        return run_suite(args)
    try:
        plan = plan_from_args(args)
        if any(v.uses_triton for v in plan.variants):
            ensure_triton_mode(plan.device)
    except ValueError as e:
        print(f"alexnet-fast bench: {e}", file=sys.stderr)
        return 2
    print(describe(plan), file=sys.stderr)
    from profiling.user_bench import make_harness  # Harness, or UserModelHarness for --model

    harness = make_harness(plan, args.output_dir, progress=False if args.no_progress else None)
    start = time.perf_counter()
    rows = harness.run()
    statuses = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(f"wrote {len(rows)} rows to {Path(args.output_dir) / 'results.csv'} (+ results.json) in "
          f"{time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
          file=sys.stderr)
    if statuses.get("error") or statuses.get("failed"):
        print("some cells failed their equivalence check or raised: see the status and note columns",
              file=sys.stderr)
        return 1 if args.strict else 0
    return 0
