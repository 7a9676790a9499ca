"""The Backend protocol every framework adapter implements (see DESIGN.md).

A backend says whether its framework is usable here (``availability``) and
turns a ``CaseSpec`` into a ``Session``: model, synthetic data and optimizer,
already on the device. The harness only ever calls ``step``/``sync`` inside
its timed loop. A case the backend cannot run faithfully (bf16 on a device
without it, a device that is absent) raises ``CaseSkipped`` with the reason,
so it is reported as ``skipped`` rather than crashed or silently changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from tribench.core.readings import Reading
from tribench.core.spec import CaseSpec

MemoryReading = tuple[Reading, ...]


class CaseSkipped(Exception):
    """The backend cannot run this case as specified; the message says why."""


@dataclass(frozen=True)
class Availability:
    name: str
    installed: bool
    version: str | None = None
    devices: tuple[str, ...] = ()          # neutral kinds usable now: cpu, gpu, tpu, mps
    device_names: dict[str, str] = field(default_factory=dict)  # kind -> human name
    reason: str | None = None              # why not installed / not usable
    install_hint: str | None = None        # the command that installs it
    details: dict[str, Any] = field(default_factory=dict)  # build info, threads, flags
    notes: tuple[str, ...] = ()            # caveats users should see in `list backends`

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["devices"] = list(self.devices)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Availability:
        data = dict(data)
        data["devices"] = tuple(data.get("devices", ()))
        data["notes"] = tuple(data.get("notes", ()))
        return cls(**data)


@runtime_checkable
class Session(Protocol):
    """A built case. Besides the methods below, a session MAY implement (the worker checks ``hasattr``):

    ``profile(steps: int, folder: Path) -> dict`` — trace ``steps`` more steps (``step()`` + ``sync()``)
    with the framework's profiler, writing the trace under ``folder``; called only with
    ``--profile``, after the timed measurement and the memory readings, never inside them. It returns
    ``tool``, ``trace_file`` (absolute path), ``open_with``, ``window_s`` (wall time of the profiled
    steps), ``time_basis``, and ``operators`` (``harness.profiling.OperatorRow``s) or ``None`` with an
    ``operators_reason``; optional ``extra`` (e.g. XLA cost analysis). ``harness.profiling.capture``
    turns it into the case's ``ProfileResult``; an exception becomes "unavailable" with the reason.

    ``mark_window() -> None`` — called once, right after the compile step, at the same point as the host
    peak-RSS reset: restart the device allocator's peak there and note what is in use, so that
    ``memory`` can give the peak of warm-up and measurement and its growth over that start (JAX, which
    cannot reset its peak, reports what it can tell and why).
    """

    def step(self) -> object:
        """Run one train or inference step; return a handle to its result."""

    def sync(self, handle: object) -> None:
        """Block until the device has finished the step that produced ``handle``."""

    def memory(self) -> MemoryReading:
        """Allocator peaks, each naming its source and span (since ``mark_window`` where the session has it);
        unavailable with a reason."""

    def param_count(self) -> int:
        """Trainable parameters of the model as built."""


@runtime_checkable
class Backend(Protocol):
    """A framework's adapter. It MAY also set ``preload_modules``: modules its cases import lazily that a
    fork server (``harness.fork_server``) imports once before forking, beside the framework itself. Only
    modules whose import starts no thread and touches no device belong there.

    It MAY implement ``apply_threads(intra_op: int, inter_op: int) -> dict``: set the framework's CPU thread
    pools (``harness.threads``), called in the worker after its CPU set is pinned and before ``build``,
    returning what the framework now reports (``intra_op``, ``inter_op``, ``how``). Without it the
    framework keeps its own thread counts, and the process record says so."""

    name: str

    def availability(self) -> Availability:
        """Installed? Version? Devices? Why not?"""

    def build(self, case: CaseSpec) -> Session:
        """Model + synthetic data + optimizer on the case's device; raise CaseSkipped if unsupported."""
