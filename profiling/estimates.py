"""How long cells take, before they run: the estimate's constants (:data:`CONSTANTS`, each
with how it was derived), the torch.compile frames each cell is assumed to compile
(:func:`assumed_compiles`), and the estimates of per-layer and whole-model cells.

A cell's estimate is the sum of the constants for what it does. None was measured on a GPU yet:
they are CPU measurements of this project scaled by a stated factor, Triton's own compile
figures, or arithmetic on the work. Every cell records ``elapsed_s`` and the compiles it really
made (dynamo's counter), and REPORT.md lists estimated against measured seconds, so the first
GPU run corrects them; a test checks each smoke cell's compiles against dynamo's ``frames ok``.
H100 and H200 get the same estimate: the same GH100 compute and compilers; the H200's faster
HBM shortens only the timed calls, a few percent of a cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from alexnet_fast.vocabulary import layer_passes_of
from alexnet_fast.profiling.cell_types import LAYER_IMPLS, TRITON_KERNELS, Cell
from alexnet_fast.profiling.flops import runs_fused

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
    "PAIRED_LAYER_S": Constant(0.2, "a non-baseline pass's paired rounds against eager NCHW: on a quiet GPU (1-3% "
                                    "noise a call) the 3% target falls at 10-14 rounds (README, 'Measuring a "
                                    "ratio') of two <= 2 ms calls with an L2 flush each, and a bootstrap check a "
                                    "round (~3 ms at 4000 resamples of 10-20 rounds): ~0.1 s; x2 margin (a noisy "
                                    "GPU runs to 200 rounds, ~1.5 s: REPORT.md's elapsed column shows it)"),
    "PAIRED_MODEL_S": Constant(1.5, "a non-eager model cell's paired rounds against eager: 10-14 rounds of two ~15 "
                                    "ms steps (AlexNet b128 bf16 training on GH100) + the checks: ~0.5 s; x3 margin "
                                    "(the cap, 30 s on a GPU, bounds a noisy one)"),
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
    "PROFILE_S": Constant(2.0, "one profile cell: warm-up, 3 + 3 unprofiled and 3 profiled steps of a <= 60 ms step "
                               "(< 0.6 s), the profiler's start / stop with record_shapes and profile_memory, the "
                               "trace exported, read back and tabled, the bundle's archive and plot rewritten: "
                               "0.2-0.7 s a cell measured in the CPU smoke run (width 1/8, one step); x3 margin"),
    "PROFILER_START_S": Constant(3.0, "the first torch.profiler of a process: kineto's and CUPTI's start (2.9 s "
                                      "measured on CPU for kineto alone, cold page cache); paid once a run"),
    "WRITE_MARGIN_S": Constant(5.0, "kept free at the end of the budget: a subprocess's timeout is the budget left "
                                    "minus this, so the run still writes results.json and REPORT.md"),
}
globals().update({name: c.value for name, c in CONSTANTS.items()})
TRITON_CONFIGS_PER_TABLE = 3  # entries per layout in kernels/configs.py (before the autotune limit)
CODEGEN_JOBS = 8  # codegen worker processes (min(8, cores); the H200 machine has 16 cores)
CODEGEN_REFERENCE_SPECS = 4  # reference GEMM compiles the selected conv specs are gated against


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
    * profile: 0 when it reuses its model cell's compiled model (``reuse``, the GPU suite) or
      runs no compiled variant (reused without a GPU, a triton+compile training cell compiles its
      train-mode frame: its model cell only checked it); else a whole-model compile as a model cell's, in the profiled pass
      only (1 frame, +1 for triton+compile); per layer (scope ``layers``) one frame per layer
      group: not counted here (None);
    * preflight: its tiny function; layout and pytest compile in subprocesses (None)."""
    if kind == "preflight":
        return 1
    if kind in ("layout", "pytest"):
        return None
    if kind == "layer":
        if not LAYER_IMPLS[params["impl"]].variant.endswith("compile"):
            return 0
        return len(params["passes"])
    if kind == "profile":
        variant = params["variant"]
        if params.get("reuse"):
            return int(interpreted and variant == "triton+compile" and params["pass"] == "train")
        if not variant.endswith("compile"):
            return 0
        if params.get("compile_scope", "model") == "layers":
            return None
        return 1 + (variant == "triton+compile")
    if kind in ("model", "anchor"):
        variant = params["variant"]
        if not variant.endswith("compile"):
            return 0
        timed = not (interpreted and variant.startswith("triton"))
        frames = 1 if params["pass"] == "inference" or not timed else 2
        return frames + (1 if variant == "triton+compile" else 0)
    return 0


