"""What one ``alexnet-fast bench`` run measures: the :class:`BenchPlan`, its embedded
default fitted to the device (:func:`default_plan`), the flags applied to it
(:func:`plan_from_args`) and every refusal made before any work starts
(:func:`validate_plan`: bad device, precision the device cannot run, layout that cannot
split the batch, Triton in the wrong mode, ...), each as one ValueError line.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Iterable

import torch

from alexnet_fast.model import make_config
from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import (COMPILE_MODES, LAYER_PASSES, LAYOUTS, PASSES, PRECISIONS, TRITON_OPS, VARIANTS,
                                     variant_label)
from alexnet_fast.profiling.flops import layer_units

__all__ = ["VariantSpec", "ReducedSize", "BenchPlan", "default_plan", "default_batch_sizes", "fit_batches_to_layouts",
           "idle_cores", "plan_from_args", "validate_plan", "parse_device", "describe", "use_interpreter_without_gpu",
           "plan_cells"]

# per-layer ops build_variant swaps for Triton kernels (FC layers stay PyTorch in every variant)


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
        return variant_label(self.name, self.compile_mode)


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
    layer_passes: list[str] = field(default_factory=lambda: ["fwd"])  # per-layer rows: fwd and/or bwd
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
    layout_world_size: int = 2  # ranks of the two-rank layouts
    model: str | None = None  # a user's model factory, module:callable (profiling/user_bench.py)
    model_input_size: int | None = None  # --input-size given with --model

    @property
    def interpreted(self) -> bool:
        """Triton variants run in the interpreter (no GPU)."""
        return torch.device(self.device).type != "cuda"


def idle_cores() -> int:
    """Cores not busy when the run starts: ``cpu_count - round(1-min load average)``, at
    least 1. On a shared machine a thread per core is catastrophic once other processes hold
    cores (OpenMP threads wait at every barrier for a descheduled sibling: measured here
    with a load of 7.5 on 2 cores, paper AlexNet b4 inference 207 ms on 1 thread vs 580-849 ms
    on 2); on an idle machine this is every core."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(round(load))))


# batch sizes of the embedded default, before fit_batches_to_layouts
GPU_BATCH_SIZES = (1, 32, 128, 256)
CPU_BATCH_SIZES = (1, 4, 16)


def default_batch_sizes(device: str) -> list[int]:
    return list(GPU_BATCH_SIZES if torch.device(device).type == "cuda" else CPU_BATCH_SIZES)


