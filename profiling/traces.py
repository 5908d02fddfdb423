"""Chrome / Perfetto trace files of a profile: writing one (gzipped when large), reading it
back, and what the trace JSON tells on its own: the step windows, peak memory, the device
kernels by source (ours, inductor's, libraries') and the device's idle gaps between kernels.
Pure JSON work, so CI tests it on a synthetic CUPTI-style trace."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import statistics
import uuid
from pathlib import Path
from typing import Any

from alexnet_fast.io import atomic_path

__all__ = ["STEP_NAME", "write_trace", "read_trace", "step_windows", "memory_peaks", "our_kernel_names",
           "kernel_source", "kernel_table", "device_gaps"]

STEP_NAME = re.compile(r"^step (\d+)$")


def write_trace(prof, out: Path, gzip_over_bytes: int) -> Path:
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
    from alexnet_fast.kernels import op_modules

    names = set()
    for module in op_modules():
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
