"""A case's throughput: what a loop of its steps sustains, or, in files without it, batch / median synced step.

A process's sustained step time is its sustained phase's wall time over the steps it ran
(``harness.timing``, step 4: blocks dispatched back to back, one sync per block). Like every estimate,
the case's comes from one value per process (``harness.process_stats``): the geometric mean of the
processes' sustained step times with a t-interval on their logs; with one process, the CI of its
blocks' median per-step time, labelled within-process. Run files written before the sustained phase
(or by ``--sustained-time 0``) have none: their throughput stays batch / median synced step, and says so.
Data-parallel workers run no sustained phase: their throughput is global over the ranks' synced steps
(``harness.distributed``).
"""

from __future__ import annotations

from typing import Any

from tribench.harness.process_stats import across_processes, within_one_process

SUSTAINED = "sustained"
SYNCED = "synced-steps"
SUSTAINED_SOURCE = ("sustained: batch size x steps / wall time of blocks of steps dispatched back to back, one sync "
                    "per block (geometric mean over processes)")
SYNCED_SOURCE = ("batch_size / median synced step time (geometric mean of per-process medians); no sustained "
                 "measurement in this file")


def process_step_s(result: dict[str, Any]) -> float | None:
    """One process's sustained seconds per step, or None when it ran no sustained phase."""
    timing = result.get("timing") or {}
    steps = sum(timing.get("sustained_block_steps") or [])
    wall = timing.get("sustained_wall_s") or 0.0
    return wall / steps if steps and wall > 0 else None


def all_sustained(results: list[dict[str, Any]]) -> bool:
    """Whether every one of ``results`` ran a sustained phase (and there is at least one)."""
    return bool(results) and all(process_step_s(result) is not None for result in results)


def _block_step_times(result: dict[str, Any]) -> list[float]:
    timing = result["timing"]
    return [wall / steps for steps, wall in zip(timing["sustained_block_steps"], timing["sustained_block_s"],
                                                strict=True) if steps]


def throughput_metric(batch_size: int, used: list[dict[str, Any]], synced_median_s: float) -> dict[str, Any]:
    """The case's ``throughput`` metric (samples/s) from its used processes, with its CI and basis."""
    if not all_sustained(used):
        return {"value": batch_size / synced_median_s, "unit": "samples/s", "source": SYNCED_SOURCE,
                "basis": SYNCED, "step_s": synced_median_s}
    per_step = [process_step_s(result) for result in used]
    if len(used) >= 2:
        estimate = across_processes(per_step)
        step_s = estimate.center
    else:  # one process: its own figure, and the CI of its blocks' median (within-process, labelled so)
        estimate = within_one_process(_block_step_times(used[0]))
        step_s = per_step[0]
    return {"value": batch_size / step_s, "unit": "samples/s", "source": SUSTAINED_SOURCE, "basis": SUSTAINED,
            "step_s": step_s, "per_process": [batch_size / value for value in per_step],
            "ci_low": batch_size / estimate.ci_high if estimate.ci_high else None,
            "ci_high": batch_size / estimate.ci_low if estimate.ci_low else None,
            "ci_confidence": estimate.confidence, "ci_basis": estimate.basis, "processes": estimate.processes,
            "between_process_cv": estimate.between_cv}