def fit_batches_to_layouts(batch_sizes: Iterable[int], layouts: Iterable[str], world_size: int) -> list[int]:
    """Default batch sizes that every layout of the plan can run: each rounded up to a
    multiple of what the layouts need (``world_size`` when data_parallel splits the batch),
    duplicates dropped, order kept. For defaults only: a batch the user gave is checked,
    never changed (:func:`validate_plan` refuses one that does not split)."""
    from alexnet_fast.layouts.layout import batch_multiple

    step = max((batch_multiple(layout, world_size) for layout in layouts), default=1)
    return list(dict.fromkeys(-(-b // step) * step for b in batch_sizes))


def default_plan(device: str | None = None) -> BenchPlan:
    """The embedded default, fitted to the device it finds.

    GPU: every variant, plain torch.compile also in max-autotune mode, fp32/tf32/fp16/bf16,
    batches 1, 32, 128 and 256, both passes, per-layer rows at batch 128; the two-rank
    layouts too when there are two GPUs or more (then batch 2 instead of 1: data_parallel
    splits every batch over its 2 ranks, :func:`fit_batches_to_layouts`). A long run (every
    compiled cell compiles; max-autotune benchmarks its conv templates): trim it with the flags.
    CPU: the paper network at its real size (227x227, 60.9 M parameters), fp32, batches 1, 4
    and 16, both passes, per-layer rows at batch 8, torch.compile in its default mode
    (max-autotune changes nothing for CPU convolutions and doubles the compile time),
    threads = the cores idle at the start (:func:`idle_cores`); the triton variants
    interpreted at reduced size for equivalence only. Finishes in a few minutes on 2 cores.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    all_units = [u.name for u in layer_units(make_config("paper"))]
    if torch.device(device).type == "cuda":
        layouts = ["single"] + (["data_parallel", "model_parallel"] if torch.cuda.device_count() >= 2 else [])
        plan = BenchPlan(
            device=device,
            variants=[VariantSpec("eager"), VariantSpec("compile"), VariantSpec("compile", "max-autotune"),
                      VariantSpec("triton"), VariantSpec("triton+compile")],
            precisions=list(PRECISIONS), batch_sizes=default_batch_sizes(device), passes=list(PASSES),
            layouts=layouts, layers=all_units, layer_batch_size=128, warmup=10, repeats=30,
        )
    else:
        plan = BenchPlan(
            device=device, variants=[VariantSpec(v) for v in VARIANTS],
            precisions=["fp32"], batch_sizes=default_batch_sizes(device), passes=list(PASSES), layers=all_units,
            layer_batch_size=8, warmup=1, repeats=5, threads=idle_cores(),
        )
    plan.batch_sizes = fit_batches_to_layouts(plan.batch_sizes, plan.layouts, plan.layout_world_size)
    return plan


# ---------------------------------------------------------------------- flags -> plan
def _split(values: Iterable[str] | None) -> list[str] | None:
    """Repeatable and comma-separated flag values, flattened in order; None if not given."""
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        out.extend(s.strip() for s in v.split(",") if s.strip())
    return out


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


def parse_device(device: str | None) -> str:
    """``device`` checked (cpu, cuda, cuda:N of this machine), or the default (cuda if any)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: the study runs on cpu or cuda[:N], not {dev.type}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    return str(dev)


def plan_from_args(args: argparse.Namespace) -> BenchPlan:
    """The embedded default for the device, with every flag given overriding its part, then
    :func:`validate_plan`. ValueError names a bad value."""
    device = parse_device(args.device)
    plan = default_plan(device)
    names = _choose(_split(args.variant), VARIANTS, "variant")
    modes = _choose(_split(args.compile_mode), COMPILE_MODES, "compile mode")
    if names is not None or modes is not None:
        names = names or list(dict.fromkeys(v.name for v in plan.variants))
        modes = modes or ["default"]
        plan.variants = [VariantSpec(n, m) for n in names for m in (modes if n.endswith("compile") else ["default"])]
    plan.precisions = _choose(_split(args.precision), PRECISIONS, "precision") or plan.precisions
    batches = _split(args.batch_size)
    if batches is not None:
        try:
            plan.batch_sizes = [int(b) for b in batches]
        except ValueError:
            raise ValueError(f"--batch-size takes integers, got {batches}") from None
        if not plan.batch_sizes or min(plan.batch_sizes) < 1:
            raise ValueError(f"batch sizes must be positive integers, got {plan.batch_sizes}")
    plan.passes = _choose(_split(args.passes), PASSES, "pass") or plan.passes
    plan.layer_passes = _choose(_split(getattr(args, "layer_pass", None)), LAYER_PASSES, "layer pass") \
        or plan.layer_passes
    plan.layouts = _choose(_split(args.layout), LAYOUTS, "layout") or plan.layouts
    if batches is None:  # the default batches, fitted to the layouts asked for (data_parallel splits them)
        plan.batch_sizes = fit_batches_to_layouts(default_batch_sizes(device), plan.layouts, plan.layout_world_size)
    for name in ("preset", "width_mult", "input_size", "layer_batch_size", "warmup", "repeats", "threads", "seed",
                 "peak_gemm_n", "peak_copy_mib"):
        value = getattr(args, name)
        if value is not None:
            setattr(plan, name, value)
    plan.cold_compile = not args.warm_compile_cache
    check = {k: getattr(args, f"check_{k}") for k in ("width_mult", "input_size", "batch_size")}
    plan.check = replace(plan.check, **{k: v for k, v in check.items() if v is not None})
    if getattr(args, "model", None):  # a user's model (profiling/user_bench.py): its own input size, no layers
        fit_plan_to_model(plan, args)
    units = [u.name for u in layer_units(make_config(plan.preset, width_mult=plan.width_mult,
                                                     input_size=plan.input_size))]
    layers = _split(args.layer)
    if layers == ["all"]:
        plan.layers = units
    elif layers == ["none"]:
        plan.layers = []
    elif layers is not None:
        plan.layers = _choose(layers, units, "layer")
    else:
        plan.layers = [u for u in plan.layers if u in units] if plan.preset == "paper" else units
    validate_plan(plan)
    return plan


def fit_plan_to_model(plan: BenchPlan, args: argparse.Namespace):
    """Point ``plan`` at the model of ``args.model`` (validated: ValueError naming the
    problem): its input size comes from the factory or ``--input-size``, one device, no
    per-layer rows."""
    alexnet_only = [f"--{k.replace('_', '-')}" for k in ("preset", "width_mult", "check_width_mult", "check_input_size")
                    if getattr(args, k, None) is not None]
    if alexnet_only:
        raise ValueError(f"--model: {', '.join(alexnet_only)} size this project's AlexNet, not a user's model "
                         f"(its factory gives its size; --input-size sets the input)")
    from alexnet_fast.user_model import load_model

    user = load_model(args.model, input_size=plan.input_size)
    bad_layouts = [x for x in plan.layouts if x != "single"]
    if bad_layouts:
        raise ValueError(f"--model: layouts {', '.join(bad_layouts)} split this project's AlexNet; use --layout single")
    layers = getattr(args, "layer", None)
    if layers is not None and [s for v in layers for s in v.split(",")] != ["none"]:
        raise ValueError("--model: per-layer rows use this project's AlexNet layer roles; drop --layer "
                         "(or give --layer none)")
    plan.model, plan.model_input_size = user.spec, plan.input_size
    plan.input_size = None  # the AlexNet config the base harness keeps for bookkeeping stays valid
    plan.layers = []
    user.num_classes()  # runs it once: a model that fails on its input size is an error now
    return user



# ---------------------------------------------------------------------- refusals
def use_interpreter_without_gpu(device: str | None) -> None:
    """Without CUDA, Triton must run interpreted: set TRITON_INTERPRET=1 while triton is not
    yet imported (importing ``alexnet_fast.kernels`` imports it)."""
    try:
        cuda = torch.device(device).type == "cuda" if device else torch.cuda.is_available()
    except (RuntimeError, ValueError):
        return  # a bad --device: parse_device says so
    if not cuda and "triton" not in sys.modules:
        os.environ.setdefault("TRITON_INTERPRET", "1")


def _check_triton_mode(device: str) -> None:
    """ValueError unless Triton runs as the device needs: compiled on a GPU (an interpreter
    left on by TRITON_INTERPRET=1 would report interpreted times as Triton speed), the
    interpreter without one."""
    from alexnet_fast.kernels._common import is_interpreting

    if torch.device(device).type == "cuda":
        if is_interpreting():
            raise ValueError("TRITON_INTERPRET=1 is set on a CUDA machine: the triton variants would be timed "
                             "in Triton's interpreter; unset it (or drop the triton variants)")
        return
    use_interpreter_without_gpu(device)
    if not is_interpreting():
        raise ValueError("no CUDA device, and Triton was imported without TRITON_INTERPRET=1: "
                         "set TRITON_INTERPRET=1 in the environment to check the triton variants on CPU")


def _probe_precision(device: str, precision: str) -> None:
    """ValueError if a tiny eager AlexNet cannot run a training step in ``precision`` here."""
    import torch.nn.functional as F

    from alexnet_fast.model import AlexNet

    prec = policy(precision)
    config = make_config("paper", width_mult=0.0625, input_size=67, num_classes=4)
    model = AlexNet(config).to(device)
    x = torch.randn(2, 3, 67, 67, device=device)
    try:
        with prec.flags():
            with prec.autocast(device):
                loss = F.cross_entropy(model(x).float(), torch.zeros(2, dtype=torch.long, device=device))
            loss.backward()
    except (RuntimeError, NotImplementedError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"precision {precision} cannot run on {device}: {first}") from None


def validate_plan(plan: BenchPlan) -> None:
    """Every refusal that can be made before work starts, as one ValueError line."""
    from alexnet_fast.layouts.layout import check_layout

    parse_device(plan.device)
    for name, value, low in (("--threads", plan.threads, 1), ("--repeats", plan.repeats, 1),
                             ("--warmup", plan.warmup, 0), ("--layer-batch-size", plan.layer_batch_size, 1),
                             ("--peak-gemm-n", plan.peak_gemm_n, 1), ("--peak-copy-mib", plan.peak_copy_mib, 1),
                             ("--check-batch-size", plan.check.batch_size, 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    config = make_config(plan.preset, width_mult=plan.width_mult, input_size=plan.input_size)
    check_config = make_config(plan.preset, width_mult=plan.check.width_mult, input_size=plan.check.input_size)
    triton = [v for v in plan.variants if v.uses_triton]
    for layout in plan.layouts:
        if layout == "single":
            continue
        world = plan.layout_world_size
        for batch in plan.batch_sizes:
            try:
                check_layout(layout, world, config, batch)
            except ValueError as e:
                raise ValueError(f"--layout {layout} --batch-size {batch}: {e}") from None
        if triton and plan.interpreted:
            try:
                check_layout(layout, world, check_config, plan.check.batch_size)
            except ValueError as e:
                raise ValueError(f"--layout {layout} at the interpreted check size: {e}") from None
    for precision in plan.precisions:
        policy(precision).check_device(plan.device)
        if triton and plan.interpreted and precision == "bf16":
            raise ValueError("precision bf16 with the triton variants on CPU: Triton's interpreter has no bf16 "
                             "arithmetic; drop bf16 or the triton variants")
        _probe_precision(plan.device, precision)
    if triton:
        _check_triton_mode(plan.device)


# ---------------------------------------------------------------------- plan -> cells
def plan_cells(plan: BenchPlan) -> list:
    """The plan as the engine's cells (:class:`profiling.cell_types.Cell`): the peaks, then one
    whole-model cell per (layout, precision, pass, variant, batch), then one per-layer cell
    per (precision, variant, unit). Without a GPU the triton variants are checked once at
    the reduced size (``plan.check``: model and batch), their per-layer units that hold a
    Triton kernel too; a user's model (``--model``) at its own size and the check batch."""
    from alexnet_fast.profiling.cell_types import IMPL_OF_VARIANT, Cell
    from alexnet_fast.profiling.estimates import Tally, assumed_compiles, layer_estimate, model_estimate

    tally = Tally()
    c = plan.check
    full = {"preset": plan.preset, "width_mult": plan.width_mult, "input_size": plan.input_size}
    reduced = {"preset": plan.preset, "width_mult": c.width_mult, "input_size": c.input_size}
    cells = [Cell("peaks", "peaks", 2.0, {"gemm_n": plan.peak_gemm_n, "copy_mib": plan.peak_copy_mib,
                                          "precisions": list(plan.precisions)},
                  what={"scope": "peak", "layer": "gemm+copy"})]

    def what(scope, variant, precision, **kw):
        return {"scope": scope, "variant": variant.name, "label": variant.label, "precision": precision,
                "compile_mode": variant.compile_mode if variant.compiled else "-", **kw}

    for layout in plan.layouts:
        for precision in plan.precisions:
            for pass_ in plan.passes:
                for variant in plan.variants:
                    interpreted = variant.uses_triton and plan.interpreted
                    for batch in [c.batch_size] if interpreted else plan.batch_sizes:
                        size = full if not interpreted or plan.model else reduced
                        check_size = ("full" if not interpreted else f"model size b{batch}" if plan.model
                                      else f"w{c.width_mult}@{c.input_size} b{batch}")
                        params = {"variant": variant.name, "compile_mode": variant.compile_mode,
                                  "precision": precision, "batch_size": batch, "pass": pass_, "layout": layout,
                                  **size, "check_size": check_size, "model": plan.model,
                                  "model_input_size": plan.model_input_size}
                        est = model_estimate(variant.name, pass_, mode=variant.compile_mode, triton_tuned=False,
                                             tally=tally, batch=batch, precision=precision,
                                             units=layer_units(make_config(plan.preset, width_mult=plan.width_mult,
                                                                           input_size=plan.input_size)))
                        cells.append(Cell("model", f"{layout} {variant.label} {precision} b{batch} {pass_}",
                                          est + (20.0 if layout != "single" else 0.0), params,
                                          None if layout != "single" else assumed_compiles("model", params,
                                                                                           plan.interpreted),
                                          what=what("model", variant, precision, layer="model", layout=layout,
                                                    batch_size=batch, **{"pass": pass_})))
    if plan.layers:
        full_units = {u.name: u for u in layer_units(make_config(plan.preset, width_mult=plan.width_mult,
                                                                  input_size=plan.input_size))}
        for precision in plan.precisions:
            for variant in plan.variants:
                for name in plan.layers:
                    unit = full_units[name]
                    interpreted = variant.uses_triton and plan.interpreted and unit.op in TRITON_OPS
                    batch = c.batch_size if interpreted else plan.layer_batch_size
                    params = {"unit": name, "op": unit.op, "precision": precision,
                              "impl": IMPL_OF_VARIANT[variant.name], "compile_mode": variant.compile_mode,
                              "passes": list(plan.layer_passes), "batch_size": batch,
                              **(reduced if interpreted else full),
                              "check_size": f"w{c.width_mult}@{c.input_size} b{batch}" if interpreted else "full"}
                    cells.append(Cell("layer", f"{name} {variant.label} {precision}",
                                      layer_estimate(unit, params["impl"], precision, plan.layer_passes, batch, tally,
                                                     3, variant.compile_mode),
                                      params, assumed_compiles("layer", params),
                                      what=what("layer", variant, precision, layer=name, op=unit.op,
                                                batch_size=batch, **{"pass": "/".join(plan.layer_passes)})))
    return cells


def describe(plan: BenchPlan) -> str:
    v = ", ".join(x.label for x in plan.variants)
    return (f"device {plan.device}: variants [{v}] x precisions {plan.precisions} x batches {plan.batch_sizes} "
            f"x passes {plan.passes} x layouts {plan.layouts}; {len(plan.layers)} per-layer units at batch "
            f"{plan.layer_batch_size} ({'+'.join(plan.layer_passes)}); preset {plan.preset} width {plan.width_mult} input "
            f"{plan.input_size or 'preset'}; warmup {plan.warmup}, repeats {plan.repeats}, threads {plan.threads}")
