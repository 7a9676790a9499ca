"""Profiling a case, the framework-neutral part: where traces go, what a case records, the operator table.

``tribench run --profile`` asks each case's first worker process to capture a trace of a few
steady-state steps AFTER its timed measurement and its memory readings (never inside the timed
window), through the session's optional ``profile(steps, folder)`` method
(``backends/<fw>/profiling.py``). Traces go under the run's folder:
``<run file stem>-traces/<case slug>/``. A case records a ``ProfileResult``: where the trace is
(paths relative to the run file's folder, so a results folder can be moved), how to open it,
the profiled window, and the top operators where the trace can be read offline.

Operator table, the same definition for every backend:

* ``calls``: events of the operator inside the profiled steps;
* ``total_s``: the summed duration of those events (nested children included);
* ``self_s``: the wall time during which the operator was the innermost one running on its
  thread, shared equally with operators running at the same moment on other threads (XLA:CPU
  and TensorFlow run independent ops concurrently on a thread pool). So the ``self_s`` of all
  operators add up to the busy part of the profiled window and never to more than it;
* ``share``: ``self_s`` / the profiled window (the summed wall time of the profiled steps).

PyTorch's rows come straight from ``torch.profiler``'s ``key_averages()`` (its self time
already excludes children, and its ops run on the calling thread).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import traceback
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STEPS = 3
STEP_ANNOTATION = "tribench_step"
TOP_OPERATORS = 25


# ---------------------------------------------------------------- where traces go


def traces_root(run_file: Path) -> Path:
    """``<run folder>/<run file stem>-traces``: every case's trace folder lives under it."""
    return run_file.parent / f"{run_file.stem}-traces"


def case_slug(case_id: str) -> str:
    """A folder name for a case id: ``torch/cnn-tiny/train/bs32/...`` -> ``torch_cnn-tiny_train_bs32_...``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", case_id).strip("_")


@dataclass(frozen=True)
class ProfileRequest:
    """What the runner asks one worker for: ``steps`` profiled steps, the trace in ``folder``."""

    folder: str          # absolute: this case's trace folder
    run_folder: str      # absolute: the run file's folder (recorded paths are relative to it)
    steps: int = DEFAULT_STEPS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileRequest:
        return cls(**data)


@dataclass(frozen=True)
class ProfileOptions:
    """``RunOptions.profile``: profile every case's first process into ``traces_root(run_file)``."""

    run_file: Path
    steps: int = DEFAULT_STEPS

    def request_for(self, case_id: str) -> ProfileRequest:
        root = traces_root(self.run_file.resolve())
        return ProfileRequest(str(root / case_slug(case_id)), str(root.parent), self.steps)


# ---------------------------------------------------------------- what a case records


@dataclass(frozen=True)
class OperatorRow:
    operator: str
    calls: int
    total_s: float
    self_s: float
    share: float          # self_s / profiled window


@dataclass(frozen=True)
class ProfileResult:
    """A case's profile: captured (with its trace and, where readable offline, its top operators) or not."""

    status: str                              # "captured" | "unavailable"
    steps: int
    tool: str | None = None                  # e.g. "torch.profiler"
    trace_dir: str | None = None             # relative to the run file's folder
    trace_file: str | None = None            # the file to open, relative to the run file's folder
    open_with: str | None = None             # how to look at it
    window_s: float | None = None            # wall time of the profiled steps
    time_basis: str | None = None            # what the operator times measure
    operators: list[OperatorRow] | None = None
    operators_reason: str | None = None      # why there is no operator table
    operators_total: int | None = None       # distinct operators before keeping the top ones
    reason: str | None = None                # why nothing was captured
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. XLA cost analysis

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileResult:
        data = dict(data)
        if data.get("operators") is not None:
            data["operators"] = [OperatorRow(**row) for row in data["operators"]]
        return cls(**data)


def unavailable(steps: int, reason: str) -> dict[str, Any]:
    return ProfileResult(status="unavailable", steps=steps, reason=reason).to_dict()


def _relative(path: str | None, run_folder: str) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path(run_folder).resolve()))
    except ValueError:
        return str(path)


def from_backend(raw: dict[str, Any], request: ProfileRequest) -> ProfileResult:
    """The record for what a session's ``profile`` returned (absolute paths made relative to the run)."""
    operators = raw.get("operators")
    rows = None if operators is None else [row if isinstance(row, OperatorRow) else OperatorRow(**row)
                                           for row in operators]
    total = len(rows) if rows is not None else None
    if rows is not None:
        rows = sorted(rows, key=lambda row: row.self_s, reverse=True)[:TOP_OPERATORS]
    return ProfileResult(
        status="captured", steps=request.steps, tool=raw.get("tool"),
        trace_dir=_relative(request.folder, request.run_folder),
        trace_file=_relative(raw.get("trace_file"), request.run_folder),
        open_with=raw.get("open_with"), window_s=raw.get("window_s"), time_basis=raw.get("time_basis"),
        operators=rows, operators_reason=raw.get("operators_reason"), operators_total=total,
        extra=raw.get("extra", {}),
    )


