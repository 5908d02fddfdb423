"""`alexnet-fast regress`: compare a benchmark run with a baseline, and plot the history.

Inputs are pytest-benchmark JSON files (``--benchmark-json`` or ``--benchmark-autosave``);
benchmarks are matched by name. A benchmark is a regression when its median is slower than the
baseline's by more than ``--threshold`` (10%) **and** the two-sided Mann-Whitney U test of its
rounds (``stats.data``) against the baseline's gives ``p < --alpha`` (0.05): the two-part rule of
pyperf's ``compare_to`` and Criterion's change detection (the threshold says how big a change
matters, the test whether the rounds show one; on 400 same-code pairs at 15% noise the median
alone called 23% regressions, the rule 2.75%). Past the threshold but not significant is
``ok (not significant)``. Without rounds, or too few for any test to reach alpha, the threshold
alone decides, with a warning saying for how many. Exit 0 ok, 1 regression, 2 bad input (the
message names the file and what is wrong) or nothing compared. Baselines:
``reports/benchmarks/<machine>.json``; ``--history`` plots every run's medians.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from alexnet_fast.profiling.render.regress import format_table, plot_history
from alexnet_fast.profiling.stats import MannWhitney, as_positive_series, mann_whitney_u, min_p_value

__all__ = ["DEFAULT_THRESHOLD_PCT", "DEFAULT_ALPHA", "BenchmarkFileError", "load_run", "compare", "Change",
           "format_table", "plot_history", "add_arguments", "run", "default_baseline"]

DEFAULT_THRESHOLD_PCT = 10.0
DEFAULT_ALPHA = 0.05
NO_ROUNDS = "no rounds"
NOT_SIGNIFICANT = "ok (not significant)"
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
    rounds_s: tuple[float, ...] | None = None  # stats.data: every round's time, when the file kept it


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
    baseline_rounds: tuple[float, ...] | None = None
    current_rounds: tuple[float, ...] | None = None

    @property
    def change(self) -> float | None:
        if self.baseline_s is None or self.current_s is None:
            return None
        return self.current_s / self.baseline_s - 1.0

    def undecidable(self, alpha: float = DEFAULT_ALPHA) -> str | None:
        """Why the rounds cannot decide significance (then the threshold alone does), or None."""
        if not self.baseline_rounds or not self.current_rounds:
            return NO_ROUNDS
        n_b, n_c = len(self.baseline_rounds), len(self.current_rounds)
        if min_p_value(n_b, n_c) >= alpha:
            return f"{n_b}+{n_c} rounds"
        return None

    def test(self, alpha: float = DEFAULT_ALPHA) -> MannWhitney | None:
        """Mann-Whitney U of the current rounds against the baseline's (None: undecidable)."""
        if self.change is None or self.undecidable(alpha):
            return None
        return mann_whitney_u(self.current_rounds, self.baseline_rounds)

    def verdict(self, threshold_pct: float, alpha: float = DEFAULT_ALPHA) -> str:
        c = self.change
        if c is None:
            return "new" if self.baseline_s is None else "missing"
        if abs(c) <= threshold_pct / 100:
            return "ok"
        slower = c > 0
        t = self.test(alpha)
        # significant, and the rounds (not only the medians) lean the same way
        if t is None or (t.p_value < alpha and (t.effect > 0.5) == slower):
            return "SLOWER" if slower else "faster"
        return NOT_SIGNIFICANT

    def p_text(self, alpha: float = DEFAULT_ALPHA) -> str:
        if self.change is None:
            return "-"
        why = self.undecidable(alpha)
        if why:
            return why
        return f"{self.test(alpha).p_value:.3g}"


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
        rounds = _rounds(b["stats"].get("data"), what, path, i, name)
        if name in benches:
            raise BenchmarkFileError(f"{what} file {path}: benchmark #{i} repeats the name {name!r}; "
                                     f"one file must hold one run (record a fresh --benchmark-json)")
        benches[name] = Bench(name=name, group=b.get("group") or "", median_s=float(median),
                              kernel=str(extra.get("kernel", b.get("name", name))), shape=str(extra.get("shape", "")),
                              dtype=str(extra.get("dtype", "")), provider=str(extra.get("provider", "")),
                              rounds_s=rounds)
    machine_info = data.get("machine_info") or {}
    machine = next((str(b.get("extra_info", {}).get("machine")) for b in data["benchmarks"]
                    if (b.get("extra_info") or {}).get("machine")), None) \
        or str((machine_info.get("cpu") or {}).get("brand_raw") or machine_info.get("node") or "unknown")
    return Run(path=path, datetime=str(data.get("datetime", "")), machine=machine, benchmarks=benches)


