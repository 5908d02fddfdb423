"""The statistics of paired speedups and unpaired rounds, on synthetic series (no timing)."""

import itertools
import math

import numpy as np
import pytest

from alexnet_fast.profiling.stats import (FASTER, NO_DIFFERENCE, SLOWER, mann_whitney_u, min_p_value, paired_ratio,
                             significance, tukey_outliers)


def drifting_pair(seed, rounds=30, speedup=1.10, noise=0.03, drift=0.05, base_ms=20.0):
    """Paired rounds on a drifting machine: both halves of a round share the machine's speed
    (a random walk, ~5% a round), each call has its own noise; the variant is ``speedup``x faster."""
    rng = np.random.default_rng(seed)
    machine = np.exp(np.cumsum(rng.normal(0.0, drift, rounds)))
    baseline = base_ms * machine * rng.lognormal(0.0, noise, rounds)
    variant = base_ms / speedup * machine * rng.lognormal(0.0, noise, rounds)
    return baseline, variant


def test_a_known_ten_percent_difference_is_found():
    baseline, variant = drifting_pair(seed=1)
    est = paired_ratio(baseline, variant)
    # the machine drifted by much more than 10% over the rounds
    assert baseline.max() / baseline.min() > 1.3
    assert est.ci_low > 1.0 and est.ci_low <= 1.10 <= est.ci_high, est
    assert est.verdict == FASTER and est.rounds == 30 and est.half_width < 0.03
    assert est.ratio == pytest.approx(1.10, rel=0.02)
    # the other way round is the reciprocal, and called slower
    back = paired_ratio(variant, baseline)
    assert back.ratio == pytest.approx(1 / est.ratio) and back.verdict == SLOWER
    assert back.ci_low == pytest.approx(1 / est.ci_high) and back.ci_high == pytest.approx(1 / est.ci_low)


def test_blocks_on_a_drifting_machine_get_it_wrong_and_pairs_do_not():
    """The method's reason: the machine slows 1% a round; timing 30 baseline rounds,
    then 30 variant rounds, calls the 10% faster variant slower. Interleaved pairs do not."""
    n = 30
    machine = 1.01 ** np.arange(2 * n)
    rng = np.random.default_rng(2)
    noise = rng.lognormal(0.0, 0.02, 2 * n)
    blocks = np.median(20.0 * machine[:n] * noise[:n]) / np.median(20.0 / 1.10 * machine[n:] * noise[n:])
    assert blocks < 1.0  # two blocks: "slower"
    pairs = paired_ratio(20.0 * machine[0::2] * noise[0::2], 20.0 / 1.10 * machine[1::2] * noise[1::2])
    assert pairs.verdict == FASTER and pairs.ci_low <= 1.10 * 1.01 <= pairs.ci_high * 1.01


def test_noise_alone_is_not_called_a_difference():
    est = paired_ratio(*drifting_pair(seed=3, speedup=1.0))
    assert est.ci_low <= 1.0 <= est.ci_high and est.verdict == NO_DIFFERENCE
    # over many noise-only series the 95% interval calls a difference about 5% of the time
    # (measured at the default 4000 resamples over 1000 series: 5.3% at 20 rounds, 5.9% at 10)
    called = sum(paired_ratio(*drifting_pair(seed=100 + s, rounds=20, speedup=1.0), resamples=1000).verdict
                 != NO_DIFFERENCE for s in range(300))
    assert called / 300 <= 0.09, called


def test_a_bimodal_series_widens_the_interval():
    """Per-round ratios of the same spread (standard deviation 6%), one unimodal, one with
    two modes at 0.94 and 1.06 (a cell that flips between two clock states): the median is
    unstable between two modes, and the interval says so."""
    rng = np.random.default_rng(4)
    n = 40
    uni = rng.normal(0.0, 0.06, n)
    bi = np.where(np.arange(n) % 2 == 0, -0.06, 0.06) + rng.normal(0.0, 0.005, n)
    uni, bi = uni / uni.std() * 0.06, bi / bi.std() * 0.06  # the same spread exactly
    variant = np.full(n, 10.0)
    e_uni = paired_ratio(10.0 * np.exp(uni), variant)
    e_bi = paired_ratio(10.0 * np.exp(bi), variant)
    assert e_bi.half_width > 2.0 * e_uni.half_width, (e_uni, e_bi)
    assert e_bi.verdict == NO_DIFFERENCE


