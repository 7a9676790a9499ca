"""Greedy generation with the decoder in JAX (``mode = "generate"``): the prompt is prefilled, then each new
token is decoded from a preallocated KV cache carried through ``jax.jit`` as donated state (native and
compiled; op-by-op dispatches the same function's ops one by one). The function is the Decoder module's
own, on its parameter tree (``backends.jax.decoder.forward_cached``); attention runs over the whole cache
masked to the positions written so far, so one compiled decode step serves every position.

One ``step`` is one request; the session times its prefill up to the first token read on the host (TTFT)
and each decode step to its token read (TPOT).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tribench.backends.jax import adapter
from tribench.backends.jax.decoder import forward_cached, new_cache, rope_tables
from tribench.backends.jax.models import build_model
from tribench.core.spec import CaseSpec
from tribench.suites.workloads import DecoderSpec


class JaxGenerateSession(adapter.JaxSession):
    """A JaxSession whose step is one generation request; memory readings as the other JAX sessions'."""

    def __init__(self, spec: DecoderSpec, case: CaseSpec, device: jax.Device) -> None:  # noqa: D107
        dtype = adapter.COMPUTE_DTYPES[case.precision]
        self.model, self._device, self._train = build_model(spec, dtype), device, False
        self.compiled = case.compile in adapter.JIT_MODES
        key = adapter.build_key()
        with jax.default_device(device):
            self.prompt = jax.random.randint(jax.random.fold_in(key, 2), (case.batch_size, case.prompt), 0,
                                             spec.vocab)
            self._state = adapter.initial_state(self.model, self.prompt, case.precision, None)
            self.cache = new_cache(spec, case.batch_size, case.prompt + case.new_tokens, dtype)
            self.tables = tuple(jnp.asarray(table) for table in rope_tables(spec, case.prompt + case.new_tokens))
        self._variables = {"params": self._state.params}
        self._params = sum(leaf.size for leaf in jax.tree.leaves(self._state.params))
        forward = partial(forward_cached, spec, dtype=dtype)
        self._forward = jax.jit(forward, donate_argnums=(2,)) if self.compiled else forward
        self.new_tokens, self.requests = case.new_tokens, []
        self.cache_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(self.cache))

    def generate(self) -> np.ndarray:
        """One request: the generated tokens [batch, new_tokens]; its TTFT and TPOTs appended to ``requests``."""
        params, decode_s = self._state.params, []
        begin = time.perf_counter()
        logits, self.cache = self._forward(params, self.prompt, self.cache, jnp.asarray(0, jnp.int32), self.tables)
        token = jnp.argmax(logits, axis=-1)
        tokens = [np.asarray(token)]                        # the host read: the device has finished
        first = time.perf_counter() - begin
        position = self.prompt.shape[1]
        for _ in range(self.new_tokens - 1):
            tick = time.perf_counter()
            logits, self.cache = self._forward(params, token[:, None], self.cache,
                                               jnp.asarray(position, jnp.int32), self.tables)
            token = jnp.argmax(logits, axis=-1)
            tokens.append(np.asarray(token))
            decode_s.append(time.perf_counter() - tick)
            position += 1
        self.requests.append({"ttft_s": first, "tpot_s": decode_s})
        return np.stack(tokens, axis=1)

    def step(self) -> np.ndarray:
        return self.generate()

    def sync(self, handle: object) -> None:
        """Nothing left to wait for: a request ends with its last token read on the host."""

    def generation_record(self) -> list[dict[str, Any]]:
        return self.requests


def build_session(spec: DecoderSpec, case: CaseSpec) -> JaxGenerateSession:
    """The generate session of ``case`` on one device; CaseSkipped where the device or precision is absent."""
    if case.total_devices > 1:
        raise adapter.CaseSkipped("generate runs on one device")
    device, facts = adapter.select_device(case.device)
    reason = adapter.precision_skip_reason(case.precision, facts)
    if reason:
        raise adapter.CaseSkipped(reason)
    numeric = adapter.apply_numerics(case.precision, case.device)
    session = JaxGenerateSession(spec, case, device)
    session.info = {"numerics": numeric, "compile": "jax.jit (donated KV cache)" if session.compiled else "op-by-op",
                    "kv_cache": {"bytes": session.cache_bytes, "positions": case.prompt + case.new_tokens,
                                 "dtype": str(jnp.dtype(adapter.COMPUTE_DTYPES[case.precision]))}}
    return session
