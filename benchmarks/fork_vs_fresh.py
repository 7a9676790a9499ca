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

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.paired_runs import paired_runs, ratio_cells  # noqa: E402
from harness.results import load_run  # noqa: E402

SIDES = ("--fork-server", "--fresh-interpreters")


def collect(paths: list[Path]) -> dict[str, dict[str, list[float]]]:
    """case id -> {"medians", "setup", "wall"}: one value per ok process, over every run file."""
    cases: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        for case in load_run(path)["cases"]:
            for process in case.get("repeats", []):
                if process.get("status") != "ok":
                    continue
                entry = cases.setdefault(case["id"], {"medians": [], "setup": [], "wall": []})
                entry["medians"].append(statistics.median(process["timing"]["samples_s"]))
                entry["setup"].append(process.get("setup_time_s") or 0.0)
                entry["wall"].append(process["wall_s"])
    return cases


def table(fork: dict[str, dict[str, list[float]]], fresh: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [f"{'case':48} {'fork/fresh':>10} {'95% CI':>17} {'n':>7} {'setup s fork/fresh':>19} "
             f"{'wall s fork/fresh':>18}"]
    for case_id in sorted(set(fork) & set(fresh)):
        a, b = fork[case_id], fresh[case_id]
        cells = ratio_cells(a["medians"], b["medians"], 10)
        if cells is None:
            continue
        lines.append(f"{case_id:48} {cells} "
                     f"{statistics.median(a['setup']):8.2f}/{statistics.median(b['setup']):<8.2f} "
                     f"{statistics.median(a['wall']):8.2f}/{statistics.median(b['wall']):<8.2f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="pairs of runs (one per side each)")
    parser.add_argument("--processes", type=int, default=2, help="processes per case in each run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order within each pair")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: the tribench run axes")
    options = parser.parse_args()
    args = [arg for arg in options.run_args if arg != "--"]
    fork, fresh = paired_runs(SIDES, args, options.processes, options.pairs, options.seed, collect)
    print("\n".join(table(fork, fresh)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
