"""Interference seen *during* a measurement, not only at its start.

A :class:`Sampler` reads ``/proc/stat``, ``/proc/loadavg`` and our processes' ``/proc/<pid>/stat``
from a background thread (:meth:`Sampler.cell`, around a cell) or once per round
(:meth:`Sampler.sample`); a cell's figures (:class:`CellInterference`: load, steal, iowait, our
and other processes' cores) flag it as measured under interference
(:func:`interference_reasons`) when steal passes 2%, other processes used more than the cores
our threads left idle (+ 0.25 core), or the load passed the core count. Without ``/proc``
(macOS, Windows) cells say ``unavailable``. It sees the host's CPUs only (the GPU's neighbours
are NVML's); child processes (a layout's ranks) are ours with the pid ``"children"``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

__all__ = ["STEAL_PCT_LIMIT", "OTHERS_SLACK_CORES", "Snapshot", "CellInterference", "Sampler",
           "read_snapshot", "summarize", "interference_reasons"]

STEAL_PCT_LIMIT = 2.0
OTHERS_SLACK_CORES = 0.25
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class Snapshot:
    """One reading: wall time (s), cumulative CPU ticks of the machine by state (summed over
    cores), our processes' ticks (user + system), the 1-minute load average, core count."""

    wall_s: float
    cpu: dict[str, int]
    ours_ticks: int
    load1: float
    cpu_count: int


def _parse_proc_stat(text: str) -> tuple[dict[str, int], int]:
    cpu: dict[str, int] | None = None
    cores = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            values = [int(v) for v in parts[1:1 + len(CPU_FIELDS)]]
            values += [0] * (len(CPU_FIELDS) - len(values))  # old kernels lack steal
            cpu = dict(zip(CPU_FIELDS, values))
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            cores += 1
    if cpu is None:
        raise ValueError("no aggregate 'cpu' line")
    return cpu, max(cores, 1)


def _parse_pid_stat(text: str, reaped_children: bool = False) -> int:
    """utime + stime (fields 14 and 15) of /proc/<pid>/stat, plus cutime + cstime (16, 17: the
    children it has waited for) when ``reaped_children``; the command name (field 2) may hold
    spaces and parentheses, so fields are counted after its last ')'."""
    rest = text[text.rindex(")") + 1:].split()
    ticks = int(rest[11]) + int(rest[12])  # rest[0] is field 3 (state)
    return ticks + (int(rest[13]) + int(rest[14]) if reaped_children else 0)


def _descendants(root: Path, pid: str) -> list[str]:
    """The live descendants of ``pid`` (``/proc/<pid>/task/*/children``, recursively)."""
    out, todo = [], [pid]
    while todo:
        for task in (root / todo.pop() / "task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def read_snapshot(proc_root: str | Path = "/proc", pids: Sequence[int | str] = ("self",),
                  wall: Callable[[], float] = time.monotonic) -> Snapshot:
    """Read one snapshot; OSError / ValueError when /proc is missing or unreadable."""
    root = Path(proc_root)
    cpu, cores = _parse_proc_stat((root / "stat").read_text())
    load1 = float((root / "loadavg").read_text().split()[0])
    ours = 0
    children = "children" in pids  # our child processes too: live ones, and the reaped ones' times
    for pid in [p for p in pids if p != "children"] + (_descendants(root, "self") if children else []):
        try:
            ours += _parse_pid_stat((root / str(pid) / "stat").read_text(), children)
        except (FileNotFoundError, ProcessLookupError):
            pass  # a rank that already exited: its time is in our reaped children's
    return Snapshot(wall_s=wall(), cpu=cpu, ours_ticks=ours, load1=load1, cpu_count=cores)


def _ticks_per_s() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


@dataclass(frozen=True)
class CellInterference:
    """Interference figures of one cell (see the module docstring); ``available`` False
    where /proc could not be read (then every figure is None)."""

    available: bool
    samples: int = 0
    cpu_count: int | None = None
    threads: int | None = None
    load_mean: float | None = None
    load_max: float | None = None
    steal_pct: float | None = None
    iowait_pct: float | None = None
    ours_cores: float | None = None
    others_cores: float | None = None
    others_cores_max: float | None = None
    reasons: tuple[str, ...] = ()
    note: str = ""

    @property
    def interfered(self) -> bool:
        return bool(self.reasons)

    def columns(self) -> dict:
        if not self.available:
            return {"interference": "unavailable", "interference_why": self.note}
        r = lambda x, nd=2: None if x is None else round(x, nd)  # noqa: E731
        return {"interference": "yes" if self.interfered else "no", "interference_why": "; ".join(self.reasons),
                "load_mean": r(self.load_mean), "load_max": r(self.load_max), "steal_pct": r(self.steal_pct),
                "iowait_pct": r(self.iowait_pct), "ours_cores": r(self.ours_cores),
                "others_cores": r(self.others_cores), "others_cores_max": r(self.others_cores_max),
                "interference_samples": self.samples}


def interference_reasons(*, cpu_count: int, threads: int | None, steal_pct: float, others_cores: float,
                         ours_cores: float, load_max: float) -> tuple[str, ...]:
    """Why a cell counts as measured under interference (empty: it does not); the rule of
    the module docstring."""
    reasons = []
    if steal_pct > STEAL_PCT_LIMIT:
        reasons.append(f"CPU steal {steal_pct:.1f}% > {STEAL_PCT_LIMIT:g}%")
    ours = threads if threads is not None else max(1, math.ceil(ours_cores - 0.05))
    free = max(0, cpu_count - ours)
    if others_cores > free + OTHERS_SLACK_CORES:
        reasons.append(f"other processes used {others_cores:.2f} cores, {free} left idle by our {ours} thread(s)")
    if load_max > cpu_count:
        reasons.append(f"load average {load_max:.2f} > {cpu_count} cores")
    return tuple(reasons)


