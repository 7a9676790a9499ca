"""Greedy generation with the decoder (``mode = "generate"``) in Paddle: a prompt of P tokens is prefilled, then
N - 1 more tokens are decoded one at a time from a preallocated KV cache (``decoder.KVCache``).

One ``step`` is one request, timed end to end by the harness; inside it the session times the prefill up to
the first token (TTFT) and each decode step (TPOT), each closed by a device sync and the token read on the
host, as a streaming server would. ``native`` runs dygraph over the positions so far; ``compiled`` runs
``paddle.jit.to_static``ed prefill and decode steps over the whole cache with a position mask (static shapes:
one traced decode step for every position), in to_static's default mode: its full-graph (AST) mode drops
the in-place writes into the cache (``decoder.forward_cached``).
"""

from __future__ import annotations

from typing import Any

import paddle

from tribench.backends.greedy import timed_request
from tribench.backends.paddle.amp import autocast
from tribench.backends.paddle.decoder import Decoder, KVCache, forward_cached
from tribench.core.spec import CaseSpec
from tribench.suites.workloads import SEED, DecoderSpec

CACHE_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def prompt_tokens(spec: DecoderSpec, batch: int, prompt: int) -> Any:
    paddle.seed(SEED)
    return paddle.randint(0, spec.vocab, [batch, prompt])


class Generator:
    """Prefill + greedy decode of ``new_tokens`` tokens for a fixed prompt; records each request's timings."""

    def __init__(self, model: Decoder, spec: DecoderSpec, prompt: Any, new_tokens: int, compiled: bool,
                 precision: str, sync: Any) -> None:
        self.model, self.prompt, self.new_tokens = model, prompt, new_tokens
        self.compiled, self._precision, self._sync = compiled, precision, sync
        batch, length = prompt.shape
        self.cache = KVCache(spec, batch, length + new_tokens, CACHE_DTYPES.get(precision, "float32"), None)
        self._prefill = self._step_function()
        self._decode = self._step_function()
        self.requests: list[dict[str, Any]] = []

    def _step_function(self) -> Any:
        """A cached forward step: a function (to_static converts functions and Layers, not other methods)."""
        model, cache, static = self.model, self.cache, self.compiled

        def forward(tokens: Any, start: Any) -> Any:
            return forward_cached(model, tokens, cache, start, static=static)

        return paddle.jit.to_static(forward) if static else forward

    def _start(self, position: int) -> Any:
        return paddle.to_tensor(position, dtype="int64") if self.compiled else position

    def _read(self, token: Any) -> Any:
        self._sync()
        return token.numpy()

    def generate(self) -> Any:
        """One request (``backends.greedy``): the generated tokens [batch, new_tokens]; its TTFT and TPOTs appended
        to ``requests``."""
        with paddle.no_grad(), autocast(self._precision):
            tokens, record = timed_request(
                lambda: self._prefill(self.prompt, self._start(0)).argmax(-1),
                lambda token, position: self._decode(token[:, None], self._start(position)).argmax(-1),
                self._read, self.prompt.shape[1], self.new_tokens)
        self.requests.append(record)
        return paddle.to_tensor(tokens).transpose([1, 0])


def make_generator(spec: DecoderSpec, case: CaseSpec, sync: Any) -> Generator:
    """The generator of ``case``: the decoder in inference mode, a fixed prompt, a preallocated cache, on the
    current device."""
    from tribench.backends.paddle import models

    paddle.seed(SEED)
    model = models.build_model(spec)
    model.eval()
    return Generator(model, spec, prompt_tokens(spec, case.batch_size, case.prompt), case.new_tokens,
                     case.compile == "compiled", case.precision, sync)
