"""Adaptive paired rounds: the one way the study measures a ratio.

:func:`paired_rounds` takes two warm callables (the baseline and the variant of one cell) and
a clock, and alternates them in *rounds*: each round times one call of each, back to back, in
an order drawn at random (so neither always runs on the cache or clock state the other left).
The order is randomised in permuted blocks of two rounds: a random order, then the other
one, so both orders are equally represented (to within one round) and the crossover estimate
of :func:`profiling.stats.paired_ratio` cancels an order effect exactly. After
``min_rounds`` it estimates the speedup ``baseline_ms / variant_ms`` from the per-round pairs
with a bootstrap interval (:func:`profiling.stats.paired_ratio`) and stops as soon as the
interval's relative half-width is at most ``target_half_width`` (3% by default), or when
``time_cap_s`` of wall time or ``max_rounds`` rounds are spent. The result says which, and
whether the target was met.

It knows nothing of torch, devices or the engine: the caller passes

* ``time_once(fn) -> ms``: times one call (or a small batch) of ``fn`` and returns
  milliseconds. This is where the one timer of :mod:`profiling.timers` comes in, so every path
  keeps its clock (CUDA events with L2 flush on a GPU, perf_counter on CPU);
* ``rng``: a ``random.Random`` (seeded: the same seed gives the same order of rounds);
* ``clock``: the wall clock of the time cap (``time.monotonic``; tests pass a fake one);
* ``before_round`` (untimed, e.g. a barrier, or :meth:`profiling.interference.Sampler.sample`)
  and ``agree`` (the stop decision every rank takes; see the layouts below).

How the engine calls it, one method for every path
--------------------------------------------------
Warm both first (the engine's warm-up and its separate first-call timing stay as they are),
then, per cell, with the intra-op threads fixed around the whole call::

    from profiling import timers
    from profiling.paired import paired_rounds

    def time_once(fn):               # the one timer, one repeat, no warm-up (both are warm)
        return timers.measure(fn, device=device, warmup=0, repeats=1, flush_l2=True).median_ms

    result = paired_rounds(baseline_step, variant_step, time_once=time_once,
                           min_rounds=10, max_rounds=200, time_cap_s=cap, rng=random.Random(seed))
    row.update(result.columns())     # speedup, speedup_ci_low/high, rounds, target_met, ...

* **CPU, one device** (whole model and per-layer rows alike): as above; perf_counter per call.
  A cell of ~0.1 ms (a small layer) gets more done per round with ``repeats=k`` in
  ``time_once`` (the median of k calls is one round's time).
* **GPU, one device**: the same ``time_once``; ``measure`` brackets the call with CUDA events
  on the measured device's stream and synchronises once per call, so a round is kernel work,
  not queueing. The kernel-time column (CUDA-graph replay) is another ``time_once`` over the
  graph's ``replay``: same driver, same rounds.
* **Two-rank layouts** (data / model parallel): every rank runs :func:`paired_rounds` with
  the same seed, ``before_round`` a barrier, and a ``time_once`` that returns the *slowest
  rank's* time (measure, then ``all_reduce(MAX)`` of the ms), so every rank sees identical
  times and takes identical order decisions; ``agree=lambda stop: all_reduce_max(stop)``
  makes the stop decision common even if the ranks' wall clocks disagree on the time cap.
  No other communication is needed.
* **Per-layer rows**: the layer's baseline and variant callables, same call.
* **Interference** (:mod:`profiling.interference`): the cell's rounds run inside
  ``with sampler.cell(threads=n):`` (background sampling), or pass
  ``before_round=sampler.sample`` with ``sampler.cell(background=False)`` for one sample a
  round; the cell's figures and flag go into the same row.
* **pytest benchmarks**: pytest-benchmark times one target per test, and its rounds
  (``stats.data``) feed ``alexnet-fast regress`` (Mann-Whitney U, :mod:`profiling.regress`).
  A benchmark that states a speedup over its baseline provider calls :func:`paired_rounds`
  inside the test with a perf_counter + synchronize ``time_once`` and puts
  ``result.columns()`` in ``extra_info``.

Stopping checks are spaced out geometrically (every round up to 20 rounds, then every ~10%
more rounds) so the bootstrap costs a small fraction of a cell even at ``max_rounds``.
``min_rounds`` is a floor the time cap does not cut (the engine sizes it; 10 by default); the
target can stop a cell only from :data:`TARGET_MIN_ROUNDS` = 10 rounds on, and a cell with
fewer rounds, or whose cap ended it before the target, has ``target_met = False``. Measured
coverage of the whole adaptive procedure (fake machine, 300 cells each, true ratio 1.10):
the final 95% interval missed it in 4.0% / 4.7% / 6.3% of cells at 2% / 3% / 6% noise per
call, mean 10 / 14 / 51 rounds (stopping when an interval is narrow favours the narrow ones
a little; with a 6-round floor instead of 10: 14% / 12% / 9%).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

from profiling.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, RatioEstimate, paired_ratio

__all__ = ["DEFAULT_TARGET_HALF_WIDTH", "PairedRounds", "paired_rounds"]

DEFAULT_TARGET_HALF_WIDTH = 0.03
# no stop on the target before this many rounds: below it the percentile bootstrap of a
# median runs narrow, and stopping on a narrow interval picks the narrow ones (measured with
# tests/test_paired.py's fake machine, 3% noise, 300 cells: final intervals missed the true
# ratio in 12% of cells with a 6-round floor, 4.7% with 10)
TARGET_MIN_ROUNDS = 10
STOP_TARGET, STOP_TIME_CAP, STOP_MAX_ROUNDS, STOP_AGREED = "target", "time_cap", "max_rounds", "other_rank"


@dataclass(frozen=True)
class PairedRounds:
    """What :func:`paired_rounds` measured: the per-round times (ms, in the order of rounds),
    which side ran first in each round, the estimate, and why it stopped."""

    baseline_ms: tuple[float, ...]
    variant_ms: tuple[float, ...]
    baseline_first: tuple[bool, ...]
    estimate: RatioEstimate
    target_half_width: float
    stop_reason: str  # "target" | "time_cap" | "max_rounds" | "other_rank" (agree stopped it)
    elapsed_s: float

    @property
    def rounds(self) -> int:
        return len(self.baseline_ms)

    @property
    def target_met(self) -> bool:
        return self.rounds >= TARGET_MIN_ROUNDS and self.estimate.half_width <= self.target_half_width

    def columns(self) -> dict:
        """The columns of a timed non-baseline row: speedup, its interval, rounds, whether the
        target half-width was met, outlier rounds, the significance word."""
        return {**self.estimate.columns(), "speedup_half_width": self.estimate.half_width,
                "target_half_width": self.target_half_width, "target_met": self.target_met,
                "stop_reason": self.stop_reason}


def _positive_int(value, name: str, minimum: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def _next_check(rounds: int) -> int:
    return rounds + 1 if rounds < 20 else max(rounds + 1, math.ceil(rounds * 1.1))


def paired_rounds(run_baseline: Callable[[], object], run_variant: Callable[[], object], *,
                  time_once: Callable[[Callable[[], object]], float], min_rounds: int = 10, max_rounds: int = 200,
                  target_half_width: float = DEFAULT_TARGET_HALF_WIDTH, time_cap_s: float = 60.0,
                  rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                  before_round: Callable[[], object] | None = None,
                  agree: Callable[[bool], bool] | None = None, confidence: float = DEFAULT_CONFIDENCE,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> PairedRounds:
    """Alternate ``run_baseline`` and ``run_variant`` (both already warm) in rounds of one
    timed call each, order random per round, until the speedup interval's relative
    half-width is at most ``target_half_width`` (checked from ``max(min_rounds,
    TARGET_MIN_ROUNDS)`` = 10 rounds on), or
    ``time_cap_s`` seconds of ``clock`` have passed (after ``min_rounds``), or ``max_rounds``.

    ``time_once(fn)`` returns the time of one call of ``fn`` in ms (finite, positive).
    ``rng`` draws the order (default ``random.Random(seed)``); ``seed`` also seeds the
    bootstrap. ``agree(stop)`` returns the stop decision all processes take (default: this
    one's); it is called once per round from ``min_rounds`` on (a collective on every rank). See the module docstring for how each path of the engine calls it."""
    min_rounds = _positive_int(min_rounds, "min_rounds", 2)
    max_rounds = _positive_int(max_rounds, "max_rounds", 2)
    if max_rounds < min_rounds:
        raise ValueError(f"max_rounds ({max_rounds}) must be at least min_rounds ({min_rounds})")
    target_half_width = _positive_float(target_half_width, "target_half_width")
    time_cap_s = _positive_float(time_cap_s, "time_cap_s")
    for fn, name in ((run_baseline, "run_baseline"), (run_variant, "run_variant"), (time_once, "time_once")):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    rng = random.Random(seed) if rng is None else rng

    def timed(fn: Callable[[], object], side: str) -> float:
        ms = time_once(fn)
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            raise ValueError(f"time_once returned {ms!r} ms for the {side} (round {len(base) + 1}); "
                             f"expected a finite positive time")
        return float(ms)

    base: list[float] = []
    var: list[float] = []
    first: list[bool] = []
    start = clock()
    check_at = max(min_rounds, TARGET_MIN_ROUNDS)
    estimate: RatioEstimate | None = None
    reason = STOP_MAX_ROUNDS
    while len(base) < max_rounds:
        if before_round is not None:
            before_round()
        # permuted blocks of two: a random order for the block's first round, the other next
        baseline_first = rng.random() < 0.5 if len(first) % 2 == 0 else not first[-1]
        if baseline_first:
            b = timed(run_baseline, "baseline")
            v = timed(run_variant, "variant")
        else:
            v = timed(run_variant, "variant")
            b = timed(run_baseline, "baseline")
        base.append(b)
        var.append(v)
        first.append(baseline_first)
        n = len(base)
        if n < min_rounds:
            continue
        stop, why = False, None
        if n >= check_at:
            estimate = paired_ratio(base, var, baseline_first=first, confidence=confidence, resamples=resamples,
                                    seed=seed)
            check_at = _next_check(n)
            if n >= TARGET_MIN_ROUNDS and estimate.half_width <= target_half_width:
                stop, why = True, STOP_TARGET
        if not stop and clock() - start >= time_cap_s:
            stop, why = True, STOP_TIME_CAP
        if agree is not None:
            agreed = bool(agree(stop))
            if agreed and not stop:
                why = STOP_AGREED  # another rank reached its time cap first
            stop = agreed
        if stop:
            reason = why
            break
    elapsed = clock() - start
    if estimate is None or estimate.rounds != len(base):
        estimate = paired_ratio(base, var, baseline_first=first, confidence=confidence, resamples=resamples,
                                seed=seed)
    return PairedRounds(baseline_ms=tuple(base), variant_ms=tuple(var), baseline_first=tuple(first),
                        estimate=estimate, target_half_width=target_half_width, stop_reason=reason,
                        elapsed_s=elapsed)
