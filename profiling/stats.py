"""Statistics of the study's ratios: paired speedups with bootstrap intervals, Mann-Whitney U,
outlier rounds. Pure Python + numpy (no torch), so every rule is tested on synthetic series.

Why pairs: on a shared machine eager vs compile at batch 1 measured 0.77x then 1.51x in two runs
in a row; in a round both sides see nearly the same machine, and the per-round ratio cancels
what they share. The estimate is the median of the per-round ratios (the AB/BA crossover
estimate when the order is known: an 8% order effect moved the plain median to 1.105 in
[1.011, 1.193] against the crossover's 1.096 in [1.086, 1.107] for a true 1.10), its interval a
percentile bootstrap of whole rounds (4000 resamples; BCa's jackknife is degenerate for a
median); two separate runs are compared by the exact two-sided Mann-Whitney U; outliers are
Tukey's fences, counted, never dropped. The choices and their measured coverage: README,
"Measuring a ratio".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_RESAMPLES", "EXACT_MAX_N", "FASTER", "SLOWER", "NO_DIFFERENCE",
           "RatioEstimate", "MannWhitney", "paired_ratio", "bootstrap_interval", "significance",
           "mann_whitney_u", "min_p_value", "tukey_outliers", "as_positive_series"]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 4000
# Mann-Whitney U: exact distribution up to this many rounds per sample (and no ties)
EXACT_MAX_N = 50
FASTER, SLOWER, NO_DIFFERENCE = "faster", "slower", "no significant difference"


def as_positive_series(values: Sequence[float], what: str) -> np.ndarray:
    """``values`` as a 1-d float array of finite positive numbers, or a ValueError naming ``what``."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not a sequence of numbers ({e})") from e
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d sequence of times, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}: value #{i} is {float(arr[i])!r}; times must be finite and positive")
    return arr


def _check_confidence(confidence: float, resamples: int) -> None:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (isinstance(resamples, int) and resamples >= 100):
        raise ValueError(f"resamples must be an integer >= 100, got {resamples!r}")


def significance(ci_low: float, ci_high: float) -> str:
    """The word for a speedup interval (baseline time / variant time): ``faster`` when it lies
    above 1, ``slower`` below 1, ``no significant difference`` when it contains 1."""
    if ci_low > 1.0:
        return FASTER
    if ci_high < 1.0:
        return SLOWER
    return NO_DIFFERENCE


