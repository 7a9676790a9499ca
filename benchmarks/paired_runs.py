"""What the A/B benchmarks that compare two ways of running ``tribench run`` share (``fork_vs_fresh.py``,
``thread_policy.py``): alternating pairs of whole runs in random order, and the process test on their
per-process median step times.

Both sides of a pair run the same cases with the same ``--processes``; only the side's own flag differs.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tribench.harness.process_stats import process_test  # noqa: E402

Collected = dict[str, dict[str, list[float]]]


def run_side(side: str, args: list[str], processes: int, output: Path) -> None:
    """One whole ``tribench run`` with the side's flag; exits with its stderr if it fails."""
    command = [sys.executable, "-m", "tribench", "run", side, "--processes", str(processes),
               "--output", str(output), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")


def paired_runs(sides: tuple[str, str], args: list[str], processes: int, pairs: int, seed: int,
                collect: Callable[[list[Path]], Collected]) -> tuple[Collected, Collected]:
    """``pairs`` pairs of runs, the order within each pair random; each side's runs ``collect``-ed."""
    order = random.Random(seed)
    files: dict[str, list[Path]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="paired-runs-") as folder:
        for pair in range(pairs):
            for index, side in order.sample(list(enumerate(sides)), 2):
                path = Path(folder, f"side{index}-{pair}.json")
                run_side(side, args, processes, path)
                files[side].append(path)
                print(f"pair {pair + 1}/{pairs}: {side} done", file=sys.stderr)
        return collect(files[sides[0]]), collect(files[sides[1]])


def ratio_cells(a: list[float], b: list[float], width: int) -> str | None:
    """``a / b`` of per-process medians with the 95% CI of the process test and the counts; None if too few."""
    if len(a) + len(b) < 3:
        return None
    test = process_test(b, a)
    return (f"{test.ratio:{width}.3f} [{math.exp(test.ci_low):6.3f}, {math.exp(test.ci_high):6.3f}] "
            f"{len(a):>3}/{len(b):<3}")


def compared_cases(a_side: Collected, b_side: Collected, width: int):
    """(case id, a's values, b's values, ratio cells) for every case both sides ran with enough processes."""
    for case_id in sorted(set(a_side) & set(b_side)):
        a, b = a_side[case_id], b_side[case_id]
        cells = ratio_cells(a["medians"], b["medians"], width)
        if cells is not None:
            yield case_id, a, b, cells


def main_for(doc: str, sides: tuple[str, str], default_processes: int, collect: Callable[[list[Path]], Collected],
             table: Callable[[Collected, Collected], list[str]]) -> int:
    """The command line every paired-run benchmark shares: ``--pairs --processes --seed -- <tribench run axes>``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="pairs of runs (one per side each)")
    parser.add_argument("--processes", type=int, default=default_processes, help="processes per case in each run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order within each pair")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: the tribench run axes")
    options = parser.parse_args()
    args = [arg for arg in options.run_args if arg != "--"]
    first, second = paired_runs(sides, args, options.processes, options.pairs, options.seed, collect)
    print("\n".join(table(first, second)))
    return 0


def ok_processes(paths: list[Path]):
    """(case id, process result) for every successful process in the run files ``paths``."""
    from tribench.harness.results import load_run

    for path in paths:
        for case in load_run(path)["cases"]:
            for process in case.get("repeats", []):
                if process.get("status") == "ok":
                    yield case["id"], process
