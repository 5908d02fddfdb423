"""Adaptive paired rounds: the one way the study measures a ratio.

:func:`paired_rounds` alternates a warm baseline and variant in rounds (one call of each, back
to back, in an order drawn in permuted blocks of two rounds, so both orders are equally
represented and the crossover estimate of :func:`profiling.stats.paired_ratio` cancels an
order effect), and stops once the speedup's bootstrap interval is within
``target_half_width`` (3%), or at ``time_cap_s`` or ``max_rounds``. It knows no torch: the
caller passes ``time_once(fn) -> ms`` (the one timer, one call), a seeded ``rng``, a ``clock``,
and for two ranks a ``before_round`` barrier and an ``agree`` on stopping. Measured coverage
(fake machine, 300 cells, true ratio 1.10): the final 95% interval missed it in 4.0% / 4.7% /
6.3% of cells at 2% / 3% / 6% noise per call, hence the 10-round floor (README, "Measuring a
ratio").
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable

from alexnet_fast.profiling.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, RatioEstimate, paired_ratio

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
