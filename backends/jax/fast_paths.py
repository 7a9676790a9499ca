"""Which of JAX's implementations each case uses, by a stated rule, and the record of it.

The record is ``build.fast_paths`` of every process, as in the other backends: one entry per choice
the case involves, each ``{"implementation": ..., "rule": ...}`` (and ``"reason"`` when a faster path
was refused). The rules:

* ``attention`` (transformers): ``jax.nn.dot_product_attention``. Left to itself
  (``implementation=None``) it always runs XLA's einsum-softmax-einsum in JAX 0.10 ("defaults to XLA
  for now" in its source), so the backend chooses: cuDNN's fused flash attention
  (``implementation="cudnn"``) on an NVIDIA GPU when the case computes in bf16 or fp16 (the only
  dtypes that kernel takes), else XLA. JAX checks cuDNN's version, the compute capability and the
  shapes when the call is traced, so the choice is traced once at build on the case's shapes; a
  refusal falls back to XLA and the record keeps JAX's reason.
* ``optimizer`` (training): ``optax.adam``; under ``jax.jit`` XLA fuses the update into the step's
  one program, op-by-op dispatches each of its ops.
* ``recurrent`` (LSTMs): a ``lax.scan`` over the time steps, one XLA loop. (JAX's cuDNN LSTM lives in
  ``jax.experimental.rnn``; an experimental API is not used.)
* ``memory_format`` (CNNs): inputs are NHWC as Flax's convolutions take them; XLA picks the layouts
  inside the program.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax

from tribench.backends.jax.devices import DeviceFacts

CUDNN_ATTENTION_DTYPES = ("bf16", "fp16")
ATTENTION_RULE = ("jax.nn.dot_product_attention: implementation='cudnn' on NVIDIA GPUs in bf16/fp16 when JAX "
                  "accepts it for these shapes, else 'xla'")
OPTIMIZER_RULE = "optax.adam inside the step: one XLA program under jax.jit"
MEMORY_FORMAT_RULE = "NHWC inputs, as Flax's convolutions take them; XLA picks the layouts inside the program"
RECURRENT_RULE = "lax.scan over time steps (XLA while loop); jax.experimental.rnn's cuDNN LSTM is not used"


def cudnn_attention_refusal(batch: int, length: int, heads: int, head_dim: int, dtype: Any,
                            kv_heads: int | None = None, causal: bool = False) -> str | None:
    """None if JAX accepts cuDNN attention for these shapes here, else its reason (traced, not run);
    ``kv_heads`` fewer than ``heads``: grouped-query attention; ``causal``: ``is_causal``."""
    query = jax.ShapeDtypeStruct((batch, length, heads, head_dim), dtype)
    key = jax.ShapeDtypeStruct((batch, length, kv_heads or heads, head_dim), dtype)
    try:
        jax.eval_shape(partial(jax.nn.dot_product_attention, implementation="cudnn", is_causal=causal),
                       query, key, key)
    except Exception as error:  # noqa: BLE001 - JAX raises RuntimeError, ValueError, NotImplementedError...
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'}"
    return None


def attention_implementation(facts: DeviceFacts, precision: str,
                             refusal: Callable[[], str | None]) -> tuple[str, str | None]:
    """(implementation for ``jax.nn.dot_product_attention``, why not cudnn or None); see ``ATTENTION_RULE``."""
    if facts.gpu_vendor != "cuda":
        return "xla", f"cuDNN attention needs an NVIDIA GPU; this device is {facts.gpu_vendor or facts.platform}"
    if precision not in CUDNN_ATTENTION_DTYPES:
        return "xla", f"cuDNN's fused attention computes in bf16 or fp16 only; this case is {precision}"
    reason = refusal()
    if reason:
        return "xla", f"JAX refused cuDNN attention: {reason}"
    return "cudnn", None


def record(*, cnn: bool, attention: tuple[str, str | None] | None, recurrent: bool, train: bool,
           jitted: bool) -> dict[str, dict[str, Any]]:
    """``build.fast_paths``: the choices this case involves, each with its implementation and rule."""
    paths: dict[str, dict[str, Any]] = {}
    if cnn:
        paths["memory_format"] = {"implementation": "NHWC (XLA layouts)", "rule": MEMORY_FORMAT_RULE}
    if attention is not None:
        implementation, reason = attention
        paths["attention"] = {"implementation": f"jax.nn.dot_product_attention ({implementation})",
                              "rule": ATTENTION_RULE, **({"reason": reason} if reason else {})}
    if recurrent:
        paths["recurrent"] = {"implementation": "lax.scan LSTM", "rule": RECURRENT_RULE}
    if train:
        paths["optimizer"] = {"implementation": "optax.adam " + ("fused by XLA in the jitted step" if jitted
                                                                else "dispatched op by op"),
                              "rule": OPTIMIZER_RULE}
    return paths

