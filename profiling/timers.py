"""One timer for every measurement of the study.

:func:`measure` times a callable on the device it runs on and returns a :class:`Timing`:

* CUDA: each repeat is bracketed by CUDA events (``torch.cuda.Event(enable_timing=True)``)
  recorded on the current stream *of the measured device* (so ``cuda:1`` is timed on
  cuda:1's stream whatever the current device is), with the L2 cache flushed before each repeat by writing a buffer larger than any L2
  (the method of ``triton.testing.do_bench``); the device is synchronised once after the
  repeats and the events are read.
* CPU: ``time.perf_counter`` around each repeat, with a fixed intra-op thread count
  (:func:`fixed_threads`) recorded in the result.

Both paths share one loop: warm-up calls (not timed), then ``repeats`` timed calls, then
the median and quantiles of the repeat times in milliseconds. ``before_repeat`` runs before
each timed call, outside the bracket (the two-rank layouts put a barrier there and take the
slowest rank's time per repeat with :func:`summarize`, so a layout row and a one-device row
carry the same timer). The cost of the *first* call
(compilation, autotuning, lazy initialisation) is never part of a steady-state timing:
:func:`time_first_call` measures it on its own, and :func:`measure` always warms up first.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import torch

__all__ = ["Timing", "measure", "time_first_call", "fixed_threads", "synchronize", "QUANTILES"]

# quantiles reported with every timing (besides the median)
QUANTILES = (0.2, 0.8)
# bytes written before each CUDA repeat to evict L2 (H100: 50 MB L2; A100: 40 MB)
L2_FLUSH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Timing:
    """Steady-state time of one call, in milliseconds, over ``repeats`` timed calls."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    min_ms: float
    mean_ms: float
    repeats: int
    warmup: int
    method: str  # "cuda_events" or "perf_counter"
    threads: int  # torch intra-op threads while timing (CPU work of either path)
    l2_flushed: bool
    times_ms: tuple[float, ...] = ()  # every repeat, in the order timed

    def as_dict(self) -> dict:
        return asdict(self)

    def columns(self) -> dict:
        """The result-table columns every timed row carries (:mod:`profiling.results`)."""
        return {"median_ms": self.median_ms, "p20_ms": self.p20_ms, "p80_ms": self.p80_ms, "min_ms": self.min_ms,
                "repeats": self.repeats, "warmup": self.warmup, "timer": self.method, "threads": self.threads}


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times_ms: Sequence[float], *, warmup: int, method: str, threads: int,
              l2_flushed: bool) -> Timing:
    """Median, quantiles, min and mean of the repeat times."""
    if not times_ms:
        raise ValueError("no repeat times to summarize")
    values = sorted(float(t) for t in times_ms)
    return Timing(
        median_ms=statistics.median(values),
        p20_ms=_quantile(values, QUANTILES[0]),
        p80_ms=_quantile(values, QUANTILES[1]),
        min_ms=values[0],
        mean_ms=statistics.fmean(values),
        repeats=len(values),
        warmup=warmup,
        method=method,
        threads=threads,
        l2_flushed=l2_flushed,
        times_ms=tuple(float(t) for t in times_ms),
    )


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)`` (None: leave as is), restoring
    the previous count after; yields the count in force."""
    previous = torch.get_num_threads()
    if threads is not None:
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def time_first_call(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[float, object]:
    """Wall time in seconds of one call of ``fn`` with the device synchronised before and
    after (for the first call of a compiled model: tracing + compiling + running once).
    Returns (seconds, what fn returned)."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


class _CpuClock:
    method = "perf_counter"
    l2_flushed = False

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._ends: list[float] = []

    def before(self) -> None:
        self._starts.append(time.perf_counter())

    def after(self) -> None:
        self._ends.append(time.perf_counter())

    def times_ms(self) -> list[float]:
        return [(e - s) * 1e3 for s, e in zip(self._starts, self._ends)]


class _CudaClock:
    """CUDA events around each repeat, recorded on ``device``'s current stream; L2 flushed
    (buffer zeroed) before each start event."""

    method = "cuda_events"

    def __init__(self, device: torch.device, flush_l2: bool) -> None:
        self.device = device
        self.l2_flushed = flush_l2
        self._flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device) if flush_l2 else None
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._stream = torch.cuda.current_stream(device)

    def before(self) -> None:
        if self._flush is not None:
            self._flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._events.append((start, end))
        start.record(self._stream)

    def after(self) -> None:
        self._events[-1][1].record(self._stream)

    def times_ms(self) -> list[float]:
        torch.cuda.synchronize(self.device)
        return [s.elapsed_time(e) for s, e in self._events]


def measure(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 3,
            repeats: int = 10, threads: int | None = None, flush_l2: bool = True,
            before_repeat: Callable[[], object] | None = None) -> Timing:
    """Steady-state time of ``fn()`` on ``device``: ``warmup`` untimed calls, then ``repeats``
    timed calls (CUDA events with L2 flush on a GPU, perf_counter on CPU); median and
    quantiles in ms. ``threads`` fixes torch's intra-op thread count while timing;
    ``before_repeat`` (untimed) runs before each timed call."""
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    device = torch.device(device)
    with fixed_threads(threads) as n_threads:
        for _ in range(warmup):
            fn()
        synchronize(device)
        clock = _CudaClock(device, flush_l2) if device.type == "cuda" else _CpuClock()
        for _ in range(repeats):
            if before_repeat is not None:
                before_repeat()
            clock.before()
            fn()
            clock.after()
        times = clock.times_ms()
    return summarize(times, warmup=warmup, method=clock.method, threads=n_threads,
                     l2_flushed=clock.l2_flushed)
