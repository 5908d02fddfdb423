"""`alexnet-fast bench`: the command line of the bench engine.

:func:`add_arguments` defines every flag (one function: add a flag there and read it in
:func:`profiling.plan.plan_from_args`); :func:`run` turns them into a
:class:`profiling.plan.BenchPlan` -- refusing bad input up front, in one line, before any
work starts -- and runs it with :class:`Harness` (the one engine on the plan's cells).

The modules behind it, one job each: :mod:`profiling.plan` (what to measure),
:mod:`profiling.engine` (one-device cells), :mod:`profiling.layout_bench` (two-rank cells),
:mod:`profiling.cell` (what a cell runs), :mod:`profiling.judge` (the equivalence rule),
:mod:`profiling.timers` (the timer), :mod:`alexnet_fast.precision` (the precision policy).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from torch import nn

from alexnet_fast.io import writable_dir
from alexnet_fast.vocabulary import COMPILE_MODES, LAYOUTS, PASSES, PRECISIONS, VARIANTS
from alexnet_fast.profiling.cell_types import Cell
from alexnet_fast.profiling.engine import Engine
from alexnet_fast.profiling.plan import describe, plan_from_args, use_interpreter_without_gpu
from alexnet_fast.profiling.results import ResultsTable

__all__ = ["add_arguments", "run", "Harness"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", action="append", metavar="NAMES",
                        help=f"variants ({', '.join(VARIANTS)}); repeatable or comma-separated")
    parser.add_argument("--compile-mode", action="append", metavar="MODES",
                        help=f"torch.compile modes for the compiled variants ({', '.join(COMPILE_MODES)})")
    parser.add_argument("--precision", action="append", metavar="NAMES",
                        help=f"{', '.join(PRECISIONS)} (policy: alexnet_fast.precision)")
    parser.add_argument("--batch-size", action="append", metavar="SIZES", help="batch sizes, e.g. 1,32,128")
    parser.add_argument("--pass", dest="passes", action="append", metavar="PASSES", help=", ".join(PASSES))
    parser.add_argument("--layer", action="append", metavar="UNITS",
                        help="per-layer units (conv1+relu1, lrn1, pool1, lrn1+pool1, ..., fc8), 'all' or 'none'")
    parser.add_argument("--layout", action="append", metavar="LAYOUTS", help=", ".join(LAYOUTS))
    parser.add_argument("--output-dir", default=None,
                        help="where results.csv/json go (default: reports); with --suite the bundle's folder "
                             "(default: reports/gpu/<device>)")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    parser.add_argument("--model", default=None, metavar="MODULE:CALLABLE",
                        help="bench your own model: a factory returning an nn.Module or (nn.Module, input_size), "
                             "e.g. alexnet_fast.examples:small_flat_alexnet")
    parser.add_argument("--preset", default=None, help="paper (default) or torchvision")
    parser.add_argument("--width-mult", type=float, default=None, help="scale every layer's width")
    parser.add_argument("--input-size", type=int, default=None, help="input height = width")
    parser.add_argument("--layer-batch-size", type=int, default=None, help="batch of the per-layer rows")
    parser.add_argument("--layer-pass", action="append", metavar="PASSES",
                        help="per-layer passes: fwd (default), bwd (the gradients a training step needs) or both")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls of a baseline row (median and quantiles)")
    parser.add_argument("--ci-target", type=float, default=0.03,
                        help="a speedup's paired rounds stop when its 95%% interval is within this fraction (0.03)")
    parser.add_argument("--pair-cap-s", type=float, default=None,
                        help="... or after this many seconds per cell (default 20 on CPU, 30 on a GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU work)")
    parser.add_argument("--check-width-mult", type=float, default=None, help="interpreted check: width")
    parser.add_argument("--check-input-size", type=int, default=None, help="interpreted check: input size")
    parser.add_argument("--check-batch-size", type=int, default=None, help="interpreted check: batch")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--peak-gemm-n", type=int, default=None, help="measured peak: GEMM size n (n x n @ n x n)")
    parser.add_argument("--peak-copy-mib", type=int, default=None, help="measured peak: MiB copied")
    parser.add_argument("--warm-compile-cache", action="store_true",
                        help="reuse inductor's on-disk cache (default: each cell compiles cold, so "
                             "'first call s' is a cold compile)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any cell failed its equivalence check or raised (default: 0, "
                             "failures are recorded in the results)")
    from alexnet_fast.profiling.gpu_suite import add_arguments as add_suite_arguments  # --suite, --dry-run

    add_suite_arguments(parser)


def run(args: argparse.Namespace) -> int:
    use_interpreter_without_gpu(args.device)  # before anything imports triton
    if getattr(args, "suite", None) or getattr(args, "dry_run", None) or getattr(args, "smoke", False):
        from alexnet_fast.profiling.gpu_suite import run as run_suite  # suites: profiling/gpu_suite.py

        return run_suite(args)
    from alexnet_fast.profiling.interrupts import Interrupted

    args.output_dir = args.output_dir or "reports"
    try:
        plan = plan_from_args(args)
        writable_dir(args.output_dir)
        pairing = {"target_half_width": _positive(args.ci_target, "--ci-target"),
                   "pair_cap_s": None if args.pair_cap_s is None else _positive(args.pair_cap_s, "--pair-cap-s")}
    except ValueError as e:
        print(f"alexnet-fast bench: {e}", file=sys.stderr)
        return 2
    print(describe(plan), file=sys.stderr)
    harness = Harness(plan, args.output_dir, progress=False if args.no_progress else None, **pairing)
    start = time.perf_counter()
    try:
        rows = harness.run()
    except Interrupted as e:
        print(f"alexnet-fast bench: stopped by {e}; the rows measured so far are in {args.output_dir}",
              file=sys.stderr)
        return 128 + e.signum
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(f"wrote {len(rows)} rows to {Path(args.output_dir) / 'results.csv'} (+ results.json) in "
          f"{time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
          file=sys.stderr)
    if statuses.get("error") or statuses.get("failed"):
        print("some cells failed their equivalence check or raised: see the status and note columns",
              file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def _positive(value: float, flag: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a finite positive number, got {value!r}")
    return value


class Harness(Engine):
    """``alexnet-fast bench``: the engine on a :class:`profiling.plan.BenchPlan`'s cells,
    writing the tidy results table after every cell."""

    def __init__(self, plan, output_dir: str | os.PathLike, *, progress: bool | None = None,
                 build_variant: Callable[..., nn.Module] | None = None, target_half_width: float = 0.03,
                 pair_cap_s: float | None = None):
        super().__init__(plan.device, ResultsTable(output_dir), progress=progress, build_variant=build_variant,
                         target_half_width=target_half_width, pair_cap_s=pair_cap_s,
                         warmup=plan.warmup, repeats=plan.repeats, threads=plan.threads, seed=plan.seed,
                         cudnn_benchmark=plan.cudnn_benchmark, cold_compile=plan.cold_compile,
                         layout_world_size=plan.layout_world_size)
        self.plan = plan
        self.output_dir = Path(output_dir)

    def cells(self) -> list[Cell]:
        from alexnet_fast.profiling.plan import plan_cells

        return plan_cells(self.plan)

    def run(self, cells: Iterable[Cell] | None = None) -> list[dict[str, Any]]:
        cells = self.cells() if cells is None else list(cells)
        if self.device.type == "cuda":  # the estimate, most informative first
            from alexnet_fast.profiling.estimates import estimate, format_duration
            from alexnet_fast.profiling.suites import order_cells

            cells = order_cells(cells)
            print(f"bench: {len(cells)} cells, estimated {format_duration(estimate(cells))}", file=sys.stderr)
        return super().run(cells)