def capture(session: object, request: ProfileRequest) -> dict[str, Any]:
    """Profile ``session`` as asked; a failure is recorded as unavailable with the reason, never raised."""
    if not hasattr(session, "profile"):
        return unavailable(request.steps, f"{type(session).__name__} has no profile() method: "
                                          "this backend does not support --profile")
    try:
        Path(request.folder).mkdir(parents=True, exist_ok=True)
        raw = session.profile(request.steps, Path(request.folder))
        return from_backend(raw, request).to_dict()
    except Exception as error:  # profiling must never fail the case; its traceback goes to stderr
        traceback.print_exc(file=sys.stderr)
        return unavailable(request.steps, f"profiling failed: {type(error).__name__}: {error}")


def resolve_trace(run_file: Path, profile: dict[str, Any]) -> Path | None:
    """The absolute path of a case's trace file, given the run file it was recorded in."""
    relative = profile.get("trace_file")
    return None if not relative else (run_file.parent / relative)


# ---------------------------------------------------------------- operator tables from trace events


@dataclass(frozen=True)
class OpEvent:
    """One operator execution in a trace: name, the thread (or stream) it ran on, start and end (seconds)."""

    name: str
    thread: object
    start: float
    end: float


def merge_windows(windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, non-overlapping windows."""
    merged: list[list[float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _clip(event: OpEvent, windows: list[tuple[float, float]]) -> list[OpEvent]:
    return [OpEvent(event.name, event.thread, max(event.start, ws), min(event.end, we))
            for ws, we in windows if event.start < we and event.end > ws]


def _sweep(events: list[OpEvent]):
    """Yield (left, right, events running throughout [left, right)) between consecutive event boundaries."""
    points = sorted({t for e in events for t in (e.start, e.end)})
    ordered = sorted(events, key=lambda e: e.start)
    active: list[OpEvent] = []
    index = 0
    for left, right in zip(points, points[1:], strict=False):
        active = [e for e in active if e.end > left]
        while index < len(ordered) and ordered[index].start <= left:
            if ordered[index].end > left:
                active.append(ordered[index])
            index += 1
        yield left, right, active


def _innermost_segments(events: list[OpEvent]) -> list[OpEvent]:
    """Per thread, the pieces of time where each event is the innermost one running (children excluded)."""
    segments = []
    by_thread: dict[object, list[OpEvent]] = defaultdict(list)
    for event in events:
        by_thread[event.thread].append(event)
    for thread_events in by_thread.values():
        for left, right, active in _sweep(thread_events):
            if active:
                inner = max(active, key=lambda e: (e.start, -e.end))
                segments.append(OpEvent(inner.name, inner.thread, left, right))
    return segments


def _shared_wall_time(segments: list[OpEvent]) -> dict[str, float]:
    """Split every instant equally among the segments running then (one per thread at most)."""
    shares: dict[str, float] = defaultdict(float)
    for left, right, active in _sweep(segments):
        for segment in active:
            shares[segment.name] += (right - left) / len(active)
    return shares


def operator_table(events: Iterable[OpEvent],
                   windows: Iterable[tuple[float, float]]) -> tuple[list[OperatorRow], float]:
    """(rows sorted by self time, profiled window in seconds) for operator ``events`` inside ``windows``."""
    merged = merge_windows(windows)
    window_s = sum(end - start for start, end in merged)
    clipped = [piece for event in events for piece in _clip(event, merged)]
    calls: dict[str, int] = defaultdict(int)
    totals: dict[str, float] = defaultdict(float)
    for event in clipped:
        calls[event.name] += 1
        totals[event.name] += event.end - event.start
    self_times = _shared_wall_time(_innermost_segments(clipped))
    rows = [OperatorRow(name, calls[name], totals[name], self_times.get(name, 0.0),
                        self_times.get(name, 0.0) / window_s if window_s else 0.0) for name in calls]
    return sorted(rows, key=lambda row: row.self_s, reverse=True), window_s


def load_chrome_trace(path: Path) -> dict[str, Any]:
    """A Chrome trace-event JSON file (plain or .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return json.load(handle)


def newest(folder: Path, pattern: str) -> Path | None:
    """The most recently written file under ``folder`` matching ``pattern`` (recursive glob)."""
    found = sorted(folder.rglob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None
