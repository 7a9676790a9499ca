"""Run files -> one pandas DataFrame, one row per case per run.

Columns: the run (``run_id``, ``run_file``, ``started_at``, ``hostname``,
``fingerprint``, ``git_commit``, ``tags``), the spec (``case_id`` and one column
per spec field), ``status`` and ``error``, and the metrics, flattened with the
unit in the column name (``throughput_samples_per_s``, ``step_time_p50_s``,
``device_peak_memory_bytes`` ...). Each memory column has a ``*_source``
column beside it; missing readings are NaN with the reason in ``*_reason``.
Energy: ``energy_per_sample_j`` (measured only; NaN with ``energy_reason``
otherwise) with its ``energy_method``, ``energy_source`` and ``energy_scope``,
and the derived J/token, samples/J, average W and net-of-idle J/sample. A generate case adds its
generation figures (``reports.generation_figures``: ``ttft_s`` with its CI and pooled percentiles,
``tpot_*_s``, ``decode_tokens_per_s``, ``prefill_tokens_per_s``, ``kv_cache_bytes``, ``decode_mfu`` ...);
other cases leave them NaN.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tribench.core.spec import CaseSpec
from tribench.harness.results import load_run
from tribench.reports.generation_figures import GENERATION_NUMERIC, generation_columns
from tribench.reports.report_format import quality_text

SPEC_FIELDS = [name for name in CaseSpec.__dataclass_fields__]
# fields added to the spec later (env, devices) take their default in older run files
SPEC_DEFAULTS = {name: f.default for name, f in CaseSpec.__dataclass_fields__.items()
                 if f.default is not dataclasses.MISSING}
STEP_FIELDS = ("median", "mean", "stdev", "min", "max", "p50", "p90", "p99", "iqr", "noise", "ci_low", "ci_high")


def _metric_value(metrics: dict[str, Any] | None, name: str) -> float | None:
    if not metrics or name not in metrics:
        return None
    return metrics[name].get("value")


def device_memory(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """The device peak to show: the backend's first measured peak reading, else why there is none.

    Backends list their readings most meaningful first (e.g. allocated before reserved); the
    harness's own host readings are named ``host_*``.
    """
    device = [reading for reading in readings  # a growth over the window's start is not a peak
              if not reading["name"].startswith("host_") and not reading["name"].endswith("_growth")]
    measured = [reading for reading in device if reading.get("value") is not None]
    peaks = [reading for reading in measured if "peak" in reading["name"]]
    if peaks or measured:
        chosen = (peaks or measured)[0]
        return {"device_peak_memory_bytes": chosen["value"], "device_peak_memory_source": chosen["source"],
                "device_peak_memory_reason": None}
    reasons = [reading["reason"] for reading in device if reading.get("reason")]
    return {"device_peak_memory_bytes": None, "device_peak_memory_source": None,
            "device_peak_memory_reason": reasons[0] if reasons else "the backend gave no device memory reading"}


def _host_memory(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker's lifetime peak RSS, and what warm-up and measurement added (``harness.probes.memory``)."""
    columns: dict[str, Any] = {"host_peak_rss_bytes": None, "host_peak_rss_source": None,
                               "host_rss_growth_window_bytes": None}
    for reading in readings:
        if reading["name"] == "host_peak_rss":
            columns.update(host_peak_rss_bytes=reading.get("value"), host_peak_rss_source=reading["source"])
        elif reading["name"] == "host_rss_growth_window":
            columns["host_rss_growth_window_bytes"] = reading.get("value")
    return columns


def _value(entry: dict[str, Any] | None) -> float | None:
    return (entry or {}).get("value")