def summarize(snapshots: Sequence[Snapshot], *, threads: int | None = None,
              ticks_per_s: float | None = None) -> CellInterference:
    """Figures of a cell from its snapshots (at least two: the first and last bound it)."""
    if len(snapshots) < 2:
        return CellInterference(available=True, samples=len(snapshots), threads=threads,
                                note="fewer than 2 samples: cell too short to judge")
    hz = ticks_per_s or _ticks_per_s()
    first, last = snapshots[0], snapshots[-1]
    cores = last.cpu_count

    def busy_and_total(a: Snapshot, b: Snapshot) -> tuple[dict[str, int], int]:
        d = {k: b.cpu[k] - a.cpu[k] for k in CPU_FIELDS}
        return d, sum(d.values())

    d, total = busy_and_total(first, last)
    if total <= 0:
        return CellInterference(available=True, samples=len(snapshots), cpu_count=cores, threads=threads,
                                note="no CPU time elapsed between samples")
    busy = total - d["idle"] - d["iowait"] - d["steal"]
    # cores = ticks / (ticks per second * seconds), the seconds being those the kernel
    # counted: all ticks of all cores / (ticks per second * cores) (no clock skew between the
    # wall clock and /proc's accounting)
    kernel_wall = total / (hz * cores)
    ours_cores = (last.ours_ticks - first.ours_ticks) / (hz * kernel_wall)
    others_cores = max(0.0, busy / (hz * kernel_wall) - ours_cores)
    others_max = others_cores
    for a, b in zip(snapshots, snapshots[1:]):
        di, ti = busy_and_total(a, b)
        if ti <= 0:
            continue
        w = ti / (hz * cores)
        bi = ti - di["idle"] - di["iowait"] - di["steal"]
        others_max = max(others_max, bi / (hz * w) - (b.ours_ticks - a.ours_ticks) / (hz * w))
    loads = [s.load1 for s in snapshots]
    steal_pct = 100.0 * d["steal"] / total
    iowait_pct = 100.0 * d["iowait"] / total
    load_max = max(loads)
    reasons = interference_reasons(cpu_count=cores, threads=threads, steal_pct=steal_pct,
                                   others_cores=others_cores, ours_cores=ours_cores, load_max=load_max)
    return CellInterference(available=True, samples=len(snapshots), cpu_count=cores, threads=threads,
                            load_mean=sum(loads) / len(loads), load_max=load_max, steal_pct=steal_pct,
                            iowait_pct=iowait_pct, ours_cores=ours_cores, others_cores=others_cores,
                            others_cores_max=max(0.0, others_max), reasons=reasons)


@dataclass
class _Cell:
    sampler: "Sampler"
    threads: int | None
    snapshots: list[Snapshot] = field(default_factory=list)
    _result: CellInterference | None = None

    def columns(self) -> dict:
        """The summary's result-table columns ({} before the block ended)."""
        return {} if self._result is None else self._result.columns()

    def summary(self) -> CellInterference:
        if self._result is None:
            raise RuntimeError("the cell's interference summary is ready when its `with` block ends")
        return self._result


class Sampler:
    """Samples /proc during cells (see the module docstring). ``proc_root`` is for tests;
    ``pids`` the processes whose CPU time is ours; ``interval_s`` the background period."""

    def __init__(self, *, proc_root: str | Path = "/proc", pids: Sequence[int | str] = ("self",),
                 interval_s: float = 0.5, wall: Callable[[], float] = time.monotonic,
                 ticks_per_s: float | None = None) -> None:
        if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a finite positive number, got {interval_s!r}")
        self.proc_root = Path(proc_root)
        self.pids = tuple(pids)
        self.interval_s = float(interval_s)
        self._wall = wall
        self._hz = ticks_per_s
        self._lock = threading.Lock()
        self._cell: _Cell | None = None
        self.note = ""
        try:
            read_snapshot(self.proc_root, self.pids, self._wall)
            self.available = True
        except (OSError, ValueError, IndexError) as e:
            self.available = False
            self.note = f"interference unavailable: cannot read {self.proc_root}/stat ({type(e).__name__}: {e})"

    def sample(self) -> None:
        """Take a snapshot into the open cell (no-op outside a cell or when unavailable)."""
        cell = self._cell
        if cell is None or not self.available:
            return
        try:
            snap = read_snapshot(self.proc_root, self.pids, self._wall)
        except (OSError, ValueError, IndexError):
            return  # a torn read: the next sample covers the interval
        with self._lock:
            cell.snapshots.append(snap)

    @contextmanager
    def cell(self, *, threads: int | None = None, background: bool = True) -> Iterator[_Cell]:
        """Sample through the block: a snapshot at its start and end, and every
        ``interval_s`` from a daemon thread when ``background``; ``.summary()`` after it."""
        if self._cell is not None:
            raise RuntimeError("a Sampler measures one cell at a time")
        cell = _Cell(self, threads)
        if not self.available:
            try:
                yield cell
            finally:
                cell._result = CellInterference(available=False, threads=threads, note=self.note)
            return
        self._cell = cell
        stop = threading.Event()
        thread = None
        self.sample()
        if background:
            def loop() -> None:
                while not stop.wait(self.interval_s):
                    self.sample()

            thread = threading.Thread(target=loop, name="interference-sampler", daemon=True)
            thread.start()
        try:
            yield cell
        finally:
            stop.set()
            if thread is not None:
                thread.join()
            self.sample()
            self._cell = None
            with self._lock:
                snaps = sorted(cell.snapshots, key=lambda s: s.wall_s)
            cell._result = summarize(snaps, threads=threads, ticks_per_s=self._hz)
