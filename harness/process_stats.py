"""Across-process estimates of a case's step time: the process is the unit of uncertainty.

Measured on shared runners, whole processes of one case differ by 5-20% while each process's own
median is tight to +-1-2%, so step times pooled across processes are not independent samples and a
CI built from them is several times too narrow. Here each process contributes ONE observation,
the log of its median step time, and the case's estimate is:

* ``center``: the geometric mean of the per-process medians (exp of the mean log median);
* its CI: a Student-t interval on the log medians (n - 1 degrees of freedom), mapped back with exp,
  so it is a CI of the case's typical median step time over fresh processes;
* a prediction interval: where the median of ONE more fresh process should fall (t * s * sqrt(1 + 1/n)),
  for users who need a single process's range rather than the case's typical value.

With one process there is no between-process information: the CI shown is the within-process
distribution-free CI of that process's median, labelled as such (``basis = "within-process"``),
and the record says the between-process spread is unknown.

Why logs: step-time effects are multiplicative (a slower process is slower by a factor), the
log scale makes higher- and lower-is-better metrics symmetric (throughput = batch / step time),
and per-process log medians are close to normal here even when raw steps are heavy-tailed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tribench.harness.stats import median_ci

ACROSS = "across-processes"
WITHIN = "within-process"
ACROSS_SOURCE = "Student-t interval on the log of each process's median step time (one value per process)"
WITHIN_SOURCE = ("distribution-free CI of the one process's median (order statistics); between-process spread "
                 "unknown: run more processes (--processes) to measure it")


def t_quantile(probability: float, dof: float) -> float:
    """Student-t quantile (scipy, imported here so that the CLI's import stays light)."""
    from scipy.stats import t

    return float(t.ppf(probability, dof))


@dataclass(frozen=True)
class ProcessEstimate:
    """A case's median step time estimated across processes, with its CI and how it was made."""

    center: float                      # seconds: geometric mean of per-process medians
    ci_low: float | None
    ci_high: float | None
    confidence: float
    processes: int                     # processes that made the estimate
    basis: str                         # ACROSS or WITHIN
    source: str
    between_cv: float | None = None    # stdev of the log medians (~ coefficient of variation); None for 1
    prediction_low: float | None = None   # where one more process's median should fall
    prediction_high: float | None = None

    @property
    def ci_rel_halfwidth(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or self.center <= 0:
            return None
        return (self.ci_high - self.ci_low) / 2.0 / self.center

    def to_dict(self) -> dict:
        return {**asdict(self), "ci_rel_halfwidth": self.ci_rel_halfwidth}


def log_medians(per_process_samples: Sequence[Sequence[float]]) -> list[float]:
    """The log of each process's median step time (the one observation a process contributes)."""
    return [math.log(statistics.median(samples)) for samples in per_process_samples]


def across_processes(medians: Sequence[float], confidence: float = 0.95) -> ProcessEstimate:
    """The t-interval on log medians of two or more processes (see the module docstring)."""
    if len(medians) < 2:
        raise ValueError("an across-process estimate needs two or more processes")
    logs = [math.log(value) for value in medians]
    n, mean = len(logs), statistics.fmean(logs)
    spread = statistics.stdev(logs)
    t = t_quantile(0.5 + confidence / 2.0, n - 1)
    half, predict = t * spread / math.sqrt(n), t * spread * math.sqrt(1.0 + 1.0 / n)
    return ProcessEstimate(
        center=math.exp(mean), ci_low=math.exp(mean - half), ci_high=math.exp(mean + half), confidence=confidence,
        processes=n, basis=ACROSS, source=ACROSS_SOURCE, between_cv=spread,
        prediction_low=math.exp(mean - predict), prediction_high=math.exp(mean + predict))


def within_one_process(samples: Sequence[float], confidence: float = 0.95) -> ProcessEstimate:
    """One process: its median and the within-process CI, labelled as such."""
    ordered = sorted(samples)
    interval = median_ci(ordered, confidence)
    return ProcessEstimate(
        center=statistics.median(ordered), ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None, confidence=confidence, processes=1, basis=WITHIN,
        source=WITHIN_SOURCE)


def estimate(per_process_samples: Sequence[Sequence[float]], confidence: float = 0.95) -> ProcessEstimate:
    """The case's estimate from each process's measured step times (across processes from two on)."""
    if not per_process_samples:
        raise ValueError("an estimate needs at least one process")
    if len(per_process_samples) == 1:
        return within_one_process(per_process_samples[0], confidence)
    return across_processes([statistics.median(samples) for samples in per_process_samples], confidence)


# ---- two sides: the process test (tribench compare, and the sequential A/B rule of tribench run) ----------

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


def _variance(values: Sequence[float]) -> float:
    return statistics.variance(values) if len(values) >= 2 else 0.0


def _standard_error(base: Sequence[float], head: Sequence[float]) -> tuple[float, float, str]:
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
    base_logs, head_logs = [math.log(value) for value in base], [math.log(value) for value in head]
    if len(base_logs) < 1 or len(head_logs) < 1 or len(base_logs) + len(head_logs) < 3:
        raise ValueError("a process test needs a process on each side and three or more in all")
    from scipy.stats import t  # here: importing the harness stays light

    difference = statistics.fmean(head_logs) - statistics.fmean(base_logs)
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