def energy_columns(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The case's measured energy (never an estimate) and where it came from, or why there is none."""
    energy = (metrics or {}).get("energy") or {}
    throttle = ((metrics or {}).get("telemetry") or {}).get("throttle") or {}
    return {
        "energy_per_sample_j": energy.get("value"),
        "energy_method": energy.get("method"),
        "energy_source": energy.get("source"),
        "energy_scope": energy.get("scope"),
        "energy_reason": energy.get("reason"),
        "energy_per_token_j": _value(energy.get("per_token")),
        "samples_per_joule": _value(energy.get("samples_per_joule")),
        "average_power_w": _value(energy.get("average_power")),
        "energy_net_per_sample_j": _value(energy.get("net")),
        "gpu_throttled": throttle.get("throttled"),
    }


ENERGY_NUMERIC = ("energy_per_sample_j", "energy_per_token_j", "samples_per_joule", "average_power_w",
                  "energy_net_per_sample_j")

NUMERIC_COLUMNS = (
    "throughput_samples_per_s", "throughput_tokens_per_s", *(f"step_time_{n}_s" for n in STEP_FIELDS if n != "noise"),
    "noise_iqr_over_median", "samples", "compile_time_s", "params", "flops_per_step", "device_peak_memory_bytes",
    "host_peak_rss_bytes", *ENERGY_NUMERIC, *GENERATION_NUMERIC,
)


def case_row_columns() -> list[str]:
    """The columns of an empty frame (the same as ``case_row`` produces)."""
    empty = {"id": "", "spec": {}, "status": None}
    return list(case_row({}, empty, ""))


def case_row(run: dict[str, Any], case: dict[str, Any], run_file: str) -> dict[str, Any]:
    env = run.get("environment", {})
    metrics = case.get("metrics")
    step = (metrics or {}).get("step_time", {})
    readings = (metrics or {}).get("memory", [])
    row: dict[str, Any] = {
        "run_id": run.get("run_id"),
        "run_file": run_file,
        "started_at": run.get("started_at"),
        "hostname": env.get("machine", {}).get("hostname"),
        "fingerprint": env.get("fingerprint"),
        "git_commit": env.get("git", {}).get("commit"),
        "tags": ",".join(f"{k}={v}" for k, v in sorted(run.get("tags", {}).items())),
        "case_id": case["id"],
        **{name: case["spec"].get(name, SPEC_DEFAULTS.get(name)) for name in SPEC_FIELDS},
        "status": case.get("status"),
        "error": case.get("error"),
        "repeats": len(case.get("repeats", [])),
        "throughput_samples_per_s": _metric_value(metrics, "throughput"),
        "throughput_tokens_per_s": _metric_value(metrics, "token_throughput"),
        **{f"step_time_{name}_s" if name != "noise" else "noise_iqr_over_median": step.get(name)
           for name in STEP_FIELDS},
        "samples": step.get("n"),
        "ci_basis": step.get("ci_basis"),
        "processes": step.get("processes"),
        "between_process_cv": step.get("between_process_cv"),
        "process_flags": quality_text(step),
        "compile_time_s": _metric_value(metrics, "compile_time"),
        "params": _metric_value(metrics, "params"),
        "flops_per_step": case.get("workload", {}).get("flops_per_step", {}).get("value"),
        **device_memory(readings),
        **_host_memory(readings),
        **energy_columns(metrics),
        **generation_columns(metrics),
    }
    return row


def load(paths: Iterable[str | os.PathLike], redact: bool = False):
    """Load run files into a DataFrame (one row per case per run); bad files raise ResultFileError.
    ``redact``: share-safe copies (``reports.share_safe``), each known by its file name."""
    import pandas as pd

    rows = []
    for path in paths:
        run = load_run(path)
        if redact:
            from tribench.reports.share_safe import redact_run

            run, path = redact_run(run), Path(path).name
        rows.extend(case_row(run, case, str(path)) for case in run["cases"])
    frame = pd.DataFrame(rows, columns=list(case_row_columns()) if not rows else None)
    for column in NUMERIC_COLUMNS:  # a column of missing readings is NaN, not an object column of None
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    return frame
