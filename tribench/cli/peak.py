"""``tribench peak``: measure (or show the cached) device peaks through each installed framework.

Light to import (registered by ``tribench.cli``): no framework, no pandas. Measuring happens in
one worker process per framework (``harness.peak``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tribench.core.errors import InvalidChoice
from tribench.core.spec import split_list

DEVICE_KINDS = ("cpu", "gpu", "tpu", "mps")
PRECISION_COLUMNS = ("fp32", "tf32", "bf16", "fp16")


def _flops(value: float) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}FLOP/s"
    return f"{value:.3g} FLOP/s"


def _spec_note(device_name: str | None, precision: str, value: float) -> str:
    from tribench.harness import datasheet

    spec, _ = datasheet.spec_flops(device_name, precision)
    return f"\n{value / spec:.0%} of spec" if spec else ""


def _matmul_cell(entry: dict[str, Any], precision: str) -> str:
    peak = entry["matmul"].get(precision) or {}
    if peak.get("value") is None:
        return "[dim]skipped*[/]"
    return _flops(peak["value"]) + _spec_note(entry.get("device_name"), precision, peak["value"])


def _bandwidth_cell(entry: dict[str, Any]) -> str:
    from tribench.harness import datasheet

    bandwidth = entry.get("bandwidth") or {}
    if bandwidth.get("value") is None:
        return f"[dim]{escape(bandwidth.get('reason') or 'not measured')}[/]"
    spec, _ = datasheet.spec_bandwidth(entry.get("device_name"))
    note = f"\n{bandwidth['value'] / spec:.0%} of spec" if spec else ""
    return f"{bandwidth['value'] / 1e9:.3g} GB/s{note}"


def skip_reasons(report) -> list[str]:
    """One line per precision a device skipped, with the reason (the table only marks them)."""
    lines = []
    for row in report.rows:
        for precision, peak in ((row.entry or {}).get("matmul") or {}).items():
            if peak.get("value") is None:
                lines.append(f"{row.backend} {row.device} {precision}: {peak.get('reason') or 'not measured'}")
    return lines


def peak_table(report) -> Table:
    """One row per backend x device: matmul peak per precision, copy bandwidth, cached or measured now."""
    table = Table(title=f"measured peaks (best of repeats; machine {report.fingerprint})")
    for column in ("backend", "device", *PRECISION_COLUMNS, "copy bandwidth", "origin"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        if row.entry is None:
            table.add_row(row.backend, row.device, f"[red]{escape(row.reason or 'no result')}[/]",
                          *[""] * (len(PRECISION_COLUMNS) + 1))
            continue
        entry = row.entry
        origin = f"{row.origin} ({entry.get('measured_at', '?')})"
        table.add_row(escape(row.backend), f"{escape(row.device)}\n{escape(entry.get('device_name') or '')}",
                      *[_matmul_cell(entry, p) for p in PRECISION_COLUMNS], _bandwidth_cell(entry), escape(origin))
    return table


def _wanted(backend: str | None, device: str | None) -> tuple[list[str], list[str] | None]:
    from tribench import backends

    names = split_list(backend) or backends.names()
    for name in names:
        backends.entry(name)  # InvalidChoice names the valid ones
    devices = split_list(device) or None
    for kind in devices or []:
        if kind not in DEVICE_KINDS:
            raise InvalidChoice("device", kind, DEVICE_KINDS)
    return names, devices


def peak(
    backend: str | None = typer.Option(None, help="Backends, comma-separated (default: every installed one)."),
    device: str | None = typer.Option(None, help="Devices, comma-separated: cpu,gpu,tpu,mps (default: all seen)."),
    refresh: bool = typer.Option(False, "--refresh", help="Measure again even where the cache has a result."),
    size: int | None = typer.Option(None, help="Matmul size n (n x n); default by device: 2048 CPU, 8192 GPU/TPU."),
    copy_mib: int | None = typer.Option(None, "--copy-mib", help="Copy buffer MiB; default 128 CPU, 1024 GPU/TPU."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
) -> None:
    """Measure the achievable dense-matmul FLOP/s per precision and copy bandwidth of each device (cached)."""
    from tribench.harness import availability, environment
    from tribench.harness import peak as peaks
    from tribench.harness.peak_measure import PeakOptions

    names, devices = _wanted(backend, device)
    options = PeakOptions(matmul_size=size, copy_bytes=copy_mib * 2**20 if copy_mib is not None else None)
    err = Console(stderr=True)
    with err.status("asking each framework (one process each)…"):
        infos = {name: availability.query(name) for name in names}
    wanted, missing = {}, []
    for name, info in infos.items():
        if not info.installed or not info.devices:
            missing.append(f"{name}: {info.reason or 'no devices'}")
            continue
        wanted[name] = [kind for kind in info.devices if devices is None or kind in devices]
    versions = {name: infos[name].version for name in wanted}
    with err.status("measuring peaks (one process per framework)…"):
        report = peaks.get_peaks(wanted, versions, environment.capture({}), options, refresh=refresh)
    if as_json:
        print(json.dumps({"machine_fingerprint": report.fingerprint, "cache_file": str(report.cache_file),
                          "rows": [vars(row) for row in report.rows], "missing": missing}, indent=1))
        return
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(peak_table(report))
    for line in skip_reasons(report):
        out.print(f"[dim]* {escape(line)}[/]")
    for line in missing:
        out.print(f"[yellow]not measured[/] {escape(line)}")
    out.print(f"cache: {escape(str(report.cache_file))}")
