"""``alexnet-fast bench --suite gpu-quick``: a suite (``profiling/suites.py``: data) run by the
one engine (:class:`profiling.engine.Engine`), its bundle, ``--smoke`` and ``--dry-run``.

This module holds no runner: it turns the flags into the suite's cells, the engine's
settings and the bundle the engine writes after every cell. The run prints its plan and
estimate before it starts; the engine skips a cell that would end past the budget
(``--budget-s``, recorded ``skipped``), and on SIGINT / SIGTERM stops with the bundle
written (exit 128 + the signal).

The bundle (``--output-dir DIR``; default ``reports/gpu/<device>/``): at most
:data:`BUNDLE_FILES`, all at the top of DIR, each rewritten as the run goes so a run cut off
leaves a readable one -- ``results.json`` (meta, the cells with estimated and measured
seconds and compiles, every row), ``REPORT.md`` (:mod:`profiling.render.suite`),
``preflight.json``, ``codegen.csv``, ``pytest-gpu.log`` (streamed), ``pytest-gpu.xml`` and
``profile.tar.gz`` (the profile cells' folders -- trace, tables -- and their ``PROFILE.md``,
``profile.json`` and ``layers.png``: one gzipped archive, so that any number of traces is one
file of the bundle; traces past :data:`PROFILE_ARCHIVE_MAX_BYTES` are left out and listed).
Caches go elsewhere: one inductor and one Triton cache for the run and its subprocesses
(``--cache-dir``, default ``~/.cache/alexnet-fast``; ``TORCHINDUCTOR_CACHE_DIR`` /
``TRITON_CACHE_DIR`` already set are kept), autotune results cached on disk
(``TRITON_CACHE_AUTOTUNING=1``).

``--smoke``: the same cells at toy size (:func:`profiling.suites.smoke_spec`) on any
machine, CPU included (Triton interpreted): CI runs it. ``--dry-run [DEVICE]``: the plan,
the estimate and its constants, and REPORT.md rendered from the recorded example
(``profiling/data/gpu_quick_example.json``, synthetic), with nothing run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from alexnet_fast.profiling import estimates, suites
from alexnet_fast.profiling.cell_types import KINDS

ASSUMED_DEVICE = "NVIDIA H100 80GB HBM3"  # the device a dry run estimates for unless told
LAYOUT_LABEL = "equivalence + CUDA code path only, not a two-GPU speed"
EXAMPLE = Path(__file__).resolve().parent / "data" / "gpu_quick_example.json"
RESULTS_FILE = "results.json"
REPORT_FILE = "REPORT.md"
PROFILE_ARCHIVE = "profile.tar.gz"
BUNDLE_FILES = (RESULTS_FILE, REPORT_FILE, "preflight.json", "codegen.csv", "pytest-gpu.log", "pytest-gpu.xml",
                PROFILE_ARCHIVE)
PROFILE_ARCHIVE_MAX_BYTES = 12 << 20  # traces (already gzipped past 128 KiB) beyond this stay out: a bundle file < 16 MB


def default_bundle_dir(device_name: str, smoke: bool) -> Path:
    from alexnet_fast.profiling.results import _slug

    return Path("reports") / "gpu" / (_slug(device_name) + ("-smoke" if smoke else ""))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alexnet-fast"


def set_cache_env(cache_dir: str | os.PathLike | None) -> dict[str, str]:
    """One inductor and one Triton cache for the run and its subprocesses: ``cache_dir``'s
    ``inductor/`` and ``triton/`` (a cache directory already set in the environment is kept
    unless ``cache_dir`` is given), and autotune results cached on disk. Must run before
    triton is imported (the conv autotuners read TRITON_CACHE_AUTOTUNING at import)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for name, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
        if cache_dir is not None or not os.environ.get(name):
            os.environ[name] = str(root / sub)
    os.environ["TRITON_CACHE_AUTOTUNING"] = "1"
    return {k: os.environ[k] for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TRITON_CACHE_AUTOTUNING")}


class SuiteBundle:
    """The engine's output for a suite: ``results.json`` and ``REPORT.md`` in ``dir``,
    rewritten atomically after every cell, and :data:`PROFILE_ARCHIVE` after every profile
    cell (the profile cells write into ``profile_dir``, a scratch folder outside the bundle,
    removed by :meth:`close`); the other bundle files are the cells' own."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.profile_dir = Path(tempfile.mkdtemp(prefix="alexnet-fast-profile-"))
        self._packed = 0

    def close(self) -> None:
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    def pack_profiles(self, engine) -> None:
        """The profile cells' folders and summary as one gzipped tar (atomically): tables
        always, traces smallest first while the archive stays under the limit; the left-out
        traces named in ``engine.meta["profile_traces_left_out"]``."""
        from alexnet_fast.io import atomic_path
        from alexnet_fast.profiling.render.profile import write_summary

        write_summary(engine.profiles, self.profile_dir, by="`alexnet-fast bench --suite`")
        files = sorted(p for p in self.profile_dir.rglob("*") if p.is_file())
        traces = sorted((p for p in files if p.name.startswith("trace.json")), key=lambda p: p.stat().st_size)
        total, left_out = sum(p.stat().st_size for p in files if p not in traces), []
        for p in traces:
            if total + p.stat().st_size > PROFILE_ARCHIVE_MAX_BYTES:
                left_out.append(str(p.relative_to(self.profile_dir)))
            else:
                total += p.stat().st_size
        with atomic_path(self.dir / PROFILE_ARCHIVE) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                for p in files:
                    if str(p.relative_to(self.profile_dir)) not in left_out:
                        tar.add(p, arcname=f"profile/{p.relative_to(self.profile_dir)}")
        engine.meta["profile_archive"] = PROFILE_ARCHIVE
        engine.meta["profile_traces_left_out"] = left_out
        self._packed = len(engine.profiles)

    def results(self, engine) -> dict[str, Any]:
        return {"meta": engine.meta, "cells": engine.records, "rows": engine.rows}

    def write(self, engine) -> None:
        from alexnet_fast.io import atomic_write_text, json_safe
        from alexnet_fast.profiling.render.suite import render

        if len(engine.profiles) > self._packed:
            self.pack_profiles(engine)
        text = json.dumps(json_safe(self.results(engine)), indent=1, allow_nan=False)
        atomic_write_text(self.dir / RESULTS_FILE, text + "\n")
        atomic_write_text(self.dir / REPORT_FILE, render(json.loads(text)))


# ---------------------------------------------------------------------- CLI (through `bench`)
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags `bench` gains for suites (added by profiling.bench.add_arguments)."""
    parser.add_argument("--suite", default=None, choices=sorted(suites.SUITES),
                        help="run a named suite instead of the matrix (gpu-quick: the GPU questions in < 8 min)")
    parser.add_argument("--smoke", action="store_true",
                        help="--suite: every cell kind at toy size, on any machine (CPU: Triton interpreted); CI runs it")
    parser.add_argument("--dry-run", nargs="?", const=ASSUMED_DEVICE, default=None, metavar="DEVICE",
                        help="print the plan, its estimate and the estimate's constants (for DEVICE, default an "
                             "H100); with --suite also render REPORT.md from the recorded example; run nothing")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="--suite: do not start a cell that would end past this many seconds "
                             "(default: the suite's budget)")
    parser.add_argument("--kinds", action="append", metavar="KINDS",
                        help=f"--suite: run only these kinds of cells ({', '.join(KINDS)}; the preflight "
                             "always runs)")
    parser.add_argument("--compile-backend", default=None, choices=("inductor", "aot_eager", "eager"),
                        help="--suite: torch.compile's backend for the compiled variants (default: the suite's: "
                             "inductor; --smoke: aot_eager)")
    parser.add_argument("--cache-dir", default=None,
                        help="--suite: the run's inductor and Triton caches (default: ~/.cache/alexnet-fast, or "
                             "TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR if set)")


