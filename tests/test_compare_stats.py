"""The verdict's statistics on synthetic log-normal step times with 3% noise, over many seeded trials.

Each trial compares two whole runs (several cases, so the Benjamini-Hochberg
correction works across cases x metrics as it does in CI) through the same
``compare_sides`` that ``tribench compare`` uses.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reports.compare import compare_sides, side_from_run
from reports.stats_tests import adjust, bootstrap_p_value, mann_whitney_p, ratio_test
from tests import runfile_builder as rb

CASES_PER_TRIAL = 4
TRIALS = 100  # x 4 cases = 400 case comparisons per scenario
BATCHES = (8, 16, 32, 64)


def _trial(seed: int, factor: float, samples: int = 60, repeats: int = 1):
    rng = np.random.default_rng(seed)
    base = [rb.simple_case(rng, 0.02, n=samples, repeats=repeats, batch_size=b) for b in BATCHES]
    head = [rb.simple_case(rng, 0.02 * factor, n=samples, repeats=repeats, batch_size=b) for b in BATCHES]
    return compare_sides(side_from_run(rb.run(base, "base"), "base.json", "base"),
                         side_from_run(rb.run(head, "head"), "head.json", "head"))


def _verdicts(factor: float, trials: int = TRIALS, **kwargs) -> Counter:
    counts: Counter = Counter()
    for seed in range(trials):
        counts.update(case.verdict for case in _trial(seed, factor, **kwargs).cases)
    return counts


def test_a_a_comparisons_flag_a_regression_in_at_most_1_percent_of_trials():
    counts = _verdicts(1.0)
    total = TRIALS * CASES_PER_TRIAL
    assert sum(counts.values()) == total
    assert counts["regressed"] / total <= 0.01
    assert counts["improved"] / total <= 0.01
    assert counts["unchanged"] / total >= 0.9  # and most A/A cases are positively called unchanged


def test_a_planted_10_percent_slowdown_is_flagged_in_at_least_95_percent_of_trials():
    counts = _verdicts(1.10)
    assert counts["regressed"] / (TRIALS * CASES_PER_TRIAL) >= 0.95


def test_a_1_percent_slowdown_is_never_called_regressed_at_the_default_5_percent_threshold():
    counts = _verdicts(1.01)
    assert counts["regressed"] == 0
    assert counts["unchanged"] / (TRIALS * CASES_PER_TRIAL) >= 0.8  # the rest: a p99 too noisy to tell


def test_a_planted_10_percent_speedup_is_improved():
    metrics: Counter = Counter()
    for seed in range(25):
        metrics.update((m.metric, m.verdict) for case in _trial(seed, 1 / 1.10).cases for m in case.metrics)
    assert metrics[("throughput", "improved")] / (25 * CASES_PER_TRIAL) >= 0.95
    assert metrics[("latency_p50", "improved")] / (25 * CASES_PER_TRIAL) >= 0.95
    assert not any(verdict == "regressed" for (_, verdict) in metrics)


@pytest.mark.parametrize("factor, expected", [(1.0, "unchanged"), (1.10, "regressed"), (1.01, "unchanged")])
def test_with_repeats_per_process_medians_are_compared(factor, expected):
    counts = _verdicts(factor, trials=30, samples=40, repeats=5)
    assert counts[expected] / (30 * CASES_PER_TRIAL) >= 0.9
    if expected != "regressed":
        assert counts["regressed"] == 0
    comparison = _trial(0, factor, samples=40, repeats=5)
    throughput = comparison.cases[0].metrics[0]
    assert (throughput.metric, throughput.basis, throughput.n_base, throughput.test) == \
        ("throughput", "per-process medians", 5, "mann-whitney-u")


def test_two_repeats_per_side_cannot_reach_significance_and_say_so():
    comparison = _trial(1, 1.5, repeats=2)
    p50 = next(m for m in comparison.cases[0].metrics if m.metric == "latency_p50")
    assert p50.p_value == pytest.approx(1 / 3)  # the smallest exact two-sided p for 2 vs 2
    assert p50.verdict == "inconclusive"
    assert "not significant" in p50.reason


def test_ratio_test_on_known_samples():
    base, head = [1.0, 2.0, 3.0, 4.0, 5.0], [2.5, 4.5, 6.0, 8.5, 10.5]  # no ties: the exact test applies
    result = ratio_test(base, head, "median", resamples=500, seed=1)
    assert (result.base, result.head, result.ratio) == (3.0, 6.0, 2.0)
    assert result.p_value == pytest.approx(scipy_stats.mannwhitneyu(head, base, method="exact").pvalue)
    assert result.ci_low <= 2.0 <= result.ci_high
    again = ratio_test(base, head, "median", resamples=500, seed=1)
    assert (again.ci_low, again.ci_high) == (result.ci_low, result.ci_high)  # reproducible


def test_p99_uses_the_bootstrap_p_value_and_identical_samples_give_p_1():
    rng = np.random.default_rng(3)
    samples = rb.lognormal(rng, 200, 0.01)
    same = ratio_test(samples, samples, "p99", resamples=400)
    assert same.test == "bootstrap" and same.ratio == 1.0
    assert mann_whitney_p(np.ones(5), np.ones(5)) == 1.0
    shifted = ratio_test(samples, [s * 1.3 for s in samples], "p99", resamples=400)
    assert shifted.p_value == pytest.approx(2 / 401)  # every replicate above 1: the smallest possible p


def test_bootstrap_p_value_counts_both_tails():
    assert bootstrap_p_value(np.array([0.9, 1.1, 1.2, 1.3])) == pytest.approx(2 * 2 / 5)
    assert bootstrap_p_value(np.array([1.0] * 9)) == 1.0


def test_benjamini_hochberg_adjusted_p_values():
    # sorted: 0.01, 0.03, 0.04, 0.5 -> m p(i) / i = 0.04, 0.06, 0.0533, 0.5 -> running minimum from the top
    assert adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert adjust([]) == []


def test_large_sample_bootstrap_is_batched_and_bounded():
    rng = np.random.default_rng(0)
    result = ratio_test(rb.lognormal(rng, 20_000, 0.001), rb.lognormal(rng, 20_000, 0.0011), resamples=300)
    assert 1.09 < result.ci_low < result.ratio < result.ci_high < 1.11
