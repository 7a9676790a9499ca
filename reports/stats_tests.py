"""The statistics behind an A/B verdict: bootstrap CI of a ratio, Mann-Whitney U, Benjamini-Hochberg.

Step times are skewed and heavy-tailed, so nothing here assumes normality:
the effect size is a ratio of medians (or of 99th percentiles) with a
percentile-bootstrap confidence interval, and the significance test for a
shift is the rank-based Mann-Whitney U. A p99 ratio has no rank test of its
own, so its p-value comes from the same bootstrap (the smallest two-sided
alpha at which the CI would exclude 1). p-values of all tests in a comparison
are adjusted together with Benjamini-Hochberg (see ``adjust``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 2_000_000  # bound the memory of one bootstrap batch (resamples x samples)
STATISTICS = ("median", "p99")


@dataclass(frozen=True)
class RatioTest:
    """head/base ratio of a statistic, its bootstrap CI and a two-sided p-value for 'no change'."""

    base: float
    head: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n_base: int
    n_head: int


def statistic(values: np.ndarray, which: str) -> np.ndarray | float:
    """The median or the 99th percentile along the last axis (linear interpolation, as harness.stats)."""
    if which == "median":
        return np.median(values, axis=-1)
    if which == "p99":
        return np.percentile(values, 99, axis=-1)
    raise ValueError(f"unknown statistic {which!r}; valid: {', '.join(STATISTICS)}")


def _of_sorted(ordered: np.ndarray, which: str) -> np.ndarray:
    """The statistic of each row of a row-sorted matrix (linear interpolation, as numpy's default)."""
    position = (ordered.shape[-1] - 1) * (0.5 if which == "median" else 0.99)
    low = int(np.floor(position))
    high = min(low + 1, ordered.shape[-1] - 1)
    return ordered[..., low] + (ordered[..., high] - ordered[..., low]) * (position - low)


def bootstrap_statistics(values: np.ndarray, which: Sequence[str], resamples: int,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``resamples`` bootstrap replicates of each statistic (one sort serves them all), in bounded batches."""
    n = len(values)
    batch = max(1, _CHUNK_ELEMENTS // max(n, 1))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in which}
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        ordered = np.sort(values[rng.integers(0, n, size=(size, n))], axis=1)
        for name in which:
            parts[name].append(_of_sorted(ordered, name))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided p for 'ratio = 1' from bootstrap ratios (with the +1 correction; never 0)."""
    below = int(np.count_nonzero(replicates <= 1.0))
    above = int(np.count_nonzero(replicates >= 1.0))
    return min(1.0, 2.0 * (min(below, above) + 1) / (len(replicates) + 1))


def mann_whitney_p(base: np.ndarray, head: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (exact for small tie-free samples, else asymptotic)."""
    from scipy.stats import mannwhitneyu

    if np.ptp(np.concatenate([base, head])) == 0.0:
        return 1.0  # every value equal: no evidence of a shift (scipy would warn and return nan)
    return float(mannwhitneyu(head, base, alternative="two-sided", method="auto").pvalue)


def ratio_tests(base: Sequence[float], head: Sequence[float], which: Sequence[str] = ("median",), *,
                resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                seed: int = 0) -> dict[str, RatioTest]:
    """Compare statistics of two samples: ratio head/base, bootstrap CI and p-value for each.

    The p-value tests the hypothesis the CI is about: Mann-Whitney U for the median (a shift
    of the distribution), the bootstrap itself for the p99 (a rank test says nothing about a tail).
    """
    base_values = np.asarray(base, dtype=float)
    head_values = np.asarray(head, dtype=float)
    if len(base_values) == 0 or len(head_values) == 0:
        raise ValueError("a ratio test needs at least one value per side")
    for name in which:
        if name not in STATISTICS:
            raise ValueError(f"unknown statistic {name!r}; valid: {', '.join(STATISTICS)}")
    rng = np.random.default_rng(seed)
    head_replicates = bootstrap_statistics(head_values, which, resamples, rng)
    base_replicates = bootstrap_statistics(base_values, which, resamples, rng)
    tail = (1.0 - confidence) / 2.0 * 100.0
    results = {}
    for name in which:
        base_stat, head_stat = float(statistic(base_values, name)), float(statistic(head_values, name))
        with np.errstate(divide="ignore", invalid="ignore"):
            replicates = head_replicates[name] / base_replicates[name]
        low, high = np.nanpercentile(replicates, [tail, 100.0 - tail])
        if name == "median":
            p_value, test = mann_whitney_p(base_values, head_values), "mann-whitney-u"
        else:
            p_value, test = bootstrap_p_value(replicates), "bootstrap"
        results[name] = RatioTest(base=base_stat, head=head_stat, ratio=head_stat / base_stat, ci_low=float(low),
                                  ci_high=float(high), p_value=p_value, test=test, n_base=len(base_values),
                                  n_head=len(head_values))
    return results


def ratio_test(base: Sequence[float], head: Sequence[float], which: str = "median", **options) -> RatioTest:
    """``ratio_tests`` for one statistic."""
    return ratio_tests(base, head, (which,), **options)[which]


def adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate) for one family of tests.

    Why BH and not Holm: the tests of one comparison are positively dependent (a case's
    throughput and p50 are the same samples; a framework change moves many cases together),
    which BH tolerates (PRDS), and under the complete null - an A/A comparison - BH controls
    the chance of any false alarm at alpha just as Holm does. Where real changes exist, BH keeps
    the power that Holm's family-wise bound would spend on dozens of cases x metrics.
    """
    if len(p_values) == 0:
        return []
    from scipy.stats import false_discovery_control

    return [float(p) for p in false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]
