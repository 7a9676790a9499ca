"""Across-process estimates: exact against scipy, honest labels, and coverage under two-level noise."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tribench.harness.process_stats import ACROSS, WITHIN, across_processes, estimate, within_one_process


def test_the_interval_is_scipys_t_interval_on_log_medians():
    medians = [1.0, 1.1, 0.95, 1.2]
    logs = np.log(medians)
    low, high = scipy_stats.t.interval(0.95, len(logs) - 1, loc=logs.mean(), scale=scipy_stats.sem(logs))
    result = across_processes(medians)
    assert result.center == pytest.approx(math.exp(logs.mean()), rel=1e-12)
    assert (result.ci_low, result.ci_high) == (pytest.approx(math.exp(low), rel=1e-12),
                                               pytest.approx(math.exp(high), rel=1e-12))
    assert result.between_cv == pytest.approx(logs.std(ddof=1), rel=1e-12)
    t = scipy_stats.t.ppf(0.975, 3)
    predict = t * logs.std(ddof=1) * math.sqrt(1 + 1 / 4)
    assert result.prediction_high == pytest.approx(math.exp(logs.mean() + predict), rel=1e-12)
    assert (result.basis, result.processes) == (ACROSS, 4)


def test_the_estimate_takes_one_value_per_process_however_many_steps_it_ran():
    long_process = [1.0] * 1000 + [5.0]  # a thousand steps weigh no more than five
    short_process = [2.0] * 5
    result = estimate([long_process, short_process])
    assert result.center == pytest.approx(math.sqrt(2.0))
    assert result.processes == 2


def test_one_process_is_labelled_within_process_with_no_between_process_spread():
    result = within_one_process([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (result.basis, result.processes, result.between_cv) == (WITHIN, 1, None)
    assert (result.ci_low, result.ci_high) == (1.0, 6.0)
    assert "between-process spread unknown" in result.source
    assert within_one_process([1.0, 2.0]).ci_rel_halfwidth is None  # too few steps for any CI: none, not 0


def test_identical_processes_give_a_zero_width_interval():
    result = across_processes([2.0, 2.0, 2.0])
    assert (result.center, result.ci_low, result.ci_high, result.ci_rel_halfwidth) == (2.0, 2.0, 2.0, 0.0)


@pytest.mark.parametrize("processes, between", [(3, 0.08), (5, 0.02), (8, 0.12)])
def test_the_interval_covers_the_true_median_about_95_percent_of_the_time(processes, between):
    """Two-level noise (steps 3% log-normal, processes ``between``): the stated CI holds the truth ~95%.

    Pooled steps would give a CI several times too narrow here; 400 trials bound the coverage to
    +-2.2% (one binomial standard error 1.1%), so 0.92..0.98 is a 3-sigma band around 0.95.
    """
    rng = np.random.default_rng(processes)
    truth, hits, trials = 0.010, 0, 400
    for _ in range(trials):
        runs = [truth * math.exp(rng.normal(0, between)) * np.exp(rng.normal(0, 0.03, 200)) for _ in range(processes)]
        result = estimate([list(run) for run in runs])
        hits += result.ci_low <= truth <= result.ci_high
    assert 0.92 <= hits / trials <= 0.98


def test_the_coverage_script_groups_processes_across_the_window_or_side_by_side():
    from benchmarks.ci_coverage import groups

    processes = [[float(index)] for index in range(7)]
    assert groups(processes, 3, strided=True) == [[[0.0], [2.0], [4.0]], [[1.0], [3.0], [5.0]]]
    assert groups(processes, 3, strided=False) == [[[0.0], [1.0], [2.0]], [[3.0], [4.0], [5.0]]]
