"""The adaptive paired-rounds driver, with fake clocks (deterministic, no real timing)."""

import random

import numpy as np
import pytest

from alexnet_fast.profiling.paired import paired_rounds
from alexnet_fast.profiling.stats import FASTER, paired_ratio


class FakeMachine:
    """Two fake callables and a fake clock. A call's time: its true ms x the machine's speed
    (drifting per call) x noise; ``second_bonus`` makes whichever runs second in a round
    faster (a cache the first one warmed). ``time_once`` advances the fake wall clock."""

    def __init__(self, *, baseline_ms=10.0, speedup=1.10, noise=0.03, drift=0.01, second_bonus=0.0, seed=0):
        self.rng = np.random.default_rng(seed)
        self.true = {"baseline": baseline_ms, "variant": baseline_ms / speedup}
        self.noise, self.drift, self.second_bonus = noise, drift, second_bonus
        self.speed = 1.0
        self.now = 0.0
        self.calls = []

    def baseline(self):
        self.calls.append("baseline")

    def variant(self):
        self.calls.append("variant")

    def clock(self):
        return self.now

    def time_once(self, fn):
        fn()
        side = self.calls[-1]
        self.speed *= float(np.exp(self.rng.normal(0.0, self.drift)))
        ms = self.true[side] * self.speed * float(self.rng.lognormal(0.0, self.noise))
        if len(self.calls) % 2 == 0:  # the second call of a round
            ms *= 1.0 - self.second_bonus
        self.now += ms / 1e3
        return ms


def run(machine, **kw):
    args = dict(time_once=machine.time_once, clock=machine.clock, min_rounds=10, max_rounds=200,
                time_cap_s=60.0, rng=random.Random(1))
    args.update(kw)
    return paired_rounds(machine.baseline, machine.variant, **args)


def test_stops_at_the_target_with_the_known_speedup():
    covered = 0
    for seed in range(20):
        m = FakeMachine(noise=0.03, seed=seed)
        r = run(m, rng=random.Random(seed))
        est = r.estimate
        assert r.stop_reason == "target" and r.target_met and 10 <= r.rounds < 200
        assert est.half_width <= 0.03 and est.verdict == FASTER
        assert len(m.calls) == 2 * r.rounds and len(r.baseline_ms) == len(r.variant_ms) == r.rounds
        covered += est.ci_low <= 1.10 <= est.ci_high
    assert covered >= 18, covered  # a 95% interval: 19 of 20 here
    cols = r.columns()
    assert cols["speedup"] == est.ratio and cols["rounds"] == r.rounds and cols["target_met"] is True
    assert {"speedup_ci_low", "speedup_ci_high", "outlier_rounds", "significance", "stop_reason",
            "order_effect"} <= set(cols)


def test_noisier_cells_take_more_rounds():
    quiet = run(FakeMachine(noise=0.02, seed=2))
    noisy = run(FakeMachine(noise=0.08, seed=2))
    assert quiet.target_met and noisy.target_met
    assert noisy.rounds > 2 * quiet.rounds, (quiet.rounds, noisy.rounds)


def test_time_cap_ends_a_cell_that_cannot_reach_the_target():
    m = FakeMachine(noise=0.4)
    r = run(m, time_cap_s=0.5)  # ~19 ms a round: ~26 rounds fit
    assert r.stop_reason == "time_cap" and not r.target_met
    assert 0.5 <= r.elapsed_s < 0.6 and 20 <= r.rounds <= 30
    assert r.columns()["target_met"] is False


