"""The terminal summary of a run: one row per case, every figure with its unit."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from tribench.reports import units
from tribench.reports.frame import device_memory
from tribench.reports.generation_figures import (
    GENERATION_COLUMNS,
    GENERATION_LEGEND,
    generation_cells,
    missing_peak_reasons,
)
from tribench.reports.report_format import (
    ci_basis_text,
    execution_legend,
    quality_flags,
    threads_line,
    throughput_legend,
)

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
    growth = next((r for r in readings if r["name"] == "host_rss_growth_window" and r.get("value") is not None), None)
    if not host:
        return "n/a"
    # the lifetime peak is mostly the framework's import; the growth is what the measured steps added
    return f"{units.bytes_(host['value'])} (host RSS)" + (f"\n+{units.bytes_(growth['value'])} after compile"
                                                          if growth else "")


def _throughput(metrics: dict[str, Any]) -> str:
    text = units.rate(metrics["throughput"]["value"], "samples/s")
    if "token_throughput" in metrics:
        text += f"\n{units.rate(metrics['token_throughput']['value'], 'tokens/s')}"
    return text


def _noise(step: dict[str, Any]) -> str:
    noise = step.get("noise")
    text = units.percent(noise)
    return f"[bold red]{text} ![/]" if noise is not None and noise > NOISE_WARNING else text


def _joules(value: float) -> str:
    for scale, unit in ((1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} nJ"


def energy_cell(metrics: dict[str, Any]) -> str:
    """Measured joules per sample, or "n/a: <short reason>"; an estimate is never shown here."""
    energy = metrics.get("energy")
    if not energy:
        return "n/a: not recorded"
    if energy.get("value") is None:
        reason = energy.get("short_reason") or energy.get("reason") or "unavailable"
        return f"n/a: {escape(reason)}"
    text = f"{_joules(energy['value'])}/sample"
    if (metrics.get("telemetry") or {}).get("throttle", {}).get("throttled"):
        text += "\n[bold red]throttled[/]"
    return text


def mfu_cell(metrics: dict[str, Any]) -> str:
    """MFU (achieved / measured device peak) over the achieved FLOP/s; "n/a" when no peak is known."""
    achieved = (metrics.get("achieved_flops_per_s") or {}).get("value")
    mfu = (metrics.get("mfu") or {}).get("value")
    text = "n/a" if mfu is None else units.percent(mfu)
    return text if achieved is None else f"{text}\n{units.rate(achieved, 'FLOP/s')}"


def mfu_caption(run: dict[str, Any]) -> str | None:
    """Why MFU is n/a, once for the table (the first reason found), or None when every ok case has it."""
    for case in run["cases"]:
        mfu = (case.get("metrics") or {}).get("mfu") or {}
        if mfu and mfu.get("value") is None:
            return f"MFU n/a: {escape(mfu.get('reason') or 'no measured peak')}"
    return None


def case_cells(case: dict[str, Any]) -> list[str]:
    status = case.get("status", "?")
    style = STATUS_STYLE.get(status, "white")
    metrics = case.get("metrics")
    if not metrics:
        reason = (case.get("error") or "").splitlines()[0][:120] if case.get("error") else ""
        return [escape(case["id"]), f"[{style}]{status}[/]", escape(reason), "", "", "", "", "", ""]
    step = metrics["step_time"]
    return [
        escape(case["id"]), f"[{style}]{status}[/]", f"{_throughput(metrics)}\n{_ci_from(step)}",
        units.seconds(step["p50"]),
        units.seconds(step["p99"]), _noise(step), _peak_memory(case), energy_cell(metrics), mfu_cell(metrics),
    ]


def _ci_from(step: dict[str, Any]) -> str:
    """What the case's CI is made from, and its process flags in bold red (``reports.report_format``)."""
    lines = [escape(ci_basis_text(step.get("ci_basis"), step.get("processes")))]
    return "\n".join(lines + [f"[bold red]{escape(flag)}[/]" for flag in quality_flags(step)])


def summary_table(run: dict[str, Any]) -> Table:
    caption = "\n".join(filter(None, [mfu_caption(run), *map(escape, throughput_legend(run["cases"])),
                                      *map(escape, execution_legend(run["cases"])),
                                      escape(threads_line(run) or "")]))
    table = Table(title=f"tribench run {run.get('run_id')}", show_lines=False, caption=caption or None)
    for column in ("case", "status", "throughput (CI from)", "p50", "p99", "noise (IQR/median)", "peak memory",
                   "energy/sample", "MFU"):
        table.add_column(column, overflow="fold", no_wrap=column == "case")  # ids stay whole: users search them
    for case in run["cases"]:
        table.add_row(*case_cells(case))
    return table


def generation_table(rows: list[dict[str, str]], reasons: list[str], title: str = "generation",
                     with_run: bool = False) -> Table:
    """Generate cases' plain-text figures (``reports.generation_figures``; rows with a "run" label when
    ``with_run``), with the definitions and why MFU or the bandwidth fraction is n/a in the caption."""
    caption = "\n".join([GENERATION_LEGEND, *(f"MFU or bandwidth fraction n/a: {reason}" for reason in reasons)])
    table = Table(title=title, caption=escape(caption))
    for column in (["run"] if with_run else []) + list(GENERATION_COLUMNS):
        table.add_column(column, overflow="fold", no_wrap=column == "case")
    for row in rows:
        table.add_row(*([escape(row["run"])] if with_run else []), *(escape(row[c]) for c in GENERATION_COLUMNS))
    return table


def generation_summary(run: dict[str, Any]) -> Table | None:
    """The run's ok generate cases: TTFT, TPOT, tokens/s, KV cache, MFU and decode bandwidth; None without any."""
    figures = [(case["id"], case["metrics"]["generation"]) for case in run["cases"]
               if case.get("status") == "ok" and (case.get("metrics") or {}).get("generation")]
    if not figures:
        return None
    rows = [generation_cells(case_id, generation) for case_id, generation in figures]
    return generation_table(rows, missing_peak_reasons([generation for _, generation in figures]))


def _gpu_text(device: dict[str, Any]) -> str:
    how = ("energy counter" if device["energy_counter"] else "power sampling" if device["power_reading"]
           else "no counter and no power reading")
    return f"GPU {device['index']} {device['name']}: {how}"


def energy_sources_table(sources: list[dict[str, Any]]) -> Table:
    """``tribench env``: each energy source, whether this machine offers it, and why not."""
    table = Table(title="energy sources")
    for column in ("source", "for", "available", "domains / devices, or why not"):
        table.add_column(column, overflow="fold", no_wrap=column == "case")  # ids stay whole: users search them
    for source in sources:
        if source["available"]:
            found = source.get("domains") or [_gpu_text(device) for device in source.get("devices", [])]
            detail = ", ".join(str(item) for item in found)
        else:
            detail = source.get("reason") or "unavailable"
        table.add_row(escape(source["source"]), escape(source.get("for", "")),
                      "[green]yes[/]" if source["available"] else "[red]no[/]", escape(detail))
    return table