def bootstrap_interval(samples: np.ndarray, statistic=np.median, *, confidence: float = DEFAULT_CONFIDENCE,
                       resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (applied along axis 1 to a
    ``(resamples, n)`` array) over the rows of ``samples`` (resampled with replacement)."""
    _check_confidence(confidence, resamples)
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values, got {n}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    stats = statistic(samples[idx], axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def tukey_outliers(values: Sequence[float], k: float = 1.5) -> int:
    """How many values lie outside Tukey's fences ``[Q1 - k IQR, Q3 + k IQR]`` (0 for < 4 values)."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 4:
        return 0
    q1, q3 = np.quantile(arr, [0.25, 0.75])
    iqr = q3 - q1
    return int(np.count_nonzero((arr < q1 - k * iqr) | (arr > q3 + k * iqr)))


@dataclass(frozen=True)
class RatioEstimate:
    """Speedup of a variant over its baseline from paired rounds: ``baseline_ms / variant_ms``
    per round, median over rounds, with a bootstrap interval (> 1: the variant is faster)."""

    ratio: float
    ci_low: float
    ci_high: float
    rounds: int
    outlier_rounds: int
    confidence: float
    resamples: int
    seed: int
    order_effect: float | None = None  # how much faster the second call of a round is (1.0: none)

    @property
    def half_width(self) -> float:
        """Half the interval's width relative to the estimate (0.03 = +-3%)."""
        return (self.ci_high - self.ci_low) / (2.0 * self.ratio)

    @property
    def verdict(self) -> str:
        return significance(self.ci_low, self.ci_high)

    def as_dict(self) -> dict:
        return {**asdict(self), "half_width": self.half_width, "verdict": self.verdict}

    def columns(self) -> dict:
        """The result-table columns of a timed non-baseline row."""
        return {"speedup": self.ratio, "speedup_ci_low": self.ci_low, "speedup_ci_high": self.ci_high,
                "rounds": self.rounds, "outlier_rounds": self.outlier_rounds, "significance": self.verdict,
                "order_effect": self.order_effect}


def _median_axis(a: np.ndarray, axis: int = 1) -> np.ndarray:
    return np.median(a, axis=axis)


def _crossover_interval(first: np.ndarray, second: np.ndarray, *, confidence: float, resamples: int,
                        seed: int) -> tuple[float, float]:
    """Percentile bootstrap of (median(first) + median(second)) / 2, resampling each group
    within itself (a stratified bootstrap: both orders keep their counts)."""
    rng = np.random.default_rng(seed)
    m1 = np.median(first[rng.integers(0, first.size, size=(resamples, first.size))], axis=1)
    m2 = np.median(second[rng.integers(0, second.size, size=(resamples, second.size))], axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile((m1 + m2) / 2.0, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_ratio(baseline_ms: Sequence[float], variant_ms: Sequence[float], *,
                 baseline_first: Sequence[bool] | None = None, confidence: float = DEFAULT_CONFIDENCE,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> RatioEstimate:
    """Speedup of the variant from paired rounds: round i timed ``baseline_ms[i]`` and
    ``variant_ms[i]`` back to back (``baseline_first[i]``: the baseline ran first). Median of
    the per-round ratios (the crossover estimate over the two orders when ``baseline_first``
    is given), percentile-bootstrap interval (seeded), Tukey outliers of the log-ratios; see
    the module docstring."""
    _check_confidence(confidence, resamples)
    base = as_positive_series(baseline_ms, "baseline_ms")
    var = as_positive_series(variant_ms, "variant_ms")
    if base.size != var.size:
        raise ValueError(f"paired rounds need as many baseline as variant times, got {base.size} and {var.size}")
    if base.size < 2:
        raise ValueError(f"a paired ratio needs at least 2 rounds, got {base.size}")
    log_ratio = np.log(base) - np.log(var)
    order_effect = None
    if baseline_first is not None:
        order = np.asarray(baseline_first, dtype=bool)
        if order.shape != base.shape:
            raise ValueError(f"baseline_first needs one flag per round ({base.size}), got {order.size}")
        bf, vf = log_ratio[order], log_ratio[~order]
    if baseline_first is not None and bf.size >= 2 and vf.size >= 2:
        m_bf, m_vf = float(np.median(bf)), float(np.median(vf))
        point = (m_bf + m_vf) / 2.0
        order_effect = math.exp((m_bf - m_vf) / 2.0)
        lo, hi = _crossover_interval(bf, vf, confidence=confidence, resamples=resamples, seed=seed)
    else:
        point = float(np.median(log_ratio))
        lo, hi = bootstrap_interval(log_ratio, _median_axis, confidence=confidence, resamples=resamples, seed=seed)
    return RatioEstimate(ratio=math.exp(point), ci_low=math.exp(lo), ci_high=math.exp(hi),
                         rounds=int(base.size), outlier_rounds=tukey_outliers(log_ratio), confidence=confidence,
                         resamples=resamples, seed=seed, order_effect=order_effect)


# ---- Mann-Whitney U ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``. ``u`` is U of x (the number of
    pairs with x > y, ties counting a half); ``p_value`` two-sided; ``method`` exact|normal."""

    u: float
    p_value: float
    method: str
    n_x: int
    n_y: int

    @property
    def effect(self) -> float:
        """Probability that a round of x is slower than a round of y (0.5: no difference)."""
        return self.u / (self.n_x * self.n_y)


def _midranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n with ties given their mean rank; and the sizes of the tie groups."""
    order = np.argsort(values, kind="mergesort")
    sorted_v = values[order]
    ranks = np.empty(values.size, dtype=float)
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    for start, c in zip(first, counts):
        ranks[order[start:start + c]] = start + (c + 1) / 2.0
    return ranks, counts


def _u_distribution(m: int, n: int) -> np.ndarray:
    """P(U = u), u = 0..m*n, for U of m values against n under the null (no ties): recursion
    on the largest value, which belongs to x with probability m/(m+n) and then beats all n."""
    # dist[j] holds the distribution for (i, j) as i grows; start at i = 0: U = 0 surely
    dist = [np.ones(1) for _ in range(n + 1)]
    for i in range(1, m + 1):
        new = [np.zeros(1)] * (n + 1)
        new[0] = np.ones(1)
        for j in range(1, n + 1):
            out = np.zeros(i * j + 1)
            out[j:j + dist[j].size] += (i / (i + j)) * dist[j]  # largest is an x: shift by j
            out[:new[j - 1].size] += (j / (i + j)) * new[j - 1]  # largest is a y
            new[j] = out
        dist = new
    return dist[n]


def min_p_value(n_x: int, n_y: int) -> float:
    """Smallest two-sided p-value the exact test can give with these sample sizes:
    2 / C(n_x + n_y, n_x) (3 rounds against 3: 0.1, so never significant at 0.05)."""
    if n_x < 1 or n_y < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_x + n_y, n_x))


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> MannWhitney:
    """Two-sided Mann-Whitney U test (see the module docstring for exact vs normal)."""
    xa = as_positive_series(x, "x")
    ya = as_positive_series(y, "y")
    m, n = xa.size, ya.size
    if m < 1 or n < 1:
        raise ValueError(f"Mann-Whitney U needs at least one value on each side, got {m} and {n}")
    ranks, ties = _midranks(np.concatenate([xa, ya]))
    u = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    has_ties = bool((ties > 1).any())
    if not has_ties and max(m, n) <= EXACT_MAX_N:
        dist = _u_distribution(m, n)
        k = int(round(u))
        p = 2.0 * min(dist[:k + 1].sum(), dist[k:].sum())
        return MannWhitney(u=u, p_value=float(min(1.0, p)), method="exact", n_x=m, n_y=n)
    total = m + n
    mean = m * n / 2.0
    tie_term = float(((ties ** 3) - ties).sum()) / (total * (total - 1))
    var = m * n / 12.0 * ((total + 1) - tie_term)
    if var <= 0:  # every value equal: no evidence of any difference
        return MannWhitney(u=u, p_value=1.0, method="normal", n_x=m, n_y=n)
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return MannWhitney(u=u, p_value=float(min(1.0, p)), method="normal", n_x=m, n_y=n)
