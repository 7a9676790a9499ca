"""Greedy generation with the decoder in TensorFlow (``mode = "generate"``): the prompt is prefilled, then
each new token is decoded from a preallocated KV cache passed through the step function and returned
(``tf.function`` for native, with XLA for compiled; eager for op-by-op). The function uses the Keras model's
own layers and weights (``backends.tensorflow.decoder.forward_cached``); attention runs over the whole cache
masked to the positions written so far, so one traced decode step serves every position.

One ``step`` is one request; the session times its prefill up to the first token read on the host (TTFT)
and each decode step to its token read (TPOT).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tribench.backends.base import CaseSkipped
from tribench.backends.greedy import timed_request
from tribench.backends.tensorflow import adapter, devices
from tribench.backends.tensorflow.decoder import forward_cached, new_cache
from tribench.backends.tensorflow.models import build_model
from tribench.core.spec import CaseSpec
from tribench.suites.workloads import SEED, DecoderSpec


class Generator:
    """Prefill + greedy decode for a fixed prompt; each request's timings in ``requests``."""

    def __init__(self, model: keras.Model, prompt: tf.Tensor, cache: tuple[list, list], new_tokens: int,
                 forward: Any) -> None:
        self.model, self.prompt, self.new_tokens, self._forward = model, prompt, new_tokens, forward
        self.keys, self.values = cache
        self.requests: list[dict[str, Any]] = []

    def generate(self) -> np.ndarray:
        """One request (``backends.greedy``): the generated tokens [batch, new_tokens]; its TTFT and TPOTs appended
        to ``requests``."""
        tokens, record = timed_request(lambda: self._step(self.prompt, 0),
                                       lambda token, at: self._step(token[:, None], at),
                                       lambda token: token.numpy(), int(self.prompt.shape[1]),  # the host read: synced
                                       self.new_tokens)
        self.requests.append(record)
        return np.stack(tokens, axis=1)

    def _step(self, tokens: tf.Tensor, start: int) -> tf.Tensor:
        """The greedy token after ``tokens`` placed from ``start`` on; the cache passed through and returned."""
        logits, self.keys, self.values = self._forward(tokens, self.keys, self.values, tf.constant(start))
        return tf.argmax(logits, axis=-1, output_type=tf.int32)


def build_session(case: CaseSpec, spec: DecoderSpec, memory_growth: dict[str, Any]) -> adapter.TensorFlowSession:
    if case.device == "tpu" or case.total_devices > 1:
        raise CaseSkipped("generate runs on one device (a TPU case would run on all of its cores)")
    adapter.check_case(case)
    device = devices.TF_DEVICES[case.device]
    numeric = adapter.apply_numerics(case.precision, case.device)
    policy = devices.DTYPE_POLICIES[case.precision]
    with tf.device(device), adapter.dtype_policy(policy):
        keras.utils.set_random_seed(SEED)
        model = build_model(spec)
        prompt = tf.random.stateless_uniform((case.batch_size, case.prompt), seed=[SEED, 2], minval=0,
                                             maxval=spec.vocab, dtype=tf.int32)
        compute_dtype = keras.config.dtype_policy().compute_dtype
        cache = new_cache(spec, case.batch_size, case.prompt + case.new_tokens, compute_dtype)

    def forward(tokens, keys, values, start):
        with tf.device(device):
            return forward_cached(model, tokens, keys, values, start)

    graph, xla = case.compile != "op-by-op", case.compile == "compiled"
    generator = Generator(model, prompt, cache, case.new_tokens,
                          tf.function(forward, jit_compile=xla) if graph else forward)
    cache_bytes = sum(int(np.prod(t.shape)) * t.dtype.size for t in cache[0] + cache[1])
    info = {"tf_device": device, "tf_function": graph, "jit_compile": xla, "dtype_policy": policy,
            "gpu_memory_growth": memory_growth, "numerics": numeric,
            "kv_cache": {"bytes": cache_bytes, "positions": case.prompt + case.new_tokens,
                         "dtype": cache[0][0].dtype.name}}
    session = adapter.TensorFlowSession(generator.generate, model, case.device, case.mode, info)
    session.generation_record = lambda: generator.requests
    return session
