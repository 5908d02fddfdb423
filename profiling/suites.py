"""Benchmark suites as data, the cells they run, and how long they will take.

A *suite* (:data:`SUITES`) says what a GPU run measures; :func:`build_cells` turns it into
an ordered list of :class:`Cell` (most informative first), each with an estimated duration
from the constants below. ``alexnet-fast bench --suite gpu-quick`` (``profiling/gpu_suite.py``)
prints that plan and estimate before it starts, and stops starting cells once the next one
would take the run past its budget. ``--dry-run`` prints the plan on any machine.

The same constants give the estimate of the full GPU default of ``alexnet-fast bench``
(:func:`estimate_jobs`) and its job order (:func:`order_jobs`).

Where the constants come from (no GPU was available when they were set; every one is a
stated, conservative assumption, to be replaced by the ``elapsed_s`` the first GPU run
records per cell in ``reports/gpu/<device>/results.json``):

* inductor compile time of the whole AlexNet: measured on this project's CPU machine
  (``reports/results.json``, 2-core EPYC, cold inductor cache): 4-10 s for inference,
  10.5-12 s for a training step. A CUDA compile generates Triton kernels and runs ptxas on
  each instead of one C++ file, and inductor compiles them in parallel workers; we assume
  2.5x the CPU figure (25 s inference, 45 s train) -- PyTorch's own dashboard
  (hud.pytorch.org, "TorchInductor performance", compilation latency) reports tens of
  seconds per torchbench CNN on A100/H100, consistent with this.
* max-autotune: inductor benchmarks its conv/GEMM templates (every candidate compiled and
  timed); assumed 5x default mode.
* Triton compile of one of our kernel configs: ``reports/codegen.csv`` (triton 3.8, cold
  cache, sm_90): LRN/pool kernels 0.13-0.63 s; the conv kernels' cold compiles are not in
  that file (cache hits), assumed 2 s (6x more PTX than the pool kernels).
* autotune benchmark per config and key: ``triton.testing.do_bench`` defaults (25 ms
  warm-up + 100 ms of repeats) plus launch overhead: 0.2 s.
* one measured timing: the harness's warm-up + repeats of a <= 10 ms call, plus the
  equivalence check: 0.3 s per layer pass (25 calls of a <= 5 ms op + the judge, ~10x margin),
  2 s per whole-model cell, plus 2 s for its eager fp32 and fp64 references (each harness
  cell computes its own).
* starting a Python process that imports torch: 8 s; a two-rank launch: 2 processes + the
  process group: 20 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# ------------------------------------------------------------------ estimate constants (see above)
COMPILE_MODEL_S = {"inference": 25.0, "train": 45.0}   # inductor, default mode, whole AlexNet
MAX_AUTOTUNE_FACTOR = 5.0                               # max-autotune vs default compile
COMPILE_LAYER_S = {"fwd": 3.0, "bwd": 5.0}             # inductor, one conv+ReLU / LRN / pool unit
TRITON_COMPILE_S = {"conv_relu": 2.0, "lrn": 0.4, "pool": 0.3, "lrn_pool": 0.6}  # one config, one dtype
AUTOTUNE_BENCH_S = 0.2                                  # one config timed for one autotune key
MEASURE_LAYER_S = 0.3                                   # one per-layer pass timed + judged
REFERENCE_LAYER_S = 0.5                                 # eager fp32 + fp64 reference of one unit, both passes
MEASURE_MODEL_S = 2.0                                   # one whole-model cell timed + judged
REFERENCE_MODEL_S = 2.0                                 # eager fp32 + fp64 reference of one pass (per cell)
EAGER_SETUP_S = 0.5                                     # build a variant, cuDNN benchmark picks
PROCESS_START_S = 8.0                                   # python + import torch
TWO_RANK_START_S = 20.0                                 # two processes + process group
CODEGEN_SPEC_S = 1.5                                    # one codegen compile + cuobjdump
PYTEST_GPU_S = 80.0                                     # `pytest -m gpu` (cap: the suite's pytest_timeout_s)
MAX_CODEGEN_SPECS = 16                                  # chosen configs compiled (the rest listed, not compiled)
PEAKS_S = 2.0                                           # datasheet lookup, or a short GEMM/copy measure

# Triton kernels each op launches per pass (autotune keys per shape and dtype).
TRITON_KERNELS = {
    "conv_relu": {"fwd": 1, "bwd": 2},   # fwd; dgrad + wgrad (conv1: wgrad only)
    "lrn": {"fwd": 1, "bwd": 1},
    "pool": {"fwd": 1, "bwd": 1},
    "lrn_pool": {"fwd": 1, "bwd": 1},
}
TRITON_CONFIGS_PER_TABLE = 3  # entries per layout in kernels/configs.py (before pruning)

# Per-layer implementations: name -> (what it is, memory format of input and weights).
LAYER_IMPLS: dict[str, tuple[str, str]] = {
    "triton": ("Triton kernels (kernels/), channels-last", "nhwc"),
    "triton-nchw": ("Triton kernels (kernels/), NCHW", "nchw"),
    "eager-nchw": ("PyTorch eager (cuDNN for conv), NCHW", "nchw"),
    "eager-nhwc": ("PyTorch eager (cuDNN for conv), channels-last", "nhwc"),
    "compile": ("torch.compile default mode, NCHW", "nchw"),
}
LAYER_PASSES = ("fwd", "bwd")
KINDS = ("peaks", "layer", "model", "autotune", "codegen", "layout", "pytest")


@dataclass(frozen=True)
class SuiteSpec:
    """What one suite measures (all fields data; :func:`build_cells` makes the cells)."""

    name: str
    description: str
    layer_batch: int = 128
    layer_precisions: tuple[str, ...] = ("bf16", "fp16")
    layer_passes: tuple[str, ...] = LAYER_PASSES
    layer_ops: tuple[str, ...] = ("conv_relu", "lrn", "pool", "lrn_pool")
    layer_impls: tuple[str, ...] = ("triton", "eager-nchw", "eager-nhwc", "compile")
    compile_layer_precisions: tuple[str, ...] = ("bf16",)  # torch.compile per-layer cells (compile time)
    # ops whose torch.compile per-layer cells run: the separate LRN and pool are left to the
    # fused pair (inductor fuses the two itself), to keep the compile time in budget
    compile_layer_ops: tuple[str, ...] = ("conv_relu", "lrn_pool")
    model_variants: tuple[str, ...] = ("eager", "compile", "triton", "triton+compile")
    model_precision: str = "bf16"
    model_batch: int = 128
    model_passes: tuple[str, ...] = ("inference", "train")
    layouts: tuple[str, ...] = ("data_parallel", "model_parallel")
    layout_variants: tuple[str, ...] = ("triton",)
    layout_batch: int = 128
    layout_pass: str = "train"
    autotune_max_configs: int | None = 2  # first N entries of each config table; None: all
    codegen: bool = True
    pytest_gpu: bool = True
    pytest_timeout_s: float = 80.0
    warmup: int = 5
    repeats: int = 20
    budget_s: float = 570.0  # under 10 minutes with the Python start and the report


SUITES: dict[str, SuiteSpec] = {
    "gpu-quick": SuiteSpec(
        name="gpu-quick",
        description=("per layer at batch 128 (paper AlexNet), bf16 and fp16, forward and backward: Triton "
                     "(channels-last) vs PyTorch eager / cuDNN (NCHW and channels-last) vs torch.compile; the "
                     "whole model at batch 128 in bf16 (inference and a training step) for eager, compile, "
                     "triton, triton+compile; the autotuner's choices and their codegen; NVML telemetry; the "
                     "two-rank layouts on one GPU (equivalence and CUDA code path only); pytest -m gpu"),
    ),
}


@dataclass(frozen=True)
class Cell:
    """One unit of work of a suite, with its estimated duration in seconds."""

    kind: str
    name: str
    estimate_s: float
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        return f"{self.kind:8s} {self.name:48s} ~{self.estimate_s:6.1f} s"


def get_suite(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return SUITES[name]


def _layer_units(preset: str = "paper"):
    from alexnet_fast.model import make_config
    from profiling.flops import layer_units

    return layer_units(make_config(preset))


def triton_cost(op: str, pass_: str, n_configs: int, first_use: bool) -> float:
    """Autotuning one op's kernels for one shape: every config benchmarked per kernel, and
    compiled the first time the op runs in this dtype and layout."""
    kernels = TRITON_KERNELS[op][pass_]
    cost = kernels * n_configs * AUTOTUNE_BENCH_S
    if first_use:
        cost += kernels * n_configs * TRITON_COMPILE_S[op]
    return cost


def _configs(spec: SuiteSpec) -> int:
    n = TRITON_CONFIGS_PER_TABLE
    return n if spec.autotune_max_configs is None else min(n, spec.autotune_max_configs)


def layer_cells(spec: SuiteSpec) -> list[Cell]:
    """One cell per (unit, precision, implementation); each times every pass of the suite.
    Order: precision, then implementation (Triton first), then the network's layer order."""
    units = [u for u in _layer_units() if u.op in spec.layer_ops]
    cells, compiled_once, referenced = [], set(), set()
    n_configs = _configs(spec)
    for precision in spec.layer_precisions:
        for impl in spec.layer_impls:
            if impl == "compile" and precision not in spec.compile_layer_precisions:
                continue
            for unit in units:
                if impl == "compile" and unit.op not in spec.compile_layer_ops:
                    continue
                est = EAGER_SETUP_S
                if (unit.name, precision) not in referenced:
                    est += REFERENCE_LAYER_S
                    referenced.add((unit.name, precision))
                for pass_ in spec.layer_passes:
                    est += MEASURE_LAYER_S
                    if impl.startswith("triton"):
                        key = (unit.op, pass_, precision, LAYER_IMPLS[impl][1])
                        est += triton_cost(unit.op, pass_, n_configs, key not in compiled_once)
                        compiled_once.add(key)
                    elif impl == "compile":
                        est += COMPILE_LAYER_S[pass_]
                cells.append(Cell("layer", f"{unit.name} {precision} {impl}", round(est, 2),
                                  {"unit": unit.name, "op": unit.op, "precision": precision, "impl": impl,
                                   "passes": list(spec.layer_passes), "batch_size": spec.layer_batch}))
    return cells


