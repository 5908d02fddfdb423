"""torch.profiler over one cell: a Chrome/Perfetto trace whose ranges read ``step N`` /
``conv1+relu1`` / ``lrn1+pool1`` / ... / ``fc8``, and where the time goes, per layer and per op.

:func:`profile_cell` is the API (the bench engine and the GPU suite can call it on a model and
inputs they already hold); :mod:`profiling.profile_cmd` is ``alexnet-fast profile``. One cell =
one variant x precision x batch x pass on one device:

1. the variant is built by :func:`alexnet_fast.variants.build_variant` (the one way), and layer
   markers are attached (below);
2. ``warmup`` untimed steps (the first one, the compile for the compiled variants, is timed on
   its own), ``steps`` steps timed without the profiler by :func:`profiling.timers.measure`
   (the one timer) before and again after the profiled ones (the profiler's overhead is the
   difference, given only when before and after agree within :data:`DRIFT`), and ``steps`` steps under
   ``torch.profiler`` (CPU activities, plus CUDA on a GPU; ``record_shapes``,
   ``profile_memory``), each inside ``record_function("step N")`` with the device synchronised
   before the range closes;
3. what it writes under ``out_dir``: ``trace.json`` (``prof.export_chrome_trace``; gzipped to
   ``trace.json.gz`` past :data:`GZIP_OVER_BYTES`; parsed back as a check), ``layers.csv``,
   ``ops.csv``, ``kernels.csv`` (device kernels, GPU only), ``profile.md`` (the same tables)
   and ``cell.json`` (everything, including peak memory).

Layer markers: which layers a trace can name depends on the variant (measured, torch 2.14):

* eager, triton: forward pre/post hooks on the role-named modules open and close a
  ``record_function`` per layer group (:func:`layer_groups`: ``conv1+relu1``, ``lrn1+pool1``,
  ``pool5``, ``drop6``, ``fc6+relu6``, ... the bench's per-layer unit names), and one per module
  inside a group of several (eager: ``conv1`` and ``relu1`` under ``conv1+relu1``; the triton
  variant's fused module has the group to itself, with our custom ops
  ``alexnet_fast::conv2d_relu`` etc. under it). The model is exactly the bench's variant.
* compiled variants, ``compile_scope="layers"``: hooks cannot work inside a compiled model
  (dynamo traces them: ``record_function`` enter/exit in hooks graph-breaks at every layer,
  13 graphs instead of 1), and ``record_function`` inside a compiled forward is dropped
  (dynamo ignores it unless ``torch._dynamo.config.capture_profiler_record_function``, and
  inductor then removes the ops anyway: ``_remove_profiler_ops`` in
  ``torch/_inductor/fx_passes/post_grad.py``, "to prevent them blocking fusion"). So each
  layer group is compiled as its own piece (``build_variant(piece, "compile")``) and marked
  from an uncompiled wrapper. Limit: no fusion across groups (e.g. inductor fuses relu1 into
  the LRN kernel in the whole model) and one dynamo guard check per piece, so this is a
  breakdown of a slightly different program: compare its step with the ``model`` scope's.
* compiled variants, ``compile_scope="model"``: the whole model compiled as the bench runs it;
  the trace shows ``Torch-Compiled Region`` and the compiled graph's ops and kernels (on CPU
  inductor's C++ kernels are named in the trace, ``cpp.enable_kernel_profile``), but no layer
  can be told apart: the layer table has one row, ``compiled graph``.

Backward (``pass_="train"``): the autograd engine runs each layer's backward outside any forward
range, so a backward op (``autograd::engine::evaluate_function: ...``) is attributed to the
layer whose forward recorded its sequence number (the profiler's forward/backward link).

Without a GPU the triton variants run in Triton's interpreter: the caller gives them a small
model (the CLI uses the bench's interpreted-check size); their times are "interpreted: not a
speed".

What only a GPU runs (small, listed): the CUDA activity, the CUDA peak-memory counters
(``torch.cuda.max_memory_allocated`` after a reset) and device kernels in the trace. The
analysis of kernels and idle gaps (:func:`kernel_table`, :func:`device_gaps`) reads the trace
JSON and is tested on CPU with a synthetic trace.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import gzip
import io
import json
import os
import re
import shutil
import statistics
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.autograd.profiler import record_function

from alexnet_fast.io import atomic_path, atomic_write_json, atomic_write_text
from alexnet_fast.model import AlexNetConfig
from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import COMPILE_MODES, PASSES, VARIANTS, choose, variant_label
from profiling.cell import inference_step, train_step
from profiling.flops import layer_units
from profiling.timers import fixed_threads, measure, synchronize, time_first_call

__all__ = ["ProfileResult", "LayerGroup", "LayerMarkers", "COMPILE_SCOPES", "GZIP_OVER_BYTES",
           "profile_cell", "layer_groups", "read_trace", "step_windows", "memory_peaks", "kernel_table",
           "device_gaps", "our_kernel_names", "kernel_source", "cell_name", "INTERPRETED"]

COMPILE_SCOPES = ("layers", "model")
GZIP_OVER_BYTES = 128 << 10  # traces bigger than 128 KiB are written gzipped (Perfetto and chrome://tracing read .gz)
INTERPRETED = "interpreted: not a speed"
STEP_NAME = re.compile(r"^step (\d+)$")
COMPILED_REGION = "Torch-Compiled Region"  # dynamo's range around a compiled frame
COMPILED_GRAPH = "compiled graph"  # the one "layer" of a whole-model compiled cell
BACKWARD_OP = "autograd::engine::evaluate_function: "
OPTIMIZER_PREFIX = "Optimizer."  # torch.optim's own ranges: Optimizer.step#SGD.step, Optimizer.zero_grad#...
TOP_OPS = 25
DRIFT = 0.10  # unprofiled steps before vs after the profiled ones: past 10% apart, no overhead figure


# ---------------------------------------------------------------------- layer groups and markers
@dataclass(frozen=True)
class LayerGroup:
    """One marked layer: ``members`` are children of the module at ``container`` ("" = the
    model itself), called in this order; ``name`` is what the trace shows."""

    name: str
    container: str
    members: tuple[str, ...]

    def modules(self, model: nn.Module) -> list[nn.Module]:
        parent = model.get_submodule(self.container) if self.container else model
        return [parent.get_submodule(m) for m in self.members]


def _is_alexnet(model: nn.Module) -> bool:
    return (isinstance(getattr(model, "config", None), AlexNetConfig)
            and isinstance(getattr(model, "features", None), nn.Sequential)
            and isinstance(getattr(model, "classifier", None), nn.Sequential))


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The layers a profile marks, in forward order.

    This project's AlexNet (its role names, any variant): the bench's per-layer units
    (:func:`profiling.flops.layer_units`: ``conv1+relu1``, ``lrn1+pool1`` -- the fused pair, not
    the separate ``lrn1`` and ``pool1`` --, ``pool5``, ``fc6+relu6``, ..., ``fc8``; ``avgpool``
    for the torchvision preset) plus the dropouts (``drop6``, ``drop7``), so every variant's
    bars have the same segments. Any other model: each leaf module by its qualified name
    (``nn.Identity`` left out: what :func:`kernels.apply` leaves of an absorbed ReLU / pool).
    """
    if not _is_alexnet(model):
        return [LayerGroup(name, name.rpartition(".")[0], (name.rpartition(".")[2],))
                for name, m in model.named_modules()
                if name and not list(m.children()) and not isinstance(m, nn.Identity)]
    fused = {m for u in layer_units(model.config) if u.fused_pair for m in u.modules}
    units = {(u.container, u.modules[0]): u for u in layer_units(model.config)
             if u.fused_pair or not set(u.modules) <= fused}
    order = [("features", n) for n in model.features._modules]
    order += [("", "avgpool")] if getattr(model, "avgpool", None) is not None else []
    order += [("classifier", n) for n in model.classifier._modules]
    groups, i = [], 0
    while i < len(order):
        container, name = order[i]
        unit = units.get((container, name))
        members = unit.modules if unit is not None else (name,)
        if [n for _, n in order[i:i + len(members)]] != list(members):
            raise ValueError(f"layer_groups: {container or 'model'}.{name} is not followed by {members[1:]}")
        groups.append(LayerGroup(unit.name if unit is not None else name, container, tuple(members)))
        i += len(members)
    return groups