def _kinds(args) -> list[str] | None:
    values = getattr(args, "kinds", None)
    if not values:
        return None
    kinds = [k.strip() for v in values for k in v.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown cell kind {', '.join(map(repr, bad))}; choose from {', '.join(KINDS)}")
    return kinds


def select_cells(cells: list, kinds: list[str] | None) -> list:
    """The cells of ``kinds`` (None: all), the preflight always first."""
    if kinds is None:
        return cells
    return [c for c in cells if c.kind == "preflight" or c.kind in kinds]


def dry_run(args: argparse.Namespace) -> int:
    """Plan, estimate and its constants and (suites) the report of the recorded example."""
    device = args.dry_run
    if getattr(args, "suite", None) is None:
        from alexnet_fast.profiling.plan import default_plan, describe, plan_cells

        plan = default_plan("cuda")
        cells = suites.order_cells(plan_cells(plan))
        total = estimates.estimate(cells)
        print(describe(plan))
        print(f"full GPU default on {device}: {len(cells)} cells, estimated {estimates.format_duration(total)} "
              f"(cold compiles, autotuning every Triton config); most informative first:")
        for c in cells[:15]:
            print("  " + c.describe())
        if len(cells) > 15:
            print(f"  ... {len(cells) - 15} more")
        return 0
    spec = suites.get_suite(args.suite, smoke=getattr(args, "smoke", False))
    budget = spec.budget_s if args.budget_s is None else args.budget_s
    cells = select_cells(suites.build_cells(spec), _kinds(args))
    from alexnet_fast.profiling.roofline import known_peaks

    peaks = known_peaks(device)
    print(suites.describe_plan(spec, cells, budget, device + " (assumed)"))
    print(f"estimate: {estimates.estimate(cells):.0f} s = {estimates.estimate(cells) / 60:.1f} min on {device}; budget "
          f"{budget:.0f} s; peaks: {peaks.source if peaks else 'not a known GPU: measured at run time'}")
    print("the estimate's constants (profiling/estimates.py):\n" + estimates.constants_table())
    if not EXAMPLE.exists():
        print(f"dry run: no recorded example at {EXAMPLE}; report rendering not checked", file=sys.stderr)
        return 1
    from alexnet_fast.io import atomic_write_text
    from alexnet_fast.profiling.render.suite import render

    results = json.loads(EXAMPLE.read_text())
    out = Path(args.output_dir or Path("reports") / "gpu" / "dry-run") / REPORT_FILE
    atomic_write_text(out, render(results, note=f"rendered by --dry-run from the recorded example {EXAMPLE.name}; "
                                                "no number in it was measured by this run"))
    print(f"dry run: rendered the report of the recorded example {EXAMPLE.name} to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", None):
        return dry_run(args)
    if getattr(args, "smoke", False) and not getattr(args, "suite", None):
        print("alexnet-fast bench: --smoke needs --suite (e.g. --suite gpu-quick --smoke)", file=sys.stderr)
        return 2
    import torch

    from alexnet_fast.io import writable_dir
    from alexnet_fast.profiling.results import device_name

    smoke = getattr(args, "smoke", False)
    try:
        spec = suites.get_suite(args.suite, smoke=smoke)
        if getattr(args, "compile_backend", None):
            spec = replace(spec, compile_backend=args.compile_backend)
        kinds = _kinds(args)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(device).type != "cuda" and not smoke:
            raise ValueError(f"--suite {spec.name} needs a CUDA device (none here); --smoke runs the same cells at "
                             f"toy size on this machine, --dry-run prints the plan")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available")
        budget = spec.budget_s if args.budget_s is None else args.budget_s
        if not budget > 0:
            raise ValueError(f"--budget-s must be positive, got {budget}")
        name = device_name(device)
        bundle_dir = writable_dir(args.output_dir or default_bundle_dir(name, smoke))
    except ValueError as e:
        print(f"alexnet-fast bench: {e}", file=sys.stderr)
        return 2
    caches = set_cache_env(args.cache_dir)
    from alexnet_fast.profiling.engine import Engine
    from alexnet_fast.profiling.interrupts import Interrupted, PreflightFailed
    from alexnet_fast.profiling.results import environment

    cells = select_cells(suites.build_cells(spec, interpreted=torch.device(device).type != "cuda"), kinds)
    print(suites.describe_plan(spec, cells, budget, name), file=sys.stderr)
    meta = {**environment(device), "suite": spec.name, "smoke": smoke, "description": spec.description,
            "estimate_s": estimates.estimate(cells), "budget_s": budget, "layer_batch": spec.layer_batch,
            "autotune_max_configs": spec.autotune_max_configs, "warmup": spec.warmup, "repeats": spec.repeats,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "caches": caches,
            "bundle": str(bundle_dir), "layout_label": LAYOUT_LABEL, "compile_backend": spec.compile_backend,
            "capability": (".".join(map(str, torch.cuda.get_device_capability(device)))
                           if torch.device(device).type == "cuda" else None)}
    bundle = SuiteBundle(bundle_dir)
    engine = Engine(device, bundle, budget_s=budget,
                    progress=False if getattr(args, "no_progress", False) else None, warmup=spec.warmup,
                    repeats=spec.repeats, cudnn_benchmark=True, autotune_max_configs=spec.autotune_max_configs,
                    compile_backend=spec.compile_backend, meta=meta)
    try:
        engine.run(cells)
    except PreflightFailed as e:
        print(f"alexnet-fast bench: {e} (bundle: {bundle_dir})", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"alexnet-fast bench: stopped by {e} after {engine.elapsed():.0f} s; results and report written to "
              f"{bundle_dir}", file=sys.stderr)
        return 128 + e.signum
    finally:
        bundle.close()
    statuses: dict[str, int] = {}
    for c in engine.records:
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
    print(f"wrote {bundle_dir / RESULTS_FILE} and {bundle_dir / REPORT_FILE} in {engine.elapsed():.0f} s: cells "
          + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), file=sys.stderr)
    failed = any(r.get("status") in ("failed", "error") for r in engine.rows) or statuses.get("error")
    return 1 if failed and getattr(args, "strict", False) else 0
