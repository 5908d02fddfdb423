"""One timer for every measurement of the study.

:func:`measure` times a callable on the device it runs on and returns a :class:`Timing`:

* CUDA: each repeat is bracketed by CUDA events (``torch.cuda.Event(enable_timing=True)``)
  recorded on the current stream *of the measured device* (so ``cuda:1`` is timed on
  cuda:1's stream whatever the current device is), with the L2 cache flushed before each
  repeat by writing a buffer larger than any L2 (the method of ``triton.testing.do_bench``);
  the device is synchronised once after the repeats and the events are read.
* CPU: ``time.perf_counter`` around each repeat, with a fixed intra-op thread count
  (:func:`fixed_threads`) recorded in the result.

Both paths share one loop (:func:`_repeat`): warm-up calls (not timed), then ``repeats``
timed calls, then the median and quantiles of the repeat times in milliseconds.
``before_repeat`` runs before each timed call, outside the bracket (the two-rank layouts put
a barrier there and take the slowest rank's time per repeat with :func:`summarize`, so a
layout row and a one-device row carry the same timer). The cost of the *first* call
(compilation, autotuning, lazy initialisation) is never part of a steady-state timing:
:func:`time_first_call` measures it on its own, and :func:`measure` always warms up first.

Kernel time apart from launch cost (``kernel_time=True``, CUDA only). A small kernel's wall
time includes the host's dispatch (custom-op dispatch, input checks, the autotuner's lookup,
Triton's JIT binder: tens to hundreds of microseconds a call), the order of the kernels
themselves at AlexNet's batch 128. So the timer also measures ``fn`` with no host work in
the bracket: ``fn`` captured once in a CUDA graph on the current stream and the graph
replayed under the same events and L2 flush (``kernel_method = "cuda_graph"``); where
capture fails, the profiler's device time (the sum of the kernels' durations per call from
``torch.profiler``, L2 warm: ``"profiler"``). The row then carries ``kernel_ms`` beside
``median_ms`` and ``dispatch_us = (median_ms - kernel_ms) x 1000``. A backward can be
captured only if its forward ran on a non-default stream (autograd runs each backward op on
its forward's stream): the engine runs its cells on a stream of its own for that. On a CPU
there is no separate kernel time (``kernel_ms`` None): the custom ops' Python-side cost is
measured by the engine's ``dispatch`` cell instead, with the kernel launch stubbed.

A ratio (:func:`measure_paired`): the baseline and the variant, both warmed up, alternate in
rounds of one call each on the same clock (:func:`profiling.paired.paired_rounds`: order
random per round, adaptive until the speedup's bootstrap interval is narrow enough or a time
cap); each side's times summarised as above, the variant's kernel time as above. Two ranks
pass ``combine`` (the round's time -> the slowest rank's) and ``agree`` (a common stop).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import torch

__all__ = ["Timing", "PairedTiming", "measure", "measure_paired", "time_first_call", "fixed_threads", "synchronize", "summarize", "QUANTILES"]

# quantiles reported with every timing (besides the median)
QUANTILES = (0.2, 0.8)
# bytes written before each CUDA repeat to evict L2 (H100: 50 MB L2; A100: 40 MB; H200: 60 MB)
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
    kernel_ms: float | None = None  # device time without host dispatch (kernel_time=True on CUDA)
    kernel_method: str | None = None  # "cuda_graph" or "profiler"
    kernel_note: str | None = None  # why there is no kernel time, or why the fallback was used

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def dispatch_us(self) -> float | None:
        """Host time per call that is not kernel time: wall median - kernel time, in us."""
        return None if self.kernel_ms is None else (self.median_ms - self.kernel_ms) * 1e3

    def columns(self) -> dict:
        """The result-table columns every timed row carries (:mod:`profiling.results`)."""
        cols = {"median_ms": self.median_ms, "p20_ms": self.p20_ms, "p80_ms": self.p80_ms, "min_ms": self.min_ms,
                "repeats": self.repeats, "warmup": self.warmup, "timer": self.method, "threads": self.threads}
        if self.kernel_ms is not None or self.kernel_note is not None:
            cols.update(kernel_ms=self.kernel_ms, kernel_timer=self.kernel_method, dispatch_us=self.dispatch_us,
                        kernel_note=self.kernel_note)
        return cols


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

    def last_ms(self) -> float:
        return (self._ends[-1] - self._starts[-1]) * 1e3


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

    def last_ms(self) -> float:
        torch.cuda.synchronize(self.device)
        start, end = self._events[-1]
        return start.elapsed_time(end)


def _clock(device: torch.device, flush_l2: bool):
    return _CudaClock(device, flush_l2) if device.type == "cuda" else _CpuClock()


def _repeat(fn: Callable[[], object], clock, repeats: int, before_repeat: Callable[[], object] | None) -> list[float]:
    """One round: ``repeats`` calls of ``fn``, each bracketed by ``clock``; the times in ms."""
    for _ in range(repeats):
        if before_repeat is not None:
            before_repeat()
        clock.before()
        fn()
        clock.after()
    return clock.times_ms()


# ---------------------------------------------------------------------- kernel time (CUDA only)
def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _graph_replay_ms(fn: Callable[[], object], device: torch.device, repeats: int, flush_l2: bool) -> float:
    """``fn`` captured once in a CUDA graph on the current stream (a side stream if that is
    the default one) and replayed ``repeats`` times under the events: the median in ms."""
    current = torch.cuda.current_stream(device)
    stream = current if current != torch.cuda.default_stream(device) else torch.cuda.Stream(device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        fn()  # PyTorch's recipe: one call on the capture stream before capturing
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            fn()
        times = _repeat(graph.replay, _CudaClock(device, flush_l2), repeats, None)
    current.wait_stream(stream)
    del graph
    return statistics.median(times)


def _profiler_device_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Sum of the CUDA kernels' durations per call of ``fn`` (torch.profiler, L2 warm)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize(device)
    kernels = [e for e in prof.events() if getattr(e, "device_type", None) == DeviceType.CUDA]
    if not kernels:
        raise RuntimeError("the profiler recorded no CUDA kernel")
    total_us = sum(getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0.0) for e in kernels)
    return total_us / repeats / 1e3


def _kernel_time(fn: Callable[[], object], device: torch.device, repeats: int,
                 flush_l2: bool) -> tuple[float | None, str | None, str | None]:
    """(kernel ms, method, note): CUDA-graph replay, else the profiler's device time."""
    try:
        return _graph_replay_ms(fn, device, repeats, flush_l2), "cuda_graph", None
    except Exception as e:  # capture refused: a host sync, work on another stream, ...
        graph_error = _one_line(e)
    torch.cuda.synchronize(device)
    try:
        return _profiler_device_ms(fn, device, repeats), "profiler", f"CUDA graph capture failed ({graph_error})"
    except Exception as e:
        return None, None, f"no kernel time: CUDA graph capture failed ({graph_error}); profiler: {_one_line(e)}"


