"""A level shift inside one process's own measured step times: the step time moved and stayed.

On a shared machine a process can run at 1.0 ms per step for 300 steps and at 2.7 ms from then
on (a neighbour arrived); its median then describes neither half. ``find_level_shift`` looks
for the single most likely change point and reports it only when it is both clear and large:

1. Where: on the logs of the step times (a slowdown is a ratio, and logs tame the right
   tail), the split ``k`` that maximises the between-segment sum of squares
   ``n / (k (n - k)) * S_k**2`` (``S_k`` the cumulative sum of the centred logs): the
   maximum-likelihood single change in mean (the CUSUM statistic). Each segment must hold at
   least ``min_segment_steps`` steps and ``min_segment_fraction`` of all of them, so a few
   stalls at either end are never a "segment".
2. Clear: Welch's t test of the two segments' logs at that split, its two-sided p-value
   multiplied by the number of candidate splits (Bonferroni). Whatever split was chosen, the
   chance that i.i.d. step times (no shift) pass is at most ``alpha`` (default 1%): the chosen
   split's p-value is at least the smallest of all candidates', and the union bound holds for
   any dependence between them. Exact for log-normal step times, conservative in practice.
3. Large: the ratio of the segments' medians (after / before) is at least ``min_ratio``
   (default 1.10) or at most its inverse. A 5% change is within what processes on these
   machines differ by anyway (DESIGN.md: 5-12% between processes) and is left to the
   between-process statistics; medians make isolated stalls irrelevant to the size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TEST = "Welch t on log step times at the maximum-likelihood split, Bonferroni over the candidate splits"


@dataclass(frozen=True)
class LevelShiftRule:
    """When a change in step time counts as a level shift (see the module docstring)."""

    alpha: float = 0.01                # false-positive rate under no shift (i.i.d. log-normal steps)
    min_ratio: float = 1.10            # medians after / before at least this, or at most 1 / this
    min_segment_steps: int = 10
    min_segment_fraction: float = 0.10

    def min_segment(self, steps: int) -> int:
        return max(self.min_segment_steps, math.ceil(self.min_segment_fraction * steps))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LevelShift:
    index: int              # the first step (0-based, among the measured steps) after the shift
    steps: int              # measured steps in all
    median_before_s: float
    median_after_s: float
    ratio: float            # median_after_s / median_before_s
    p_value: float          # Bonferroni-corrected
    test: str = TEST

    def describe(self) -> str:
        return (f"level shift at measured step {self.index} of {self.steps}: median step time "
                f"{self.median_before_s * 1e3:.4g} ms -> {self.median_after_s * 1e3:.4g} ms "
                f"(x{self.ratio:.3g}, p={self.p_value:.2g})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def most_likely_split(logs: np.ndarray, min_segment: int) -> int:
    """The split k (first segment ``logs[:k]``) maximising the between-segment sum of squares."""
    n = len(logs)
    centred = logs - logs.mean()
    cumulative = np.cumsum(centred)
    splits = np.arange(min_segment, n - min_segment + 1)
    between = cumulative[splits - 1] ** 2 * n / (splits * (n - splits))
    return int(splits[int(np.argmax(between))])


def welch_p_value(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided p-value of Welch's t test; 0 when both segments are constant and differ, 1 when equal."""
    from scipy.special import stdtr  # here, after the measurement: a worker's start-up stays lean

    difference = second.mean() - first.mean()
    var_first, var_second = first.var(ddof=1) / len(first), second.var(ddof=1) / len(second)
    standard_error_sq = var_first + var_second
    if standard_error_sq == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    t = difference / math.sqrt(standard_error_sq)
    df = standard_error_sq ** 2 / (var_first ** 2 / (len(first) - 1) + var_second ** 2 / (len(second) - 1))
    return float(2.0 * stdtr(df, -abs(t)))


def find_level_shift(samples_s: Sequence[float], rule: LevelShiftRule = LevelShiftRule()) -> LevelShift | None:
    """The one level shift in ``samples_s`` that is both significant and large, or None.

    None too when there are fewer than two minimal segments of samples (nothing can be told).
    """
    steps = len(samples_s)
    min_segment = rule.min_segment(steps)
    if steps < 2 * min_segment:
        return None
    times = np.asarray(samples_s, dtype=float)
    if np.any(times <= 0):
        raise ValueError("step times must be positive")
    logs = np.log(times)
    split = most_likely_split(logs, min_segment)
    candidates = steps - 2 * min_segment + 1
    p_value = min(1.0, welch_p_value(logs[:split], logs[split:]) * candidates)
    before, after = float(np.median(times[:split])), float(np.median(times[split:]))
    ratio = after / before
    if p_value >= rule.alpha or max(ratio, 1.0 / ratio) < rule.min_ratio:
        return None
    return LevelShift(index=split, steps=steps, median_before_s=before, median_after_s=after, ratio=ratio,
                      p_value=p_value)
