"""Profile a few steady-state steps of a PyTorch session with ``torch.profiler``.

Each step (``step()`` + ``sync()``, exactly as timed) runs inside ``record_function("tribench_step")``;
the trace is exported as a Chrome trace (``trace.json``: chrome://tracing or ui.perfetto.dev).
The operator table comes from ``prof.key_averages()``: per operator its calls, total and self
time. On CUDA the table is in device time (``self_device_time_total``: kernels run
asynchronously, host time would only measure launches); elsewhere in host CPU time
(``self_cpu_time_total``; CPU ops finish before they return). The profiled window is the summed
duration of the step annotations. torch is imported inside ``profile`` (the table logic is plain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tribench.harness.profiling import STEP_ANNOTATION, OperatorRow

US = 1e-6
OPEN_WITH = "chrome://tracing or https://ui.perfetto.dev (open the trace.json file)"


def _on_cuda(session: Any) -> bool:
    device = getattr(session, "_device", None)
    return device is not None and device.type == "cuda"


def _rows(averages, device_time: bool) -> tuple[list[OperatorRow], float]:
    """(operator rows, window in seconds) from ``key_averages()``; the step annotation is the window."""
    window_us = sum(event.cpu_time_total for event in averages if event.key == STEP_ANNOTATION)
    rows = []
    for event in averages:
        if event.key == STEP_ANNOTATION or event.key.startswith("ProfilerStep"):
            continue
        total = event.device_time_total if device_time else event.cpu_time_total
        self_time = event.self_device_time_total if device_time else event.self_cpu_time_total
        if total <= 0 and self_time <= 0:
            continue
        rows.append(OperatorRow(event.key, int(event.count), total * US, self_time * US,
                                self_time / window_us if window_us else 0.0))
    return rows, window_us * US


def profile(session: Any, steps: int, folder: Path) -> dict[str, Any]:
    """Trace ``steps`` steps of ``session`` into ``folder``; the ``Session.profile`` result (see harness.profiling)."""
    import torch
    import torch.profiler as torch_profiler

    cuda = _on_cuda(session)
    activities = [torch_profiler.ProfilerActivity.CPU] + ([torch_profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch_profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            with torch_profiler.record_function(STEP_ANNOTATION):
                session.sync(session.step())
    trace = folder / "trace.json"
    prof.export_chrome_trace(str(trace))
    rows, window = _rows(prof.key_averages(), device_time=cuda)
    basis = ("device time per operator (self_device_time_total)" if cuda
             else "host CPU time per operator (self_cpu_time_total; CPU ops are synchronous)")
    return {
        "tool": f"torch.profiler (torch {torch.__version__})",
        "trace_file": str(trace),
        "open_with": OPEN_WITH,
        "window_s": window,
        "time_basis": f"torch.profiler key_averages(): {basis}",
        "operators": rows,
    }