def measure(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 3,
            repeats: int = 10, threads: int | None = None, flush_l2: bool = True,
            before_repeat: Callable[[], object] | None = None, kernel_time: bool = False) -> Timing:
    """Steady-state time of ``fn()`` on ``device``: ``warmup`` untimed calls, then ``repeats``
    timed calls (CUDA events with L2 flush on a GPU, perf_counter on CPU); median and
    quantiles in ms. ``threads`` fixes torch's intra-op thread count while timing;
    ``before_repeat`` (untimed) runs before each timed call. ``kernel_time``: on CUDA also
    the kernel-only time (module docstring); on CPU it adds nothing."""
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    device = torch.device(device)
    with fixed_threads(threads) as n_threads:
        for _ in range(warmup):
            fn()
        synchronize(device)
        clock = _clock(device, flush_l2)
        times = _repeat(fn, clock, repeats, before_repeat)
        kernel = (None, None, None)
        if kernel_time and device.type == "cuda":
            kernel = _kernel_time(fn, device, repeats, flush_l2)
    timing = summarize(times, warmup=warmup, method=clock.method, threads=n_threads, l2_flushed=clock.l2_flushed)
    if kernel[0] is None and kernel[2] is None:
        return timing
    from dataclasses import replace

    return replace(timing, kernel_ms=kernel[0], kernel_method=kernel[1], kernel_note=kernel[2])