def model_cell_estimate(variant: str, pass_: str, compile_mode: str = "default", *, triton_tuned: bool = True,
                        n_configs: int = TRITON_CONFIGS_PER_TABLE) -> float:
    """One whole-model cell: build, compile (compiled variants), autotune (triton, unless the
    per-layer cells already tuned these shapes in this process), check and time."""
    est = EAGER_SETUP_S + MEASURE_MODEL_S
    if variant.endswith("compile"):
        est += COMPILE_MODEL_S[pass_] * (MAX_AUTOTUNE_FACTOR if compile_mode.startswith("max-autotune") else 1.0)
    if variant.startswith("triton") and not triton_tuned:
        passes = ("fwd",) if pass_ == "inference" else ("fwd", "bwd")
        units = [u for u in _layer_units() if u.op in TRITON_KERNELS and not u.fused_pair or u.op == "lrn_pool"]
        est += sum(triton_cost(u.op, p, n_configs, True) for u in units for p in passes)
    return round(est, 2)


def build_cells(spec: SuiteSpec | str) -> list[Cell]:
    """The suite's cells in run order, most informative first: the per-layer Triton vs
    baseline comparison in the first precision (bf16), the whole model, the per-layer cells
    of the other precisions, the autotuner's choices and their codegen, the two-rank
    layouts, then the GPU test-suite."""
    spec = get_suite(spec) if isinstance(spec, str) else spec
    cells = [Cell("peaks", "datasheet or measured peaks", PEAKS_S)]
    layers = layer_cells(spec)
    first = [c for c in layers if c.params["precision"] == spec.layer_precisions[0]]
    cells += first  # the first precision's per-layer comparison, then the whole model, then the rest
    for pass_ in spec.model_passes:
        for variant in spec.model_variants:
            cells.append(Cell("model", f"{variant} {spec.model_precision} b{spec.model_batch} {pass_}",
                              REFERENCE_MODEL_S + model_cell_estimate(variant, pass_,
                                                                      triton_tuned=bool(spec.layer_impls)),
                              {"variant": variant, "precision": spec.model_precision,
                               "batch_size": spec.model_batch, "pass": pass_}))
    cells += [c for c in layers if c not in first]
    if spec.codegen or spec.autotune_max_configs is not None:
        cells.append(Cell("autotune", "record the autotuner's chosen configs", 0.5))
    if spec.codegen:
        n_kernels = sum(TRITON_KERNELS[op][p] for op in spec.layer_ops for p in spec.layer_passes)
        n_shapes = sum(1 for u in _layer_units() if u.op in spec.layer_ops)
        # distinct chosen configs: at most (kernel, dtype, config); bounded by the kernels x configs
        chosen = min(n_kernels * len(spec.layer_precisions) * _configs(spec), n_shapes * 2 * len(spec.layer_precisions),
                     MAX_CODEGEN_SPECS)
        cells.append(Cell("codegen", "compile the chosen configs for this arch", round(chosen * CODEGEN_SPEC_S, 1),
                          {"max_specs": chosen}))
    for variant in spec.layout_variants:
        for layout in spec.layouts:
            est = TWO_RANK_START_S + MEASURE_MODEL_S * 2 + REFERENCE_MODEL_S
            cells.append(Cell("layout", f"{layout} {variant} {spec.model_precision} b{spec.layout_batch} "
                                        f"{spec.layout_pass} (2 ranks, 1 GPU)", est,
                              {"layout": layout, "variant": variant, "precision": spec.model_precision,
                               "batch_size": spec.layout_batch, "pass": spec.layout_pass}))
    if spec.pytest_gpu:
        cells.append(Cell("pytest", "pytest -m gpu", min(PYTEST_GPU_S, spec.pytest_timeout_s) + PROCESS_START_S,
                          {"timeout_s": spec.pytest_timeout_s}))
    return cells


