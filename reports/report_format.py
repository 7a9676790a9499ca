"""Number formatting shared by the report formats (HTML, markdown, terminal): plain text, no markup."""

from __future__ import annotations

import math
from typing import Any


def missing(value: Any) -> bool:
    """None or NaN (pandas turns a missing reading into NaN)."""
    return value is None or (isinstance(value, float) and value != value)


def number(value: Any) -> str:
    """About four significant digits, thousands separated, never in exponent form: 14,990 / 235.4 / 0.01234."""
    if missing(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def whole(value: Any) -> str:
    """A count or batch size as text: 32.0 -> '32'; missing -> 'n/a'."""
    if missing(value):
        return "n/a"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def ci_text(low: Any, high: Any) -> str:
    """A throughput CI as 'low – high', or why there is none."""
    if missing(low) or missing(high):
        return "n/a (too few steps)"
    return f"{number(low)} – {number(high)}"