class LayerMarkers:
    """Forward pre/post hooks opening and closing a ``record_function`` per layer group and
    per module inside a group of several (modules that are ``nn.Identity`` get none). For
    uncompiled models only (module docstring). ``names``: marker name -> "layer" | "module"."""

    def __init__(self, model: nn.Module, groups: Sequence[LayerGroup]):
        self.model, self.groups = model, list(groups)
        self.names: dict[str, str] = {}
        self._handles: list[Any] = []
        self._open: list[tuple[str, record_function]] = []

    def _enter(self, name: str):
        def hook(_module, _args):
            rf = record_function(name)
            rf.__enter__()
            self._open.append((name, rf))
        return hook

    def _exit(self, name: str):
        def hook(_module, _args, _out):
            if not self._open or self._open[-1][0] != name:
                raise RuntimeError(f"layer markers out of order: closing {name!r}, open "
                                   f"{[n for n, _ in self._open]}")
            self._open.pop()[1].__exit__(None, None, None)
        return hook

    def __enter__(self) -> "LayerMarkers":
        for group in self.groups:
            active = [(n, m) for n, m in zip(group.members, group.modules(self.model)) if not isinstance(m, nn.Identity)]
            if not active:
                continue
            self.names[group.name] = "layer"
            inner = len(active) > 1
            for k, (name, module) in enumerate(active):
                if k == 0:
                    self._handles.append(module.register_forward_pre_hook(self._enter(group.name)))
                if inner:
                    self.names.setdefault(name, "module")
                    self._handles.append(module.register_forward_pre_hook(self._enter(name)))
                    self._handles.append(module.register_forward_hook(self._exit(name)))
                if k == len(active) - 1:
                    self._handles.append(module.register_forward_hook(self._exit(group.name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        while self._open:  # a forward that raised between a pre- and a post-hook
            self._open.pop()[1].__exit__(None, None, None)


class _Marked(nn.Module):
    """An uncompiled wrapper naming a compiled piece in the trace."""

    def __init__(self, name: str, piece: nn.Module):
        super().__init__()
        self.marker, self.piece = name, piece

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with record_function(self.marker):
            return self.piece(x)


def _compile_per_layer(model: nn.Module, groups: Sequence[LayerGroup], compile_mode: str) -> dict[str, str]:
    """Replace each group of this project's AlexNet by one compiled piece (the group's modules
    in an ``nn.Sequential``, compiled by ``build_variant``) inside a :class:`_Marked`
    wrapper; returns the marker names."""
    from alexnet_fast.variants import build_variant

    if not _is_alexnet(model):
        raise ValueError("compile scope 'layers' needs this project's AlexNet (its layer roles); "
                         "profile a user's model with compile scope 'model'")
    by_container: dict[str, list[LayerGroup]] = {}
    for g in groups:
        by_container.setdefault(g.container, []).append(g)
    for container, gs in by_container.items():
        parent = model.get_submodule(container) if container else model
        pieces = OrderedDict()
        for g in gs:
            seq = nn.Sequential(OrderedDict((m, parent.get_submodule(m)) for m in g.members))
            pieces[g.name] = _Marked(g.name, build_variant(seq, "compile", compile_mode=compile_mode, copy_model=False))
        if container:  # features / classifier: a Sequential of the marked pieces
            setattr(model, container, nn.Sequential(pieces))
        else:  # avgpool, a direct child of the model
            for name, piece in pieces.items():
                setattr(model, name, piece)
    return {g.name: "layer" for g in groups}


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
            "peak_mem_bytes": self.memory.get("peak_bytes"),
            "peak_mem_source": self.memory.get("source"),
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


def _build(model: nn.Module, variant: str, compile_mode: str, compile_scope: str, groups: Sequence[LayerGroup] | None):
    """(built model, marker context, marker names, note) for a cell."""
    from alexnet_fast.variants import build_variant

    compiled = variant.endswith("compile")
    if compiled and compile_scope == "layers":
        base = build_variant(model, "triton" if variant.startswith("triton") else "eager", copy_model=False)
        names = _compile_per_layer(base, groups or layer_groups(base), compile_mode)
        return base, contextlib.nullcontext(), names, (
            "compiled per layer group (one torch.compile piece per layer, marked from an uncompiled wrapper): "
            "no fusion across layers; compare with compile scope 'model'")
    built = build_variant(model, variant, compile_mode=compile_mode, copy_model=False)
    if compiled:
        return built, contextlib.nullcontext(), {}, (
            "whole model compiled (as the bench runs it): layers are not separable inside the compiled graph "
            "(inductor removes record_function ops); see the ops table")
    markers = LayerMarkers(built, groups if groups is not None and _is_alexnet(built) else layer_groups(built))
    return built, markers, None, None


def profile_cell(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], variant: str, precision: str,
                 pass_: str, device: str | torch.device, out_dir: str | os.PathLike, *, steps: int = 3,
                 warmup: int = 2, compile_mode: str = "default", compile_scope: str = "layers",
                 threads: int | None = None, interpreted: bool | None = None, cold_compile: bool = True,
                 gzip_over_bytes: int = GZIP_OVER_BYTES, extra: dict[str, Any] | None = None) -> ProfileResult:
    """Profile one cell of ``model`` (an eager nn.Module, left untouched: a copy is built as
    ``variant``) on ``inputs`` = (images, targets) and write its files under ``out_dir``
    (module docstring). ``compile_scope``: for the compiled variants, ``layers`` (a compiled
    piece per layer, layers named in the trace) or ``model`` (the whole model, as the bench).
    ``interpreted`` (default: a triton variant without CUDA) marks the times as no speed.
    ``extra``: more fields for ``result.cell`` (size, preset, ...)."""
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

    torch._dynamo.reset()  # static shapes per cell; no compiled code shared between cells
    base = copy.deepcopy(model).to(device)
    groups = layer_groups(base) if _is_alexnet(base) else None
    settings = _compile_settings(cold_compile, not cuda) if compiled else contextlib.nullcontext()
    with settings, fixed_threads(threads) as n_threads:
        built, markers, names, note = _build(base, variant, compile_mode, compile_scope, groups)
        if note:
            notes.append(note)
        step = inference_step(built.eval(), x, prec) if pass_ == "inference" else train_step(built, x, target, prec)
        with markers, prec.flags():
            names = markers.names if isinstance(markers, LayerMarkers) else names
            first_call_s = time_first_call(step, device)[0] if warmup else None  # compiles, for the compiled variants
            for _ in range(warmup - 1):
                step()
            before = None if interpreted else measure(step, device=device, warmup=0, repeats=steps, threads=n_threads)
            prof, cuda_memory = _profile_steps(step, device, steps)
            after = None if interpreted else measure(step, device=device, warmup=0, repeats=steps, threads=n_threads)
    unprofiled = None if interpreted else _unprofiled(before, after)
    cell["threads"] = n_threads
    out.mkdir(parents=True, exist_ok=True)
    trace_path = _write_trace(prof, out, gzip_over_bytes)
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
    _write_cell_files(result, out)
    return result


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
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # kineto's "gpuGetDeviceCount failed" line on CPU-only machines
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


def read_trace(path: str | os.PathLike) -> dict[str, Any]:
    """A Chrome trace (``.json`` or ``.json.gz``) as a dict with ``traceEvents``; ValueError
    if it does not parse as one."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            trace = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"trace {path} is not Chrome trace JSON: {e}") from None
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise ValueError(f"trace {path} has no traceEvents list")
    return trace


def step_windows(trace: dict[str, Any]) -> list[tuple[float, float]]:
    """(start, end) in µs of each ``step N`` range of the host timeline, in step order."""
    steps = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") == "user_annotation"
             and STEP_NAME.match(str(e.get("name", "")))]
    steps.sort(key=lambda e: int(STEP_NAME.match(e["name"]).group(1)))
    return [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in steps]


def memory_peaks(trace: dict[str, Any], cuda_memory: dict[str, Any] | None = None) -> dict[str, Any]:
    """Peak memory of the profiled steps. From the trace's ``[memory]`` events (profile_memory:
    each carries the allocator's ``Total Allocated`` after it), per device type: the highest
    total inside a step minus the total at the step's start, the largest over steps. On CPU
    that counts only blocks allocated while profiling (the CPU allocator reports a block it
    saw being allocated): the step's activations, temporaries and gradients, not the weights
    or inputs. On a GPU the CUDA allocator's own counters (``cuda_memory``) are the figure."""
    windows = step_windows(trace)
    mem = sorted((float(e["ts"]), e.get("args", {})) for e in trace["traceEvents"] if e.get("name") == "[memory]")
    per_device: dict[str, int] = {}
    for device_type, label in ((0, "cpu"), (1, "cuda")):
        events = [(ts, int(a.get("Total Allocated", 0))) for ts, a in mem if a.get("Device Type") == device_type]
        if not events:
            continue
        best = 0
        for start, end in windows:
            before = [total for ts, total in events if ts < start]
            base = before[-1] if before else 0
            inside = [total for ts, total in events if start <= ts <= end]
            if inside:
                best = max(best, max(inside) - base)
        per_device[label] = best
    if cuda_memory is not None:
        return {**cuda_memory, "trace_peak_bytes": per_device}
    return {"peak_bytes": per_device.get("cpu"), "trace_peak_bytes": per_device,
            "source": "profiler [memory] events: peak Total Allocated in a step minus its value at the step's start; "
                      "only blocks allocated while profiling (activations, temporaries, gradients), not the weights "
                      "or inputs"}


DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def our_kernel_names() -> set[str]:
    """Names of this project's ``@triton.jit`` kernels (what CUPTI names their launches)."""
    import importlib

    names = set()
    for module_name in ("kernels.conv2d_relu", "kernels.lrn", "kernels.max_pool2d", "kernels.lrn_max_pool2d"):
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            fn = getattr(value, "fn", None)
            if callable(fn) and type(value).__name__ in ("JITFunction", "InterpretedFunction") \
                    and fn.__name__.endswith("_kernel"):
                names.add(fn.__name__)
    return names


def kernel_source(name: str, ours: set[str]) -> str:
    """``ours`` (our Triton kernels), ``inductor`` (torch.compile's generated Triton kernels,
    ``triton_poi_/red_/per_/tem_...``) or ``library`` (cuDNN, cuBLAS, PyTorch's own kernels)."""
    if name in ours or any(name.startswith(o + "_") for o in ours):
        return "ours"
    if name.startswith("triton_"):
        return "inductor"
    return "library"


def kernel_table(trace: dict[str, Any], ours: set[str], steps: int) -> list[dict[str, Any]]:
    """Device time per kernel name (and memcpy / memset) over the profiled steps, per step,
    largest first, each with its :func:`kernel_source`."""
    rows: dict[str, dict[str, Any]] = {}
    for e in trace["traceEvents"]:
        if e.get("ph") != "X" or e.get("cat") not in DEVICE_CATS:
            continue
        r = rows.setdefault(e["name"], {"kernel": e["name"], "kind": e["cat"], "calls": 0, "device_ms": 0.0,
                                        "source": kernel_source(e["name"], ours) if e["cat"] == "kernel" else "copy"})
        r["calls"] += 1
        r["device_ms"] += float(e["dur"]) / 1e3
    total = sum(r["device_ms"] for r in rows.values())
    table = []
    for r in sorted(rows.values(), key=lambda r: -r["device_ms"]):
        table.append({**r, "mean_us": 1e3 * r["device_ms"] / r["calls"], "calls": r["calls"] / steps,
                      "device_ms": r["device_ms"] / steps, "share": r["device_ms"] / total if total else None})
    return table


def device_gaps(trace: dict[str, Any]) -> dict[str, Any]:
    """How much of each step the device sits idle: per step, the union of the device's
    kernel / copy intervals (busy), the step's range minus it (idle), and the gaps between
    consecutive busy intervals (what launching and dispatch cost once the device waits on
    the host), plus the lead time before the first kernel. Medians over steps, in ms / µs."""
    windows = step_windows(trace)
    work = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in trace["traceEvents"]
                  if e.get("ph") == "X" and e.get("cat") in DEVICE_CATS)
    per_step = []
    for start, end in windows:
        spans = [(max(s, start), min(e, end)) for s, e in work if e > start and s < end]
        merged: list[list[float]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        busy = sum(e - s for s, e in merged)
        gaps = [b[0] - a[1] for a, b in zip(merged, merged[1:])]
        per_step.append({"step_ms": (end - start) / 1e3, "busy_ms": busy / 1e3, "idle_ms": (end - start - busy) / 1e3,
                         "kernels": len(spans), "gaps": len(gaps), "gap_total_ms": sum(gaps) / 1e3,
                         "gap_median_us": statistics.median(gaps) if gaps else 0.0,
                         "gap_max_us": max(gaps) if gaps else 0.0,
                         "lead_us": (merged[0][0] - start) if merged else None})
    if not per_step:
        return {}
    keys = [k for k in per_step[0] if k != "lead_us"]
    summary = {k: statistics.median(s[k] for s in per_step) for k in keys}
    leads = [s["lead_us"] for s in per_step if s["lead_us"] is not None]
    summary["lead_us"] = statistics.median(leads) if leads else None
    summary["busy_share"] = summary["busy_ms"] / summary["step_ms"] if summary["step_ms"] else None
    return summary


# ---------------------------------------------------------------------- files
def _write_trace(prof, out: Path, gzip_over_bytes: int) -> Path:
    """``trace.json`` from ``prof.export_chrome_trace``, or ``trace.json.gz`` when bigger than
    ``gzip_over_bytes``; written atomically, the stale other form removed."""
    plain, packed = out / "trace.json", out / "trace.json.gz"
    tmp = out / f".trace.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp.json"
    try:
        prof.export_chrome_trace(str(tmp))
        if tmp.stat().st_size <= gzip_over_bytes:
            os.replace(tmp, plain)
            packed.unlink(missing_ok=True)
            return plain
        with atomic_path(packed) as gz_tmp:
            with open(tmp, "rb") as src, gzip.open(gz_tmp, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        plain.unlink(missing_ok=True)
        return packed
    finally:
        tmp.unlink(missing_ok=True)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def cell_markdown(result: ProfileResult, link: str = "") -> str:
    """The cell's section: step times, memory, notes, then the layer, op (and kernel) tables."""
    from profiling.report import markdown_table

    c = result.cell
    train = c["pass"] == "train"
    cuda = c["device"].startswith("cuda")
    lines = [f"## {c['label']} · {c['precision']} · batch {c['batch_size']} · {c['pass']}", ""]
    size = f"input {'x'.join(map(str, c['input_shape']))}" + (f", {c['size']}" if c.get("size") else "")
    load = f", load average {c['load_avg_1m']:.1f} at the start" if c.get("load_avg_1m") is not None else ""
    lines.append(f"- device {c['device']}, {c.get('threads')} thread(s){load}, {size}; {c['steps']} profiled steps "
                 f"after {c['warmup']} warm-up")
    if result.interpreted:
        lines.append(f"- step {result.step_mean_ms:.1f} ms under the profiler: **{INTERPRETED}**")
    else:
        unprof = result.unprofiled["median_ms"]
        pct, why = result.overhead()
        over = f"{pct:+.0f}% profiler + marker overhead; {why}" if pct is not None else why
        first = "" if result.first_call_s is None else f"; first call {result.first_call_s:.2f} s"
        lines.append(f"- step **{result.step_mean_ms:.2f} ms** under the profiler (mean of {len(result.step_ms)}), "
                     f"{unprof:.2f} ms without it (median of {2 * c['steps']}: {over}){first}")
    mem = result.memory
    lines.append(f"- peak memory {_bytes(mem.get('peak_bytes'))} ({mem.get('source')})")
    lines += [f"- {n}" for n in result.notes]
    if link:
        lines.append(f"- trace: [{link}]({link}) (open in https://ui.perfetto.dev or chrome://tracing)")
    if result.gaps:
        g = result.gaps
        lines.append(f"- device busy {g['busy_ms']:.3f} of {g['step_ms']:.3f} ms a step ({100 * (g['busy_share'] or 0):.0f}%); "
                     f"{g['gaps']:.0f} gaps between {g['kernels']:.0f} kernels, {g['gap_total_ms']:.3f} ms in all "
                     f"(median {g['gap_median_us']:.1f} µs, max {g['gap_max_us']:.1f} µs), first kernel "
                     f"{_f(g['lead_us'])} µs after the step starts")
    lines += ["", f"Time per layer, per step ({'device' if cuda else 'CPU'} time decides; `layer` rows add up to the "
                  f"step, `module` rows sit inside their layer):", ""]
    dev = ["device total ms", "device self ms"] if cuda else []
    header = ["layer", "level", "calls", "CPU total ms", "CPU self ms", *dev]
    header += (["bwd CPU ms"] + (["bwd device ms"] if cuda else [])) if train else []
    header += ["share of step"]
    rows = []
    for r in result.layers:
        row = [r["layer"], r["level"], _f(r["calls"]), _f(r["cpu_total_ms"]), _f(r["cpu_self_ms"])]
        row += [_f(r["device_total_ms"]), _f(r["device_self_ms"])] if cuda else []
        row += ([_f(r["bwd_cpu_ms"])] + ([_f(r["bwd_device_ms"])] if cuda else [])) if train else []
        row += [f"{100 * r['share']:.1f}%" if r.get("share") is not None and r["level"] == "layer" else ""]
        rows.append(row)
    lines += [markdown_table(header, rows), ""]
    lines += [f"Top ops, per step, by self {'device' if cuda else 'CPU'} time (`ours`: our custom ops; CPU MiB: "
              f"allocated minus freed inside the op):", ""]
    op_dev = ["self device ms", "device total ms"] if cuda else []
    lines += [markdown_table(["op", "calls", "self CPU ms", "CPU total ms", *op_dev, "self CPU MiB", "ours"],
                             [[r["op"], _f(r["calls"]), _f(r["self_cpu_ms"]), _f(r["cpu_total_ms"]),
                               *([_f(r["self_device_ms"]), _f(r["device_total_ms"])] if cuda else []),
                               _f(r["self_cpu_mem_mib"]), _f(r["ours"])] for r in result.ops]), ""]
    if result.kernels:
        lines += ["Device kernels, per step (`ours`: our Triton kernels; `inductor`: torch.compile's):", ""]
        lines += [markdown_table(["kernel", "source", "calls", "device ms", "mean µs", "share"],
                                 [[r["kernel"], r["source"], _f(r["calls"]), _f(r["device_ms"]), _f(r["mean_us"]),
                                   f"{100 * r['share']:.1f}%" if r["share"] is not None else "-"]
                                  for r in result.kernels[:TOP_OPS]]), ""]
    return "\n".join(lines) + "\n"


def _write_cell_files(result: ProfileResult, out: Path) -> None:
    files = {"trace": result.files["trace"], "layers_csv": str(out / "layers.csv"), "ops_csv": str(out / "ops.csv"),
             "markdown": str(out / "profile.md"), "json": str(out / "cell.json")}
    atomic_write_text(out / "layers.csv", _csv_text(result.layers))
    atomic_write_text(out / "ops.csv", _csv_text(result.ops))
    if result.kernels:
        files["kernels_csv"] = str(out / "kernels.csv")
        atomic_write_text(out / "kernels.csv", _csv_text(result.kernels))
    result.files = files
    atomic_write_text(out / "profile.md", cell_markdown(result, Path(files["trace"]).name))
    atomic_write_json(out / "cell.json", result.as_dict())

