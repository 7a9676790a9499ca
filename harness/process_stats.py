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

from harness.stats import median_ci

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