def _rounds(data, what: str, path: Path, i: int, name: str) -> tuple[float, ...] | None:
    """stats.data as a tuple of round times (None when the file did not keep them)."""
    if data is None or data == []:
        return None
    try:
        if not isinstance(data, list):
            raise ValueError(f"a {type(data).__name__}")
        return tuple(float(t) for t in as_positive_series(data, "stats.data"))
    except ValueError as e:
        raise BenchmarkFileError(f"{what} file {path}: benchmark #{i} ({name}) has stats.data that is not a list "
                                 f"of positive round times ({e})") from e


def compare(baseline: Run, current: Run) -> list[Change]:
    """One Change per benchmark in either run (baseline order, then new ones)."""
    names = list(baseline.benchmarks) + [n for n in current.benchmarks if n not in baseline.benchmarks]
    changes = []
    for n in names:
        b, c = baseline.benchmarks.get(n), current.benchmarks.get(n)
        ref = c or b
        changes.append(Change(n, ref.kernel, ref.shape, ref.dtype, ref.provider,
                              b.median_s if b else None, c.median_s if c else None,
                              b.rounds_s if b else None, c.rounds_s if c else None))
    return changes


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
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"significance level of the Mann-Whitney U test on the rounds (default {DEFAULT_ALPHA:g}): "
                             f"a change past the threshold with p >= alpha is not significant")
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
    alpha = getattr(args, "alpha", DEFAULT_ALPHA)
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        print(f"alexnet-fast regress: --alpha must be a significance level in (0, 1), got {alpha:g}", file=sys.stderr)
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
          f"threshold +{args.threshold:g}% on the median and Mann-Whitney U p < {alpha:g} on the rounds")
    print(format_table(changes, args.threshold, alpha))
    _warn_undecidable(changes, baseline, current, alpha)
    if history:
        runs = list({r.path.resolve(): r for r in history + [current]}.values())  # current may be in history
        plot = plot_history(runs, args.plot)
        print(f"history of {len(runs)} runs: {plot}")
    slower = [c for c in changes if c.verdict(args.threshold, alpha) == "SLOWER"]
    if slower:
        print(f"REGRESSION: {len(slower)} benchmark(s) slower than the baseline by more than {args.threshold:g}%: "
              + ", ".join(f"{c.kernel} {c.shape} {c.dtype} {c.provider} ({100 * c.change:+.1f}%, "
                          f"p {c.p_text(alpha)})".replace("  ", " ") for c in slower), file=sys.stderr)
        return 1
    return 0


def _warn_undecidable(changes: list[Change], baseline: Run, current: Run, alpha: float) -> None:
    """One warning line per reason the rounds could not decide (the threshold alone did)."""
    compared = [c for c in changes if c.change is not None]
    for run_, what in ((baseline, "baseline"), (current, "current run")):
        names = [c.name for c in compared if not (run_.benchmarks[c.name].rounds_s)]
        if names:
            print(f"warning: {len(names)} benchmark(s) of the {what} {run_.path} have no raw rounds (stats.data; "
                  f"--benchmark-json keeps them, --benchmark-save/--benchmark-autosave need --benchmark-save-data): "
                  f"judged on the threshold alone", file=sys.stderr)
    few = [c for c in compared if c.undecidable(alpha) not in (None, NO_ROUNDS)]
    if few:
        print(f"warning: {len(few)} benchmark(s) have too few rounds for the U test to reach p < {alpha:g} "
              f"({', '.join(sorted({c.undecidable(alpha) for c in few}))}): judged on the threshold alone; "
              f"record more rounds", file=sys.stderr)
