"""History: each case's metric across many runs, in commit order, with its change points.

Runs are ordered by the commit time of the checkout they ran from
(``environment.git.commit_time``), falling back to the run's ``started_at``
(then the run id), so a rerun of an old commit lands where the commit is. Each
(case, metric) series holds one summary value per run (the median step time,
throughput, p99, peak memory, ...); failed or missing cases leave a gap, not a 0.
Change points come from ``reports.regression.changepoint.e_divisive``; each one names the
first run and commit after it, the change between the medians of the segments
on either side, its p-value, and any fingerprint difference at that point.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tribench.core.errors import InvalidValue, ResultFileError
from tribench.harness.results import KIND, load_run
from tribench.reports.regression.compare import fingerprint_differences
from tribench.reports.regression.compare_metrics import METRICS, series_value

DEFAULT_METRICS = ("throughput", "latency_p50", "latency_p99")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: str
    commit: str | None
    when: str | None
    when_source: str  # "commit time" | "run start"
    environment: dict[str, Any] = field(repr=False, compare=False)


@dataclass
class ChangePointInfo:
    index: int
    run_id: str
    commit: str | None
    before: float
    after: float
    magnitude: float  # after / before - 1
    p_value: float
    direction: str  # "regression" | "improvement"
    environment_change: list[str]


@dataclass
class Series:
    case_id: str
    metric: str
    unit: str
    direction: str
    runs: list[RunInfo]
    values: list[float]
    backend: str | None = None
    change_points: list[ChangePointInfo] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)  # throughput only: what each point's figure is (harness.sustained)

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "metric": self.metric, "unit": self.unit, "direction": self.direction,
                "points": [{"run_id": run.run_id, "commit": run.commit, "when": run.when, "value": value}
                           for run, value in zip(self.runs, self.values, strict=True)],
                "change_points": [asdict(point) for point in self.change_points]}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_files(inputs: list[str | Path]) -> list[Path]:
    """Files named directly, plus every ``*.json`` under named folders (sorted)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(path for path in item.rglob("*.json") if path.is_file())
        elif item.exists():
            files.append(item)
        else:
            raise ResultFileError(f"{item}: no such run file or folder")
    unique = {path.resolve(): path for path in reversed(files)}  # a file named twice counts once
    return [path for path in files if unique[path.resolve()] is path]


def _is_run_file(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_runs(inputs: list[str | Path]) -> tuple[list[tuple[RunInfo, dict[str, Any]]], list[str]]:
    """Load and order runs; JSON files in folders that are not run files are skipped with a note."""
    named = {Path(item) for item in inputs if not Path(item).is_dir()}
    runs, notes = [], []
    for path in run_files(inputs):
        if path not in named and not _is_run_file(path):
            notes.append(f"skipped {path}: not a tribench run file")
            continue
        run = load_run(path)
        environment = run.get("environment", {})
        git = environment.get("git", {})
        commit_time = _parse_time(git.get("commit_time"))
        when = commit_time or _parse_time(run.get("started_at"))
        info = RunInfo(run_id=str(run.get("run_id")), path=str(path), commit=git.get("commit"),
                       when=when.isoformat() if when else None,
                       when_source="commit time" if commit_time else "run start", environment=environment)
        started = _parse_time(run.get("started_at")) or datetime.min.replace(tzinfo=UTC)
        runs.append(((when or datetime.max.replace(tzinfo=UTC), started, info.run_id), info, run))
    if not runs:
        raise ResultFileError("no run files found in " + ", ".join(map(str, inputs)))
    runs.sort(key=lambda entry: entry[0])
    return [(info, run) for _, info, run in runs], notes


def matches(case_id: str, pattern: str | None) -> bool:
    """A glob (``torch/*/train/*``); a pattern without wildcards matches as a substring."""
    if not pattern:
        return True
    if not any(char in pattern for char in "*?["):
        return pattern in case_id
    return fnmatch.fnmatchcase(case_id, pattern)


def build_series(runs: list[tuple[RunInfo, dict[str, Any]]], metrics: list[str],
                 pattern: str | None = None) -> list[Series]:
    """One series per (case, metric) over the ordered runs, skipping runs without a value."""
    series: dict[tuple[str, str], Series] = {}
    for info, run in runs:
        for case in run["cases"]:
            if case.get("status") != "ok" or not matches(case["id"], pattern):
                continue
            for name in metrics:
                value = series_value(case, name)
                if value is None:
                    continue
                metric = METRICS[name]
                entry = series.setdefault((case["id"], name), Series(
                    case["id"], name, metric.unit, metric.direction, [], [], case.get("spec", {}).get("backend")))
                entry.runs.append(info)
                entry.values.append(float(value))
                entry.bases.append(throughput_basis(case) if name == "throughput" else "")
    return list(series.values())


def throughput_basis(case: dict[str, Any]) -> str:
    """What a case's throughput is: ``sustained`` or ``synced-steps`` (files written before the basis was recorded)."""
    return ((case.get("metrics") or {}).get("throughput") or {}).get("basis") or "synced-steps"


def basis_change(series: Series, index: int) -> list[str]:
    """The change of throughput definition between point ``index - 1`` and ``index``, if any: a level change there
    is (at least partly) the definition, not the code."""
    if not series.bases or series.bases[index - 1] == series.bases[index]:
        return []
    return [f"throughput basis: {series.bases[index - 1]} -> {series.bases[index]}"]


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def find_change_points(series: Series, *, significance: float = 0.05, permutations: int = 199,
                       min_size: int = 3, seed: int = 0) -> Series:
    """Fill ``series.change_points`` (E-divisive means; see reports.changepoint)."""
    from tribench.reports.regression.changepoint import e_divisive

    points = e_divisive(series.values, significance=significance, permutations=permutations,
                        min_size=min_size, seed=seed)
    bounds = [0] + [point.index for point in points] + [len(series.values)]
    series.change_points = []
    for position, point in enumerate(points, start=1):
        before = _median(series.values[bounds[position - 1]:point.index])
        after = _median(series.values[point.index:bounds[position + 1]])
        magnitude = after / before - 1.0 if before else float("inf")
        worse = magnitude > 0 if series.direction == "lower" else magnitude < 0
        run, previous = series.runs[point.index], series.runs[point.index - 1]
        series.change_points.append(ChangePointInfo(
            index=point.index, run_id=run.run_id, commit=run.commit, before=before, after=after,
            magnitude=magnitude, p_value=point.p_value, direction="regression" if worse else "improvement",
            environment_change=fingerprint_differences(previous.environment, run.environment, series.backend)
            + basis_change(series, point.index)))
    return series


def history(inputs: list[str | Path], metrics: list[str] | None = None, pattern: str | None = None,
            **options: Any) -> tuple[list[Series], list[RunInfo], list[str]]:
    """Everything ``tribench history`` shows: the analysed series, the ordered runs and notes."""
    runs, notes = load_runs(inputs)
    series = build_series(runs, list(metrics or DEFAULT_METRICS), pattern)
    if not series:
        raise InvalidValue(f"no successful case matches {pattern!r} in {len(runs)} run(s)" if pattern else
                              f"no successful cases in {len(runs)} run(s)")
    for entry in series:
        find_change_points(entry, **options)
    return series, [info for info, _ in runs], notes
