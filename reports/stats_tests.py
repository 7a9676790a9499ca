"""The statistics behind an A/B verdict: one observation per process, a t-test on logs, BH across tests.

Whole processes of one case differ by 5-20% on shared runners while each process's own median is
tight, so the unit of a comparison is the process (``harness.process_stats``): each side of a case
contributes the log of each process's statistic (its median step time, its compile time, ...).
The effect is the difference of mean logs, ``d = mean(log head) - mean(log base)``, i.e. the log of
the ratio of geometric means; its standard error and degrees of freedom are Welch's when both sides
have two or more processes, and the pooled (equal-variance) ones when one side has a single process.

* p-values are one-sided, in the direction that matters: ``p_worse`` for "head is worse" (what a CI
  gate asks) and ``p_better`` for "head is better"; each family is adjusted on its own with
  Benjamini-Hochberg (``adjust``) across the comparison's tests.
* the CI of the ratio is the t-interval of ``d``, mapped back with ``exp``;
* the minimum detectable change (``min_detectable_log``) is the smallest true change on the worse
  side that a verdict would call ``regressed`` with 95% power: the estimate must clear both the
  significance bound (at the Bonferroni level alpha / tests, which Benjamini-Hochberg never
  demands more than; power from the noncentral t) and the practical margin. It is computed with
  an upper 75% bound of the measured spread (``upper_spread``), not the spread itself.

With identical values on both sides (no spread at all) the standard error is 0: an exact tie
gives p = 1, any difference is certain (p = 0).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POWER = 0.95
SPREAD_CONFIDENCE = 0.75  # the minimum detectable change plans with this upper bound of the spread
MAX_PROCESSES_SUGGESTED = 10_000


@dataclass(frozen=True)
class ProcessTest:
    """head vs base over per-process values: the log ratio, its CI and one-sided p-values."""

    log_ratio: float       # mean(log head) - mean(log base)
    standard_error: float
    dof: float
    ci_low: float          # of the log ratio
    ci_high: float
    p_increase: float      # one-sided p for "head's values are larger"
    p_decrease: float      # one-sided p for "head's values are smaller"
    n_base: int
    n_head: int
    spread: float          # pooled stdev of the per-process logs (~ between-process CV)
    test: str

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def _variance(values: np.ndarray) -> float:
    return float(values.var(ddof=1)) if len(values) >= 2 else 0.0


def _standard_error(base: np.ndarray, head: np.ndarray) -> tuple[float, float, str]:
    """(standard error of the mean difference, degrees of freedom, test name): Welch, else pooled."""
    nb, nh = len(base), len(head)
    vb, vh = _variance(base), _variance(head)
    if nb >= 2 and nh >= 2:
        terms = (vb / nb, vh / nh)
        se2 = sum(terms)
        if not se2:
            return 0.0, float(nb + nh - 2), "welch-t on log per-process values"
        dof = se2 ** 2 / sum(term ** 2 / (n - 1) for term, n in zip(terms, (nb, nh), strict=True))
        return math.sqrt(se2), float(dof), "welch-t on log per-process values"
    pooled = ((nb - 1) * vb + (nh - 1) * vh) / (nb + nh - 2)
    return math.sqrt(pooled * (1 / nb + 1 / nh)), float(nb + nh - 2), "student-t (pooled) on log per-process values"


def process_test(base: Sequence[float], head: Sequence[float], confidence: float = 0.95) -> ProcessTest:
    """Compare two sides' per-process values (positive numbers); needs three or more processes in all."""
    from scipy.stats import t

    base_logs, head_logs = np.log(np.asarray(base, dtype=float)), np.log(np.asarray(head, dtype=float))
    if len(base_logs) < 1 or len(head_logs) < 1 or len(base_logs) + len(head_logs) < 3:
        raise ValueError("a process test needs a process on each side and three or more in all")
    difference = float(head_logs.mean() - base_logs.mean())
    se, dof, name = _standard_error(base_logs, head_logs)
    if se == 0.0:  # no spread on either side: an exact tie, or a certain difference
        p_up, p_down = (0.0 if difference > 0 else 1.0), (0.0 if difference < 0 else 1.0)
        low = high = difference
    else:
        statistic = difference / se
        p_up, p_down = float(t.sf(statistic, dof)), float(t.cdf(statistic, dof))
        half = float(t.ppf(0.5 + confidence / 2.0, dof)) * se
        low, high = difference - half, difference + half
    spread = math.sqrt(se ** 2 / (1 / len(base_logs) + 1 / len(head_logs)))
    return ProcessTest(difference, se, dof, low, high, p_up, p_down, len(base_logs), len(head_logs), spread, name)


def upper_spread(value: float, dof: float, confidence: float = SPREAD_CONFIDENCE) -> float:
    """An upper confidence bound of a standard deviation (or standard error) estimated with ``dof``.

    The spread measured from a few processes is as often too small as too large (its median is
    below the truth), and a minimum detectable change computed from it would be too optimistic
    about half the time; planning with sd * sqrt(dof / chi2_(1-confidence)(dof)) keeps the reported
    figure honest: a shift of that size is caught with 95% power in at least ``confidence`` of cases.
    """
    from scipy.stats import chi2

    if value == 0.0 or dof <= 0:
        return value
    return value * math.sqrt(dof / float(chi2.ppf(1.0 - confidence, dof)))


def min_detectable_log(standard_error: float, dof: float, margin: float, alpha: float, tests: int) -> float:
    """Smallest true worse-side log change called ``regressed`` with 95% power (module docstring).

    Two conditions, each met with 95% power: the t statistic clears the one-sided bound at
    alpha / tests, and the estimate clears the practical margin. The first uses the noncentral t
    (the standard error is itself estimated) through its normal approximation,
    P(T > b) ~ Phi((delta - b) / sqrt(1 + b^2 / (2 dof))), closed-form and within a fraction of a
    percent of scipy's ``nct`` at these sizes.
    """
    from scipy.stats import norm, t

    if standard_error == 0.0:
        return margin
    bound = float(t.ppf(1.0 - alpha / max(tests, 1), dof))
    z_power = float(norm.ppf(POWER))
    noncentrality = bound + z_power * math.sqrt(1.0 + bound ** 2 / (2.0 * dof))  # noncentral t, normal approx.
    return max(noncentrality * standard_error, margin + float(t.ppf(POWER, dof)) * standard_error)


def processes_needed(spread: float, margin: float, target: float, alpha: float, tests: int) -> int | None:
    """Processes per side that would bring the minimum detectable log change down to ``target``.

    None when no count can: the target is not past the practical margin (the threshold), or there
    is no measured spread to plan with.
    """
    if target <= margin or spread <= 0.0:
        return None

    def resolves(n: int) -> bool:
        return min_detectable_log(spread * math.sqrt(2.0 / n), 2 * n - 2, margin, alpha, tests) <= target

    if not resolves(MAX_PROCESSES_SUGGESTED):
        return None
    low, high = 1, MAX_PROCESSES_SUGGESTED  # resolves(high) holds; the detectable change shrinks as n grows
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if resolves(middle) else (middle, high)
    return max(high, 2)


def adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate) for one family of tests.

    Why BH and not Holm: the tests of one comparison are positively dependent (a framework change
    moves many cases together), which BH tolerates (PRDS), and under the complete null - an A/A
    comparison - BH bounds the chance of any false alarm by alpha just as Holm does. Where real
    changes exist, BH keeps the power that Holm's family-wise bound would spend on many cases.
    """
    if len(p_values) == 0:
        return []
    from scipy.stats import false_discovery_control

    return [float(p) for p in false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(value) for value in values))
