"""Does ``tribench compare`` keep its promises? A calibration table on synthetic runs.

For each scenario (between-process sigma 2% and 8%; 2, 3, 5 and 10 processes per
side; thresholds 5% and 1%) it generates many pairs of run files with two-level
noise (``reports.regression.synthetic``) and judges each pair with the real
``reports.regression.compare.compare_sides``, then prints how often the verdicts and CIs
are right: A/A false alarms, CI coverage, power against planted slowdowns, and
the power at the minimum detectable change that compare itself reports.

    .venv/bin/python benchmarks/calibration.py [--trials 80] [--seed 0] [--quick] [--jobs 2]

A figure, not a unit test (tests/test_calibration.py holds the claims); the
exit code is 0 whenever the table was printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: import this checkout, never an installed copy
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tribench.reports.regression.compare import CompareSettings, Comparison, MetricResult, compare_sides, side_from_run  # noqa: E402
from tribench.reports.regression.compare_metrics import Thresholds  # noqa: E402
from tribench.reports.regression.synthetic import (  # noqa: E402
    TORCH_CASES,
    CaseTruth,
    NoiseModel,
    Shift,
    Steps,
    shift_factors,
    synthetic_run,
    true_median_step_times,
)

BETWEEN_SIGMAS = (0.02, 0.08)
PROCESS_COUNTS = (2, 3, 5, 10)
THRESHOLDS = (0.05, 0.01)
SLOWDOWNS = (1.03, 1.10)  # planted step-time factors on the shifted case
SHIFTED_CASE = 0
DEFAULT_TRIALS = 80
QUICK_TRIALS = 10


@dataclass(frozen=True)
class Scenario:
    """The data of one calibration scenario: noise, processes per side and steps per process."""

    between_sigma: float
    processes: int
    within_sigma: float = 0.03
    stall_rate: float = 0.005
    disturbed_fraction: float = 0.0
    steps: Steps = (30, 300)
    cases: tuple[CaseTruth, ...] = TORCH_CASES

    def noise(self) -> NoiseModel:
        return NoiseModel(within_sigma=self.within_sigma, between_sigma=self.between_sigma,
                          stall_rate=self.stall_rate, disturbed_fraction=self.disturbed_fraction)


@dataclass(frozen=True)
class TrialOutcome:
    """What one comparison said, per case (in the order of the scenario's cases)."""

    exit_code: int
    verdicts: tuple[str, ...]
    throughput_verdicts: tuple[str, ...]
    ci_holds: tuple[bool, ...]  # the throughput CI holds the true head/base throughput ratio
    min_detectable: tuple[float | None, ...]

    @property
    def any_regressed(self) -> bool:
        return "regressed" in self.verdicts


@dataclass
class Timings:
    """Seconds spent generating runs and comparing them, to report what a trial costs."""

    generate_s: float = 0.0
    runs: int = 0
    compare_s: float = 0.0
    comparisons: int = 0

    def add(self, other: Timings) -> None:
        self.generate_s += other.generate_s
        self.runs += other.runs
        self.compare_s += other.compare_s
        self.comparisons += other.comparisons


@dataclass
class Row:
    """One line of the calibration table: a scenario at one threshold."""

    scenario: Scenario
    threshold: float
    trials: int
    aa_regressed: float
    aa_exit_zero: float
    aa_inconclusive: float
    aa_unchanged: float
    ci_coverage: float
    run_ci_coverage: float
    power: dict[float, tuple[float, float]]  # slowdown -> (fraction regressed, fraction unchanged)
    min_detectable: float | None
    power_at_min_detectable: float | None
    timings: Timings = field(default_factory=Timings)


# ---- one trial ----------------------------------------------------------------------------------

def trial_seeds(seed: int, trial: int) -> tuple[int, int]:
    """Independent base and head seeds of one trial (the same in every scenario: common random numbers)."""
    base, head = np.random.SeedSequence([seed, trial]).generate_state(2)
    return int(base), int(head)


def side_run(scenario: Scenario, seed: int, run_id: str, shift: Shift | None = None,
             timings: Timings | None = None) -> dict[str, Any]:
    """One side's run file of the scenario, with ``shift`` planted."""
    start = time.perf_counter()
    run = synthetic_run(scenario.cases, scenario.processes, scenario.steps, scenario.noise(), shift, seed, run_id)
    if timings is not None:
        timings.generate_s += time.perf_counter() - start
        timings.runs += 1
    return run


def trial_runs(scenario: Scenario, seed: int, trial: int, shift: Shift | None = None,
               timings: Timings | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base run and the head run (with ``shift`` planted) of one trial."""
    base_seed, head_seed = trial_seeds(seed, trial)
    return (side_run(scenario, base_seed, f"base-{trial}", None, timings),
            side_run(scenario, head_seed, f"head-{trial}", shift, timings))


def judge(base_run: dict[str, Any], head_run: dict[str, Any], threshold: float,
          timings: Timings | None = None) -> Comparison:
    """The real compare, as ``tribench compare base.json head.json --threshold T`` runs it."""
    start = time.perf_counter()
    comparison = compare_sides(side_from_run(base_run, "base.json", "base"),
                               side_from_run(head_run, "head.json", "head"),
                               CompareSettings(thresholds=Thresholds(default=threshold)))
    if timings is not None:
        timings.compare_s += time.perf_counter() - start
        timings.comparisons += 1
    return comparison


def true_throughput_ratios(cases: Sequence[CaseTruth], shift: Shift | None) -> tuple[float, ...]:
    """head/base throughput of each case: a step-time factor f is a throughput ratio 1/f."""
    return tuple(1.0 / factor for factor in shift_factors(cases, shift))


def throughput_metric(metrics: Sequence[MetricResult]) -> MetricResult | None:
    return next((metric for metric in metrics if metric.metric == "throughput"), None)


def ci_holds(metric: MetricResult | None, true_ratio: float) -> bool:
    """The metric's CI (a head/base ratio) holds the true ratio; a missing CI holds nothing."""
    if metric is None or metric.ci_low is None or metric.ci_high is None:
        return False
    return metric.ci_low <= true_ratio <= metric.ci_high


def outcome(comparison: Comparison, ratios: Sequence[float]) -> TrialOutcome:
    """A comparison reduced to what calibration counts."""
    throughputs = [throughput_metric(case.metrics) for case in comparison.cases]
    return TrialOutcome(
        exit_code=comparison.exit_code(),
        verdicts=tuple(case.verdict for case in comparison.cases),
        throughput_verdicts=tuple(metric.verdict if metric else "absent" for metric in throughputs),
        ci_holds=tuple(ci_holds(metric, ratio) for metric, ratio in zip(throughputs, ratios, strict=True)),
        min_detectable=tuple(getattr(metric, "min_detectable", None) for metric in throughputs))


def outcomes(scenario: Scenario, threshold: float, trials: int, seed: int = 0,
             shift: Shift | None = None) -> list[TrialOutcome]:
    """``trials`` comparisons of the scenario with ``shift`` planted on the head side."""
    ratios = true_throughput_ratios(scenario.cases, shift)
    return [outcome(judge(*trial_runs(scenario, seed, trial, shift), threshold), ratios) for trial in range(trials)]


def run_ci_holds(run: dict[str, Any], cases: Sequence[CaseTruth], shift: Shift | None = None) -> list[bool]:
    """Per case: the run file's own CI of the median step time holds the true median step time."""
    truth = true_median_step_times(cases, shift)
    holds = []
    for case in run["cases"]:
        step_time = (case.get("metrics") or {}).get("step_time") or {}
        low, high = step_time.get("ci_low"), step_time.get("ci_high")
        holds.append(low is not None and high is not None and low <= truth[case["id"]] <= high)
    return holds


def step_factor_for_detectable(change: float) -> float:
    """The step-time factor of a worse-side change as compare states it (``min_detectable``).

    compare's thresholds and minimum detectable change are on the log ratio: a change of ``change``
    is a step time ``1 + change`` times longer (throughput divided by the same factor).
    """
    return 1.0 + change


# ---- summaries ----------------------------------------------------------------------------------

def fraction(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def case_verdict_fraction(trial_outcomes: Sequence[TrialOutcome], verdict: str) -> float:
    """The fraction of case verdicts (every case of every trial) that are ``verdict``."""
    return fraction([v == verdict for o in trial_outcomes for v in o.verdicts])


def shifted_case_fraction(trial_outcomes: Sequence[TrialOutcome], verdict: str, case: int = SHIFTED_CASE,
                          throughput_only: bool = False) -> float:
    """The fraction of trials whose shifted case (or its throughput metric) got ``verdict``."""
    return fraction([(o.throughput_verdicts if throughput_only else o.verdicts)[case] == verdict
                     for o in trial_outcomes])


def ci_coverage(trial_outcomes: Sequence[TrialOutcome]) -> float:
    return fraction([held for o in trial_outcomes for held in o.ci_holds])


def median_min_detectable(trial_outcomes: Sequence[TrialOutcome]) -> float | None:
    """The median reported minimum detectable change of throughput; None while compare reports none."""
    values = [value for o in trial_outcomes for value in o.min_detectable if value is not None]
    return statistics.median(values) if values else None


# ---- a scenario ---------------------------------------------------------------------------------

def calibrate(scenario: Scenario, thresholds: Sequence[float] = THRESHOLDS, trials: int = DEFAULT_TRIALS,
              seed: int = 0) -> list[Row]:
    """One row per threshold; each trial's runs are generated once and judged at every threshold."""
    timings = Timings()
    shifts: dict[float, Shift | None] = {1.0: None, **{factor: {SHIFTED_CASE: factor} for factor in SLOWDOWNS}}
    ratios = {factor: true_throughput_ratios(scenario.cases, shift) for factor, shift in shifts.items()}
    judged: dict[tuple[float, float], list[TrialOutcome]] = {(t, f): [] for t in thresholds for f in shifts}
    run_ci: list[bool] = []
    for trial in range(trials):
        base_seed, head_seed = trial_seeds(seed, trial)
        base = side_run(scenario, base_seed, f"base-{trial}", None, timings)
        for factor, shift in shifts.items():  # the heads share their draws: they differ by the shift alone
            head = side_run(scenario, head_seed, f"head-{trial}", shift, timings)
            if shift is None:
                run_ci += run_ci_holds(base, scenario.cases) + run_ci_holds(head, scenario.cases)
            for threshold in thresholds:
                judged[threshold, factor].append(outcome(judge(base, head, threshold, timings), ratios[factor]))
    rows = []
    for threshold in thresholds:
        aa = judged[threshold, 1.0]
        detectable = median_min_detectable(aa)
        rows.append(Row(
            scenario, threshold, trials,
            aa_regressed=fraction([o.any_regressed for o in aa]),
            aa_exit_zero=fraction([o.exit_code == 0 for o in aa]),
            aa_inconclusive=case_verdict_fraction(aa, "inconclusive"),
            aa_unchanged=case_verdict_fraction(aa, "unchanged"),
            ci_coverage=ci_coverage([o for f in shifts for o in judged[threshold, f]]),
            run_ci_coverage=fraction(run_ci),
            power={f: (shifted_case_fraction(judged[threshold, f], "regressed"),
                       shifted_case_fraction(judged[threshold, f], "unchanged")) for f in SLOWDOWNS},
            min_detectable=detectable,
            power_at_min_detectable=None if detectable is None else power_at(
                scenario, threshold, detectable, trials, seed, timings),
            timings=timings))
    return rows


def power_at(scenario: Scenario, threshold: float, drop: float, trials: int, seed: int,
             timings: Timings | None = None) -> float:
    """The fraction of trials in which a planted worse-side change of ``drop`` (log-symmetric, as compare
    states it: step time x (1 + drop)) is judged ``regressed``."""
    shift = {SHIFTED_CASE: step_factor_for_detectable(drop)}
    ratios = true_throughput_ratios(scenario.cases, shift)
    return shifted_case_fraction([outcome(judge(*trial_runs(scenario, seed, trial, shift, timings), threshold,
                                                timings), ratios) for trial in range(trials)], "regressed")


# ---- the table ----------------------------------------------------------------------------------

HEADER = """Calibration of tribench compare on synthetic runs (reports.synthetic): {cases} cases per run, {steps} steps
per process, within-process noise {within:g}%, stalls (x5-20) at rate {stall:g}, planted slowdowns on case
{shifted} ({case_id}); {trials} trials per scenario, seed {seed}. Columns: sigma_b = between-process sigma;
procs = processes per side; thr = compare threshold. A/A (head drawn like base): regr = fraction of trials
with any case 'regressed' (should be <= 0.05), exit0 = fraction whose exit code (default arguments) is 0,
inconcl / unch = fraction of case verdicts 'inconclusive' / 'unchanged'. cover = fraction of cases (A/A
and planted comparisons) whose throughput CI [ci_low, ci_high] holds the true head/base ratio (should be
~0.95); runCI = fraction of cases whose run file's own CI of the median step time holds the true median
(should be ~0.95). +3% / +10% = a step-time slowdown planted on one case: fraction of trials where that
case is 'regressed' / 'unchanged' (unchanged should be ~0). MDC = median minimum detectable throughput
change compare reports (n/a while it reports none); P@MDC = fraction 'regressed' when a change (step time
x (1 + MDC)) of exactly MDC is planted (should be >= 0.95). With N trials a fraction has a standard error of up to
0.5/sqrt(N)."""

COLUMNS = ("sigma_b", "procs", "thr", "regr", "exit0", "inconcl", "unch", "cover", "runCI",
           "+3% regr", "+3% unch", "+10% regr", "+10% unch", "MDC", "P@MDC")


def header(scenario: Scenario, trials: int, seed: int) -> str:
    """The paragraph above the table: the set-up and what each column means."""
    steps = "-".join(map(str, scenario.steps)) if isinstance(scenario.steps, tuple) else str(scenario.steps)
    text = HEADER.format(cases=len(scenario.cases), steps=steps, within=scenario.within_sigma * 100,
                         stall=scenario.stall_rate, shifted=SHIFTED_CASE,
                         case_id=scenario.cases[SHIFTED_CASE].spec.id, trials=trials, seed=seed)
    return textwrap.fill(" ".join(text.split()), width=110)


def _cell(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def row_cells(row: Row) -> list[str]:
    return [f"{row.scenario.between_sigma:.0%}", str(row.scenario.processes), f"{row.threshold:.0%}",
            _cell(row.aa_regressed), _cell(row.aa_exit_zero), _cell(row.aa_inconclusive), _cell(row.aa_unchanged),
            _cell(row.ci_coverage), _cell(row.run_ci_coverage),
            *[_cell(value) for factor in SLOWDOWNS for value in row.power[factor]],
            "n/a" if row.min_detectable is None else f"{row.min_detectable:.1%}", _cell(row.power_at_min_detectable)]


def format_table(rows: Sequence[Row]) -> str:
    """A plain text table, columns right-aligned."""
    lines = [list(COLUMNS)] + [row_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
                     for line in lines)


def scenarios() -> list[Scenario]:
    return [Scenario(sigma, processes) for sigma in BETWEEN_SIGMAS for processes in PROCESS_COUNTS]


def _calibrate_job(job: tuple[Scenario, int, int]) -> list[Row]:
    scenario, trials, seed = job
    return calibrate(scenario, THRESHOLDS, trials, seed)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=None,
                        help=f"trials per scenario (default {DEFAULT_TRIALS}; {QUICK_TRIALS} with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials per scenario: a smoke check")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="scenarios calibrated in parallel processes (default: 2 or the CPU count if fewer)")
    args = parser.parse_args(argv)
    args.trials = args.trials or (QUICK_TRIALS if args.quick else DEFAULT_TRIALS)
    if args.trials < 1 or args.jobs < 1:
        parser.error("--trials and --jobs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [(scenario, args.trials, args.seed) for scenario in scenarios()]
    start = time.perf_counter()
    if args.jobs == 1:
        results = [_calibrate_job(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_calibrate_job, jobs))
    wall = time.perf_counter() - start
    rows = [row for rows in results for row in rows]
    sample = jobs[0][0]
    print(header(sample, args.trials, args.seed))
    print()
    print(format_table(rows))
    print()
    print(timing_summary(results, wall, args.jobs))
    return 0


def timing_summary(results: Sequence[Sequence[Row]], wall_s: float, jobs: int) -> str:
    """What a trial costs: one run generated and one comparison, on average over every scenario."""
    total = Timings()
    for rows in results:
        total.add(rows[0].timings)  # the rows of one scenario share one Timings
    per_run = total.generate_s / max(total.runs, 1) * 1000
    per_compare = total.compare_s / max(total.comparisons, 1) * 1000
    return (f"time: {wall_s:.1f} s wall with {jobs} job(s); generating one run {per_run:.1f} ms "
            f"({total.runs} runs), one compare_sides {per_compare:.1f} ms ({total.comparisons} comparisons); "
            f"a trial (two runs + one compare) {2 * per_run + per_compare:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
