"""Profile a few steady-state steps of a TensorFlow session with ``tf.profiler.experimental``.

Each step (``step()`` + ``sync()``, exactly as timed) runs inside
``tf.profiler.experimental.Trace("tribench_step", step_num=i, _r=1)`` (a step marker). The
profiler writes the XSpace, ``<folder>/plugins/profile/<timestamp>/<host>.xplane.pb``, which
TensorBoard's profile plugin (XProf) displays: ``tensorboard --logdir <folder>``, Profile tab.

It is also read offline, without a server: the ``XSpace`` protobuf schema ships with TensorFlow
(``tensorflow.tsl.profiler.protobuf.xplane_pb2``), and ``backends.tensorflow.xplane`` turns the
parsed message into the operator table. Should the schema module be missing (another TensorFlow
build), the case says so instead of showing a table. TensorFlow is imported inside ``profile``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tribench.backends.tensorflow.xplane import table_from_xspace
from tribench.harness.profiling import STEP_ANNOTATION, newest


def _load_xspace(path: Path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    return space


def profile(session: Any, steps: int, folder: Path) -> dict[str, Any]:
    """Trace ``steps`` steps of ``session`` into ``folder``; the ``Session.profile`` result (see harness.profiling)."""
    from tribench.backends.tensorflow.devices import require_keras_on_tensorflow

    require_keras_on_tensorflow(os.environ)  # before TensorFlow imports Keras (a no-op once the adapter ran)
    import tensorflow as tf

    tf.profiler.experimental.start(str(folder))
    try:
        for index in range(steps):
            with tf.profiler.experimental.Trace(STEP_ANNOTATION, step_num=index, _r=1):
                session.sync(session.step())
    finally:
        tf.profiler.experimental.stop()
    xplane = newest(folder, "*.xplane.pb")
    result: dict[str, Any] = {
        "tool": f"tf.profiler.experimental (TensorFlow {tf.__version__})",
        "trace_file": str(xplane or folder),
        "open_with": ("TensorBoard's profile plugin: pip install tensorboard tensorboard-plugin-profile && "
                      f"tensorboard --logdir {folder} (Profile tab)"),
    }
    if xplane is None:
        return {**result, "operators": None, "operators_reason": "the TensorFlow profiler wrote no .xplane.pb"}
    try:
        space = _load_xspace(xplane)
    except Exception as error:  # the schema module moved or the protobuf runtime refuses it: say so
        return {**result, "operators": None, "operators_reason": (
            f"the .xplane.pb could not be parsed offline with what is installed ({type(error).__name__}: {error}); "
            "open it in TensorBoard's profile plugin")}
    rows, window, what = table_from_xspace(space)
    return {**result, "operators": rows, "window_s": window,
            "time_basis": f"{what} in the .xplane.pb (parsed offline with xplane_pb2); self time shared "
                          "between concurrently running threads"}