def test_interval_is_seeded_and_reproducible():
    b, v = drifting_pair(seed=5)
    assert paired_ratio(b, v, seed=7) == paired_ratio(b, v, seed=7)
    seven, eight = paired_ratio(b, v, seed=7), paired_ratio(b, v, seed=8)
    assert (seven.ci_low, seven.ci_high) != (eight.ci_low, eight.ci_high) and seven.ratio == eight.ratio
    est = paired_ratio(b, v)
    assert est.resamples == 4000 and est.confidence == 0.95
    assert set(est.columns()) == {"speedup", "speedup_ci_low", "speedup_ci_high", "rounds", "outlier_rounds",
                                  "significance", "order_effect"}


def test_outlier_rounds_are_counted_not_dropped():
    b, v = drifting_pair(seed=6, noise=0.01, drift=0.0)
    clean = paired_ratio(b, v)
    b[[3, 17]] *= 1.8  # two interfered baseline rounds
    est = paired_ratio(b, v)
    assert est.outlier_rounds == clean.outlier_rounds + 2 and est.rounds == 30
    assert est.ci_low <= 1.10 <= est.ci_high and est.ratio == pytest.approx(clean.ratio, rel=0.01)
    assert tukey_outliers([1.0, 1.01, 0.99, 1.02, 5.0]) == 1 and tukey_outliers([1, 2, 3]) == 0


def test_significance_words():
    assert significance(1.01, 1.2) == FASTER and significance(0.8, 0.99) == SLOWER
    assert significance(0.95, 1.05) == NO_DIFFERENCE == significance(1.0, 1.1)


@pytest.mark.parametrize("b, v, message", [
    ([1.0, 2.0], [1.0], "as many baseline as variant"),
    ([1.0], [1.0], "at least 2 rounds"),
    ([1.0, 0.0], [1.0, 1.0], "baseline_ms: value #1 is 0.0"),
    ([1.0, 1.0], [1.0, float("nan")], "variant_ms: value #1 is nan"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "1-d"),
])
def test_bad_series_are_refused(b, v, message):
    with pytest.raises(ValueError, match=message):
        paired_ratio(b, v)


def _brute_force_p(x, y):
    values = np.concatenate([x, y])
    m = len(x)
    u_obs = sum(a > b for a in x for b in y)
    us = []
    for idx in itertools.combinations(range(len(values)), m):
        xs = values[list(idx)]
        ys = np.delete(values, list(idx))
        us.append(sum(a > b for a in xs for b in ys))
    us = np.array(us)
    return min(1.0, 2 * min((us <= u_obs).mean(), (us >= u_obs).mean()))


@pytest.mark.parametrize("m, n", [(3, 4), (5, 5), (2, 7), (6, 3), (1, 5)])
def test_mann_whitney_exact_matches_enumeration(m, n):
    rng = np.random.default_rng(m * 10 + n)
    x, y = rng.random(m) + 1, rng.random(n) + 1.2
    result = mann_whitney_u(x, y)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(_brute_force_p(x, y), abs=1e-12)


def test_mann_whitney_known_values_ties_and_limits():
    separated = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert separated.u == 0 and separated.p_value == pytest.approx(0.1) and separated.effect == 0.0
    assert min_p_value(3, 3) == pytest.approx(0.1) and min_p_value(5, 5) == pytest.approx(2 / 252)
    assert mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).p_value == pytest.approx(2 / 252)
    # ties: normal approximation with the tie-corrected variance
    tied = mann_whitney_u([1, 1, 2, 2, 3], [2, 3, 3, 4, 4])
    assert tied.method == "normal" and 0.05 < tied.p_value < 0.2
    assert mann_whitney_u([2.0] * 4, [2.0] * 4).p_value == 1.0
    # large samples: the normal approximation agrees with the exact distribution
    rng = np.random.default_rng(9)
    x, y = rng.lognormal(0, 0.1, 40), rng.lognormal(0.05, 0.1, 40)
    exact = mann_whitney_u(x, y)
    import alexnet_fast.profiling.stats as stats
    old = stats.EXACT_MAX_N
    stats.EXACT_MAX_N = 10
    try:
        normal = mann_whitney_u(x, y)
    finally:
        stats.EXACT_MAX_N = old
    assert exact.method == "exact" and normal.method == "normal"
    assert math.isclose(exact.p_value, normal.p_value, rel_tol=0.05, abs_tol=0.005)
