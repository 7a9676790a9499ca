"""Host memory of the worker process, from the kernel's own high-water marks (no polling).

Two readings:
* ``host_peak_rss`` — ``getrusage(RUSAGE_SELF).ru_maxrss``: the process's peak
  resident set over its whole life (imports and model build included).
* ``host_peak_rss_window`` — ``VmHWM`` from ``/proc/self/status`` after the
  peak was reset by writing ``5`` to ``/proc/self/clear_refs`` just before the
  timed steps: the peak during warm-up and measurement alone. Where the reset
  is refused (older kernels, some sandboxes), the reading says so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from harness.readings import Reading

PROC = Path("/proc/self")


def _read_vm_hwm(proc: Path) -> int:
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM line in /proc/self/status")


def reset_window_peak(proc: Path = PROC) -> str | None:
    """Reset the kernel's peak-RSS mark; return None on success or the reason it failed."""
    try:
        (proc / "clear_refs").write_text("5")
        return None
    except OSError as error:
        return f"cannot reset the peak RSS mark ({proc / 'clear_refs'}: {error.strerror or error})"


def process_peak_rss() -> Reading:
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kibibytes
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return Reading("host_peak_rss", "bytes", "getrusage(RUSAGE_SELF).ru_maxrss", "process", float(value))


def window_peak_rss(reset_error: str | None, proc: Path = PROC) -> Reading:
    source = "/proc/self/status VmHWM after clear_refs=5"
    if reset_error:
        return Reading.unavailable("host_peak_rss_window", "bytes", source, "process", reset_error)
    try:
        return Reading("host_peak_rss_window", "bytes", source, "process", float(_read_vm_hwm(proc)))
    except OSError as error:
        return Reading.unavailable("host_peak_rss_window", "bytes", source, "process", str(error))
