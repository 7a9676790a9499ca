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

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.paired_runs import paired_runs, ratio_cells  # noqa: E402
from harness.results import load_run  # noqa: E402

POLICY, DEFAULTS = "--threads=auto", "--threads=framework"


def collect(paths: list[Path]) -> dict[str, dict[str, list[float]]]:
    """case id -> {"medians": per ok process, "disturbed": 1.0/0.0 per ok process}, over every run file."""
    cases: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        for case in load_run(path)["cases"]:
            for process in case.get("repeats", []):
                if process.get("status") != "ok":
                    continue
                entry = cases.setdefault(case["id"], {"medians": [], "disturbed": []})
                entry["medians"].append(statistics.median(process["timing"]["samples_s"]))
                entry["disturbed"].append(1.0 if (process.get("disturbance") or {}).get("reasons") else 0.0)
    return cases


def spread(values: list[float]) -> float:
    """Coefficient of variation of per-process medians (0 with fewer than two)."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def table(policy: dict[str, dict[str, list[float]]], defaults: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [f"{'case':48} {'policy/defaults':>15} {'95% CI':>17} {'n':>7} {'spread policy/defaults':>23} "
             f"{'disturbed policy/defaults':>26}"]
    for case_id in sorted(set(policy) & set(defaults)):
        a, b = policy[case_id], defaults[case_id]
        cells = ratio_cells(a["medians"], b["medians"], 15)
        if cells is None:
            continue
        lines.append(f"{case_id:48} {cells} "
                     f"{spread(a['medians']):10.1%}/{spread(b['medians']):<12.1%} "
                     f"{statistics.fmean(a['disturbed']):12.0%}/{statistics.fmean(b['disturbed']):<13.0%}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="pairs of runs (one per side each)")
    parser.add_argument("--processes", type=int, default=3, help="processes per case in each run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order within each pair")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: the tribench run axes")
    options = parser.parse_args()
    args = [arg for arg in options.run_args if arg != "--"]
    policy, defaults = paired_runs((POLICY, DEFAULTS), args, options.processes, options.pairs, options.seed, collect)
    print("\n".join(table(policy, defaults)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
