"""Which of TensorFlow's and Keras's implementations each case uses, by a stated rule, and the record of it.

The record is ``build.fast_paths`` of every process, as in the other backends: one entry per choice
the case involves, each ``{"implementation": ..., "rule": ...}``. Keras 3 on TensorFlow leaves little
to choose; the record says what runs:

* ``memory_format`` (CNNs): Keras's ``channels_last`` (NHWC), native to TensorFlow's CPU and cuDNN
  convolutions; inside a graph on a GPU, Grappler's layout optimizer may still transpose fp32
  convolutions to NCHW.
* ``attention`` (transformers): ``layers.MultiHeadAttention`` calls ``keras.ops.dot_product_attention``
  (einsum, softmax, einsum). Keras's TensorFlow backend has no flash-attention kernel (it raises if
  one is asked for), so there is nothing faster to pick; under ``jit_compile`` XLA fuses it.
* ``recurrent`` (LSTMs): cuDNN's LSTM kernel on a GPU when the step is not XLA-compiled (cuDNN's
  kernel cannot be; ``models.build_model``), else Keras's generic loop.
* ``optimizer`` (training): ``keras.optimizers.Adam`` inside the step's graph (fused by XLA under
  ``jit_compile``); op-by-op runs it eagerly.
"""

from __future__ import annotations

from typing import Any

MEMORY_FORMAT_RULE = "Keras channels_last (NHWC), TensorFlow's native layout; Grappler may re-layout on GPUs"
ATTENTION_RULE = "keras.ops.dot_product_attention: the TensorFlow backend of Keras has no flash-attention kernel"
RECURRENT_RULE = "Keras LSTM: cuDNN on a GPU unless XLA-compiled (cuDNN's kernel cannot be), else its generic loop"
OPTIMIZER_RULE = "keras.optimizers.Adam inside the step: one graph with the model under tf.function"


def execution(graph: bool, xla: bool) -> str:
    """How the step's ops run: 'XLA-compiled', 'tf.function graph' or 'eager'."""
    return "XLA-compiled" if xla else ("tf.function graph" if graph else "eager")


def record(*, cnn: bool, transformer: bool, recurrent: bool, train: bool, device: str, graph: bool,
           xla: bool) -> dict[str, dict[str, Any]]:
    """``build.fast_paths``: the choices this case involves, each with its implementation and rule."""
    how = execution(graph, xla)
    paths: dict[str, dict[str, Any]] = {}
    if cnn:
        paths["memory_format"] = {"implementation": "channels_last (NHWC)", "rule": MEMORY_FORMAT_RULE}
    if transformer:
        paths["attention"] = {"implementation": f"keras.ops.dot_product_attention ({how})", "rule": ATTENTION_RULE}
    if recurrent:
        cudnn = device == "gpu" and not xla
        paths["recurrent"] = {"implementation": "cuDNN LSTM" if cudnn else f"Keras generic LSTM loop ({how})",
                              "rule": RECURRENT_RULE}
    if train:
        paths["optimizer"] = {"implementation": f"keras.optimizers.Adam ({how})", "rule": OPTIMIZER_RULE}
    return paths