# ---------------------------------------------------------------------- ratios (paired rounds)
@dataclass(frozen=True)
class PairedTiming:
    """A variant timed against its baseline in paired rounds: each side's :class:`Timing`
    over the rounds and the rounds themselves (:class:`profiling.paired.PairedRounds`)."""

    baseline: Timing
    variant: Timing
    rounds: object  # profiling.paired.PairedRounds

    def columns(self) -> dict:
        """The variant's timing columns, the baseline's median of the same rounds, and the
        speedup columns (speedup, its interval, rounds, target_met, ...)."""
        return {**self.variant.columns(), "repeats": self.rounds.rounds, "baseline_median_ms": self.baseline.median_ms,
                **self.rounds.columns()}


def measure_paired(baseline: Callable[[], object], variant: Callable[[], object], *,
                   device: torch.device | str = "cpu", warmup: int = 2, threads: int | None = None,
                   flush_l2: bool = True, target_half_width: float = 0.03, time_cap_s: float = 60.0,
                   min_rounds: int = 10, max_rounds: int = 200, seed: int = 0,
                   before_round: Callable[[], object] | None = None,
                   combine: Callable[[float], float] | None = None, agree: Callable[[bool], bool] | None = None,
                   kernel_time: bool = False) -> PairedTiming:
    """The speedup of ``variant`` over ``baseline`` (module docstring): ``warmup`` untimed
    calls of each, then paired rounds on this device's clock (CUDA events, L2 flushed, or
    perf_counter) until the interval's half-width is ``target_half_width`` or ``time_cap_s``
    has passed. ``combine(ms)``: the time every process uses for a call (two ranks: the
    slowest's); ``before_round``, ``agree``: :func:`profiling.paired.paired_rounds`'s."""
    import random

    from alexnet_fast.profiling.paired import paired_rounds

    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    device = torch.device(device)
    with fixed_threads(threads) as n_threads:
        for _ in range(warmup):
            baseline()
            variant()
        synchronize(device)
        clock = _clock(device, flush_l2)

        def time_once(fn: Callable[[], object]) -> float:
            clock.before()
            fn()
            clock.after()
            ms = clock.last_ms()  # CUDA: synchronises, so a round is timed before the next starts
            return combine(ms) if combine is not None else ms

        rounds = paired_rounds(baseline, variant, time_once=time_once, min_rounds=min_rounds, max_rounds=max_rounds,
                               target_half_width=target_half_width, time_cap_s=time_cap_s, rng=random.Random(seed),
                               before_round=before_round, agree=agree, seed=seed)
        kernel = (None, None, None)
        if kernel_time and device.type == "cuda":
            kernel = _kernel_time(variant, device, rounds.rounds, flush_l2)
    side = dict(warmup=warmup, method=clock.method, threads=n_threads, l2_flushed=clock.l2_flushed)
    base_t, var_t = summarize(rounds.baseline_ms, **side), summarize(rounds.variant_ms, **side)
    if kernel[0] is not None or kernel[2] is not None:
        from dataclasses import replace

        var_t = replace(var_t, kernel_ms=kernel[0], kernel_method=kernel[1], kernel_note=kernel[2])
    return PairedTiming(baseline=base_t, variant=var_t, rounds=rounds)
