"""How often does a run's stated CI hold the case's true median? Checked on real processes.

Run one case with many interleaved fresh processes, e.g.

    tribench run --backend torch --workload cnn,rnn --size tiny --mode infer --processes 40 \\
                 --min-time 0.5 --max-time 1 --no-energy --output results/coverage.json
    python benchmarks/ci_coverage.py results/coverage.json --group 5

The median of all those processes stands in for the case's true median (each case's processes
ran interleaved with the other case's, over the same stretch of time). The processes are then cut
into groups of ``--group`` (every k-th process, so that each group spans the window as a run's
interleaved processes do; ``--consecutive`` for runs of neighbours in time), as if each group were
a run of its own, and for each group
this prints whether the CI that tribench now states (a t-interval across the group's processes,
``harness.process_stats``) holds that truth, next to the CI tribench used to state (the
distribution-free CI of the median of the group's pooled steps, ``harness.stats``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tribench.harness.process_stats import estimate  # noqa: E402
from tribench.harness.results import load_run  # noqa: E402
from tribench.harness.stats import median_ci  # noqa: E402


def groups(processes: list[list[float]], size: int, strided: bool) -> list[list[list[float]]]:
    """Simulated runs of ``size`` processes: every k-th process (strided: each spans the whole window,
    as a run's interleaved processes do), or consecutive ones (each a short stretch of time)."""
    count = len(processes) // size
    if strided:
        return [processes[offset::count][:size] for offset in range(count)]
    return [processes[start * size:(start + 1) * size] for start in range(count)]


def coverage_row(case: dict, size: int, strided: bool) -> dict:
    processes = [r["timing"]["samples_s"] for r in case["repeats"] if r.get("status") == "ok"]
    medians = [statistics.median(samples) for samples in processes]
    truth = math.exp(statistics.fmean(math.log(m) for m in medians))
    held, pooled_held, widths, pooled_widths = 0, 0, [], []
    chunks = groups(processes, size, strided)
    for chunk in chunks:
        stated = estimate(chunk)
        held += stated.ci_low <= truth <= stated.ci_high
        widths.append(stated.ci_rel_halfwidth)
        pooled = sorted(s for samples in chunk for s in samples)
        low, high = median_ci(pooled)
        pooled_held += low <= truth <= high
        pooled_widths.append((high - low) / 2 / statistics.median(pooled))
    logs = [math.log(m) for m in medians]
    return {"case": case["id"], "processes": len(medians), "between_cv": statistics.stdev(logs),
            "groups": len(chunks), "held": held, "pooled_held": pooled_held,
            "halfwidth": statistics.median(widths), "pooled_halfwidth": statistics.median(pooled_widths)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file")
    parser.add_argument("--group", type=int, default=5, help="processes per simulated run")
    parser.add_argument("--consecutive", action="store_true",
                        help="simulated runs of consecutive processes (default: every k-th, spanning the window)")
    args = parser.parse_args()
    if args.group < 2:
        parser.error("--group needs 2 or more processes: one process has no CI across processes")
    run = load_run(args.run_file)
    print(f"{'case':44} {'procs':>5} {'between CV':>10} {'groups':>6} {'t-CI holds':>11} {'±median':>8} "
          f"{'pooled CI holds':>15} {'±median':>8}")
    for case in run["cases"]:
        if case.get("status") != "ok":
            continue
        row = coverage_row(case, args.group, strided=not args.consecutive)
        print(f"{row['case']:44} {row['processes']:>5} {row['between_cv']:>10.1%} {row['groups']:>6} "
              f"{row['held']:>5}/{row['groups']:<5} {row['halfwidth']:>8.1%} "
              f"{row['pooled_held']:>9}/{row['groups']:<5} {row['pooled_halfwidth']:>8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
