"""`alexnet-fast regress`: compare a benchmark run with a baseline, and plot the history.

Inputs are pytest-benchmark JSON files (``pytest --benchmark-only --benchmark-json=run.json``
or the runs ``--benchmark-autosave`` keeps under ``.benchmarks/<machine-id>/``). Benchmarks
are matched by name (kernel, shape, dtype and provider are in the test id); for each the
median time of the current run is compared with the baseline's:

    change = current median / baseline median - 1

A benchmark slower than the baseline by more than ``--threshold`` percent (default
:data:`DEFAULT_THRESHOLD_PCT` = 10%) is a regression: the command prints the table of changes
and exits 1. Benchmarks missing on one side are listed, not failed, but a check that
compares nothing fails: exit 2 with one line when the current run or the baseline holds no
benchmark, or when no benchmark name is in both (all renamed). Exit 2 also for a missing or
malformed file (the message names the file and what is wrong with it) and for a threshold
that is not a finite positive number.

Committed baselines live in ``reports/benchmarks/<machine>.json`` (machine = GPU name or CPU
model + thread count, :func:`profiling.results.machine_slug`, recorded by the benchmarks in
``extra_info``); the current run's machine picks the default baseline. ``--history`` draws the median of every benchmark over all saved runs
(``reports/benchmark_history.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_THRESHOLD_PCT", "BenchmarkFileError", "load_run", "compare", "Change", "format_table",
           "plot_history", "add_arguments", "run", "default_baseline"]

DEFAULT_THRESHOLD_PCT = 10.0
BASELINE_DIR = Path("reports/benchmarks")
HISTORY_PNG = Path("reports/benchmark_history.png")


class BenchmarkFileError(ValueError):
    """A benchmark file that is missing or not a pytest-benchmark JSON file."""


@dataclass(frozen=True)
class Bench:
    name: str
    group: str
    median_s: float
    kernel: str
    shape: str
    dtype: str
    provider: str


@dataclass(frozen=True)
class Run:
    path: Path
    datetime: str
    machine: str
    benchmarks: dict[str, Bench]


@dataclass(frozen=True)
class Change:
    name: str
    kernel: str
    shape: str
    dtype: str
    provider: str
    baseline_s: float | None
    current_s: float | None

    @property
    def change(self) -> float | None:
        if self.baseline_s is None or self.current_s is None:
            return None
        return self.current_s / self.baseline_s - 1.0

    def verdict(self, threshold_pct: float) -> str:
        c = self.change
        if c is None:
            return "new" if self.baseline_s is None else "missing"
        if c > threshold_pct / 100:
            return "SLOWER"
        if c < -threshold_pct / 100:
            return "faster"
        return "ok"


def load_run(path: str | Path, what: str = "benchmark") -> Run:
    """Read a pytest-benchmark JSON file; BenchmarkFileError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFileError(f"{what} file {path} does not exist; record one with "
                                 f"`pytest tests/benchmarks --benchmark-only --benchmark-json={path}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BenchmarkFileError(f"{what} file {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BenchmarkFileError(f"{what} file {path} has no 'benchmarks' list: is it a pytest-benchmark JSON "
                                 f"file (--benchmark-json / --benchmark-autosave)?")
    benches: dict[str, Bench] = {}
    for i, b in enumerate(data["benchmarks"]):
        name = b.get("fullname") or b.get("name") if isinstance(b, dict) else None
        median = b.get("stats", {}).get("median") if isinstance(b, dict) and isinstance(b.get("stats"), dict) else None
        if not name or not isinstance(median, (int, float)) or not math.isfinite(median) or median <= 0:
            raise BenchmarkFileError(f"{what} file {path}: benchmark #{i} ({name or 'no name'}) has no positive "
                                     f"stats.median")
        extra = b.get("extra_info")
        if extra is None:
            extra = {}
        if not isinstance(extra, dict):
            raise BenchmarkFileError(f"{what} file {path}: benchmark #{i} ({name}) has extra_info of type "
                                     f"{type(extra).__name__}, expected an object")
        if name in benches:
            raise BenchmarkFileError(f"{what} file {path}: benchmark #{i} repeats the name {name!r}; "
                                     f"one file must hold one run (record a fresh --benchmark-json)")
        benches[name] = Bench(name=name, group=b.get("group") or "", median_s=float(median),
                              kernel=str(extra.get("kernel", b.get("name", name))), shape=str(extra.get("shape", "")),
                              dtype=str(extra.get("dtype", "")), provider=str(extra.get("provider", "")))
    machine_info = data.get("machine_info") or {}
    machine = next((str(b.get("extra_info", {}).get("machine")) for b in data["benchmarks"]
                    if (b.get("extra_info") or {}).get("machine")), None) \
        or str((machine_info.get("cpu") or {}).get("brand_raw") or machine_info.get("node") or "unknown")
    return Run(path=path, datetime=str(data.get("datetime", "")), machine=machine, benchmarks=benches)


def compare(baseline: Run, current: Run) -> list[Change]:
    """One Change per benchmark in either run (baseline order, then new ones)."""
    names = list(baseline.benchmarks) + [n for n in current.benchmarks if n not in baseline.benchmarks]
    changes = []
    for n in names:
        b, c = baseline.benchmarks.get(n), current.benchmarks.get(n)
        ref = c or b
        changes.append(Change(n, ref.kernel, ref.shape, ref.dtype, ref.provider,
                              b.median_s if b else None, c.median_s if c else None))
    return changes


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.4g}"


def format_table(changes: list[Change], threshold_pct: float) -> str:
    header = ["kernel", "shape", "dtype", "provider", "baseline ms", "current ms", "change", "verdict"]
    rows = [[c.kernel, c.shape, c.dtype, c.provider, _ms(c.baseline_s), _ms(c.current_s),
             "-" if c.change is None else f"{100 * c.change:+.1f}%", c.verdict(threshold_pct)] for c in changes]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _history_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.json")))
        elif p.is_file():
            files.append(p)
        else:
            raise BenchmarkFileError(f"history path {p} does not exist")
    return files


def plot_history(runs: list[Run], path: str | Path) -> Path:
    """Median time of every benchmark over the runs (ordered by date), one panel per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from profiling.report import save_png

    runs = sorted(runs, key=lambda r: (r.datetime, str(r.path)))
    groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for i, r in enumerate(runs):
        for b in r.benchmarks.values():
            label = " ".join(filter(None, [b.provider, b.dtype])) or b.name
            groups.setdefault(b.group or b.kernel, {}).setdefault(label, []).append((i, b.median_s * 1e3))
    n = max(1, len(groups))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, (group, lines) in zip(axes.flat, sorted(groups.items())):
        for label, points in sorted(lines.items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(group, fontsize=9)
        ax.set_ylabel("median ms")
        ax.set_yscale("log")
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([(r.datetime[:16].replace("T", " ") or r.path.stem) for r in runs], rotation=45,
                           fontsize=7, ha="right")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(f"benchmark history over {len(runs)} runs", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def default_baseline(current: Run) -> Path:
    """The committed baseline of the machine that made ``current``:
    reports/benchmarks/<machine>.json (the benchmarks record the machine in extra_info)."""
    return BASELINE_DIR / f"{current.machine}.json"


def _newest_autosave() -> Path | None:
    files = sorted(Path(".benchmarks").rglob("*.json"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", nargs="?", default=None,
                        help="pytest-benchmark JSON of the run to check (default: newest under .benchmarks/)")
    parser.add_argument("--baseline", default=None,
                        help="baseline JSON (default: reports/benchmarks/<machine of the current run>.json)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_PCT,
                        help=f"percent slower than the baseline that fails (default {DEFAULT_THRESHOLD_PCT:g})")
    parser.add_argument("--history", action="append", metavar="PATH",
                        help="saved runs (files or directories) to plot over time, e.g. .benchmarks reports/benchmarks")
    parser.add_argument("--plot", default=str(HISTORY_PNG), help=f"history plot path (default {HISTORY_PNG})")


def nothing_compared(baseline: Run, current: Run) -> str | None:
    """Why comparing ``current`` with ``baseline`` would check nothing, or None."""
    for run_, what in ((current, "current run"), (baseline, "baseline")):
        if not run_.benchmarks:
            return f"{what} {run_.path} holds no benchmarks: nothing to compare"
    if not set(baseline.benchmarks) & set(current.benchmarks):
        return (f"no benchmark of the current run {current.path} ({len(current.benchmarks)}) is in the baseline "
                f"{baseline.path} ({len(baseline.benchmarks)}): nothing compared (renamed benchmarks? record a "
                f"new baseline)")
    return None


def run(args: argparse.Namespace) -> int:
    if not math.isfinite(args.threshold) or args.threshold <= 0:
        print(f"alexnet-fast regress: --threshold must be a finite positive percentage, got {args.threshold:g}",
              file=sys.stderr)
        return 2
    try:
        current_path = args.current or _newest_autosave()
        if current_path is None:
            raise BenchmarkFileError("no current run given and none saved under .benchmarks/; run "
                                     "`pytest tests/benchmarks --benchmark-only --benchmark-json=run.json` first")
        current = load_run(current_path, "current run")
        baseline = load_run(args.baseline or default_baseline(current), "baseline")
        history = [load_run(p, "history") for p in _history_files(args.history)] if args.history else []
    except BenchmarkFileError as e:
        print(f"alexnet-fast regress: {e}", file=sys.stderr)
        return 2
    reason = nothing_compared(baseline, current)
    if reason:
        print(f"alexnet-fast regress: {reason}", file=sys.stderr)
        return 2
    if baseline.machine != current.machine:
        print(f"warning: baseline from {baseline.machine}, current run from {current.machine}: "
              f"times of different machines are not comparable", file=sys.stderr)
    changes = compare(baseline, current)
    print(f"baseline {baseline.path} ({baseline.datetime}) vs current {current.path} ({current.datetime}); "
          f"threshold +{args.threshold:g}% on the median")
    print(format_table(changes, args.threshold))
    if history:
        runs = list({r.path.resolve(): r for r in history + [current]}.values())  # current may be in history
        plot = plot_history(runs, args.plot)
        print(f"history of {len(runs)} runs: {plot}")
    slower = [c for c in changes if c.verdict(args.threshold) == "SLOWER"]
    if slower:
        print(f"REGRESSION: {len(slower)} benchmark(s) slower than the baseline by more than {args.threshold:g}%: "
              + ", ".join(f"{c.kernel} {c.shape} {c.dtype} {c.provider} ({100 * c.change:+.1f}%)".replace("  ", " ")
                          for c in slower), file=sys.stderr)
        return 1
    return 0
