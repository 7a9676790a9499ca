"""Greedy generation with the decoder in TensorFlow (``mode = "generate"``): the prompt is prefilled, then
each new token is decoded from a preallocated KV cache passed through the step function and returned
(``tf.function`` for native, with XLA for compiled; eager for op-by-op). The function uses the Keras model's
own layers and weights (``backends.tensorflow.decoder.forward_cached``); attention runs over the whole cache
masked to the positions written so far, so one traced decode step serves every position.

One ``step`` is one request; the session times its prefill up to the first token read on the host (TTFT)
and each decode step to its token read (TPOT).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tribench.backends.base import CaseSkipped
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
        decode_s = []
        begin = time.perf_counter()
        logits, self.keys, self.values = self._forward(self.prompt, self.keys, self.values, tf.constant(0))
        token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        tokens = [token.numpy()]                              # the host read: the device has finished
        first = time.perf_counter() - begin
        position = int(self.prompt.shape[1])
        for _ in range(self.new_tokens - 1):
            tick = time.perf_counter()
            logits, self.keys, self.values = self._forward(token[:, None], self.keys, self.values,
                                                           tf.constant(position))
            token = tf.argmax(logits, axis=-1, output_type=tf.int32)
            tokens.append(token.numpy())
            decode_s.append(time.perf_counter() - tick)
            position += 1
        self.requests.append({"ttft_s": first, "tpot_s": decode_s})
        return np.stack(tokens, axis=1)


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