# ------------------------------------------------------------------ estimates
class Tally:
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
            conv = op in ("conv2d_relu", "conv2d_relu_lrn")  # specialized per conv layer (a chain: priced so)
            key = (kernel, shape if conv else "", dtype)
            if key not in self.compiled:
                self.compiled.add(key)
                cost += n_configs * (TRITON_COMPILE_S if conv else TRITON_COMPILE_SMALL_S)
            if (kernel, dtype) not in self.launchers:
                self.launchers.add((kernel, dtype))
                cost += TRITON_LAUNCHER_S
        return cost


def configs_tried(limit: int | None) -> int:
    """Configs an autotuner tries under an autotune limit (None: its whole table)."""
    return TRITON_CONFIGS_PER_TABLE if limit is None else min(TRITON_CONFIGS_PER_TABLE, limit)


def layer_estimate(unit, impl: str, precision: str, passes: Sequence[str], batch: int, tally: Tally,
                   n_configs: int, mode: str = "default") -> float:
    est = EAGER_SETUP_S
    if (unit.name, precision, batch) not in tally.referenced:
        tally.referenced.add((unit.name, precision, batch))
        est += REFERENCE_LAYER_S
    variant = LAYER_IMPLS[impl].variant
    for pass_ in passes:
        est += MEASURE_LAYER_S + (PAIRED_LAYER_S if impl != "eager-nchw" else 0.0)
        if variant.startswith("triton") and unit.op in TRITON_KERNELS:
            est += tally.triton(unit.op, pass_, f"{unit.name} b{batch}", precision, n_configs, unit_name=unit.name)
        if variant.endswith("compile"):
            est += COMPILE_LAYER_FRAME_S * (_max_autotune(mode))
    return round(est, 2)


def _max_autotune(mode: str) -> float:
    # max-autotune: inductor benchmarks its conv/GEMM templates (every candidate compiled and
    # timed): assumed 5x the default mode
    return 5.0 if mode.startswith("max-autotune") else 1.0


def model_estimate(variant: str, pass_: str, *, mode: str = "default", triton_tuned: bool, tally: Tally | None = None,
                   n_configs: int = TRITON_CONFIGS_PER_TABLE, units=(), batch: int = 128, precision: str = "bf16",
                   measure_s: float = MEASURE_MODEL_S) -> float:
    """One whole-model cell: build, references, compile (the frames of
    :func:`assumed_compiles`), Triton compiles and autotuning unless the per-layer cells
    already paid them for these shapes, check and time."""
    est = EAGER_SETUP_S + REFERENCE_MODEL_S + measure_s + (PAIRED_MODEL_S if variant != "eager" else 0.0)
    frames = assumed_compiles("model", {"variant": variant, "pass": pass_}) or 0
    if variant == "compile":
        est += frames * (COMPILE_MODEL_INFERENCE_S if pass_ == "inference" else COMPILE_MODEL_TRAIN_S) * _max_autotune(mode)
    elif variant == "triton+compile":
        est += frames * COMPILE_TRITON_MODEL_FRAME_S * _max_autotune(mode)
    if variant.startswith("triton") and not triton_tuned:
        tally = tally or Tally()
        passes = layer_passes_of(pass_)
        for u in units:
            if u.op in TRITON_KERNELS and not runs_fused(u, list(units)):
                for p in passes:
                    est += tally.triton(u.op, p, f"{u.name} b{batch}", precision, n_configs, unit_name=u.name)
    return round(est, 2)


PAPER_LAYER_GROUPS = 13  # conv1+relu1, lrn1+pool1, ..., fc8 (profiling.layer_markers.layer_groups)


def profile_estimate(params: Mapping[str, Any], first: bool = False) -> float:
    """One profile cell: build and the profiled steps (:data:`PROFILE_S`; ``first``: the
    profiler's start too) and the compile its frames need (none when it reuses the model cell's)."""
    est = EAGER_SETUP_S + PROFILE_S + (PROFILER_START_S if first else 0.0)
    variant, pass_ = params["variant"], params["pass"]
    frames = assumed_compiles("profile", params)
    if frames is None:  # per layer: one small frame per layer group
        est += PAPER_LAYER_GROUPS * COMPILE_LAYER_FRAME_S
    elif frames and variant == "compile":
        est += COMPILE_MODEL_INFERENCE_S if pass_ == "inference" else COMPILE_MODEL_TRAIN_S
    elif frames:
        est += frames * COMPILE_TRITON_MODEL_FRAME_S
    return round(est, 2)


def estimate(cells: Iterable[Cell], *, startup_s: float = PROCESS_START_S) -> float:
    """Seconds the cells take, with the Python start of the run."""
    return round(startup_s + sum(c.estimate_s for c in cells), 1)


def constants_table() -> str:
    """The estimate's constants and how each was derived (printed by ``--dry-run``)."""
    return "\n".join(f"  {name:30s} {c.value:6.1f} s  {c.derivation}" for name, c in CONSTANTS.items())


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def ceil_minutes(seconds: float) -> int:
    return int(math.ceil(seconds / 60))
