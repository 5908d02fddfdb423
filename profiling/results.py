"""Results as a tidy table: one row per measurement, every row self-describing.

Every row carries the environment that produced it (device, threads, versions, git commit;
:func:`environment`) next to what was measured (variant, precision, batch, pass, layout,
layer, timing, equivalence). Tables are written as CSV and JSON (records) with
:func:`write_results`, atomically (:mod:`alexnet_fast.io`: a temporary file in the same
directory moved over the old one with ``os.replace``), so a crash mid-write leaves the
previous file intact.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from alexnet_fast.io import atomic_path, atomic_write_text, json_safe

__all__ = [
    "COLUMNS",
    "STATUSES",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "environment",
    "machine_slug",
    "device_name",
    "git_commit",
    "to_frame",
    "write_results",
    "read_results",
    "ResultsTable",
]

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"

# what a row's status means
STATUSES = {
    "ok": "measured; equivalent to eager fp32 within the stated tolerance",
    "failed": "not equivalent to eager fp32 within tolerance: not timed",
    "interpreted": "Triton ran in its CPU interpreter (reduced size): equivalence only, no speed",
    "error": "the variant raised; see note",
    "peak": "measured device peak (GEMM / copy)",
    "profiled": "run under torch.profiler (not judged here: the model cell of the same variant is); its trace and tables",
}

# Column order of the tidy table (extra columns are kept after these).
COLUMNS = [
    # what was measured
    "scope", "layer", "op", "variant", "compile_mode", "label", "precision", "batch_size",
    "pass", "layout", "preset", "width_mult", "input_size", "status",
    # timing
    "median_ms", "p20_ms", "p80_ms", "min_ms", "repeats", "warmup", "timer", "compile_s",
    "images_per_s", "peak_memory_mb", "peak_memory_source",
    # FLOP / byte model
    "flops", "bytes", "bytes_model", "intensity", "gflops_per_s", "gbytes_per_s",
    # equivalence
    "check_size", "max_abs_err", "max_rel_err", "grad_max_abs_err", "grad_max_rel_err",
    "worst_tensor", "fp64_err", "eager_fp64_err", "tolerance", "equivalent",
    # layouts
    "comm_ms", "comm_bytes", "comm_bytes_model",
    # telemetry
    "sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c", "throttle_reasons", "throttled",
    # environment
    "device", "device_type", "machine", "threads", "torch", "triton", "cuda", "cudnn", "python",
    "git_commit", "run_id", "timestamp", "note",
]


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """Short commit of the repository (``+dirty`` if the tree has changes), or "unknown"."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: str = "cpu") -> str:
    """Human name of the device: the GPU's name, or the CPU model."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return _cpu_model()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_slug(device: str = "cpu", threads: int | None = None) -> str:
    """File-name-safe name of the machine that measured: ``nvidia-h100-80gb-hbm3`` or
    ``cpu-amd-epyc-2t`` (CPU model and thread count)."""
    import torch

    if torch.device(device).type == "cuda":
        return _slug(device_name(device))
    threads = torch.get_num_threads() if threads is None else threads
    return f"cpu-{_slug(_cpu_model())}-{threads}t"


def environment(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Columns every row carries: device, threads, versions, git commit."""
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    threads = torch.get_num_threads() if threads is None else threads
    return {
        "device": device_name(device),
        "device_type": dev.type,
        "machine": machine_slug(device, threads),
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }


def to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with :data:`COLUMNS` first, in order."""
    frame = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra]


def write_results(rows: Iterable[dict[str, Any]] | pd.DataFrame, output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.json`` (records) under ``output_dir`` atomically."""
    frame = rows if isinstance(rows, pd.DataFrame) else to_frame(rows)
    out = Path(output_dir)
    with atomic_path(out / RESULTS_CSV) as tmp:
        frame.to_csv(tmp, index=False)
    records = json_safe(frame.to_dict(orient="records"))
    atomic_write_text(out / RESULTS_JSON, json.dumps(records, indent=1, allow_nan=False) + "\n")
    return out / RESULTS_CSV, out / RESULTS_JSON


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Load a results table from ``results.json`` / ``results.csv`` or a directory holding
    one (JSON preferred). ValueError if missing or malformed."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / RESULTS_JSON, path / RESULTS_CSV]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise ValueError(f"no {RESULTS_JSON} or {RESULTS_CSV} in {path}; run `alexnet-fast bench` first")
        path = found[0]
    if not path.is_file():
        raise ValueError(f"results file {path} does not exist; run `alexnet-fast bench` first")
    try:
        if path.suffix == ".json":
            with open(path, encoding="utf-8") as f:
                records = json.load(f)
            if not isinstance(records, list):
                raise ValueError("expected a JSON list of row objects")
            frame = pd.DataFrame(records)
        else:
            frame = pd.read_csv(path)
    except (json.JSONDecodeError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"results file {path} is malformed: {e}") from e
    missing = [c for c in ("scope", "variant", "precision", "batch_size", "pass", "status") if c not in frame.columns]
    if missing:
        raise ValueError(f"results file {path} lacks columns {missing}; was it written by `alexnet-fast bench`?")
    return frame


class ResultsTable:
    """``alexnet-fast bench``'s output: the tidy table (results.csv and results.json)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def write(self, engine) -> None:
        if engine.rows:
            write_results(engine.rows, self.dir)
