"""Does a process forked from a fork server measure what a fresh interpreter measures?

Runs the same cases as alternating pairs of runs, one with ``--fork-server`` and one with
``--fresh-interpreters`` (the order of each pair random), then compares each case's per-process
median step times across all runs of each side with the process test tribench's compare uses
(Welch t on log per-process medians) and prints, per case, the fork/fresh ratio with its 95% CI,
the number of processes per side, and the setup and whole-process wall time per side, e.g.

    python benchmarks/fork_vs_fresh.py --pairs 4 --processes 2 -- \\
        --backend torch,tensorflow,jax --workload cnn,transformer --size tiny --mode train,infer \\
        --compile native --no-energy

Never run it beside other work: both sides must see the same machine.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.paired_runs import compared_cases, main_for, ok_processes  # noqa: E402

SIDES = ("--fork-server", "--fresh-interpreters")


def collect(paths: list[Path]) -> dict[str, dict[str, list[float]]]:
    """case id -> {"medians", "setup", "wall"}: one value per ok process, over every run file."""
    cases: dict[str, dict[str, list[float]]] = {}
    for case_id, process in ok_processes(paths):
        entry = cases.setdefault(case_id, {"medians": [], "setup": [], "wall": []})
        entry["medians"].append(statistics.median(process["timing"]["samples_s"]))
        entry["setup"].append(process.get("setup_time_s") or 0.0)
        entry["wall"].append(process["wall_s"])
    return cases


def table(fork: dict[str, dict[str, list[float]]], fresh: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [f"{'case':48} {'fork/fresh':>10} {'95% CI':>17} {'n':>7} {'setup s fork/fresh':>19} "
             f"{'wall s fork/fresh':>18}"]
    for case_id, a, b, cells in compared_cases(fork, fresh, 10):
        lines.append(f"{case_id:48} {cells} "
                     f"{statistics.median(a['setup']):8.2f}/{statistics.median(b['setup']):<8.2f} "
                     f"{statistics.median(a['wall']):8.2f}/{statistics.median(b['wall']):<8.2f}")
    return lines


def main() -> int:
    return main_for(__doc__, SIDES, 2, collect, table)


if __name__ == "__main__":
    sys.exit(main())
