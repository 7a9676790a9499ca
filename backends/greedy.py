"""One greedy generation request, timed the same way in every backend (framework-free).

TTFT runs from the request's start to the first token read on the host: the prompt's prefill and the
first greedy choice. Each TPOT is one decode step up to its token read. The read is the sync: it waits
for the device and copies the token, as a streaming server must before it can send the token on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

Token = TypeVar("Token")
Host = TypeVar("Host")


def timed_request(prefill: Callable[[], Token], decode: Callable[[Token, int], Token], read: Callable[[Token], Host],
                  prompt_length: int, new_tokens: int) -> tuple[list[Host], dict[str, Any]]:
    """The ``new_tokens`` tokens read on the host, and the request's record ``{"ttft_s": ..., "tpot_s": [...]}``.

    ``prefill()`` gives the first token on the device; ``decode(token, position)`` the next one from ``token``
    placed at ``position``; ``read(token)`` syncs and copies a token to the host."""
    begin = time.perf_counter()
    token = prefill()
    tokens = [read(token)]
    first = time.perf_counter() - begin
    decode_s = []
    for position in range(prompt_length, prompt_length + new_tokens - 1):
        tick = time.perf_counter()
        token = decode(token, position)
        tokens.append(read(token))
        decode_s.append(time.perf_counter() - tick)
    return tokens, {"ttft_s": first, "tpot_s": decode_s}
