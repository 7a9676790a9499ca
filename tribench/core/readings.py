"""A measured number with its provenance, or the reason it could not be measured.

Every number tribench reports says what was read (``source``), over what
(``scope``: process, device, package, machine), over which part of the process's life where that
matters (``span``: e.g. its whole life, or from the end of the compile step) and in which ``unit``. A reading
that could not be taken has ``value=None`` and a ``reason``; it is never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Reading:
    name: str
    unit: str
    source: str
    scope: str
    value: float | None = None
    reason: str | None = None
    span: str | None = None  # which part of the process's life the reading covers (memory peaks)

    def __post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise ValueError(f"reading {self.name!r} has no value and no reason")

    @classmethod
    def unavailable(cls, name: str, unit: str, source: str, scope: str, reason: str,
                    span: str | None = None) -> Reading:
        return cls(name=name, unit=unit, source=source, scope=scope, value=None, reason=reason, span=span)

    @property
    def available(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["span"] is None:  # readings without a span keep the shape they always had
            del data["span"]
        data["status"] = "measured" if self.available else "unavailable"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reading:
        return cls(**{k: data.get(k) for k in ("name", "unit", "source", "scope", "value", "reason", "span")})
