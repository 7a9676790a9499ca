"""The terminal summary of a run: one row per case, every figure with its unit."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from reports import units
from reports.frame import device_memory

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red", "timeout": "red"}
NOISE_WARNING = 0.10  # IQR/median above this is flagged


def _peak_memory(case: dict[str, Any]) -> str:
    """Device allocator peak on accelerators; on the CPU the worker's peak RSS for every backend.

    Frameworks' CPU allocators count different things (TensorFlow's oneDNN allocator keeps
    statistics, torch's keeps none), so on the CPU only the kernel's RSS mark compares like with like.
    """
    readings = case["metrics"].get("memory", [])
    device = device_memory(readings)
    if case["spec"]["device"] != "cpu" and device["device_peak_memory_bytes"] is not None:
        return f"{units.bytes_(device['device_peak_memory_bytes'])} (device)"
    host = next((r for r in readings if r["name"] == "host_peak_rss" and r.get("value") is not None), None)
    return f"{units.bytes_(host['value'])} (host RSS)" if host else "n/a"


def _throughput(metrics: dict[str, Any]) -> str:
    text = units.rate(metrics["throughput"]["value"], "samples/s")
    if "token_throughput" in metrics:
        text += f"\n{units.rate(metrics['token_throughput']['value'], 'tokens/s')}"
    return text


def _noise(step: dict[str, Any]) -> str:
    noise = step.get("noise")
    text = units.percent(noise)
    return f"[bold red]{text} ![/]" if noise is not None and noise > NOISE_WARNING else text


def case_cells(case: dict[str, Any]) -> list[str]:
    status = case.get("status", "?")
    style = STATUS_STYLE.get(status, "white")
    metrics = case.get("metrics")
    if not metrics:
        reason = (case.get("error") or "").splitlines()[0][:120] if case.get("error") else ""
        return [escape(case["id"]), f"[{style}]{status}[/]", escape(reason), "", "", "", ""]
    step = metrics["step_time"]
    return [
        escape(case["id"]), f"[{style}]{status}[/]", _throughput(metrics), units.seconds(step["p50"]),
        units.seconds(step["p99"]), _noise(step), _peak_memory(case),
    ]


def summary_table(run: dict[str, Any]) -> Table:
    table = Table(title=f"tribench run {run.get('run_id')}", show_lines=False)
    for column in ("case", "status", "throughput", "p50", "p99", "noise (IQR/median)", "peak memory"):
        table.add_column(column, overflow="fold")
    for case in run["cases"]:
        table.add_row(*case_cells(case))
    return table
