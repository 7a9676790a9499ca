"""E-divisive means change-point detection with a permutation significance test.

Matteson & James (2014), as MongoDB uses it for performance histories (Daly et
al., ICPE 2020): for a segment split at ``tau`` into X (before) and Y (after),

    Q(tau) = m n / (m + n) * ( 2/(m n) sum|x - y| - 1/C(m,2) sum_{i<k}|x_i - x_k| - 1/C(n,2) sum_{j<k}|y_j - y_k| )

is large when the two parts come from different distributions (any change of
level, not only of the mean, and without assuming normality). The best split
over all current segments is a change point if it beats what the same
statistic reaches on permutations of the values *within* each segment (the
null: no further change); the search then recurses. A single outlier is in
every permutation too, so it does not look special and is not reported.

All sums come from a 2-D prefix sum of the distance matrix, so every split of
a segment is scored in one vectorised step (O(n^2) per permutation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first position of the new segment
    statistic: float
    p_value: float


def _prefix(distances: np.ndarray) -> np.ndarray:
    prefix = np.zeros((len(distances) + 1, len(distances) + 1))
    prefix[1:, 1:] = distances.cumsum(0).cumsum(1)
    return prefix


def _block(prefix: np.ndarray, r0, r1, c0, c1):
    return prefix[r1, c1] - prefix[r0, c1] - prefix[r1, c0] + prefix[r0, c0]


def segment_scores(prefix: np.ndarray, start: int, end: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Q for every admissible split ``tau`` of ``[start, end)``: (taus, scores)."""
    taus = np.arange(start + min_size, end - min_size + 1)
    if len(taus) == 0:
        return taus, np.empty(0)
    m, n = (taus - start).astype(float), (end - taus).astype(float)
    between = _block(prefix, start, taus, taus, end) / (m * n)
    within_x = _block(prefix, start, taus, start, taus) / np.maximum(m * (m - 1), 1.0)
    within_y = _block(prefix, taus, end, taus, end) / np.maximum(n * (n - 1), 1.0)
    return taus, m * n / (m + n) * (2.0 * between - within_x - within_y)


def _best_split(prefix: np.ndarray, bounds: list[int], min_size: int) -> tuple[int | None, float]:
    best_tau, best_score = None, -np.inf
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        taus, scores = segment_scores(prefix, start, end, min_size)
        if len(scores) and scores.max() > best_score:
            best_tau, best_score = int(taus[scores.argmax()]), float(scores.max())
    return best_tau, best_score


def _permuted_best(values: np.ndarray, bounds: list[int], min_size: int, rng: np.random.Generator) -> float:
    order = np.concatenate([start + rng.permutation(end - start) for start, end in zip(bounds[:-1], bounds[1:],
                                                                                         strict=True)])
    shuffled = values[order]
    return _best_split(_prefix(np.abs(shuffled[:, None] - shuffled[None, :])), bounds, min_size)[1]


def e_divisive(values: Sequence[float], *, significance: float = 0.05, permutations: int = 199,
               min_size: int = 3, max_points: int | None = None, seed: int = 0) -> list[ChangePoint]:
    """Change points of a series, in order of position; each with its permutation p-value.

    ``min_size`` is the fewest points a segment may have: a level must be seen at least that
    many times before it counts as a new level rather than noise.
    """
    series = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    prefix = _prefix(np.abs(series[:, None] - series[None, :]))
    bounds = [0, len(series)]
    found: list[ChangePoint] = []
    while max_points is None or len(found) < max_points:
        tau, score = _best_split(prefix, bounds, min_size)
        if tau is None or score <= 0.0:
            break
        exceed = sum(_permuted_best(series, bounds, min_size, rng) >= score for _ in range(permutations))
        p_value = (exceed + 1) / (permutations + 1)
        if p_value > significance:
            break
        found.append(ChangePoint(tau, score, p_value))
        bounds = sorted(bounds + [tau])
    return sorted(found, key=lambda point: point.index)