def estimate(cells: Iterable[Cell], *, startup_s: float = PROCESS_START_S) -> float:
    """Seconds the cells take, with the Python start of the run."""
    return round(startup_s + sum(c.estimate_s for c in cells), 1)


def describe_plan(spec: SuiteSpec, cells: Sequence[Cell], budget_s: float, device: str) -> str:
    by_kind: dict[str, tuple[int, float]] = {}
    for c in cells:
        n, s = by_kind.get(c.kind, (0, 0.0))
        by_kind[c.kind] = (n + 1, s + c.estimate_s)
    lines = [f"suite {spec.name} on {device}: {spec.description}",
             f"{len(cells)} cells; estimated {estimate(cells):.0f} s ({estimate(cells) / 60:.1f} min) "
             f"against a budget of {budget_s:.0f} s",
             "  " + "; ".join(f"{k} {n} cells ~{s:.0f} s" for k, (n, s) in by_kind.items())]
    lines += ["  " + c.describe() for c in cells]
    return "\n".join(lines)


# ------------------------------------------------------------------ the full GPU default of `bench`
PRECISION_ORDER = ("bf16", "fp16", "tf32", "fp32")
BATCH_ORDER = (128, 256, 32, 1)


def job_estimate(what: dict[str, Any]) -> float:
    """Estimated seconds of one harness job (``Harness.jobs()``'s ``what``)."""
    scope = what.get("scope")
    if scope == "peak":
        return PEAKS_S
    variant = what.get("variant", "eager")
    mode = what.get("compile_mode", "default") or "default"
    if scope == "layer":  # the harness's per-layer job: every unit, forward only
        units = _layer_units()
        est = 0.0
        for u in units:
            est += MEASURE_LAYER_S
            if variant.endswith("compile"):
                est += COMPILE_LAYER_S["fwd"] * (MAX_AUTOTUNE_FACTOR if mode.startswith("max-autotune") else 1.0)
            if variant.startswith("triton") and u.op in TRITON_KERNELS:
                est += triton_cost(u.op, "fwd", TRITON_CONFIGS_PER_TABLE, True)
        return round(est, 1)
    pass_ = what.get("pass", "inference")
    est = model_cell_estimate(variant, pass_, mode, triton_tuned=False)
    if what.get("layout", "single") != "single":
        est += TWO_RANK_START_S
    return est + REFERENCE_MODEL_S


