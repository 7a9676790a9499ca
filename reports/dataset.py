"""Run files -> what every report format shows: the runs, one row per case per run, series and colours.

Built on ``reports.frame.case_row`` (the shared flat columns) and adds what reports need on top:
the throughput's 95% CI (from the median step time's CI: throughput = batch / median, so the
bounds swap), energy per sample (read defensively: a run file may have none), the raw step-time
samples, and the labels charts group by (``task`` = workload-size, ``variant`` = mode, batch,
precision and compile mode, ``series`` = backend plus device and run when those vary).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tribench.core.errors import TribenchError
from tribench.harness.efficiency import efficiency_columns, roofline_point
from tribench.harness.results import load_run
from tribench.reports.energy_reading import energy_per_sample
from tribench.reports.frame import NUMERIC_COLUMNS, case_row

# Fixed colours for the built-in backends; others take the next free one, in name order.
BACKEND_COLOURS = {"torch": "#EE4C2C", "tensorflow": "#F2A900", "jax": "#5E35B1"}
SPARE_COLOURS = ("#2E7D32", "#00838F", "#6D4C41", "#546E7A", "#AD1457", "#9E9D24", "#1565C0", "#EF6C00")
PATTERNS = ("", "/", "x", ".", "+", "\\", "-", "|")  # one per device/run combination, same colour per backend
MODE_ORDER = {"train": 0, "infer": 1, "generate": 2}
EXTRA_NUMERIC = ("throughput_ci_low", "throughput_ci_high", "energy_j_per_sample", "setup_time_s",
                 "achieved_flops_per_s", "mfu", "spec_fraction", "mfu_peak_flops_per_s", "total_devices",
                 "scaling_efficiency")


@dataclass(frozen=True)
class Run:
    path: Path
    data: dict[str, Any]
    label: str

    @property
    def environment(self) -> dict[str, Any]:
        return self.data.get("environment") or {}

    @property
    def fingerprint(self) -> str | None:
        return self.environment.get("fingerprint")


@dataclass
class ReportData:
    runs: list[Run]
    frame: Any  # pandas.DataFrame, one row per case per run
    colours: dict[str, str] = field(default_factory=dict)
    patterns: dict[str, str] = field(default_factory=dict)
    series_title: str = "backend"  # what a series name is made of, e.g. "backend · device · run"

    @property
    def ok(self):
        return self.frame[self.frame["status"] == "ok"]

    @property
    def problems(self):
        return self.frame[self.frame["status"] != "ok"]

    def fingerprints_differ(self) -> bool:
        return len({run.fingerprint for run in self.runs}) > 1


def fingerprint_differences(data: ReportData) -> list[tuple[str, list[str]]]:
    """(field, value per run) for each fingerprint input that differs between the runs."""
    inputs = [run.environment.get("fingerprint_inputs") or {} for run in data.runs]
    names = list(dict.fromkeys(name for item in inputs for name in item))
    differing = []
    for name in names:
        values = [json.dumps(item.get(name), sort_keys=True) for item in inputs]
        if len(set(values)) > 1:
            differing.append((name, values))
    return differing


def run_labels(paths: list[Path], datas: list[dict[str, Any]]) -> list[str]:
    """A short, unique label per run: its run id, or its file name when ids repeat."""
    ids = [str(data.get("run_id") or path.stem) for path, data in zip(paths, datas, strict=True)]
    labels = [ids[i] if ids.count(ids[i]) == 1 else f"{ids[i]} ({paths[i].name})" for i in range(len(ids))]
    return [label if labels.count(label) == 1 else f"{label} #{i + 1}" for i, label in enumerate(labels)]


def load_runs(paths: Iterable[str | os.PathLike], redact: bool = False) -> list[Run]:
    """Read every run file (a bad one raises ResultFileError: one line, exit 2); ``redact``: share-safe copies
    (``reports.share_safe``), each known by its file name only."""
    paths = [Path(path) for path in paths]
    datas = [load_run(path) for path in paths]
    if redact:
        from tribench.reports.share_safe import redact_run

        datas = [redact_run(data) for data in datas]
        paths = [Path(path.name) for path in paths]
    return [Run(path, data, label) for path, data, label in zip(paths, datas, run_labels(paths, datas), strict=True)]


def pooled_samples(case: dict[str, Any]) -> list[float]:
    """Raw measured step times of every successful process of a case (what the summaries came from)."""
    samples: list[float] = []
    for repeat in case.get("repeats") or []:
        if repeat.get("status") == "ok":
            samples.extend((repeat.get("timing") or {}).get("samples_s") or [])
    return [float(value) for value in samples]


def pooled_generation(case: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Every measured request's TTFT and every decode step's TPOT of every successful process of a generate
    case (``harness.generation``), in seconds; two empty lists for any other case."""
    ttft: list[float] = []
    tpot: list[float] = []
    for repeat in case.get("repeats") or []:
        record = repeat.get("generation") or {}
        if repeat.get("status") == "ok":
            ttft.extend(float(value) for value in record.get("ttft_s") or [])
            tpot.extend(float(step) for request in record.get("tpot_s") or [] for step in request)
    return ttft, tpot