def test_max_rounds_and_min_rounds_bound_the_cell():
    r = run(FakeMachine(noise=0.4), max_rounds=15, time_cap_s=1e6)
    assert r.stop_reason == "max_rounds" and r.rounds == 15
    # the time cap never cuts below min_rounds
    r = run(FakeMachine(noise=0.01), min_rounds=12, time_cap_s=1e-9)
    assert r.rounds == 12 and r.stop_reason in ("target", "time_cap")
    # the target never stops a cell before 10 rounds, and fewer rounds never count as met
    r = run(FakeMachine(noise=0.001), min_rounds=3, time_cap_s=1e6)
    assert r.rounds == 10 and r.stop_reason == "target"
    r = run(FakeMachine(noise=0.001), min_rounds=3, time_cap_s=1e-9)
    assert r.rounds == 3 and r.stop_reason == "time_cap" and r.estimate.half_width < 0.03 and not r.target_met


def test_order_is_random_balanced_reproducible_and_an_order_effect_cancels():
    r1 = run(FakeMachine(noise=0.4), max_rounds=60, time_cap_s=1e6, rng=random.Random(5))
    r2 = run(FakeMachine(noise=0.4), max_rounds=60, time_cap_s=1e6, rng=random.Random(5))
    assert r1.baseline_first == r2.baseline_first and r1.baseline_ms == r2.baseline_ms
    assert sum(r1.baseline_first) == 30  # permuted blocks of two: each order once per block
    blocks = list(zip(r1.baseline_first[0::2], r1.baseline_first[1::2]))
    assert all(a != b for a, b in blocks) and 5 <= sum(a for a, _ in blocks) <= 25  # which first: random
    # whoever runs second is 8% faster: the per-round ratios are bimodal (1.10 / 0.92 and
    # 1.10 x 0.92); the median over both orders lands between the modes, the crossover
    # estimate finds 1.10 and reports the order effect
    m = FakeMachine(noise=0.01, drift=0.0, second_bonus=0.08, seed=3)
    r = run(m, max_rounds=200, time_cap_s=1e6, target_half_width=0.01)
    est = r.estimate
    assert est.ci_low <= 1.10 <= est.ci_high and est.half_width <= 0.01 and r.stop_reason == "target"
    assert est.order_effect == pytest.approx(1 / 0.92, rel=0.01)
    plain = paired_ratio(r.baseline_ms, r.variant_ms)  # no order given: the plain median
    assert plain.half_width > 3 * est.half_width


def test_before_round_and_agree_hooks():
    m = FakeMachine(noise=0.4)
    rounds_seen = []
    r = run(m, before_round=lambda: rounds_seen.append(len(m.calls)), time_cap_s=1e6,
            agree=lambda stop: stop or len(m.calls) >= 2 * 14)  # "another rank" hit its cap at round 14
    assert r.rounds == 14 and r.stop_reason == "other_rank"
    assert rounds_seen == [2 * i for i in range(14)]  # once before each round, untimed
    # agree can also keep a rank going that alone would have stopped (the same decision everywhere)
    r = run(FakeMachine(noise=0.01), agree=lambda stop: False, max_rounds=25)
    assert r.rounds == 25 and r.stop_reason == "max_rounds" and r.target_met


@pytest.mark.parametrize("kw, error, message", [
    (dict(min_rounds=1), ValueError, "min_rounds must be an integer >= 2"),
    (dict(min_rounds=10, max_rounds=5), ValueError, r"max_rounds \(5\) must be at least min_rounds \(10\)"),
    (dict(target_half_width=0), ValueError, "target_half_width must be a finite positive number"),
    (dict(time_cap_s=float("nan")), ValueError, "time_cap_s must be a finite positive number"),
    (dict(time_once=None), TypeError, "time_once must be callable"),
])
def test_bad_arguments_are_refused(kw, error, message):
    with pytest.raises(error, match=message):
        run(FakeMachine(), **kw)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), None])
def test_a_clock_that_returns_no_time_is_an_error(bad):
    calls = []

    def time_once(fn):
        fn()
        calls.append(1)
        return bad if len(calls) == 7 else 1.0

    with pytest.raises(ValueError, match=r"time_once returned .* \(round 4\); expected a finite positive time"):
        paired_rounds(lambda: None, lambda: None, time_once=time_once, rng=random.Random(0))
