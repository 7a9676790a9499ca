"""Summary statistics against independent references (numpy, scipy)."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tribench.harness.stats import _median_ci_rank, median_ci, percentile, summarize


@pytest.mark.parametrize("n", [7, 50, 101])
def test_percentiles_match_numpy(n):
    samples = np.random.default_rng(n).lognormal(0, 0.2, n)
    ordered = sorted(samples)
    for q in (1, 25, 50, 75, 90, 99):
        assert percentile(ordered, q) == pytest.approx(np.percentile(samples, q), rel=1e-12)


@pytest.mark.parametrize("n", [6, 10, 100, 999])
def test_median_ci_ranks_are_the_binomial_ones(n):
    rank = _median_ci_rank(n, 0.95)
    assert scipy_stats.binom.cdf(rank - 1, n, 0.5) <= 0.025 < scipy_stats.binom.cdf(rank, n, 0.5)


def test_median_ci_needs_six_samples_at_95_percent():
    assert median_ci([1, 2, 3, 4, 5]) is None
    assert median_ci([1, 2, 3, 4, 5, 6]) == (1, 6)
    assert median_ci(list(range(1, 101))) == (40, 61)


def test_large_samples_use_the_normal_approximation():
    assert _median_ci_rank(10_000, 0.95) == 4902


def test_summary_fields():
    summary = summarize([4.0, 1.0, 2.0, 3.0, 5.0])
    assert summary["median"] == summary["p50"] == 3.0
    assert (summary["min"], summary["max"], summary["mean"]) == (1.0, 5.0, 3.0)
    assert (summary["q1"], summary["q3"], summary["iqr"]) == (2.0, 4.0, 2.0)
    assert summary["noise"] == pytest.approx(2 / 3)
    assert summary["ci_low"] is None and summary["ci_rel_halfwidth"] is None
    assert summary["stdev"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
