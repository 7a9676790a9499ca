"""A plugin workload (``suites.plugins``) in TensorFlow: the plugin's Keras model, batch and loss, built under
the case's Keras dtype policy, trained with the built-in workloads' Adam (loss-scaled for fp16) inside the
same ``tf.function`` (XLA for compiled, eager for op-by-op), on one device.

Without an analytic FLOP formula the step's FLOPs come from TensorFlow's own counter
(``tf.compat.v1.profiler`` float operations over the traced step's graph; ``build.counted_flops``),
taken once at build time, outside the timed steps: the step is traced a second time for it (its Python
runs again; nothing executes). The counter reaches the profiler through ``tensorflow.python.profiler``,
the module ``tf.compat.v1.profiler`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from tribench.backends import plugin_support
from tribench.backends.base import CaseSkipped
from tribench.backends.tensorflow import adapter, devices
from tribench.core.spec import CaseSpec
from tribench.suites.plugins import Workload

COUNTER_SOURCE = ("tf.compat.v1.profiler float_operation() over the graph of one traced {what} at build time "
                  "(ops without a registered FLOP count count 0)")
ON_TPU = "plugin workloads run on one device; a TPU case runs on all of its cores (TPUStrategy)"


def checked_loss(loss: Callable[[Any, Any], Any], workload: str) -> Callable[[Any, Any], tf.Tensor]:
    """The plugin's loss as float32, refusing (one line, when the step is traced) anything but a scalar."""

    def compute(outputs: Any, targets: Any) -> tf.Tensor:
        value = tf.convert_to_tensor(loss(outputs, targets))
        if value.shape.rank != 0:
            raise plugin_support.not_scalar(workload, tuple(value.shape))
        return tf.cast(value, tf.float32)

    return compute


def count_flops(step: Callable[[], Any], train: bool) -> dict[str, Any]:
    from tensorflow.python.profiler import model_analyzer, option_builder

    what = "train step (forward, backward and the Adam update)" if train else "forward pass"
    graph = tf.function(step).get_concrete_function().graph
    options = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation()
                                                  ).with_empty_output().build()
    total = model_analyzer.profile(graph, options=options).total_float_ops
    return {"value": int(total), "unit": "FLOP", "source": COUNTER_SOURCE.format(what=what)}


def build_session(case: CaseSpec, workload: Workload, memory_growth: dict[str, Any]) -> adapter.TensorFlowSession:
    if case.device == "tpu":
        raise CaseSkipped(ON_TPU)
    adapter.check_case(case)
    xla = case.compile == "compiled"
    device = devices.TF_DEVICES[case.device]
    numeric = adapter.apply_numerics(case.precision, case.device)
    train = case.mode == "train"
    with tf.device(device), adapter.dtype_policy(devices.DTYPE_POLICIES[case.precision]):
        keras.utils.set_random_seed(plugin_support.SEED)
        parts = plugin_support.parts_for(workload, case, "tensorflow", device)
        model, inputs, targets = parts.model, parts.inputs, parts.targets
        if not getattr(model, "built", True) or not model.trainable_variables:
            model(inputs, training=False)  # Keras builds its weights on the first call
        if train:
            optimizer = adapter.make_optimizer(case.precision, model.trainable_variables)
            step = adapter.train_step_fn(model, optimizer, inputs, targets,
                                         loss_function=checked_loss(parts.loss, workload.name))
        else:
            step = adapter.infer_step_fn(model, inputs)
    placed = adapter.placed_on(device, step)
    graph = case.compile != "op-by-op"
    function = tf.function(placed, jit_compile=xla) if graph else placed
    counted = (count_flops(placed, train)
               if workload.flops_per_step(case.size, case.mode, case.batch_size) is None else None)
    info = {"tf_device": device, "replicas": 1, "tf_function": graph, "jit_compile": xla,
            "dtype_policy": devices.DTYPE_POLICIES[case.precision], "gpu_memory_growth": memory_growth,
            "numerics": numeric, "workload_plugin": plugin_support.record(workload, "tensorflow")}
    if counted:
        info["counted_flops"] = counted
    return adapter.TensorFlowSession(function, model, case.device, case.mode, info)
