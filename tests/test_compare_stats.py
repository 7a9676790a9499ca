"""The verdict's statistics: the process test against scipy, the minimum detectable change, and trials.

Each trial compares two whole runs (several cases, so the Benjamini-Hochberg correction works
across cases as it does in CI) through the same ``compare_sides`` that ``tribench compare`` uses,
on synthetic runs with two-level noise: steps 3% log-normal, processes ``between`` apart.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tests import runfile_builder as rb
from tribench.harness.process_stats import process_test
from tribench.reports.regression.compare import compare_sides, side_from_run
from tribench.reports.regression.stats_tests import adjust, min_detectable_log, processes_needed

CASES_PER_TRIAL = 4
BATCHES = (8, 16, 32, 64)


def _trial(seed: int, factor: float, repeats: int = 5, between: float = 0.02, samples: int = 40):
    rng = np.random.default_rng(seed)
    base = [rb.simple_case(rng, 0.02, n=samples, repeats=repeats, between=between, batch_size=b) for b in BATCHES]
    head = [rb.simple_case(rng, 0.02 * factor, n=samples, repeats=repeats, between=between, batch_size=b)
            for b in BATCHES]
    return compare_sides(side_from_run(rb.run(base, "base"), "base.json", "base"),
                         side_from_run(rb.run(head, "head"), "head.json", "head"))


def _verdicts(factor: float, trials: int, **kwargs) -> Counter:
    counts: Counter = Counter()
    for seed in range(trials):
        counts.update(case.verdict for case in _trial(seed, factor, **kwargs).cases)
    return counts


def test_the_process_test_is_welchs_t_test_on_logs():
    base, head = [1.0, 1.1, 0.95, 1.05], [1.2, 1.3, 1.15, 1.4, 1.25]
    result = process_test(base, head)
    reference = scipy_stats.ttest_ind(np.log(head), np.log(base), equal_var=False, alternative="greater")
    assert result.p_increase == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.p_decrease == pytest.approx(1 - reference.pvalue, rel=1e-10)
    interval = scipy_stats.ttest_ind(np.log(head), np.log(base), equal_var=False).confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == (pytest.approx(interval.low, rel=1e-10),
                                               pytest.approx(interval.high, rel=1e-10))
    assert result.ratio == pytest.approx(math.exp(np.log(head).mean() - np.log(base).mean()))
    assert (result.n_base, result.n_head, result.test) == (4, 5, "welch-t on log per-process values")


def test_one_process_on_a_side_uses_the_pooled_variance_of_the_other():
    result = process_test([1.0], [1.2, 1.3, 1.1])
    reference = scipy_stats.ttest_ind(np.log([1.2, 1.3, 1.1]), np.log([1.0]), equal_var=True, alternative="greater")
    assert result.p_increase == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.dof == 2 and result.test.startswith("student-t (pooled)")
    with pytest.raises(ValueError, match="three or more"):
        process_test([1.0], [1.1])


def test_no_spread_at_all_gives_a_certain_answer():
    tie = process_test([2.0, 2.0], [2.0, 2.0])
    assert (tie.p_increase, tie.p_decrease, tie.ci_low, tie.ci_high) == (1.0, 1.0, 0.0, 0.0)
    slower = process_test([2.0, 2.0], [3.0, 3.0])
    assert (slower.p_increase, slower.p_decrease, slower.ratio) == (0.0, 1.0, pytest.approx(1.5))


def test_the_minimum_detectable_change_is_caught_with_95_percent_power():
    """Plant exactly the reported change (simulated normal log means): it is found >= 95% of the time."""
    rng = np.random.default_rng(0)
    n, spread, margin, alpha, tests = 6, 0.05, math.log1p(0.02), 0.05, 4
    se = spread * math.sqrt(2 / n)
    detectable = min_detectable_log(se, 2 * n - 2, margin, alpha, tests)
    found = 0
    trials = 2000
    for _ in range(trials):
        base, head = rng.normal(0, spread, n), rng.normal(detectable, spread, n)
        result = process_test(np.exp(base), np.exp(head))
        found += result.p_increase <= alpha / tests and result.log_ratio > margin
    assert found / trials >= 0.94  # 95% power, less one binomial standard error of 2000 trials


def test_processes_needed_resolves_the_target_and_refuses_the_impossible():
    needed = processes_needed(0.08, math.log1p(0.01), math.log1p(0.03), 0.05, 1)
    assert needed is not None
    se = lambda n: 0.08 * math.sqrt(2 / n)  # noqa: E731
    assert min_detectable_log(se(needed), 2 * needed - 2, math.log1p(0.01), 0.05, 1) <= math.log1p(0.03)
    assert min_detectable_log(se(needed - 1), 2 * needed - 4, math.log1p(0.01), 0.05, 1) > math.log1p(0.03)
    assert processes_needed(0.08, math.log1p(0.05), math.log1p(0.03), 0.05, 1) is None  # target under the threshold
    assert processes_needed(0.0, math.log1p(0.01), math.log1p(0.03), 0.05, 1) is None  # no spread to plan with


def test_benjamini_hochberg_adjusted_p_values():
    # sorted: 0.01, 0.03, 0.04, 0.5 -> m p(i) / i = 0.04, 0.06, 0.0533, 0.5 -> running minimum from the top
    assert adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert adjust([]) == []


def test_a_a_comparisons_raise_a_false_alarm_in_at_most_alpha_of_trials():
    trials = 150
    alarms = sum(any(case.verdict == "regressed" for case in _trial(seed, 1.0).cases) for seed in range(trials))
    assert alarms / trials <= 0.05


def test_a_planted_10_percent_slowdown_is_regressed_with_5_processes_per_side():
    counts = _verdicts(1.10, trials=40)
    assert counts["regressed"] / (40 * CASES_PER_TRIAL) >= 0.95


def test_a_planted_10_percent_speedup_is_improved_on_throughput_and_p50_alike():
    metrics: Counter = Counter()
    for seed in range(25):
        metrics.update((m.metric, m.verdict) for case in _trial(seed, 1 / 1.10).cases for m in case.metrics)
    assert metrics[("throughput", "improved")] == metrics[("latency_p50", "improved")]
    assert metrics[("throughput", "improved")] / (25 * CASES_PER_TRIAL) >= 0.95
    assert not any(verdict == "regressed" for (_, verdict) in metrics)


def test_a_1_percent_slowdown_is_never_regressed_at_the_5_percent_threshold():
    counts = _verdicts(1.01, trials=40)
    assert counts["regressed"] == 0
