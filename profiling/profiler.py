"""torch.profiler over one cell (:func:`profile_cell`): a Chrome/Perfetto trace whose ranges
read ``step N`` / ``conv1+relu1`` / ``lrn1+pool1`` / ... / ``fc8``, and where the time goes,
per layer and per op. The engine's ``profile`` cells run it (:func:`profile_params`, called by
:meth:`profiling.engine.Engine.cell_profile` with the one timer), for ``alexnet-fast profile``
and the GPU suite alike.

One cell = one variant x precision x batch x pass on one device, built by
:func:`alexnet_fast.variants.build_variant` and marked by :mod:`profiling.layer_markers`:
``warmup`` steps (the first timed apart by ``first_call``: the compile), ``steps`` steps timed
without the profiler by ``timer`` before and again after the profiled ones (an overhead figure
only when before and after agree within :data:`DRIFT`), then ``steps`` steps under torch.profiler,
each in ``record_function("step N")`` with the device synchronised inside. In training, a
backward op is attributed to the layer whose forward recorded its sequence number (the
profiler's forward/backward link). It writes the trace (:mod:`profiling.traces`) and the
tables (:mod:`profiling.render.profile`) under ``out_dir``.

Only a GPU runs the CUDA activity and the CUDA allocator's peak counters; the trace analysis
is tested on CPU with a synthetic trace.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.autograd.profiler import record_function

from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import COMPILE_MODES, PASSES, VARIANTS, choose, variant_label
from alexnet_fast.profiling.cell import inference_step, train_step
from alexnet_fast.profiling.layer_markers import LayerGroup, LayerMarkers, compile_per_layer, is_alexnet, layer_groups
from alexnet_fast.profiling.render.profile import INTERPRETED, write_cell_files
from alexnet_fast.profiling.timers import fixed_threads, synchronize
from alexnet_fast.profiling.traces import (STEP_NAME, device_gaps, kernel_table, memory_peaks, our_kernel_names, read_trace,
                              write_trace)

__all__ = ["ProfileResult", "COMPILE_SCOPES", "GZIP_OVER_BYTES", "profile_cell", "profile_params", "cell_name"]

COMPILE_SCOPES = ("layers", "model")
GZIP_OVER_BYTES = 128 << 10  # traces bigger than 128 KiB are written gzipped (Perfetto and chrome://tracing read .gz)
COMPILED_REGION = "Torch-Compiled Region"  # dynamo's range around a compiled frame
COMPILED_GRAPH = "compiled graph"  # the one "layer" of a whole-model compiled cell
BACKWARD_OP = "autograd::engine::evaluate_function: "
OPTIMIZER_PREFIX = "Optimizer."  # torch.optim's own ranges: Optimizer.step#SGD.step, Optimizer.zero_grad#...
TOP_OPS = 25  # rows of the op table
DRIFT = 0.10  # unprofiled steps before vs after the profiled ones: past 10% apart, no overhead figure


# ---------------------------------------------------------------------- the result
@dataclass
class ProfileResult:
    """What :func:`profile_cell` measured and wrote. Times are per step, in ms."""

    cell: dict[str, Any]  # variant, label, compile_mode, compile_scope, precision, batch_size, pass, device, ...
    step_ms: list[float]  # each profiled step's range (CPU wall, device synchronised inside)
    unprofiled: dict[str, Any] | None  # the same steps without the profiler, timed before and after it (_unprofiled)
    first_call_s: float | None
    layers: list[dict[str, Any]]
    ops: list[dict[str, Any]]
    memory: dict[str, Any]
    kernels: list[dict[str, Any]] = field(default_factory=list)  # device kernels (GPU)
    gaps: dict[str, Any] | None = None  # device idle time between kernels (GPU)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def interpreted(self) -> bool:
        return bool(self.cell.get("interpreted"))

    @property
    def step_mean_ms(self) -> float:
        """The mean profiled step: what the per-step layer and op figures (means over the
        same steps) add up to."""
        return statistics.fmean(self.step_ms)

    def overhead(self) -> tuple[float | None, str]:
        """(the profiled step over the unprofiled one - 1, in %, or None; why). None when
        interpreted, or when the unprofiled steps timed before and after the profiled ones
        differ by more than :data:`DRIFT`: the machine's load changed, so no ratio."""
        u = self.unprofiled
        if self.interpreted or not u:
            return None, "interpreted" if self.interpreted else "not timed"
        drift = abs(u["before_ms"] - u["after_ms"]) / min(u["before_ms"], u["after_ms"])
        if drift > DRIFT:
            return None, (f"noisy: unprofiled {u['before_ms']:.1f} ms before and {u['after_ms']:.1f} ms after the "
                          f"profiled steps")
        return 100 * (self.step_mean_ms / u["median_ms"] - 1), (
            f"unprofiled {u['before_ms']:.1f} ms before and {u['after_ms']:.1f} ms after the profiled steps")

    def columns(self) -> dict[str, Any]:
        """Flat columns for a bench row (profiled step, overhead, peak memory, trace path)."""
        outside = next((r["share"] for r in self.layers if r["layer"] == "outside layers"), None)
        return {
            "profile_step_ms": None if self.interpreted else self.step_mean_ms,
            "profile_overhead_pct": self.overhead()[0],
            "profile_layer_coverage": None if outside is None else 1 - outside,  # share of the step inside layers
            "peak_memory_mb": None if self.memory.get("peak_bytes") is None else self.memory["peak_bytes"] / 2**20,
            "peak_memory_source": self.memory.get("source"),
            "trace": self.files.get("trace"),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_name(variant: str, compile_mode: str, compile_scope: str | None, precision: str, batch_size: int,
              pass_: str) -> str:
    """Folder name of a cell: ``eager-fp32-b4-inference``, ``compile-layers-fp32-b4-inference``."""
    label = variant_label(variant, compile_mode)
    if compile_scope and variant.endswith("compile"):
        label += f"-{compile_scope}"
    return re.sub(r"[^A-Za-z0-9+.-]+", "-", f"{label}-{precision}-b{batch_size}-{pass_}").strip("-")


# ---------------------------------------------------------------------- one cell
@contextlib.contextmanager
def _compile_settings(cold: bool, cpu: bool) -> Iterator[None]:
    """For the compiled variants: an empty inductor cache if ``cold`` (as the bench), a dynamo
    recompile limit that lets every per-layer piece compile (the pieces share nn.Sequential's
    code object, and past the default limit of 8 the rest would silently run eager -- seen),
    and on CPU inductor's C++ kernels named in the trace (``cpp.enable_kernel_profile``)."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    limit = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    inductor = {"cpp.enable_kernel_profile": True} if cpu else {}
    with contextlib.ExitStack() as stack:
        if cold:
            from torch._inductor.utils import fresh_inductor_cache

            stack.enter_context(fresh_inductor_cache())
        stack.enter_context(dynamo_config.patch({limit: max(64, getattr(dynamo_config, limit))}))
        stack.enter_context(inductor_config.patch(inductor))
        yield


WHOLE_MODEL_NOTE = ("whole model compiled (as the bench runs it): layers are not separable inside the compiled graph "
                    "(inductor removes record_function ops); see the ops table")


def _build(model: nn.Module, variant: str, compile_mode: str, compile_scope: str, groups: Sequence[LayerGroup] | None,
           compile_backend: str = "inductor"):
    """(built model, marker context, marker names, note) for a cell."""
    from alexnet_fast.variants import build_variant

    compiled = variant.endswith("compile")
    backend = {} if compile_backend == "inductor" else {"compile_backend": compile_backend}
    if compiled and compile_scope == "layers":
        base = build_variant(model, "triton" if variant.startswith("triton") else "eager", copy_model=False)
        names = compile_per_layer(base, groups or layer_groups(base), compile_mode)
        return base, contextlib.nullcontext(), names, (
            "compiled per layer group (one torch.compile piece per layer, marked from an uncompiled wrapper): "
            "no fusion across layers; compare with compile scope 'model'")
    built = build_variant(model, variant, compile_mode=compile_mode, copy_model=False, **backend)
    if compiled:
        return built, contextlib.nullcontext(), {}, WHOLE_MODEL_NOTE
    markers = LayerMarkers(built, groups if groups is not None and is_alexnet(built) else layer_groups(built))
    return built, markers, None, None


def profile_cell(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], variant: str, precision: str,
                 pass_: str, device: str | torch.device, out_dir: str | os.PathLike, *, steps: int = 3,
                 warmup: int = 2, compile_mode: str = "default", compile_scope: str = "layers",
                 threads: int | None = None, interpreted: bool | None = None, cold_compile: bool = True,
                 gzip_over_bytes: int = GZIP_OVER_BYTES, extra: dict[str, Any] | None = None,
                 timer: Callable[[Callable[[], object], int], Any] | None = None,
                 first_call: Callable[[Callable[[], object], torch.device], tuple[float, object]] | None = None,
                 built: nn.Module | None = None, compile_backend: str = "inductor") -> ProfileResult:
    """Profile one cell of ``model`` (an eager nn.Module, left untouched: a copy is built as
    ``variant``) on ``inputs`` = (images, targets) and write its files under ``out_dir``
    (module docstring). ``compile_scope``: for the compiled variants, ``layers`` (a compiled
    piece per layer, layers named in the trace) or ``model`` (the whole model, as the bench).
    ``interpreted`` (default: a triton variant without CUDA) marks the times as no speed.
    ``extra``: more fields for ``result.cell`` (size, preset, ...). ``timer(step, n)`` (a
    :class:`profiling.timers.Timing` of n calls) and ``first_call(step, device)`` (seconds,
    output) are the engine's timer; without them no unprofiled time and no first-call time.
    ``built``: the whole model already compiled as ``variant`` (scope ``model``), used as is."""
    choose(variant, VARIANTS, "variant")
    choose(compile_mode, COMPILE_MODES, "compile mode")
    choose(pass_, PASSES, "pass")
    choose(compile_scope, COMPILE_SCOPES, "compile scope")
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0)):
        if not (isinstance(value, int) and value >= low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    compiled = variant.endswith("compile")
    interpreted = (variant.startswith("triton") and not cuda) if interpreted is None else interpreted
    prec = policy(precision)
    out = Path(out_dir)
    x, target = (t.to(device) for t in inputs)
    scope = compile_scope if compiled else None
    cell = {"variant": variant, "label": variant_label(variant, compile_mode) + (f" ({scope})" if scope else ""),
            "compile_mode": compile_mode if compiled else "-", "compile_scope": scope, "precision": precision,
            "batch_size": int(x.shape[0]), "pass": pass_, "device": str(device), "input_shape": list(x.shape[1:]),
            "interpreted": interpreted, "steps": steps, "warmup": warmup,
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, **(extra or {})}
    notes = [INTERPRETED + " (Triton's interpreter on CPU: the times say how the interpreter spends them)"] \
        if interpreted else []

    if built is None:
        torch._dynamo.reset()  # static shapes per cell; no compiled code shared between cells
        base = copy.deepcopy(model).to(device)
        groups = layer_groups(base) if is_alexnet(base) else None
    elif not (compiled and compile_scope == "model"):
        raise ValueError(f"profile: a built model is the whole model compiled; not {variant} scope {compile_scope}")
    settings = _compile_settings(cold_compile, not cuda) if compiled and built is None else contextlib.nullcontext()
    with settings, fixed_threads(threads) as n_threads:
        if built is None:
            built, markers, names, note = _build(base, variant, compile_mode, compile_scope, groups, compile_backend)
        else:
            markers, names, note = contextlib.nullcontext(), {}, WHOLE_MODEL_NOTE + " (the model cell's compiled model)"
        if note:
            notes.append(note)
        step = inference_step(built.eval(), x, prec) if pass_ == "inference" else train_step(built, x, target, prec)
        with markers, prec.flags():
            names = markers.names if isinstance(markers, LayerMarkers) else names
            first_call_s = None  # the first call compiles, for the compiled variants
            if warmup and first_call is not None:
                first_call_s = first_call(step, device)[0]
            for _ in range(warmup - (first_call_s is not None)):
                step()
            timed = timer is not None and not interpreted
            before = timer(step, steps) if timed else None
            prof, cuda_memory = _profile_steps(step, device, steps)
            after = timer(step, steps) if timed else None
    unprofiled = _unprofiled(before, after) if timed else None
    cell["threads"] = n_threads
    out.mkdir(parents=True, exist_ok=True)
    trace_path = write_trace(prof, out, gzip_over_bytes)
    trace = read_trace(trace_path)
    events = prof.events()
    step_ms = [e.cpu_time_total / 1e3 for e in _step_events(events)]
    if len(step_ms) != steps:
        raise RuntimeError(f"profile: found {len(step_ms)} 'step N' ranges in the trace, expected {steps}")
    layers = _layer_table(events, names or {}, steps, pass_)
    ops = _op_table(prof, set(names or {}), steps, cuda)
    memory = memory_peaks(trace, cuda_memory)
    kernels = kernel_table(trace, our_kernel_names() if cuda else set(), steps)
    gaps = device_gaps(trace) if kernels else None
    result = ProfileResult(cell, step_ms, unprofiled, None if interpreted else first_call_s, layers, ops, memory,
                           kernels, gaps, {"trace": str(trace_path)}, notes)
    write_cell_files(result, out)
    return result


def profile_params(p: dict[str, Any], source, device: torch.device, root: str | os.PathLike, *, timer, first_call,
                   compiled: tuple | None = None, threads: int | None = None, cold_compile: bool = True,
                   compile_backend: str = "inductor", results: list | None = None) -> dict[str, Any]:
    """A ``profile`` cell of the engine: ``p`` (variant, compile_mode, compile_scope, precision,
    pass, batch_size, interpreted, steps, warmup, size; ``reuse``: a compiled variant must reuse
    the model cell's model) on ``source``'s model and inputs (:class:`profiling.cell.AlexNetSource`
    or a user's model), its files in ``root/<cell name>``; the result appended to ``results``.
    ``compiled``: (key, model) of the model cell just run, reused when its key is this cell's
    (the same variant, mode, precision, batch, pass and source): no second compile. Returns
    the row's fields (the result's :meth:`ProfileResult.columns`)."""
    variant, mode = p["variant"], p.get("compile_mode", "default")
    scope = p.get("compile_scope", "model") if variant.endswith("compile") else None
    name = cell_name(variant, mode, scope, p["precision"], p["batch_size"], p["pass"])
    fields = {"scope": "profile", "layer": "model", "op": "model", "variant": variant,
              "label": variant_label(variant, mode) + (f" ({scope})" if scope else ""),
              "compile_mode": mode if scope else "-", "compile_scope": scope, "precision": p["precision"],
              "batch_size": p["batch_size"], "pass": p["pass"], **source.fields()}
    key = (variant, mode, p["precision"], p["batch_size"], p["pass"], id(source))
    built = compiled[1] if compiled is not None and compiled[0] == key and scope == "model" else None
    if p.get("reuse") and scope == "model" and built is None:
        return {**fields, "status": "skipped", "note": "its model cell did not run just before it: profiling it "
                                                       "would compile again"}
    steps = p.get("steps", 3)
    result = profile_cell(source.model(), source.inputs(p["batch_size"]), variant, p["precision"], p["pass"], device,
                          Path(root) / name, steps=steps, warmup=p.get("warmup", 2), compile_mode=mode,
                          compile_scope=scope or "model", threads=threads, interpreted=p.get("interpreted"),
                          cold_compile=cold_compile, extra={"size": p.get("size"), "cell": name}, timer=timer,
                          first_call=first_call, built=built, compile_backend=compile_backend)
    if results is not None:
        results.append(result)
    status = "interpreted" if result.interpreted else "profiled"
    note = "; ".join([f"{steps} profiled steps", *result.notes])
    return {**fields, "status": status, "note": note, "warmup": result.cell["warmup"], "repeats": steps,
            "first_call_s": result.first_call_s, **result.columns()}


def _unprofiled(before, after) -> dict[str, Any]:
    """The unprofiled steps (:class:`profiling.timers.Timing` before and after the profiled
    ones, so that a drift of the machine's load shows instead of passing for overhead)."""
    times = list(before.times_ms) + list(after.times_ms)
    return {"median_ms": statistics.median(times), "before_ms": before.median_ms, "after_ms": after.median_ms,
            "times_ms": times, "timer": before.method, "threads": before.threads}


def _profile_steps(step, device: torch.device, steps: int):
    """``steps`` calls of ``step`` under torch.profiler, each in ``record_function("step N")``
    with the device synchronised inside the range. GPU: CUDA activity too, and the CUDA
    allocator's peak over the steps (reset before)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])  # GPU only
    cuda_memory = None
    if cuda:  # GPU only: the allocator's own peak counters
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start_bytes = torch.cuda.memory_allocated(device)
    else:
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # no kineto lines ("gpuGetDeviceCount failed", USDT)
    with profile(activities=activities, record_shapes=True, profile_memory=True) as prof:
        for i in range(steps):
            with record_function(f"step {i}"):
                step()
                synchronize(device)
    if cuda:  # GPU only
        peak = torch.cuda.max_memory_allocated(device)
        cuda_memory = {"peak_bytes": peak - start_bytes, "peak_total_bytes": peak, "start_bytes": start_bytes,
                       "source": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus the bytes "
                                 "allocated at the start (weights, inputs, optimizer state)"}
    return prof, cuda_memory


# ---------------------------------------------------------------------- analysis
def _step_events(events) -> list:
    steps = [e for e in events if STEP_NAME.match(e.name) and e.device_type == torch.autograd.DeviceType.CPU]
    return sorted(steps, key=lambda e: int(STEP_NAME.match(e.name).group(1)))


def _descendants(event) -> Iterator:
    for child in event.cpu_children:
        yield child
        yield from _descendants(child)


def _top_level(events: Iterable, predicate) -> list:
    """Events matching ``predicate`` with no matching ancestor."""
    found = []
    for e in events:
        if not predicate(e):
            continue
        parent = e.cpu_parent
        while parent is not None and not predicate(parent):
            parent = parent.cpu_parent
        if parent is None:
            found.append(e)
    return found


def _layer_table(events, names: dict[str, str], steps: int, pass_: str) -> list[dict[str, Any]]:
    """Per marker (layer groups and the modules inside them): calls, CPU and device time (total
    and self), and, for training, the backward ops attributed by sequence number; then
    ``backward (other)``, ``optimizer`` and ``outside layers`` so that the ``layer`` rows and
    these add up to the step. Per step, in ms."""
    cpu = torch.autograd.DeviceType.CPU
    rows: dict[str, dict[str, Any]] = {}
    seq_owner: dict[int, str] = {}

    def row(name: str, level: str) -> dict[str, Any]:
        return rows.setdefault(name, {"layer": name, "level": level, "calls": 0, "time_ms": 0.0, "cpu_total_ms": 0.0,
                                      "cpu_self_ms": 0.0, "device_total_ms": 0.0, "device_self_ms": 0.0,
                                      "bwd_cpu_ms": 0.0, "bwd_device_ms": 0.0})

    if names:
        markers = [e for e in events if e.name in names and e.device_type == cpu]
    else:  # whole-model compile: dynamo's top-level compiled regions are the one "layer"
        markers = _top_level(events, lambda e: e.name.startswith(COMPILED_REGION) and e.device_type == cpu)
    for e in markers:
        name = e.name if names else COMPILED_GRAPH
        r = row(name, names.get(e.name, "layer") if names else "layer")
        r["calls"] += 1
        r["cpu_total_ms"] += e.cpu_time_total / 1e3
        r["cpu_self_ms"] += e.self_cpu_time_total / 1e3
        r["device_total_ms"] += e.device_time_total / 1e3
        r["device_self_ms"] += e.self_device_time_total / 1e3
        if r["level"] == "layer":
            for d in _descendants(e):
                if d.sequence_nr >= 0:
                    seq_owner.setdefault(d.sequence_nr, name)
    if pass_ == "train":
        other = row("backward (other)", "layer")
        for e in _top_level(events, lambda e: e.name.startswith(BACKWARD_OP) and e.device_type == cpu):
            owner = rows.get(seq_owner.get(e.sequence_nr, ""), other)
            owner["bwd_cpu_ms"] += e.cpu_time_total / 1e3
            owner["bwd_device_ms"] += e.device_time_total / 1e3
        opt = row("optimizer", "layer")
        for e in _top_level(events, lambda e: e.name.startswith(OPTIMIZER_PREFIX) and e.device_type == cpu):
            opt["calls"] += 1
            opt["cpu_total_ms"] += e.cpu_time_total / 1e3
            opt["device_total_ms"] += e.device_time_total / 1e3
    step_events = _step_events(events)
    step_total = sum(e.cpu_time_total for e in step_events) / 1e3
    step_device = sum(e.device_time_total for e in step_events) / 1e3
    for r in rows.values():
        r["time_ms"] = r["cpu_total_ms"] + r["bwd_cpu_ms"]
    layered = sum(r["time_ms"] for r in rows.values() if r["level"] == "layer")
    device_layered = sum(r["device_total_ms"] + r["bwd_device_ms"] for r in rows.values() if r["level"] == "layer")
    rest = row("outside layers", "layer")
    rest.update(calls=len(step_events), time_ms=step_total - layered, cpu_total_ms=step_total - layered,
                device_total_ms=step_device - device_layered)
    table = []
    for r in rows.values():
        r = {k: (v / steps if k.endswith("_ms") or k == "calls" else v) for k, v in r.items()}
        r["share"] = r["time_ms"] / (step_total / steps) if step_total else None
        table.append(r)
    return table


def _op_table(prof, markers: set[str], steps: int, cuda: bool) -> list[dict[str, Any]]:
    """The top ops of ``prof.key_averages()`` (our markers and the step ranges left out) by self
    device time on a GPU, self CPU time otherwise; per step. ``ours``: our custom ops
    (``alexnet_fast::...``)."""
    rows = []
    for a in prof.key_averages():
        if a.key in markers or STEP_NAME.match(a.key) or a.key == "[memory]":
            continue
        rows.append({"op": a.key, "calls": a.count / steps, "self_cpu_ms": a.self_cpu_time_total / 1e3 / steps,
                     "cpu_total_ms": a.cpu_time_total / 1e3 / steps,
                     "self_device_ms": a.self_device_time_total / 1e3 / steps,
                     "device_total_ms": a.device_time_total / 1e3 / steps,
                     "self_cpu_mem_mib": a.self_cpu_memory_usage / 2**20 / steps,
                     "ours": a.key.startswith("alexnet_fast::")})
    rows.sort(key=lambda r: -(r["self_device_ms"] if cuda else r["self_cpu_ms"]))
    return rows[:TOP_OPS]


# ---------------------------------------------------------------------- files
