"""The case's mixed precision in Paddle: ``paddle.amp.auto_cast`` at level O1 (``backends.paddle.devices`` rules)."""

from __future__ import annotations

import contextlib
from typing import Any

import paddle

from tribench.backends.paddle import devices


def autocast(precision: str) -> Any:
    """``paddle.amp.auto_cast`` at O1 in the case's low precision; a null context for fp32 and tf32."""
    dtype = devices.amp_dtype(precision)
    return paddle.amp.auto_cast(enable=True, dtype=dtype, level="O1") if dtype else contextlib.nullcontext()
