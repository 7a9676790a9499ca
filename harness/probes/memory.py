"""Host memory of the worker process, from the kernel's own high-water marks (no polling).

Three readings, each naming the part of the process's life it covers (``span``):
* ``host_peak_rss`` — ``getrusage(RUSAGE_SELF).ru_maxrss``: the process's peak
  resident set over its whole life (framework import, model build, compile step, measurement).
* ``host_peak_rss_window`` — ``VmHWM`` from ``/proc/self/status`` after the
  peak was reset by writing ``5`` to ``/proc/self/clear_refs`` right after the compile step
  (``mark_window``): the peak during warm-up and measurement alone.
* ``host_rss_growth_window`` — that window peak minus the resident set at the reset (``VmRSS``):
  what the measured steps added on top of the framework, the model and the compiled step. This is
  the figure that compares like with like across frameworks, whose imports alone differ by hundreds
  of MiB. Where the reset is refused (older kernels, some sandboxes), both window readings say so.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

from tribench.core.readings import Reading

PROC = Path("/proc/self")
LIFETIME = "the whole process: framework import, model build, compile step and measurement"
AFTER_COMPILE = "from the end of the compile step: warm-up and measurement"


@dataclass(frozen=True)
class WindowMark:
    """The reset of the peak-RSS mark after the compile step: the resident set then, or why there is none."""

    baseline_bytes: int | None
    error: str | None = None


def _read_status(proc: Path, field: str) -> int:
    for line in (proc / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field} line in /proc/self/status")


def _read_vm_hwm(proc: Path) -> int:
    return _read_status(proc, "VmHWM")


def reset_window_peak(proc: Path = PROC) -> str | None:
    """Reset the kernel's peak-RSS mark; return None on success or the reason it failed."""
    try:
        (proc / "clear_refs").write_text("5")
        return None
    except OSError as error:
        return f"cannot reset the peak RSS mark ({proc / 'clear_refs'}: {error.strerror or error})"


def mark_window(proc: Path = PROC) -> WindowMark:
    """Reset the peak-RSS mark and read the resident set it starts from (called right after the compile step)."""
    error = reset_window_peak(proc)
    if error:
        return WindowMark(None, error)
    try:
        return WindowMark(_read_status(proc, "VmRSS"))
    except OSError as failure:
        return WindowMark(None, str(failure))


def process_peak_rss() -> Reading:
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kibibytes
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return Reading("host_peak_rss", "bytes", "getrusage(RUSAGE_SELF).ru_maxrss", "process", float(value),
                   span=LIFETIME)


def window_peak_rss(mark: WindowMark, proc: Path = PROC) -> Reading:
    source = "/proc/self/status VmHWM after clear_refs=5 at the end of the compile step"
    if mark.error:
        return Reading.unavailable("host_peak_rss_window", "bytes", source, "process", mark.error, AFTER_COMPILE)
    try:
        return Reading("host_peak_rss_window", "bytes", source, "process", float(_read_vm_hwm(proc)),
                       span=AFTER_COMPILE)
    except OSError as error:
        return Reading.unavailable("host_peak_rss_window", "bytes", source, "process", str(error), AFTER_COMPILE)


def window_growth_rss(mark: WindowMark, proc: Path = PROC) -> Reading:
    """The window's peak RSS minus the RSS at its start: what warm-up and measurement added."""
    source = "VmHWM after clear_refs=5 minus VmRSS then, at the end of the compile step"
    if mark.error or mark.baseline_bytes is None:
        return Reading.unavailable("host_rss_growth_window", "bytes", source, "process",
                                   mark.error or "no resident set at the window's start", AFTER_COMPILE)
    try:
        return Reading("host_rss_growth_window", "bytes", source, "process",
                       float(max(0, _read_vm_hwm(proc) - mark.baseline_bytes)), span=AFTER_COMPILE)
    except OSError as error:
        return Reading.unavailable("host_rss_growth_window", "bytes", source, "process", str(error), AFTER_COMPILE)
