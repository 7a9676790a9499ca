"""The compact per-case summary the markdown and terminal formats share, as plain, unescaped text.

Each output format escapes these strings its own way (markdown control characters and HTML,
or rich markup), so the numbers are formatted once and the escaping stays at the edge.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tribench.reports import units
from tribench.reports.dataset import ReportData
from tribench.reports.generation_figures import generation_cells, missing_peak_reasons
from tribench.reports.html.charts import NOISE_WARNING
from tribench.reports.report_format import ci_basis_text, ci_text, missing, number

SUMMARY_COLUMNS = ("case", "status", "throughput (samples/s)", "95% CI", "CI from", "p50", "p99", "noise",
                   "process flags", "peak memory", "energy")


def peak_memory_text(row) -> str:
    """Device allocator peak on accelerators; the worker's peak RSS on the CPU (same rule as the run summary)."""
    if row["device"] != "cpu" and not missing(row["device_peak_memory_bytes"]):
        return f"{units.bytes_(row['device_peak_memory_bytes'])} (device)"
    if not missing(row["host_peak_rss_bytes"]):
        growth = row.get("host_rss_growth_window_bytes")
        text = f"{units.bytes_(row['host_peak_rss_bytes'])} (host RSS)"
        return text + (f", +{units.bytes_(growth)} after compile" if not missing(growth) else "")
    return "n/a"


def noisy(row) -> bool:
    value = row["noise_iqr_over_median"]
    return not missing(value) and value > NOISE_WARNING


def summary_row(row) -> dict[str, Any]:
    """Plain-text cells of one ok case (see SUMMARY_COLUMNS), plus its run label and noise flag."""
    energy = row["energy_j_per_sample"]
    return {
        "run": row["run_label"],
        "case": row["case_id"],
        "status": row["status"],
        "throughput (samples/s)": number(row["throughput_samples_per_s"]),
        "95% CI": ci_text(row["throughput_ci_low"], row["throughput_ci_high"]),
        "CI from": ci_basis_text(row["ci_basis"], row["processes"]),
        "process flags": row["process_flags"] or "–",
        "p50": units.seconds(None if missing(row["step_time_p50_s"]) else row["step_time_p50_s"]),
        "p99": units.seconds(None if missing(row["step_time_p99_s"]) else row["step_time_p99_s"]),
        "noise": units.percent(None if missing(row["noise_iqr_over_median"]) else row["noise_iqr_over_median"]),
        "noisy": noisy(row),
        "peak memory": peak_memory_text(row),
        "energy": "not measured" if missing(energy) else f"{energy:.4g} J/sample",
    }


def ok_rows(data: ReportData) -> list[dict[str, Any]]:
    return [summary_row(row) for _, row in data.ok.iterrows()]


def generation_rows(data: ReportData) -> list[dict[str, str]]:
    """Plain-text generation figures (``GENERATION_COLUMNS``) of every ok generate case, with its run label."""
    rows = data.ok[(data.ok["mode"] == "generate") & data.ok["generation"].map(bool)]
    return [{"run": row["run_label"], **generation_cells(row["case_id"], row["generation"])}
            for _, row in rows.iterrows()]


def generation_reasons(data: ReportData) -> list[str]:
    """Why MFU or decode's bandwidth fraction is n/a for some ok generate case, once per reason."""
    return missing_peak_reasons([g for g in data.ok[data.ok["mode"] == "generate"]["generation"] if g])


def problem_rows(data: ReportData) -> list[dict[str, str]]:
    """Failed, timed-out and skipped cases with the first line of their reason."""
    rows = []
    for _, row in data.problems.iterrows():
        reason = str(row["error"] or "no reason recorded").strip().splitlines() or ["no reason recorded"]
        rows.append({"run": row["run_label"], "case": row["case_id"], "status": row["status"], "reason": reason[0]})
    return rows


def energy_reasons(data: ReportData) -> list[tuple[str, int]]:
    """Why energy was not measured, with how many ok cases each reason covers."""
    unmeasured = data.ok[data.ok["energy_j_per_sample"].isna()]
    return sorted(Counter(str(r) for r in unmeasured["energy_reason"]).items())


def status_counts(data: ReportData) -> str:
    counts = Counter(data.frame["status"])
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda item: (item[0] != "ok", item[0])))
