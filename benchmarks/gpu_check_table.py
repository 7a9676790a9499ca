"""The one table ``benchmarks/gpu_check.sh`` ends with: every case of its run beside the bare-loop check.

    python benchmarks/gpu_check_table.py RUN.json BARE.json

Per case: status, sustained throughput, p50 latency, measured energy per sample (or why not), MFU
(or why not), the device allocator's peak, the kernel choice the backend recorded (a transformer's
attention implementation, a CNN's memory format: ``build.fast_paths``), and, where the bare-loop check
ran the case, tribench's sustained throughput over the bare loop's (median over pairs). A skipped or
failed case shows its reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tribench.harness.results import load_run  # noqa: E402
from tribench.reports import units  # noqa: E402
from tribench.reports.frame import device_memory  # noqa: E402


def _measured(metric: dict | None, text) -> str:
    if not metric:
        return "n/a"
    if metric.get("value") is None:
        return "n/a: " + str(metric.get("short_reason") or metric.get("reason") or "unavailable")[:40]
    return text(metric["value"])


def kernel_choice(case: dict) -> str:
    """The attention implementation or memory format the case's first process recorded, or '–'."""
    processes = [process for process in case.get("repeats", []) if process.get("build")]
    paths = processes[0]["build"].get("fast_paths", {}) if processes else {}
    chosen = paths.get("attention") or paths.get("memory_format")
    return chosen["implementation"] if chosen else "–"


def rows(run: dict, bare: dict[str, dict]) -> list[list[str]]:
    table = []
    for case in run["cases"]:
        metrics = case.get("metrics") or {}
        if case.get("status") != "ok" or not metrics:
            table.append([case["id"], case.get("status") or "?", (case.get("error") or "")[:70], "", "", "", "", "",
                          ""])
            continue
        memory = device_memory(metrics.get("memory", []))
        check = bare.get(case["id"])
        table.append([
            case["id"], "ok",
            units.rate(metrics["throughput"]["value"], "samples/s") + f" ({metrics['throughput'].get('basis')})",
            units.seconds(metrics["step_time"]["median"]),
            _measured(metrics.get("energy"), lambda value: f"{value:.3g} J/sample"),
            _measured(metrics.get("mfu"), lambda value: f"{value:.1%}"),
            units.bytes_(memory["device_peak_memory_bytes"]) if memory["device_peak_memory_bytes"] else "n/a",
            kernel_choice(case),
            f"{check['ratio']:.3f} [{check['low']:.3f}, {check['high']:.3f}]" if check else "–",
        ])
    return table


def main(argv: list[str]) -> int:
    run = load_run(Path(argv[0]))
    bare_path = Path(argv[1]) if len(argv) > 1 else None
    bare = {row["case"]: row for row in json.loads(bare_path.read_text())} if bare_path and bare_path.exists() else {}
    header = ["case", "status", "throughput", "p50 latency", "energy", "MFU", "device peak", "kernel choice",
              "tribench/bare loop"]
    body = rows(run, bare)
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *body]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
