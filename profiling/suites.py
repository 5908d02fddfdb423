"""Suites as data: what a GPU run measures and the cells it becomes.

A suite (:data:`SUITES`) is a :class:`SuiteSpec`; :func:`build_cells` turns it into an ordered
list of :class:`profiling.cell_types.Cell`, most informative first, each with its estimate
(:mod:`profiling.estimates`). The one engine (:class:`profiling.engine.Engine`) runs them;
``alexnet-fast bench --suite gpu-quick`` (:mod:`profiling.gpu_suite`) prints the plan and its
estimate first and skips a cell that would end past the budget. ``--smoke`` runs the same kinds
of cells at toy size (:func:`smoke_spec`), so CI executes every cell kind through the same
code. :func:`order_cells` orders the bench's own GPU plan the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from alexnet_fast.vocabulary import LAYER_PASSES, PASSES, PRECISIONS, TRITON_OPS, VARIANTS
from alexnet_fast.profiling.cell_types import LAYER_IMPLS, Cell
from alexnet_fast.profiling.estimates import (ANCHOR_MEASURE_S, AUTOTUNE_RECORD_S, CODEGEN_JOBS, CODEGEN_REFERENCE_SPECS,
                                 CODEGEN_SPEC_S, CODEGEN_WORKERS_START_S, DISPATCH_S, MEASURE_MODEL_S, PEAKS_S,
                                 PREFLIGHT_S, PYTEST_START_S, TWO_RANK_START_S, Tally, assumed_compiles,
                                 configs_tried, estimate, layer_estimate, model_estimate, profile_estimate)

# pytest -m gpu, bounded: the GPU tests that add most to the suite's own cells, most valuable
# first, each with its estimate (Triton compiles at the autotune limit of 2 configs). The cell
# runs the longest prefix whose estimate fits its cap (and the budget left).
PYTEST_GPU_TESTS: tuple[tuple[str, float], ...] = (
    ("tests/test_timers.py::test_cuda_events_time_device_work", 1.0),
    ("tests/test_codegen_launch.py::test_launch_specialization_equals_a_real_launch_on_this_gpu", 2.0),
    ("tests/test_conv2d_relu.py::test_alexnet_layers_gpu[conv2-nhwc-tf32]", 10.0),  # fwd+dgrad+wgrad, TF32
    ("tests/test_conv2d_relu.py::test_alexnet_layers_gpu[conv1-nchw-fp32]", 8.0),  # the FMA (ieee) path, NCHW
    ("tests/test_gpu_ops.py::test_lrn_max_pool2d_gpu[96x55x55-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_lrn_gpu[256x27x27-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_max_pool2d_gpu[256x13x13-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_triton_variant_matches_eager_gpu[triton-nchw-tf32]", 30.0),
)



@dataclass(frozen=True)
class SuiteSpec:
    """What one suite measures (data; :func:`build_cells` makes the cells)."""

    name: str
    description: str
    preset: str = "paper"
    width_mult: float = 1.0
    input_size: int | None = None
    layer_batch: int = 128
    # (precision, implementations, units (None: every unit of layer_ops)) in run order; the first
    # entry's cells run before the whole-model cells, the torch.compile ones after them and the
    # others last. Two compiles per unit make a torch.compile cell ~9 s: it runs on the fused
    # LRN+pool pair (inductor fuses the two itself). Within the 480 s budget, bf16 only: the fp16
    # path is bf16's with another dtype (the pytest cell checks its numerics; `alexnet-fast bench
    # --precision fp16 --layer conv3+relu3` times it).
    layer_matrix: tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None], ...] = (
        ("bf16", ("triton", "eager-nchw", "eager-nhwc"), None),
        ("bf16", ("compile",), ("lrn1+pool1",)),
        # paper conv2 -> ReLU -> LRN -> pool as one unit (profiling.flops.chain_units): LRN in the
        # conv's epilogue, then the pool (triton) vs conv + ReLU, then LRN + pool vs eager
        ("bf16", ("triton", "triton-lrn-apart", "eager-nhwc"), ("conv2+relu2+lrn2+pool2",)),
    )
    layer_passes: tuple[str, ...] = LAYER_PASSES
    layer_ops: tuple[str, ...] = TRITON_OPS
    anchor_model: str | None = "alexnet_fast.examples:kernelbench_alexnet"
    # KernelBench publishes eager and torch.compile; triton is ours at their shapes (triton+compile,
    # ~29 s more, is left to the batch-128 model cells to keep the suite within its budget)
    anchor_variants: tuple[str, ...] = ("eager", "compile", "triton")
    anchor_batch: int = 1024
    model_variants: tuple[str, ...] = VARIANTS
    model_precision: str = "bf16"
    model_batch: int = 128
    model_passes: tuple[str, ...] = PASSES
    # each whole-model cell profiled once right after it (a compiled one reuses its compiled model):
    # the traces go into the bundle's one archive (profiling.gpu_suite.PROFILE_ARCHIVE)
    profile_models: bool = True
    profile_only: tuple[tuple[str, str], ...] | None = None  # (variant, pass) of the model cells to profile; None: all
    profile_steps: int = 3
    profile_warmup: int = 1
    dispatch_units: tuple[str, ...] = ("conv3+relu3", "lrn2", "pool5", "lrn2+pool2")
    # two ranks sharing the one GPU: the paper's column split (its own collectives and LRN halo on
    # CUDA tensors); data_parallel is PyTorch's DDP (add it with --kinds/--budget-s to spare)
    layouts: tuple[str, ...] = ("model_parallel",)
    layout_variants: tuple[str, ...] = ("triton",)
    layout_batch: int = 128
    layout_pass: str = "train"
    autotune_max_configs: int | None = 2  # first N entries of each config table; None: all
    codegen_max_specs: int = 16
    pytest_tests: tuple[tuple[str, float], ...] = PYTEST_GPU_TESTS
    pytest_cap_s: float = 30.0
    peak_gemm_n: int | None = None
    peak_copy_mib: int | None = None
    warmup: int = 5
    repeats: int = 20
    budget_s: float = 480.0  # one command of at most 10 minutes on a lent GPU, with its start and margin
    compile_backend: str = "inductor"
    smoke: bool = False


SUITES: dict[str, SuiteSpec] = {
    "gpu-quick": SuiteSpec(
        name="gpu-quick",
        description=("preflight; per layer at batch 128 (paper AlexNet), bf16, forward and backward: "
                     "Triton (channels-last) vs PyTorch eager / cuDNN (NCHW and channels-last) vs torch.compile, "
                     "kernel time apart from dispatch, and paper conv2 -> ReLU -> LRN -> pool with LRN in the conv's "
                     "epilogue; KernelBench's AlexNet at batch 1024 fp32 (eager, compile, triton) beside its published H100 figures; the whole model at batch 128 in "
                     "bf16 (inference and a training step), each profiled once (torch.profiler traces and tables); the ops' host cost; the autotuner's choices and their "
                     "codegen; the two-rank layouts on one GPU (equivalence and CUDA code path only); a bounded "
                     "pytest -m gpu"),
    ),
}


SMOKE_UNITS = ("conv2+relu2", "lrn1", "pool5", "lrn1+pool1")


def smoke_spec(spec: SuiteSpec) -> SuiteSpec:
    """The same kinds of cells at toy size, for a CPU in CI (``--smoke``): the paper AlexNet
    at width 1/8 and 67x67, batch 2 (the whole model: 1), one unit per Triton op (conv2 launches forward, dgrad
    and wgrad), the Triton interpreter in fp16 (it has no bf16) and eager / compile in fp32
    (PyTorch has no CPU half-precision LRN), KernelBench's AlexNet at width 1/16 and 63x63,
    the model_parallel layout in eager, profiles of the inference cells and of eager / compile
    training (one step, no warm-up: an interpreted training step takes ~10 s), two pytest tests (skipped without a GPU: the cell's
    subprocess, timeout and junit file are what runs), codegen of one spec per kernel kind.
    torch.compile runs with the ``aot_eager`` backend: the same dynamo frames, guards,
    recompiles and AOT autograd through the custom ops' fake and autograd registrations as with
    inductor, without inductor's C++ code generation, which would take minutes on a 2-core CI
    machine (inductor itself is covered by the engine's other tests and the preflight)."""
    return replace(
        spec, name=f"{spec.name}-smoke", smoke=True, width_mult=0.125, input_size=67, layer_batch=2,
        layer_matrix=(("fp16", ("triton",), SMOKE_UNITS), ("fp32", ("compile",), ("pool5",)),
                      ("fp32", ("eager-nchw", "eager-nhwc"), SMOKE_UNITS),
                      # the chain in fp32: in fp16 its conv reroutes the pool's argmax past the floor
                      ("fp32", ("triton", "triton-lrn-apart", "eager-nhwc"), ("conv2+relu2+lrn2+pool2",))),
        anchor_model="alexnet_fast.examples:small_kernelbench_alexnet", anchor_variants=("eager", "compile", "triton"),
        anchor_batch=2, model_variants=VARIANTS, model_precision="fp32",
        model_batch=1, model_passes=PASSES, profile_steps=1, profile_warmup=0, dispatch_units=SMOKE_UNITS,
        profile_only=tuple((v, "inference") for v in VARIANTS) + (("eager", "train"), ("compile", "train")),
        layouts=("model_parallel",), layout_batch=2, layout_variants=("eager",), codegen_max_specs=6,
        pytest_tests=spec.pytest_tests[:2], pytest_cap_s=60.0, peak_gemm_n=128, peak_copy_mib=4, warmup=1, repeats=2,
        budget_s=1200.0, compile_backend="aot_eager",
        description=f"{spec.name} at toy size on any machine (every cell kind through the same code): " + spec.description)


def get_suite(name: str, *, smoke: bool = False) -> SuiteSpec:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return smoke_spec(SUITES[name]) if smoke else SUITES[name]


def _config(spec: SuiteSpec):
    from alexnet_fast.model import make_config

    return make_config(spec.preset, width_mult=spec.width_mult, input_size=spec.input_size)


def _units(config):
    from alexnet_fast.profiling.flops import layer_units

    return layer_units(config)


def _chains(config):
    from alexnet_fast.profiling.flops import chain_units

    return chain_units(config)


def layer_cells(spec: SuiteSpec, tally: Tally) -> list[Cell]:
    """One cell per (precision, implementation, unit); each runs every pass of the suite."""
    all_units = [u for u in _units(_config(spec)) if u.op in spec.layer_ops]
    chains = _chains(_config(spec))  # timed only where the matrix names them
    cells, tries = [], configs_tried(spec.autotune_max_configs)
    for precision, impls, names in spec.layer_matrix:
        units = [u for u in all_units if names is None or u.name in names] + [u for u in chains if names
                                                                               and u.name in names]
        for impl in impls:
            for unit in units:
                params = {"unit": unit.name, "op": unit.op, "precision": precision, "impl": impl,
                          "passes": list(spec.layer_passes), "batch_size": spec.layer_batch, "preset": spec.preset,
                          "width_mult": spec.width_mult, "input_size": spec.input_size}
                cells.append(Cell("layer", f"{unit.name} {precision} {impl}",
                                  layer_estimate(unit, impl, precision, spec.layer_passes, spec.layer_batch, tally,
                                                 tries),
                                  params, assumed_compiles("layer", params)))
    return cells


def _model_cell(kind: str, spec: SuiteSpec, variant: str, precision: str, batch: int, pass_: str, tally: Tally,
                *, model: str | None = None, tf32: str = "policy", layout: str = "single",
                triton_tuned: bool = True, interpreted: bool = False) -> Cell:
    params = {"variant": variant, "compile_mode": "default", "precision": precision, "batch_size": batch,
              "pass": pass_, "layout": layout, "preset": spec.preset, "width_mult": spec.width_mult,
              "input_size": spec.input_size, "model": model, "tf32": tf32}
    if model is not None:
        params.update(preset=None, width_mult=None, input_size=None)
    units = _units(_config(spec)) if model is None else ()
    tries = configs_tried(spec.autotune_max_configs)
    est = model_estimate(variant, pass_, triton_tuned=triton_tuned, tally=tally, n_configs=tries, units=units, batch=batch, precision=precision,
                         measure_s=ANCHOR_MEASURE_S if kind == "anchor" else MEASURE_MODEL_S)
    if kind == "anchor" and variant.startswith("triton"):
        # its own shapes (batch 1024, no LRN, fp32-as-TF32): 5 conv forwards and 3 pools to compile and tune
        for i in range(1, 6):
            est += tally.triton("conv2d_relu", "fwd", f"kb conv{i} b{batch}", "tf32", tries)
        for i in (1, 2, 5):
            est += tally.triton("max_pool2d", "fwd", f"kb pool{i} b{batch}", "tf32", tries)
    if layout != "single":
        est += TWO_RANK_START_S
    name = f"{variant} {precision}{' (TF32 as PyTorch defaults)' if tf32 == 'defaults' else ''} b{batch} {pass_}"
    if model is not None:
        name = f"{model.split(':')[-1]} {name}"
    if layout != "single":
        name = f"{layout} {name} (2 ranks, 1 GPU)"
    kind_compiles = "model" if kind == "anchor" else kind
    return Cell(kind, name, round(est, 2), params, assumed_compiles(kind_compiles, params, interpreted))


def profile_cell(spec: SuiteSpec, model: Cell, first: bool, interpreted: bool = False) -> Cell:
    """The whole-model cell ``model`` under torch.profiler, once: ``spec.profile_steps`` steps,
    reusing the model cell's compiled model (``reuse``: it never compiles again)."""
    p = model.params
    params = {**{k: p[k] for k in ("variant", "compile_mode", "precision", "batch_size", "pass", "preset",
                                   "width_mult", "input_size", "model")},
              "compile_scope": "model", "steps": spec.profile_steps, "warmup": spec.profile_warmup, "reuse": True,
              "size": f"{spec.preset} AlexNet, width {spec.width_mult:g}"}
    return Cell("profile", f"{model.name} under torch.profiler", profile_estimate(params, first), params,
                assumed_compiles("profile", params, interpreted))


def build_cells(spec: SuiteSpec | str, *, interpreted: bool = False) -> list[Cell]:
    """The suite's cells in run order, most informative first: preflight and peaks; the
    per-layer comparison in the first precision (Triton vs eager); KernelBench's anchor; the
    whole model, each cell followed by its profile; the ops' host cost (after the layer cells tuned their shapes); the
    per-layer torch.compile cells; the autotuner's choices and their codegen; the two-rank
    layouts; the bounded GPU tests; then the other precisions' per-layer cells. A budget cut
    loses the least informative cells."""
    spec = get_suite(spec) if isinstance(spec, str) else spec
    tally = Tally()
    cells = [Cell("preflight", "versions, device, toolchain, a Triton kernel and a compile", PREFLIGHT_S, {},
                  assumed_compiles("preflight", {})),
             Cell("peaks", "datasheet or measured peaks", PEAKS_S,
                  {"gemm_n": spec.peak_gemm_n, "copy_mib": spec.peak_copy_mib})]
    layers = layer_cells(spec, tally)
    first = [c for c in layers if (c.params["precision"], c.params["impl"]) in
             {(spec.layer_matrix[0][0], impl) for impl in spec.layer_matrix[0][1]}]
    compiled = [c for c in layers if c not in first and LAYER_IMPLS[c.params["impl"]].variant.endswith("compile")]
    cells += first
    if spec.anchor_model:
        for variant in spec.anchor_variants:
            cells.append(_model_cell("anchor", spec, variant, "fp32", spec.anchor_batch, "inference", tally,
                                     model=spec.anchor_model, tf32="defaults", interpreted=interpreted))
    tuned = any(c.params["impl"].startswith("triton") and c.params["batch_size"] == spec.model_batch
                and c.params["precision"] == spec.model_precision for c in layers)
    for pass_ in spec.model_passes:
        for variant in spec.model_variants:
            cells.append(_model_cell("model", spec, variant, spec.model_precision, spec.model_batch, pass_, tally,
                                     triton_tuned=tuned, interpreted=interpreted))
            if spec.profile_models and (spec.profile_only is None or (variant, pass_) in spec.profile_only):
                cells.append(profile_cell(spec, cells[-1], first=not any(c.kind == "profile" for c in cells),
                                          interpreted=interpreted))
    if spec.dispatch_units:
        precision = spec.layer_matrix[0][0]
        cells.append(Cell("dispatch", f"host cost of the Triton ops vs aten, {precision} b{spec.layer_batch}",
                          DISPATCH_S * len(spec.dispatch_units),
                          {"units": list(spec.dispatch_units), "precision": precision, "batch_size": spec.layer_batch,
                           "preset": spec.preset, "width_mult": spec.width_mult, "input_size": spec.input_size}))
    cells += compiled
    cells.append(Cell("autotune", "record the autotuners' chosen configs", AUTOTUNE_RECORD_S))
    if spec.codegen_max_specs:
        cells.append(Cell("codegen", "compile the launched kernels' configs for this arch",
                          round(CODEGEN_WORKERS_START_S + math.ceil((spec.codegen_max_specs + CODEGEN_REFERENCE_SPECS)
                                                                    / CODEGEN_JOBS) * CODEGEN_SPEC_S, 1),
                          {"max_specs": spec.codegen_max_specs}))
    for variant in spec.layout_variants:
        for layout in spec.layouts:
            cell = _model_cell("layout", spec, variant, spec.model_precision, spec.layout_batch, spec.layout_pass,
                               tally, layout=layout)
            cells.append(replace(cell, params={**cell.params, "share_gpu": True}, compiles=None))
    if spec.pytest_tests:
        cells.append(Cell("pytest", f"pytest -m gpu, bounded ({len(spec.pytest_tests)} tests at most)",
                          round(PYTEST_START_S + sum(s for _, s in pytest_selection(spec.pytest_tests,
                                                                                   spec.pytest_cap_s)), 1),
                          {"tests": [list(t) for t in spec.pytest_tests], "cap_s": spec.pytest_cap_s,
                           "autotune_max_configs": spec.autotune_max_configs}, None))
    cells += [c for c in layers if c not in cells]
    return cells


def pytest_selection(tests: Sequence[Sequence], cap_s: float) -> list[tuple[str, float]]:
    """The longest prefix of ``tests`` ((node id, estimate s), most valuable first) whose
    estimate with pytest's start fits ``cap_s``."""
    out, total = [], PYTEST_START_S
    for node, est in tests:
        if total + est > cap_s:
            break
        out.append((node, float(est)))
        total += est
    return out


def describe_plan(spec: SuiteSpec, cells: Sequence[Cell], budget_s: float | None, device: str) -> str:
    by_kind: dict[str, tuple[int, float]] = {}
    for c in cells:
        n, s = by_kind.get(c.kind, (0, 0.0))
        by_kind[c.kind] = (n + 1, s + c.estimate_s)
    budget = "no budget" if budget_s is None else f"a budget of {budget_s:.0f} s"
    lines = [f"suite {spec.name} on {device}: {spec.description}",
             f"{len(cells)} cells; estimated {estimate(cells):.0f} s ({estimate(cells) / 60:.1f} min) against {budget}",
             "  " + "; ".join(f"{k} {n} cells ~{s:.0f} s" for k, (n, s) in by_kind.items())]
    lines += ["  " + c.describe() for c in cells]
    return "\n".join(lines)


# ------------------------------------------------------------------ the full GPU default of `bench`
PRECISION_ORDER = tuple(reversed(PRECISIONS))  # bf16 first
BATCH_ORDER = (128, 256, 32, 1)


def _rank(value, order: Sequence) -> int:
    return order.index(value) if value in order else len(order)


def cell_priority(cell: Cell) -> tuple:
    """Sort key of a bench cell, most informative first: peaks, then the headline cells
    (bf16, batch 128, every variant) before the per-layer breakdown, then other precisions
    and batches; max-autotune (slow to compile, a refinement) and the multi-device layouts last."""
    what = cell.what
    if cell.kind == "peaks":
        return (0,)
    mode = what.get("compile_mode", "default") or "default"
    return (1,
            what.get("layout", "single") != "single",
            mode not in ("default", "-"),
            _rank(what.get("precision"), PRECISION_ORDER),
            cell.kind == "layer",
            _rank(what.get("batch_size", 128), BATCH_ORDER),
            _rank(what.get("pass", "inference"), ("inference", "train", "fwd", "bwd")))


def order_cells(cells: list[Cell]) -> list[Cell]:
    """A bench plan's cells reordered by :func:`cell_priority` (stable)."""
    return sorted(cells, key=cell_priority)
