"""Profile a few steady-state steps of a Paddle session with ``paddle.profiler``.

Each step (``step()`` + ``sync()``, exactly as timed) runs inside ``RecordEvent("tribench_step")``; the
trace is exported as a Chrome trace (``*.paddle_trace.json``: chrome://tracing or ui.perfetto.dev). The
operator table comes from Paddle's own event tree (``profiler_statistic.wrap_tree``, what
``Profiler.summary`` is built from): per operator its calls and total time; the self time is the total
less the operators it ran inside it. Its own phases ("kernel launch", "infer_meta") are its self time; a
to_static program's node waits while the program's ``pd_op.*`` operators run on the executor's thread, so
their time is theirs, not counted twice (``operator_rows``). On a GPU the table is in
device time (the kernels' ``gpu_time``: kernels run asynchronously, host time would only measure
launches); elsewhere in host CPU time. The profiled window is the summed duration of the step
annotations. Paddle reports nanoseconds.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

from tribench.harness.profiling import STEP_ANNOTATION, OperatorRow

NS = 1e-9
OPEN_WITH = "chrome://tracing or https://ui.perfetto.dev (open the .paddle_trace.json file)"


def nested_operators(node: Any, operator_type: Any) -> list[Any]:
    """The operators run inside ``node`` on its own thread: its nearest descendants of ``operator_type``, found
    through the nodes between them (an op's own phases such as "kernel launch")."""
    found, stack = [], list(node.children_node)
    while stack:
        child = stack.pop()
        if child.type == operator_type:
            found.append(child)
        else:
            stack.extend(child.children_node)
    return found


def top_level_operators(nodes: list[Any], operator_type: Any) -> list[Any]:
    """The operators of one thread's nodes that no other operator of that thread holds, by start time."""
    held = {id(inner) for node in nodes if node.type == operator_type
            for inner in nested_operators(node, operator_type)}
    return sorted((node for node in nodes if node.type == operator_type and id(node) not in held),
                  key=lambda node: node.start_ns)


def _within(node: Any, others: list[Any], starts: list[int]) -> list[Any]:
    """The operators of ``others`` (one other thread's, sorted by start) that ran entirely inside ``node``."""
    first = bisect.bisect_left(starts, node.start_ns)
    last = bisect.bisect_right(starts, node.end_ns)
    return [other for other in others[first:last] if other.end_ns <= node.end_ns]


def operator_rows(threads: dict[Any, list[Any]], operator_type: Any, window_ns: float,
                  device_time: bool) -> list[OperatorRow]:
    """``OperatorRow``s (seconds) from the profiled event tree (``profiler_statistic.wrap_tree``: thread ->
    nodes): per operator name its calls, total time, and self time = total less the operators run inside it.

    Inside means: the nearest operators below it on its own thread, and the operators another thread ran
    entirely within its time. A to_static program's node (``Global_Dy2StGradNode``, ``run_program``) waits
    while the program's ``pd_op.*`` operators run on the executor's thread: their time is theirs, not counted
    twice. Dygraph runs nothing on other threads meanwhile, so its operators keep their own time."""
    def timed(node: Any) -> float:
        return node.gpu_time if device_time else node.cpu_time

    tops = {thread: top_level_operators(nodes, operator_type) for thread, nodes in threads.items()}
    starts = {thread: [node.start_ns for node in nodes] for thread, nodes in tops.items()}
    summed: dict[str, list[float]] = {}
    for thread, nodes in threads.items():
        for node in nodes:
            if node.type != operator_type:
                continue
            inside = nested_operators(node, operator_type) + [
                other for peer in tops if peer != thread for other in _within(node, tops[peer], starts[peer])]
            total = timed(node)
            entry = summed.setdefault(str(node.name), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += total
            entry[2] += max(total - sum(timed(child) for child in inside), 0)
    return [OperatorRow(name, int(calls), total * NS, self_time * NS, self_time / window_ns if window_ns else 0.0)
            for name, (calls, total, self_time) in summed.items() if total > 0 or self_time > 0]


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
    step = statistics.event_summary.userdefined_items.get(STEP_ANNOTATION)
    window_ns = float(step.cpu_time) if step is not None else 0.0
    _, threads = profiler_statistic.wrap_tree(result.get_data())
    events = {thread: nodes[1:] for thread, nodes in threads.items()}  # each thread's root is not an event
    rows = operator_rows(events, profiler.TracerEventType.Operator, window_ns, device_time=gpu)
    traces = sorted(folder.glob("*.paddle_trace.json"))
    basis = ("device time per operator (the kernels' gpu_time)" if gpu
             else "host CPU time per operator (CPU ops are synchronous)")
    return {
        "tool": f"paddle.profiler (paddle {paddle.__version__})",
        "trace_file": str(traces[-1]) if traces else None,
        "open_with": OPEN_WITH,
        "window_s": window_ns * NS,
        "time_basis": f"paddle.profiler's event tree (what Profiler.summary is built from): {basis}; self = total "
                      "less the operators run inside it",
        "operators": rows,
    }
