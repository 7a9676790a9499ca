"""Greedy generation with the decoder in JAX (``mode = "generate"``): the prompt is prefilled, then each new
token is decoded from a preallocated KV cache carried through ``jax.jit`` as donated state (native and
compiled; op-by-op dispatches the same function's ops one by one). The function is the Decoder module's
own, on its parameter tree (``backends.jax.decoder.forward_cached``); attention runs over the whole cache
masked to the positions written so far, so one compiled decode step serves every position.

One ``step`` is one request; the session times its prefill up to the first token read on the host (TTFT)
and each decode step to its token read (TPOT).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tribench.backends.greedy import timed_request
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
        """One request (``backends.greedy``): the generated tokens [batch, new_tokens]; its TTFT and TPOTs appended
        to ``requests``."""
        tokens, record = timed_request(lambda: self._step(self.prompt, 0),
                                       lambda token, at: self._step(token[:, None], at),
                                       np.asarray, self.prompt.shape[1], self.new_tokens)  # the host read: synced
        self.requests.append(record)
        return np.stack(tokens, axis=1)

    def _step(self, tokens: Any, start: int) -> Any:
        """The greedy token after ``tokens`` placed from ``start`` on; the cache carried (donated) through."""
        logits, self.cache = self._forward(self._state.params, tokens, self.cache, jnp.asarray(start, jnp.int32),
                                           self.tables)
        return jnp.argmax(logits, axis=-1)

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
