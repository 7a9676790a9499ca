"""The statistics behind an A/B verdict beyond the process test itself (``harness.process_stats``):
the minimum detectable change, the process-count advice, and Benjamini-Hochberg across tests.

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

import numpy as np

POWER = 0.95
SPREAD_CONFIDENCE = 0.75  # the minimum detectable change plans with this upper bound of the spread
MAX_PROCESSES_SUGGESTED = 10_000


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
