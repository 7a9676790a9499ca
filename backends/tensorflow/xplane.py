"""Operators from a TensorFlow profiler XSpace (``*.xplane.pb``), read offline: plain code over the protobuf.

The ``XSpace`` schema ships with TensorFlow (``tensorflow.tsl.profiler.protobuf.xplane_pb2``);
``profiling.py`` parses the file with it, this module only walks the parsed message (so it is
tested without TensorFlow). An XSpace has planes (``/host:CPU``, ``/device:GPU:0``, ...), a plane
has lines (threads, streams), a line has events: ``metadata_id`` names the event through the
plane's ``event_metadata``, ``offset_ps`` counts from the line's ``timestamp_ns``, and each
event's stats name their kind through the plane's ``stat_metadata``.

Operators are:

* XLA op executions (events with an ``hlo_op`` stat) when the step was XLA-compiled;
* otherwise TensorFlow op executions, the executor's ``"<op name>:<op type>"`` events on the
  compute threads, grouped by op type (``MatMul``, ``_MklNativeFusedConv2D``, ...);

on a GPU the device plane's events are used instead of the host's. The profiled window is the
``tribench_step`` step markers on the host plane.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tribench.harness.profiling import STEP_ANNOTATION, OperatorRow, OpEvent, operator_table

PS = 1e-12
TF_OP = re.compile(r"^[^\s:]+:(?P<type>[A-Za-z_][A-Za-z0-9_]*)$")   # "dense/MatMul:MatMul"
HOST_PLANE = "/host:CPU"
PYTHON_LINE = "python"


def plane_events(plane: Any) -> Iterator[tuple[str, set[str], Any, float, float]]:
    """(event name, names of its stats, its line, start s, end s) of every event on ``plane``."""
    stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
    for line in plane.lines:
        base_ps = line.timestamp_ns * 1000
        for event in line.events:
            start = (base_ps + event.offset_ps) * PS
            names = {stat_names.get(stat.metadata_id, "") for stat in event.stats}
            yield plane.event_metadata[event.metadata_id].name, names, line, start, start + event.duration_ps * PS


def table_from_xspace(space: Any) -> tuple[list[OperatorRow], float, str]:
    """(operator rows, window seconds, what the rows are) from a TensorFlow profiler XSpace."""
    host = next((plane for plane in space.planes if plane.name == HOST_PLANE), None)
    if host is None:
        return [], 0.0, "no host plane in the trace"
    windows = [(start, end) for name, _, _, start, end in plane_events(host) if name == STEP_ANNOTATION]
    device_planes = [plane for plane in space.planes if plane.name.startswith("/device:GPU")]
    events = [(plane, *event) for plane in (device_planes or [host]) for event in plane_events(plane)]
    xla = [OpEvent(name, (plane.id, line.id), start, end)
           for plane, name, stats, line, start, end in events if "hlo_op" in stats]
    if xla:
        return (*operator_table(xla, windows), "XLA op executions (events with an hlo_op stat)")
    ops = [OpEvent(match["type"], (plane.id, line.id), start, end)
           for plane, name, _, line, start, end in events
           if line.name != PYTHON_LINE and (match := TF_OP.match(name))]
    return (*operator_table(ops, windows), "TensorFlow op executions grouped by op type")