def _rank(value, order: Sequence) -> int:
    return order.index(value) if value in order else len(order)


def job_priority(what: dict[str, Any]) -> tuple:
    """Sort key, most informative first: peaks, then the headline cells (bf16, batch 128,
    every variant) before the per-layer breakdown, then other precisions and batches;
    max-autotune (slow to compile, a refinement) and the multi-device layouts last."""
    scope = what.get("scope")
    if scope == "peak":
        return (0,)
    mode = what.get("compile_mode", "default") or "default"
    return (1,
            what.get("layout", "single") != "single",
            mode not in ("default", "-"),
            _rank(what.get("precision"), PRECISION_ORDER),
            scope == "layer",
            _rank(what.get("batch_size", 128), BATCH_ORDER),
            _rank(what.get("pass", "inference"), ("inference", "train")))


def order_jobs(jobs: list[tuple[dict, Any]]) -> list[tuple[dict, Any]]:
    """``Harness.jobs()`` reordered by :func:`job_priority` (stable)."""
    return sorted(jobs, key=lambda job: job_priority(job[0]))


def estimate_jobs(whats: Iterable[dict[str, Any]]) -> float:
    return round(PROCESS_START_S + sum(job_estimate(w) for w in whats), 1)


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def ceil_minutes(seconds: float) -> int:
    return int(math.ceil(seconds / 60))
