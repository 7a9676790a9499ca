"""Sequential same-job A/B: add interleaved pairs of processes to a case point until its verdict is decided.

``tribench run --python A=... --python B=... --sequential`` runs each case point's two sides in
randomly ordered pairs of fresh processes (``harness.runner``), and after the pairs counted in
``looks`` asks the process test (``harness.process_stats``) whether the point is decided:

* regressed / improved: the one-sided test on that side (head's step times longer / shorter) is
  significant at ``alpha_per_look`` AND the estimate is past the threshold, as ``compare`` rules;
* unchanged: the (1 - 2 alpha_per_look) CI of the log ratio lies within +-threshold.

Looking repeatedly at growing data inflates the error rates of a fixed-sample test, so the alpha
of each direction (a false regression, a false improvement) is spent evenly over a few planned
looks, and among the run's points (Bonferroni: ``alpha_per_look = alpha / (looks x points)``,
so that ``compare``'s Benjamini-Hochberg at ``alpha / looks`` over the points agrees with every
decision the run took, even where it looked at many points); the looks are spaced
geometrically (3, 5, 8, 12, ... pairs) so that few looks cover a wide range. A point whose sides
failed, or whose budget or pair cap is spent, stops undecided.
``compare --env A --env B`` on such a run judges at ``compare_alpha`` with the matching CI.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from tribench.core.errors import InvalidValue
from tribench.harness.aggregate import used_results
from tribench.harness.process_stats import process_test

LOOK_GROWTH = 1.5


@dataclass(frozen=True)
class SequentialPlan:
    threshold: float = 0.05  # the practical margin, as compare's --threshold
    alpha: float = 0.05      # the false-alarm rate of one point over all its looks
    min_pairs: int = 3
    max_pairs: int = 30
    points: int = 1          # case points in the run: the alpha is shared among them too

    def __post_init__(self) -> None:
        if not 2 <= self.min_pairs <= self.max_pairs:
            raise InvalidValue(f"a sequential A/B needs 2 <= --processes ({self.min_pairs}) <= --max-processes "
                               f"({self.max_pairs})")
        if not 0.0 < self.alpha < 1.0 or not 0.0 < self.threshold < 1.0:
            raise InvalidValue("a sequential A/B needs alpha and threshold between 0 and 1")

    @property
    def looks(self) -> tuple[int, ...]:
        """The pair counts at which the point is judged: geometric from min_pairs, ending at max_pairs."""
        counts = [self.min_pairs]
        while counts[-1] < self.max_pairs:
            counts.append(min(self.max_pairs, max(counts[-1] + 1, math.ceil(counts[-1] * LOOK_GROWTH))))
        return tuple(counts)

    @property
    def alpha_per_look(self) -> float:
        """One point's one-sided level at one look: alpha over every look of every point (Bonferroni)."""
        return self.alpha / (len(self.looks) * self.points)

    @property
    def compare_alpha(self) -> float:
        """compare's alpha for the whole file: its Benjamini-Hochberg over the points then never asks more
        of a point than the run did, so a decision the run took is a verdict compare gives."""
        return self.alpha / len(self.looks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "looks": list(self.looks), "alpha_per_look": self.alpha_per_look,
                "compare_alpha": self.compare_alpha,
                "rule": "Bonferroni over the planned looks and points; regressed / improved = one-sided test at "
                        "alpha_per_look and the estimate past the threshold; unchanged = the (1 - 2 "
                        "alpha_per_look) CI within it"}


def decision(base_medians: list[float], head_medians: list[float], plan: SequentialPlan) -> str | None:
    """'regressed', 'improved', 'unchanged', or None (undecided, or not at a planned look) for one point.

    ``base_medians`` and ``head_medians`` are per-process median step times: longer is worse."""
    pairs = min(len(base_medians), len(head_medians))
    if pairs not in plan.looks:
        return None
    level = plan.alpha_per_look
    test = process_test(base_medians[:pairs], head_medians[:pairs], confidence=1.0 - 2.0 * level)
    margin = math.log1p(plan.threshold)
    if test.p_increase <= level and test.log_ratio > margin:
        return "regressed"
    if test.p_decrease <= level and test.log_ratio < -margin:
        return "improved"
    if -margin <= test.ci_low and test.ci_high <= margin:
        return "unchanged"
    return None


def per_process_medians(case: dict[str, Any]) -> list[float]:
    """The medians of a case's used processes (``harness.aggregate.used_results``), in launch order."""
    return [statistics.median(result["timing"]["samples_s"]) for result in used_results(case)]
