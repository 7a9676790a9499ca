"""Profile a few steady-state steps of a Paddle session with ``paddle.profiler``.

Each step (``step()`` + ``sync()``, exactly as timed) runs inside ``RecordEvent("tribench_step")``; the
trace is exported as a Chrome trace (``*.paddle_trace.json``: chrome://tracing or ui.perfetto.dev). The
operator table comes from Paddle's own statistics (``profiler_statistic.StatisticData``, what
``Profiler.summary`` prints): per operator its calls and total time; the self time is the total less
the time of other operators it ran inside it (its own phases, such as "kernel launch", are its self
time). On a GPU the table is in device time (the kernels' ``gpu_time``: kernels run asynchronously, host
time would only measure launches); elsewhere in host CPU time. The profiled window is the summed
duration of the step annotations. Paddle reports nanoseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tribench.harness.profiling import STEP_ANNOTATION, OperatorRow

NS = 1e-9
OPEN_WITH = "chrome://tracing or https://ui.perfetto.dev (open the .paddle_trace.json file)"


def _nested_time(item: Any, operators: dict[str, Any], device_time: bool) -> float:
    """Time of the operators run inside ``item``. Its ``operator_inners`` also hold the op's own phases
    ("matmul kernel launch", "matmul infer_meta", "node_creation"), which are its self time: only inners that
    are operators in their own right (a top-level item too) are nested operators."""
    inners = getattr(item, "operator_inners", None) or {}
    return sum((inner.gpu_time if device_time else inner.cpu_time) for name, inner in inners.items()
               if name in operators)


def operator_rows(items: dict[str, Any], window_ns: float, device_time: bool) -> list[OperatorRow]:
    """``OperatorRow``s from Paddle's per-operator statistics (``event_summary.items``), in seconds."""
    rows = []
    for name, item in items.items():
        total = item.gpu_time if device_time else item.cpu_time
        self_time = max(total - _nested_time(item, items, device_time), 0)
        if total <= 0 and self_time <= 0:
            continue
        rows.append(OperatorRow(str(name), int(item.call), total * NS, self_time * NS,
                                self_time / window_ns if window_ns else 0.0))
    return rows


def profile(session: Any, steps: int, folder: Path) -> dict[str, Any]:
    """Trace ``steps`` steps of ``session`` into ``folder``; the ``Session.profile`` result (see harness.profiling)."""
    import paddle
    import paddle.profiler as profiler
    from paddle.profiler import profiler_statistic

    gpu = getattr(session, "_device", "cpu") == "gpu"
    targets = [profiler.ProfilerTarget.CPU] + ([profiler.ProfilerTarget.GPU] if gpu else [])
    folder.mkdir(parents=True, exist_ok=True)
    prof = profiler.Profiler(targets=targets, on_trace_ready=profiler.export_chrome_tracing(str(folder)))
    prof.start()
    for _ in range(steps):
        with profiler.RecordEvent(STEP_ANNOTATION):
            session.sync(session.step())
        prof.step()
    prof.stop()
    result = prof.profiler_result
    statistics = profiler_statistic.StatisticData(result.get_data(), result.get_extra_info())
    summary = statistics.event_summary
    step = summary.userdefined_items.get(STEP_ANNOTATION)
    window_ns = float(step.cpu_time) if step is not None else 0.0
    traces = sorted(folder.glob("*.paddle_trace.json"))
    basis = ("device time per operator (the kernels' gpu_time)" if gpu
             else "host CPU time per operator (CPU ops are synchronous)")
    return {
        "tool": f"paddle.profiler (paddle {paddle.__version__})",
        "trace_file": str(traces[-1]) if traces else None,
        "open_with": OPEN_WITH,
        "window_s": window_ns * NS,
        "time_basis": f"paddle.profiler statistics (Profiler.summary's operator view): {basis}; self = total less "
                      "the other operators run inside it",
        "operators": operator_rows(summary.items, window_ns, device_time=gpu),
    }