def throughput_ci(batch_size: Any, step: dict[str, Any],
                  throughput: dict[str, Any] | None = None) -> tuple[float | None, float | None]:
    """95% CI of throughput: its own where it has one (the sustained figure, ``harness.sustained``), else from
    the median step time's CI (older files); (None, None) with too few samples for one."""
    if throughput and throughput.get("basis") == "sustained":
        return throughput.get("ci_low"), throughput.get("ci_high")
    low, high = step.get("ci_low"), step.get("ci_high")
    if not isinstance(batch_size, int | float) or not low or not high:
        return None, None
    return batch_size / high, batch_size / low


def total_devices(spec: dict[str, Any]) -> int:
    """Data-parallel devices over every host (``nodes`` x ``devices``); older run files lack both: 1."""
    return int(spec.get("nodes") or 1) * int(spec.get("devices") or 1)


def parallel_suffix(spec: dict[str, Any]) -> str:
    """`` · x2`` for 2 devices on one host, `` · 2x4`` for 2 hosts of 4, as in the case id; nothing for 1 device."""
    nodes, devices = int(spec.get("nodes") or 1), int(spec.get("devices") or 1)
    if nodes > 1:
        return f" · {nodes}x{devices}"
    return f" · x{devices}" if devices > 1 else ""


def generation_suffix(spec: dict[str, Any]) -> str:
    """`` · p128n128`` for a generate case (prompt and new tokens, as in the case id); nothing otherwise."""
    return f" · p{spec.get('prompt')}n{spec.get('new_tokens')}" if spec.get("mode") == "generate" else ""


def variant_label(spec: dict[str, Any]) -> str:
    setting = (f"{spec.get('mode')} · bs{spec.get('batch_size')}{generation_suffix(spec)} · {spec.get('precision')}"
               f" · {spec.get('compile')}")
    return setting + parallel_suffix(spec)  # a data-parallel case is not drawn on top of its 1-device point


def parallel_columns(case: dict[str, Any]) -> dict[str, Any]:
    """Data-parallel figures (harness.distributed): devices in all, scaling efficiency or why it is absent,
    the slowest rank and each rank's throughput. A 1-device case is its own baseline: no efficiency, no reason."""
    spec, metrics = case.get("spec") or {}, case.get("metrics") or {}
    total = total_devices(spec)
    efficiency = metrics.get("scaling_efficiency") or {}
    reason = None
    if total > 1 and efficiency.get("value") is None:
        reason = ((efficiency.get("reason") or "not computed for this case") if case.get("status") == "ok"
                  else f"the case did not finish ({case.get('status')})")
    ranks = metrics.get("ranks") or []
    slowest = (metrics.get("slowest_rank") or {}).get("value")
    slowest_step = next(((r.get("step_time") or {}).get("median") for r in ranks if r.get("rank") == slowest), None)
    return {"total_devices": total, "scaling_efficiency": efficiency.get("value"),
            "scaling_efficiency_reason": reason,
            "rank_throughputs": [(r.get("throughput") or {}).get("value") for r in ranks],
            "slowest_rank": slowest, "slowest_rank_step_s": slowest_step}


def report_row(run: Run, case: dict[str, Any]) -> dict[str, Any]:
    spec = case.get("spec") or {}
    metrics = case.get("metrics") or {}
    step = metrics.get("step_time") or {}
    ci_low, ci_high = throughput_ci(spec.get("batch_size"), step, metrics.get("throughput"))
    energy = energy_per_sample(metrics) if case.get("status") == "ok" else {}
    ttft_samples, tpot_samples = pooled_generation(case)
    row = case_row(run.data, {**case, "spec": spec}, str(run.path))
    row.update({
        "run_label": run.label,
        "task": f"{spec.get('workload')}-{spec.get('size')}",
        "variant": variant_label(spec),
        "throughput_ci_low": ci_low,
        "throughput_ci_high": ci_high,
        "setup_time_s": (metrics.get("setup_time") or {}).get("value"),
        "energy_j_per_sample": energy.get("value"),
        "energy_source": energy.get("source"),
        "energy_method": energy.get("method"),
        "energy_reason": energy.get("reason"),
        "samples_s": pooled_samples(case),
        "ttft_samples_s": ttft_samples,
        "tpot_samples_s": tpot_samples,
        "generation": metrics.get("generation"),
        "stderr_tail": next((r.get("stderr_tail") for r in reversed(case.get("repeats") or [])
                             if r.get("stderr_tail")), ""),
        "memory_readings": metrics.get("memory") or [],
        **efficiency_columns(case),
        **parallel_columns(case),
        "profile": metrics.get("profile"),
        **roofline_columns(run, case),
    })
    return row


