"""Suites as data: what a GPU run measures, the cells it becomes, and how long they take.

A suite (:data:`SUITES`) is a :class:`SuiteSpec`: plain data. :func:`build_cells` turns it
into an ordered list of :class:`Cell` -- kind, name, parameters, estimated seconds and the
number of torch.compile compiles the cell is assumed to make -- most informative first. The
one engine (:class:`profiling.engine.Engine`) runs them; ``alexnet-fast bench --suite
gpu-quick`` (``profiling/gpu_suite.py``) prints this plan and its estimate before it starts
and skips a cell that would end past the budget. ``--smoke`` runs the same kinds of cells at
toy size (:func:`smoke_spec`), so CI executes every cell kind through the same code.

Kinds of cells (each a method ``cell_<kind>`` of the engine): ``preflight``, ``peaks``,
``layer`` (one unit, one implementation of :data:`LAYER_IMPLS`, one precision, forward and
backward), ``anchor`` (KernelBench's AlexNet through the ``--model`` path), ``model`` (the
whole AlexNet), ``dispatch`` (the Triton ops' host cost with the launch stubbed),
``autotune``, ``codegen``, ``layout`` (two ranks sharing the GPU) and ``pytest``.

The estimate
------------
A cell's estimate is the sum of the constants of :data:`CONSTANTS` for what it does; each
constant says where it comes from. None was measured on a GPU yet (no GPU was available when
they were set): they are CPU measurements of this project scaled by a stated factor, Triton's
own compile figures, or arithmetic on the work. Every cell records ``elapsed_s`` and the
compiles it really made (``compiles``, counted with dynamo's counters), and REPORT.md lists
estimated against measured seconds, so the first GPU run corrects them. The estimate counts
every torch.compile compile a cell makes (:func:`assumed_compiles`): a test runs the smoke
cells on CPU and checks each cell's count against dynamo's ``frames ok`` counter (a training
cell compiles twice: the eval-mode equivalence check, then the train-mode step; a per-layer
cell twice: the no-grad forward, then the forward with grad whose backward graph compiles
with it).

H100 and H200 get the same estimate: the same GH100 compute (132 SMs) and the same
compilers; the H200's faster HBM shortens only the timed calls, a few percent of a cell.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from alexnet_fast.vocabulary import LAYER_PASSES, PASSES, PRECISIONS, TRITON_OPS, VARIANTS, layer_passes_of

# ------------------------------------------------------------------ estimate constants
@dataclass(frozen=True)
class Constant:
    """One number of the estimate and how it was derived."""

    value: float
    derivation: str


CONSTANTS: dict[str, Constant] = {
    "PROCESS_START_S": Constant(8.0, "python3 + import torch/triton (+ our modules) on a cold page cache: 3-5 s "
                                     "measured on this project's CPU machine; x1.6 for a GPU image's CUDA libraries"),
    "PREFLIGHT_S": Constant(8.0, "one tiny Triton kernel (compile ~0.3 s + launcher build with gcc ~1 s) and one "
                                 "tiny torch.compile (inductor import ~2 s + one Triton kernel): ~4 s; x2 margin "
                                 "(the preflight's own limit is 10 s)"),
    "PEAKS_S": Constant(1.0, "a known GPU: a datasheet lookup (profiling/roofline.py); no measurement"),
    "EAGER_SETUP_S": Constant(0.3, "build a variant (deepcopy of a unit or model, build_variant) and its inputs: "
                                   "~0.05-0.2 s measured on CPU"),
    "REFERENCE_LAYER_S": Constant(0.5, "eager fp32 + fp64 (+ the cell's precision) forward and backward of one unit at "
                                       "batch 128: <= 0.2 TFLOP in fp64 (conv2), ~0.1 s on GH100's fp64; x5 margin"),
    "MEASURE_LAYER_S": Constant(0.4, "one pass timed: (5 warm-up + 20 timed) calls of a <= 5 ms unit with a 256 MB L2 "
                                     "flush each (~0.1 ms), CUDA-graph capture + 20 replays for the kernel time, "
                                     "the judge: ~0.2 s; x2 margin"),
    "TRITON_COMPILE_S": Constant(1.0, "one conv kernel config compiled cold for sm_90: 0.7-2.0 s, median 0.9 s "
                                      "(reports/codegen.csv, launch-faithful rows, triton 3.8); paid per conv layer "
                                      "(its strides, padding and channel counts specialize the JIT) and dtype"),
    "TRITON_COMPILE_SMALL_S": Constant(0.4, "one LRN / pool kernel config compiled cold for sm_90: 0.13-0.63 s "
                                            "(codegen check, triton 3.8); paid once per (kernel, dtype): AlexNet's "
                                            "LRN and pool layers share their specialization (channels divisible by "
                                            "16, pixel counts not)"),
    "TRITON_LAUNCHER_S": Constant(1.0, "Triton's C launcher built with gcc once per kernel signature (dtype): "
                                       "a ~200-line C file at -O3, ~0.5-1 s on a desktop CPU; not measured here "
                                       "(no libcuda to link against on the CPU machine)"),
    "AUTOTUNE_BENCH_S": Constant(0.2, "one config timed by the autotuner (triton.testing.do_bench: 25 ms warm-up + "
                                      "100 ms of repeats) plus launches: 0.2 s"),
    "COMPILE_LAYER_FRAME_S": Constant(4.0, "one torch.compile frame of one unit (forward, or forward + backward): "
                                           "1.2-2.5 s measured on CPU (reports/results.json, cold cache, one "
                                           "thread); x2 for Triton codegen + ptxas per kernel on a GPU"),
    "COMPILE_MODEL_INFERENCE_S": Constant(18.0, "one torch.compile frame of the whole AlexNet, inference: 10-24 s "
                                                "measured on CPU (reports/results.json, cold, one thread; median "
                                                "11 s); inductor compiles its Triton kernels in parallel workers on "
                                                "the GPU machine's 16 cores: assumed the CPU median x1.6"),
    "COMPILE_MODEL_TRAIN_S": Constant(30.0, "one torch.compile frame of the whole AlexNet with grad (forward + "
                                            "backward graphs): 22-28 s on CPU (reports/results.json: the train-mode "
                                            "frame alone); x1.2 (parallel kernel compiles offset the larger graphs)"),
    "COMPILE_TRITON_MODEL_FRAME_S": Constant(8.0, "one frame of the triton+compile AlexNet (convs, LRN and pools "
                                                  "are custom ops, extern to inductor: the graphs hold the FC "
                                                  "layers and glue): 2.6 s/frame inference, 13 s/frame train "
                                                  "measured on CPU at width 1/8 (this file's test); 8 s for both"),
    "MEASURE_MODEL_S": Constant(2.0, "one whole-model cell judged and timed: (5 + 20) calls of a <= 60 ms step "
                                     "(AlexNet b128 bf16 training on GH100: ~10-20 ms) + the judge; x2 margin"),
    "REFERENCE_MODEL_S": Constant(2.0, "eager fp32 + fp64 (+ the cell's precision) references of one model cell at "
                                       "batch 128: ~0.4 TFLOP in fp64, ~0.5 s; x4 margin"),
    "ANCHOR_MEASURE_S": Constant(6.0, "KernelBench AlexNet at batch 1024 fp32: (5 + 20) calls of ~24 ms (their "
                                      "eager H100 figure) = 0.6 s, references in fp32 and fp64 (2.3 TFLOP in fp64, "
                                      "~1-2 s) and the judge: ~3 s; x2 margin"),
    "TWO_RANK_START_S": Constant(20.0, "two spawned rank processes (python + torch + triton each: 8 s) + the gloo "
                                       "process group; plus their cell's references and compiles at batch 128"),
    "CODEGEN_WORKERS_START_S": Constant(8.0, "spawned codegen worker processes importing torch + triton + kernels/"),
    "CODEGEN_SPEC_S": Constant(2.0, "one spec compiled for sm_90 (TRITON_COMPILE_S) + cuobjdump and nvdisasm "
                                    "(~0.5 s), in CODEGEN_JOBS parallel workers; the reference GEMMs the conv rows "
                                    "are gated against add ~1 compile per distinct tile (counted as 4 more specs)"),
    "DISPATCH_S": Constant(0.5, "one unit's host paths (Triton stubbed, aten on meta), fwd + bwd, 25 calls each of "
                                "~50-300 us: < 0.1 s; x5 margin"),
    "AUTOTUNE_RECORD_S": Constant(0.5, "a scan of the autotuners' caches (gc.get_objects)"),
    "PYTEST_START_S": Constant(10.0, "pytest start: python + torch + triton + the collected test modules"),
    "WRITE_MARGIN_S": Constant(5.0, "kept free at the end of the budget: a subprocess's timeout is the budget left "
                                    "minus this, so the run still writes results.json and REPORT.md"),
}
globals().update({name: c.value for name, c in CONSTANTS.items()})
TRITON_CONFIGS_PER_TABLE = 3  # entries per layout in kernels/configs.py (before the autotune limit)
CODEGEN_JOBS = 8  # codegen worker processes (min(8, cores); the H200 machine has 16 cores)
CODEGEN_REFERENCE_SPECS = 4  # reference GEMM compiles the selected conv specs are gated against

# Triton kernels each op launches per pass
TRITON_KERNELS = {
    "conv2d_relu": {"fwd": ("conv2d_relu_fwd_kernel",), "bwd": ("conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel")},
    "local_response_norm": {"fwd": ("lrn_fwd_kernel",), "bwd": ("lrn_bwd_kernel",)},
    "max_pool2d": {"fwd": ("max_pool2d_fwd_kernel",), "bwd": ("max_pool2d_bwd_kernel",)},
    "lrn_max_pool2d": {"fwd": ("lrn_max_pool2d_fwd_kernel",), "bwd": ("lrn_max_pool2d_bwd_kernel",)},
}


@dataclass(frozen=True)
class LayerImpl:
    """One way a per-layer cell runs a unit: a variant of ``build_variant`` in a memory format."""

    variant: str
    memory_format: str  # "nchw" or "nhwc": the input's and the weights' layout
    description: str


LAYER_IMPLS: dict[str, LayerImpl] = {
    "eager-nchw": LayerImpl("eager", "nchw", "PyTorch eager (cuDNN for conv), NCHW"),
    "eager-nhwc": LayerImpl("eager", "nhwc", "PyTorch eager (cuDNN for conv), channels-last"),
    "compile": LayerImpl("compile", "nchw", "torch.compile, NCHW"),
    "triton": LayerImpl("triton", "nhwc", "Triton kernels (kernels/), channels-last"),
    "triton+compile": LayerImpl("triton+compile", "nhwc", "Triton kernels under torch.compile, channels-last"),
}
# the per-layer implementation the bench's variants run (alexnet-fast bench --layer)
IMPL_OF_VARIANT = {"eager": "eager-nchw", "compile": "compile", "triton": "triton", "triton+compile": "triton+compile"}
KINDS = ("preflight", "peaks", "layer", "anchor", "model", "dispatch", "autotune", "codegen", "layout", "pytest")

# pytest -m gpu, bounded: the GPU tests that add most to the suite's own cells, most valuable
# first, each with its estimate (Triton compiles at the autotune limit of 2 configs). The cell
# runs the longest prefix whose estimate fits its cap (and the budget left).
PYTEST_GPU_TESTS: tuple[tuple[str, float], ...] = (
    ("tests/test_timers.py::test_cuda_events_time_device_work", 1.0),
    ("tests/test_codegen.py::test_launch_specialization_equals_a_real_launch_on_this_gpu", 2.0),
    ("tests/test_conv2d_relu.py::test_alexnet_layers_gpu[conv2-nhwc-tf32]", 10.0),  # fwd+dgrad+wgrad, TF32
    ("tests/test_conv2d_relu.py::test_alexnet_layers_gpu[conv1-nchw-fp32]", 8.0),  # the FMA (ieee) path, NCHW
    ("tests/test_gpu_ops.py::test_lrn_max_pool2d_gpu[96x55x55-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_lrn_gpu[256x27x27-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_max_pool2d_gpu[256x13x13-nchw-fp32]", 4.0),
    ("tests/test_gpu_ops.py::test_triton_variant_matches_eager_gpu[triton-nchw-tf32]", 30.0),
)


@dataclass(frozen=True)
class Cell:
    """One unit of work of a run: ``kind`` names the engine's method (``cell_<kind>``),
    ``params`` its arguments, ``estimate_s`` its estimated duration, ``compiles`` the
    torch.compile frames it is assumed to compile in this process (None: not counted, e.g.
    the compiles happen in subprocesses), ``what`` the row fields describing it."""

    kind: str
    name: str
    estimate_s: float
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    compiles: int | None = 0
    what: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        return f"{self.kind:9s} {self.name:58s} ~{self.estimate_s:6.1f} s"


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
    # LRN+pool pairs (inductor fuses the two itself) and one conv (the bias+ReLU epilogue it
    # fuses after cuDNN). fp16 repeats the conv comparison on one layer (the other kernels'
    # fp16 path is bf16's with another dtype; pytest checks their fp16 numerics).
    layer_matrix: tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None], ...] = (
        ("bf16", ("triton", "eager-nchw", "eager-nhwc"), None),
        ("bf16", ("compile",), ("conv2+relu2", "lrn1+pool1")),
        ("fp16", ("triton", "eager-nhwc"), ("conv3+relu3",)),
    )
    layer_passes: tuple[str, ...] = LAYER_PASSES
    layer_ops: tuple[str, ...] = TRITON_OPS
    anchor_model: str | None = "alexnet_fast.examples:kernelbench_alexnet"
    anchor_variants: tuple[str, ...] = VARIANTS
    anchor_batch: int = 1024
    model_variants: tuple[str, ...] = VARIANTS
    model_precision: str = "bf16"
    model_batch: int = 128
    model_passes: tuple[str, ...] = PASSES
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
        description=("preflight; per layer at batch 128 (paper AlexNet), bf16 then fp16, forward and backward: "
                     "Triton (channels-last) vs PyTorch eager / cuDNN (NCHW and channels-last) vs torch.compile, "
                     "kernel time apart from dispatch; KernelBench's AlexNet at batch 1024 fp32 (eager, compile, "
                     "triton, triton+compile) beside its published H100 figures; the whole model at batch 128 in "
                     "bf16 (inference and a training step); the ops' host cost; the autotuner's choices and their "
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
    the model_parallel layout in eager, two pytest tests (skipped without a GPU: the cell's
    subprocess, timeout and junit file are what runs), codegen of one spec per kernel kind.
    torch.compile runs with the ``aot_eager`` backend: the same dynamo frames, guards,
    recompiles and AOT autograd through the custom ops' fake and autograd registrations as with
    inductor, without inductor's C++ code generation, which would take minutes on a 2-core CI
    machine (inductor itself is covered by the engine's other tests and the preflight)."""
    return replace(
        spec, name=f"{spec.name}-smoke", smoke=True, width_mult=0.125, input_size=67, layer_batch=2,
        layer_matrix=(("fp16", ("triton",), SMOKE_UNITS), ("fp32", ("compile",), ("pool5",)),
                      ("fp32", ("eager-nchw", "eager-nhwc"), SMOKE_UNITS)),
        anchor_model="alexnet_fast.examples:small_kernelbench_alexnet", anchor_variants=("eager", "compile", "triton"),
        anchor_batch=2, model_variants=VARIANTS, model_precision="fp32",
        model_batch=1, model_passes=PASSES, dispatch_units=SMOKE_UNITS,
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
    from profiling.flops import layer_units

    return layer_units(config)


# ------------------------------------------------------------------ compiles per cell
def assumed_compiles(kind: str, params: Mapping[str, Any], interpreted: bool = False) -> int | None:
    """torch.compile frames a cell compiles in this process (dynamo's ``frames ok``), as the
    estimate assumes -- checked against the real count on CPU by a test:

    * layer, compiled implementation: 1 for the no-grad forward + 1 for the forward with grad
      (a grad-mode guard fails: a recompile; its backward graph is compiled with it);
    * model / anchor, ``compile``: 1 (inference) or 2 (train: the eval-mode check, then the
      train-mode step -- dropout's mode is guarded); ``triton+compile``: one frame more, the
      graph break at the channels-last pre-hook that the triton variants add; without a GPU
      (``interpreted``) a triton+compile cell is checked, not timed: no train-mode frame;
    * preflight: its tiny function; layout and pytest compile in subprocesses (None)."""
    if kind == "preflight":
        return 1
    if kind in ("layout", "pytest"):
        return None
    if kind == "layer":
        if not LAYER_IMPLS[params["impl"]].variant.endswith("compile"):
            return 0
        return len(params["passes"])
    if kind in ("model", "anchor"):
        variant = params["variant"]
        if not variant.endswith("compile"):
            return 0
        timed = not (interpreted and variant.startswith("triton"))
        frames = 1 if params["pass"] == "inference" or not timed else 2
        return frames + (1 if variant == "triton+compile" else 0)
    return 0


# ------------------------------------------------------------------ estimates
class _Tally:
    """What a run has already paid for: Triton compiles per (kernel, shape, dtype), launcher
    builds per (kernel, dtype), references per (unit, precision)."""

    def __init__(self) -> None:
        self.compiled: set[tuple] = set()
        self.launchers: set[tuple] = set()
        self.referenced: set[tuple] = set()

    def triton(self, op: str, pass_: str, shape: str, dtype: str, n_configs: int, *, unit_name: str = "") -> float:
        cost = 0.0
        for kernel in TRITON_KERNELS[op][pass_]:
            if kernel == "conv2d_relu_dgrad_kernel" and unit_name.startswith("conv1+"):
                continue  # the image needs no gradient
            cost += n_configs * AUTOTUNE_BENCH_S if n_configs > 1 else 0.0
            key = (kernel, shape if op == "conv2d_relu" else "", dtype)
            if key not in self.compiled:
                self.compiled.add(key)
                cost += n_configs * (TRITON_COMPILE_S if op == "conv2d_relu" else TRITON_COMPILE_SMALL_S)
            if (kernel, dtype) not in self.launchers:
                self.launchers.add((kernel, dtype))
                cost += TRITON_LAUNCHER_S
        return cost


def _n_configs(spec_or_limit) -> int:
    limit = spec_or_limit.autotune_max_configs if isinstance(spec_or_limit, SuiteSpec) else spec_or_limit
    return TRITON_CONFIGS_PER_TABLE if limit is None else min(TRITON_CONFIGS_PER_TABLE, limit)


def layer_estimate(unit, impl: str, precision: str, passes: Sequence[str], batch: int, tally: _Tally,
                   n_configs: int, mode: str = "default") -> float:
    est = EAGER_SETUP_S
    if (unit.name, precision, batch) not in tally.referenced:
        tally.referenced.add((unit.name, precision, batch))
        est += REFERENCE_LAYER_S
    variant = LAYER_IMPLS[impl].variant
    for pass_ in passes:
        est += MEASURE_LAYER_S
        if variant.startswith("triton") and unit.op in TRITON_KERNELS:
            est += tally.triton(unit.op, pass_, f"{unit.name} b{batch}", precision, n_configs, unit_name=unit.name)
        if variant.endswith("compile"):
            est += COMPILE_LAYER_FRAME_S * (_max_autotune(mode))
    return round(est, 2)


def _max_autotune(mode: str) -> float:
    # max-autotune: inductor benchmarks its conv/GEMM templates (every candidate compiled and
    # timed): assumed 5x the default mode
    return 5.0 if mode.startswith("max-autotune") else 1.0


def model_estimate(variant: str, pass_: str, *, mode: str = "default", triton_tuned: bool, tally: _Tally | None = None,
                   n_configs: int = TRITON_CONFIGS_PER_TABLE, units=(), batch: int = 128, precision: str = "bf16",
                   measure_s: float = MEASURE_MODEL_S) -> float:
    """One whole-model cell: build, references, compile (the frames of
    :func:`assumed_compiles`), Triton compiles and autotuning unless the per-layer cells
    already paid them for these shapes, check and time."""
    est = EAGER_SETUP_S + REFERENCE_MODEL_S + measure_s
    frames = assumed_compiles("model", {"variant": variant, "pass": pass_}) or 0
    if variant == "compile":
        est += frames * (COMPILE_MODEL_INFERENCE_S if pass_ == "inference" else COMPILE_MODEL_TRAIN_S) * _max_autotune(mode)
    elif variant == "triton+compile":
        est += frames * COMPILE_TRITON_MODEL_FRAME_S * _max_autotune(mode)
    if variant.startswith("triton") and not triton_tuned:
        tally = tally or _Tally()
        passes = layer_passes_of(pass_)
        for u in units:
            if u.op in TRITON_KERNELS and not (u.op in ("local_response_norm", "max_pool2d") and _fused(u, units)):
                for p in passes:
                    est += tally.triton(u.op, p, f"{u.name} b{batch}", precision, n_configs, unit_name=u.name)
    return round(est, 2)


def _fused(unit, units) -> bool:
    """A separate LRN or pool that the model runs fused with its partner."""
    return any(u.fused_pair and unit.modules[0] in u.modules for u in units)


def layer_cells(spec: SuiteSpec, tally: _Tally) -> list[Cell]:
    """One cell per (precision, implementation, unit); each runs every pass of the suite."""
    all_units = [u for u in _units(_config(spec)) if u.op in spec.layer_ops]
    cells, n_configs = [], _n_configs(spec)
    for precision, impls, names in spec.layer_matrix:
        units = [u for u in all_units if names is None or u.name in names]
        for impl in impls:
            for unit in units:
                params = {"unit": unit.name, "op": unit.op, "precision": precision, "impl": impl,
                          "passes": list(spec.layer_passes), "batch_size": spec.layer_batch, "preset": spec.preset,
                          "width_mult": spec.width_mult, "input_size": spec.input_size}
                cells.append(Cell("layer", f"{unit.name} {precision} {impl}",
                                  layer_estimate(unit, impl, precision, spec.layer_passes, spec.layer_batch, tally,
                                                 n_configs),
                                  params, assumed_compiles("layer", params)))
    return cells


def _model_cell(kind: str, spec: SuiteSpec, variant: str, precision: str, batch: int, pass_: str, tally: _Tally,
                *, model: str | None = None, tf32: str = "policy", layout: str = "single",
                triton_tuned: bool = True, interpreted: bool = False) -> Cell:
    params = {"variant": variant, "compile_mode": "default", "precision": precision, "batch_size": batch,
              "pass": pass_, "layout": layout, "preset": spec.preset, "width_mult": spec.width_mult,
              "input_size": spec.input_size, "model": model, "tf32": tf32}
    if model is not None:
        params.update(preset=None, width_mult=None, input_size=None)
    units = _units(_config(spec)) if model is None else ()
    est = model_estimate(variant, pass_, triton_tuned=triton_tuned, tally=tally, n_configs=_n_configs(spec),
                         units=units, batch=batch, precision=precision,
                         measure_s=ANCHOR_MEASURE_S if kind == "anchor" else MEASURE_MODEL_S)
    if kind == "anchor" and variant.startswith("triton"):
        # its own shapes (batch 1024, no LRN, fp32-as-TF32): 5 conv forwards and 3 pools to compile and tune
        for i in range(1, 6):
            est += tally.triton("conv2d_relu", "fwd", f"kb conv{i} b{batch}", "tf32", _n_configs(spec))
        for i in (1, 2, 5):
            est += tally.triton("max_pool2d", "fwd", f"kb pool{i} b{batch}", "tf32", _n_configs(spec))
    if layout != "single":
        est += TWO_RANK_START_S
    name = f"{variant} {precision}{' (TF32 as PyTorch defaults)' if tf32 == 'defaults' else ''} b{batch} {pass_}"
    if model is not None:
        name = f"{model.split(':')[-1]} {name}"
    if layout != "single":
        name = f"{layout} {name} (2 ranks, 1 GPU)"
    kind_compiles = "model" if kind == "anchor" else kind
    return Cell(kind, name, round(est, 2), params, assumed_compiles(kind_compiles, params, interpreted))


def build_cells(spec: SuiteSpec | str, *, interpreted: bool = False) -> list[Cell]:
    """The suite's cells in run order, most informative first: preflight and peaks; the
    per-layer comparison in the first precision (Triton vs eager); KernelBench's anchor; the
    whole model; the ops' host cost (after the layer cells tuned their shapes); the
    per-layer torch.compile cells; the autotuner's choices and their codegen; the two-rank
    layouts; the bounded GPU tests; then the other precisions' per-layer cells. A budget cut
    loses the least informative cells."""
    spec = get_suite(spec) if isinstance(spec, str) else spec
    tally = _Tally()
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


def estimate(cells: Iterable[Cell], *, startup_s: float = PROCESS_START_S) -> float:
    """Seconds the cells take, with the Python start of the run."""
    return round(startup_s + sum(c.estimate_s for c in cells), 1)


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


def constants_table() -> str:
    """The estimate's constants and how each was derived (printed by ``--dry-run``)."""
    return "\n".join(f"  {name:30s} {c.value:6.1f} s  {c.derivation}" for name, c in CONSTANTS.items())


# ------------------------------------------------------------------ codegen: which specs the run launched
def _shape_parts(label: str) -> tuple[str, str, int | None]:
    """(preset, layer, batch) of a launch-faithful spec's shape label ("paper conv2 b128 NHWC",
    "paper lrn1+pool1 96x55x55 NHWC": no batch, it is no kernel argument)."""
    words = label.split()
    batch = next((int(w[1:]) for w in words[2:] if re.fullmatch(r"b\d+", w)), None)
    return words[0], words[1], batch


def _label_layer(unit_name: str) -> str:
    """The codegen label's layer name of a unit: conv2+relu2 -> conv2; others as they are."""
    return unit_name.split("+")[0] if unit_name.startswith("conv") else unit_name


def _config_matches(spec, config: Mapping[str, Any]) -> bool:
    tiles = {k: v for k, v in config.items() if k.isupper()}
    return (spec.num_warps == config.get("num_warps") and spec.num_stages == config.get("num_stages")
            and all(spec.constexprs.get(k) == v for k, v in tiles.items()))


# the order in which each kernel gets its first spec compiled (then its second, ...)
CODEGEN_KERNEL_ORDER = ["conv2d_relu_fwd_kernel", "conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel",
                        "lrn_max_pool2d_fwd_kernel", "lrn_fwd_kernel", "max_pool2d_fwd_kernel",
                        "lrn_max_pool2d_bwd_kernel", "lrn_bwd_kernel", "max_pool2d_bwd_kernel"]


def codegen_selection(found: Sequence[tuple[Any, Any]], launched: Sequence[Mapping[str, Any]],
                      chosen: Sequence[Mapping[str, Any]], cap: int) -> tuple[list, list[str], list[str]]:
    """Which codegen specs (``profiling.codegen.collect_specs`` pairs) compile the kernels the
    run launched: per launched (kernel, shape, dtype) -- the shape's preset and layer as
    launched, the nearest batch the codegen check lists -- the launch-faithful spec of the
    config the autotuner chose for it (else of the first config of its table, what a short
    run tries first). Every kernel gets one spec before any gets a second (round robin in
    the order forward, dgrad, wgrad, fused LRN+pool, LRN, pool, then their backwards), then
    ``cap`` cuts. Returns (selected refs, spec ids left out by the cap, launches with no
    launch-faithful spec)."""
    by_kernel: dict[str, list] = {}
    for ref, spec in found:
        if ref.shape:
            by_kernel.setdefault(ref.kernel, []).append((ref, spec))
    slots: dict[str, list] = {}
    unmatched: list[str] = []
    seen: set[str] = set()
    for entry in launched:
        layer = _label_layer(entry["unit"])
        for pass_ in entry["passes"]:
            for kernel in TRITON_KERNELS[entry["op"]][pass_]:
                cands = [(r, s) for r, s in by_kernel.get(kernel, [])
                         if r.dtype == entry["dtype"] and _shape_parts(r.shape)[:2] == (entry["preset"], layer)]
                if not cands:
                    if not (kernel == "conv2d_relu_dgrad_kernel" and layer == "conv1"):
                        unmatched.append(f"{kernel} {entry['preset']} {layer} {entry['dtype']}")
                    continue
                batches = sorted({_shape_parts(r.shape)[2] for r, _ in cands}, key=lambda b: (b is None, abs((b or 0) - entry["batch"])))
                cands = [(r, s) for r, s in cands if _shape_parts(r.shape)[2] == batches[0]]
                tuned = [c for c in chosen if c.get("kernel") == kernel and c.get("dtype") in (None, entry["dtype"])]
                pick = next(((r, s) for r, s in cands for c in tuned if _config_matches(s, c.get("config") or {})),
                            cands[0])
                if pick[0].spec_id not in seen:
                    seen.add(pick[0].spec_id)
                    slots.setdefault(kernel, []).append(pick[0])
    order = CODEGEN_KERNEL_ORDER + [k for k in slots if k not in CODEGEN_KERNEL_ORDER]
    picked: list = []
    depth = max((len(v) for v in slots.values()), default=0)
    for i in range(depth):
        for kernel in order:
            if i < len(slots.get(kernel, ())):
                picked.append(slots[kernel][i])
    return picked[:cap], [r.spec_id for r in picked[cap:]], unmatched


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


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def ceil_minutes(seconds: float) -> int:
    return int(math.ceil(seconds / 60))
