"""Greedy generation with the decoder (``mode = "generate"``): a prompt of P tokens is prefilled, then N - 1
more tokens are decoded one at a time from a preallocated KV cache (``decoder.KVCache``).

One ``step`` is one request, timed end to end by the harness; inside it the session times the prefill up
to the first token (TTFT) and each decode step (TPOT), each closed by a device sync and the token read,
as a streaming server would. ``native`` runs eager PyTorch over the positions so far; ``compiled`` runs
``torch.compile``d prefill and decode steps over the whole cache with a position mask (static shapes: one
compiled decode step for every position, the way static KV caches are compiled).
"""

from __future__ import annotations

from typing import Any

import torch

from tribench.backends.greedy import timed_request
from tribench.backends.torch.decoder import Decoder, KVCache, forward_cached
from tribench.suites.workloads import DecoderSpec


def prompt_tokens(spec: DecoderSpec, batch: int, prompt: int, seed: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randint(spec.vocab, (batch, prompt), generator=generator, device=device)


class Generator:
    """Prefill + greedy decode of ``new_tokens`` tokens for a fixed prompt; records each request's timings."""

    def __init__(self, model: Decoder, spec: DecoderSpec, prompt: torch.Tensor, new_tokens: int, compiled: bool,
                 autocast: Any, cache_dtype: torch.dtype, sync: Any) -> None:
        self.model, self.prompt, self.new_tokens = model, prompt, new_tokens
        self.compiled, self._autocast, self._sync = compiled, autocast, sync
        batch, length = prompt.shape
        self.cache = KVCache(spec, batch, length + new_tokens, cache_dtype, prompt.device)
        self._prefill = self._forward if not compiled else torch.compile(self._forward, dynamic=False)
        self._decode = self._forward if not compiled else torch.compile(self._forward, dynamic=False)
        self.requests: list[dict[str, Any]] = []

    def _forward(self, tokens: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        return forward_cached(self.model, tokens, self.cache, start, static=self.compiled)

    def _start(self, position: int) -> int | torch.Tensor:
        return torch.tensor(position, device=self.prompt.device) if self.compiled else position

    def _read(self, token: torch.Tensor) -> torch.Tensor:
        self._sync()
        return token.cpu()

    def generate(self) -> torch.Tensor:
        """One request (``backends.greedy``): the generated tokens [batch, new_tokens]; its TTFT and TPOTs appended
        to ``requests``."""
        with torch.inference_mode(), self._autocast:
            tokens, record = timed_request(
                lambda: self._prefill(self.prompt, self._start(0)).argmax(-1),
                lambda token, position: self._decode(token[:, None], self._start(position)).argmax(-1),
                self._read, self.prompt.shape[1], self.new_tokens)
        self.requests.append(record)
        return torch.stack(tokens, dim=1)


def make_generator(spec: DecoderSpec, case: Any, device: torch.device, autocast_dtype: torch.dtype | None,
                   sync: Any) -> Generator:
    """The generator of ``case``: the decoder in inference mode, a fixed prompt, a preallocated cache."""
    from tribench.backends.torch import models
    from tribench.suites.workloads import SEED

    torch.manual_seed(SEED)
    model = models.build_model(spec).to(device).eval()
    prompt = prompt_tokens(spec, case.batch_size, case.prompt, SEED, device)
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    return Generator(model, spec, prompt, case.new_tokens, case.compile == "compiled", autocast,
                     autocast_dtype or torch.float32, sync)
