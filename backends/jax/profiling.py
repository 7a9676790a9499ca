"""Profile a few steady-state steps of a JAX session with ``jax.profiler.trace``.

Each step (``step()`` + ``sync()``, exactly as timed) runs inside
``StepTraceAnnotation("tribench_step")``. The profiler writes, under
``<folder>/plugins/profile/<timestamp>/``, the XSpace (``*.xplane.pb``: TensorBoard's profile
plugin / XProf), its Chrome-trace conversion (``*.trace.json.gz``) and, asked with
``create_perfetto_trace``, ``perfetto_trace.json.gz`` for https://ui.perfetto.dev.

The operator table is read offline from ``*.trace.json.gz``: the XLA operations are the events
carrying an ``hlo_op`` argument (one per HLO instruction execution: fusions, convolutions,
dots, copies); on a GPU or TPU the device's events are used, not the host's launches. Times
follow ``harness.profiling.operator_table`` (self time shared between concurrent threads, so
XLA:CPU's thread pool cannot add up to more than the window).

For a jitted step the compiled program's XLA cost analysis (``flops``, ``bytes accessed``) is
recorded too: the roofline uses its bytes as the arithmetic-intensity denominator.
jax is imported inside ``profile``; reading the trace needs nothing but the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tribench.harness.profiling import STEP_ANNOTATION, OpEvent, load_chrome_trace, newest, operator_table

US = 1e-6
XLA_OPS_LINE = "XLA Ops"


def _thread_names(events: list[dict[str, Any]]) -> tuple[dict[Any, str], dict[Any, str]]:
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    return processes, threads


def _xla_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The XLA op executions: on an accelerator its device lines (the derived "XLA Ops" line where present)."""
    processes, threads = _thread_names(events)
    ops = [e for e in events if e.get("ph") == "X" and "hlo_op" in e.get("args", {})]
    on_device = [e for e in ops if processes.get(e["pid"], "").startswith("/device:")]
    if not on_device:
        return ops
    xla_line = [e for e in on_device if threads.get((e["pid"], e["tid"])) == XLA_OPS_LINE]
    return xla_line or on_device


def table_from_trace(trace: dict[str, Any]) -> tuple[list, float]:
    """(operator rows, window seconds) from a jax.profiler Chrome trace (timestamps in microseconds)."""
    events = trace.get("traceEvents", [])
    windows = [(e["ts"] * US, (e["ts"] + e["dur"]) * US) for e in events
               if e.get("ph") == "X" and e.get("name") == STEP_ANNOTATION]
    ops = [OpEvent(e["args"]["hlo_op"], (e["pid"], e["tid"]), e["ts"] * US, (e["ts"] + e["dur"]) * US)
           for e in _xla_events(events)]
    return operator_table(ops, windows)


def cost_analysis(session: Any) -> dict[str, Any] | None:
    """XLA's cost analysis of the jitted step (flops, bytes accessed), or None for eager steps."""
    run = getattr(session, "_run", None)
    if not hasattr(run, "lower"):
        return None
    if getattr(session, "_train", False):
        args = (session._state, session._inputs, session._targets)
    else:
        args = (session._variables, session._inputs)
    analysis = run.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):      # older jax returned one dict per computation
        analysis = analysis[0] if analysis else {}
    keep = {"flops": "flops", "bytes accessed": "bytes_accessed"}
    return {"source": "jax.jit(step).lower(...).compile().cost_analysis()",
            **{ours: float(analysis[theirs]) for theirs, ours in keep.items() if theirs in analysis}}


def profile(session: Any, steps: int, folder: Path) -> dict[str, Any]:
    """Trace ``steps`` steps of ``session`` into ``folder``; the ``Session.profile`` result (see harness.profiling)."""
    import jax

    with jax.profiler.trace(str(folder), create_perfetto_trace=True):
        for index in range(steps):
            with jax.profiler.StepTraceAnnotation(STEP_ANNOTATION, step_num=index):
                session.sync(session.step())
    trace_json = newest(folder, "*.trace.json.gz")
    perfetto = newest(folder, "perfetto_trace.json.gz")
    result: dict[str, Any] = {
        "tool": f"jax.profiler.trace (jax {jax.__version__})",
        "trace_file": str(perfetto or trace_json or folder),
        "open_with": ("https://ui.perfetto.dev (open perfetto_trace.json.gz), or TensorBoard with the profile "
                      f"plugin: pip install tensorboard-plugin-profile && tensorboard --logdir {folder}"),
        "time_basis": "XLA op executions (events with an hlo_op) in the *.trace.json.gz trace; self time "
                      "shared between concurrently running threads",
    }
    if trace_json is None:
        result.update(operators=None, operators_reason="jax.profiler wrote no *.trace.json.gz to read operators from")
    else:
        rows, window = table_from_trace(load_chrome_trace(trace_json))
        result.update(operators=rows, window_s=window)
    cost = cost_analysis(session)
    if cost:
        result["extra"] = {"xla_cost_analysis": cost}
    return result