def roofline_columns(run: Run, case: dict[str, Any]) -> dict[str, Any]:
    """The case's roofline point (``harness.efficiency.roofline_point``), or why it has none."""
    if case.get("status") != "ok":
        return {"roofline": None, "roofline_reason": "the case did not finish"}
    try:
        point = roofline_point(case, run.data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, TribenchError) as error:  # a foreign or old file
        return {"roofline": None, "roofline_reason": f"no arithmetic intensity for this case: {error!r}"}
    if point is None and "achieved_flops_per_s" in (case.get("metrics") or {}):
        return {"roofline": None, "roofline_reason": "no estimate of the bytes a step moves for this workload (a "
                                                     "plugin workload has no architecture to derive it from)"}
    if point is None:
        return {"roofline": None, "roofline_reason": "no achieved FLOP/s in the run file (written before tribench "
                                                     "computed efficiency)"}
    return {"roofline": point, "roofline_reason": None}


def _series_title(frame) -> str:
    parts = ["backend"]
    if frame["device"].nunique() > 1:
        parts.append("device")
    if frame["run_label"].nunique() > 1:
        parts.append("run")
    return " · ".join(parts)


def _series_names(frame) -> Any:
    many_devices = frame["device"].nunique() > 1
    many_runs = frame["run_label"].nunique() > 1

    def name(row) -> str:
        parts = [str(row["backend"])]
        if many_devices:
            parts.append(str(row["device"]))
        if many_runs:
            parts.append(str(row["run_label"]))
        return " · ".join(parts)

    return frame.apply(name, axis=1) if len(frame) else frame["backend"]


def backend_colours(backends: Iterable[str]) -> dict[str, str]:
    """Same backend, same colour, in every chart of a report."""
    colours: dict[str, str] = {}
    spare = iter(SPARE_COLOURS * 8)
    for name in sorted(set(backends)):
        colours[name] = BACKEND_COLOURS.get(name) or next(spare)
    return colours


def series_patterns(frame) -> dict[str, str]:
    """One bar pattern per device/run combination, so series of one backend stay apart."""
    combos = list(dict.fromkeys(zip(frame["device"], frame["run_label"], strict=True)))
    pattern_of = {combo: PATTERNS[i % len(PATTERNS)] for i, combo in enumerate(combos)}
    return {series: pattern_of[(device, run)]
            for series, device, run in zip(frame["series"], frame["device"], frame["run_label"], strict=True)}


def build(runs: list[Run]) -> ReportData:
    """Everything a report shows, derived from the run files alone."""
    import pandas as pd

    rows = [report_row(run, case) for run in runs for case in run.data["cases"]]
    frame = pd.DataFrame(rows, columns=list(report_row(_EMPTY_RUN, _EMPTY_CASE)) if not rows else None)
    for column in (*NUMERIC_COLUMNS, *EXTRA_NUMERIC):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["batch_size"] = pd.to_numeric(frame["batch_size"], errors="coerce").astype("float64")
    for column in ("backend", "device", "workload", "size", "mode", "precision", "compile", "status"):
        frame[column] = frame[column].astype(str)
    frame["series"] = _series_names(frame)
    frame["run_order"] = frame["run_label"].map({run.label: i for i, run in enumerate(runs)})
    frame["mode_order"] = frame["mode"].map(MODE_ORDER).fillna(len(MODE_ORDER))
    order = ["run_order", "workload", "size", "mode_order", "mode", "batch_size", "precision", "compile", "device",
             "backend"]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return ReportData(runs=runs, frame=frame, colours=backend_colours(frame["backend"]),
                      patterns=series_patterns(frame), series_title=_series_title(frame))


def load(paths: Iterable[str | os.PathLike], redact: bool = False) -> ReportData:
    return build(load_runs(paths, redact))


_EMPTY_RUN = Run(Path("-"), {}, "-")
_EMPTY_CASE: dict[str, Any] = {"id": "", "spec": {}, "status": None}
