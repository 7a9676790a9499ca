"""What does tribench's one thread policy change against each framework's own thread defaults?

Runs the same cases as alternating pairs of runs, one with ``--threads auto`` (the policy:
``harness.threads``) and one with ``--threads framework`` (every framework sizes its own pools; the
order of each pair random), then prints per case the policy/defaults ratio of per-process median
step times with the 95% CI of the process test compare uses, each side's spread between processes
(coefficient of variation of the per-process medians), and the share of each side's processes
flagged disturbed, e.g.

    python benchmarks/thread_policy.py --pairs 4 --processes 3 -- \\
        --backend torch,tensorflow,jax --workload cnn,transformer --size tiny --mode train,infer --no-energy

Never run it beside other work: both sides must see the same machine.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.paired_runs import compared_cases, main_for, ok_processes  # noqa: E402

POLICY, DEFAULTS = "--threads=auto", "--threads=framework"


def collect(paths: list[Path]) -> dict[str, dict[str, list[float]]]:
    """case id -> {"medians": per ok process, "disturbed": 1.0/0.0 per ok process}, over every run file."""
    cases: dict[str, dict[str, list[float]]] = {}
    for case_id, process in ok_processes(paths):
        entry = cases.setdefault(case_id, {"medians": [], "disturbed": []})
        entry["medians"].append(statistics.median(process["timing"]["samples_s"]))
        entry["disturbed"].append(1.0 if (process.get("disturbance") or {}).get("reasons") else 0.0)
    return cases


def spread(values: list[float]) -> float:
    """Coefficient of variation of per-process medians (0 with fewer than two)."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def table(policy: dict[str, dict[str, list[float]]], defaults: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [f"{'case':48} {'policy/defaults':>15} {'95% CI':>17} {'n':>7} {'spread policy/defaults':>23} "
             f"{'disturbed policy/defaults':>26}"]
    for case_id, a, b, cells in compared_cases(policy, defaults, 15):
        lines.append(f"{case_id:48} {cells} "
                     f"{spread(a['medians']):10.1%}/{spread(b['medians']):<12.1%} "
                     f"{statistics.fmean(a['disturbed']):12.0%}/{statistics.fmean(b['disturbed']):<13.0%}")
    return lines


def main() -> int:
    return main_for(__doc__, (POLICY, DEFAULTS), 3, collect, table)


if __name__ == "__main__":
    sys.exit(main())
