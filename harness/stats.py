"""Summary statistics of step-time samples.

All summaries are derived from the raw samples. The confidence interval of the
median is distribution-free (order statistics of a Binomial(n, 1/2) count), so
it holds for the skewed, heavy-tailed step times benchmarks produce.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

_EXACT_BINOMIAL_LIMIT = 1000
_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default method)."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    position = (len(sorted_samples) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_samples) - 1)
    fraction = position - low
    return sorted_samples[low] + (sorted_samples[high] - sorted_samples[low]) * fraction


def _median_ci_rank(n: int, confidence: float) -> int:
    """Largest 1-based rank j with P(Binomial(n, 1/2) < j) <= alpha/2; 0 when n is too small."""
    alpha_half = (1.0 - confidence) / 2.0
    if n <= _EXACT_BINOMIAL_LIMIT:
        cumulative, pmf, rank = 0.0, 0.5**n, 0
        for k in range(n + 1):
            cumulative += pmf
            if cumulative > alpha_half:
                return rank
            rank = k + 1
            pmf *= (n - k) / (k + 1)
        return rank
    z = _Z.get(confidence)
    if z is None:
        raise ValueError(f"confidence {confidence} needs n <= {_EXACT_BINOMIAL_LIMIT}")
    return max(0, math.floor((n - z * math.sqrt(n)) / 2.0))


def median_ci(sorted_samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free CI of the median, or None when there are too few samples for it."""
    n = len(sorted_samples)
    rank = _median_ci_rank(n, confidence)
    if rank < 1:
        return None
    return sorted_samples[rank - 1], sorted_samples[n - rank]


def relative_ci_halfwidth(sorted_samples: Sequence[float], confidence: float = 0.95) -> float | None:
    """Half the width of the median's CI over the median; None when it cannot be computed."""
    interval = median_ci(sorted_samples, confidence)
    median = percentile(sorted_samples, 50)
    if interval is None or median <= 0:
        return None
    return (interval[1] - interval[0]) / 2.0 / median


def summarize(samples: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """Every summary tribench reports for a set of step times (seconds in, seconds out)."""
    if not samples:
        raise ValueError("summary of no samples")
    ordered = sorted(samples)
    median = percentile(ordered, 50)
    q1, q3 = percentile(ordered, 25), percentile(ordered, 75)
    interval = median_ci(ordered, confidence)
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "stdev": statistics.stdev(ordered) if len(ordered) > 1 else None,
        "min": ordered[0],
        "max": ordered[-1],
        "median": median,
        "p50": median,
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "noise": (q3 - q1) / median if median > 0 else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "ci_confidence": confidence,
        "ci_rel_halfwidth": relative_ci_halfwidth(ordered, confidence),
    }
