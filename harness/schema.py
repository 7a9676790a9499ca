"""The run file's schema: typed models that every load checks, and the JSON Schema ``tribench schema`` prints.

The models state what a run file must hold for the readers (reports, compare, history, export, merge)
to use it without a traceback: the top-level fields, each case's id, spec, status and process
results, and the types of the figures they compute with. Everything else a file holds (the
environment capture, per-metric provenance, new fields of later versions) is allowed through
untyped (``extra="allow"``), so the schema does not have to change whenever a record gains a field.

Types are strict: a number given as a string, or a flag as a number, is refused, since a reader
would otherwise fail on it far from the load. ``check`` returns the first problem as one line
naming where it is (``cases[3].spec.batch_size: ...``); the file itself is never rewritten.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION = 1
KIND = "tribench-run"

Number = float  # strict: an int or a float, never a string or a bool
Status = Literal["ok", "skipped", "timeout", "failed"]


class _Open(BaseModel):
    """A record that may hold more than its typed fields."""

    model_config = ConfigDict(extra="allow", strict=True)


class Reading(_Open):
    """A measured number with its unit and source, or the reason it is missing (``value`` None)."""

    value: Number | None = None
    unit: str | None = None
    source: str | None = None
    reason: str | None = None


class StepTime(_Open):
    """The across-process summary of a case's step times (seconds)."""

    unit: str | None = None
    n: int | None = None
    median: Number | None = None
    mean: Number | None = None
    min: Number | None = None
    max: Number | None = None
    p50: Number | None = None
    p90: Number | None = None
    p99: Number | None = None
    ci_low: Number | None = None
    ci_high: Number | None = None


class MemoryEntry(_Open):
    """One memory reading of a case or a process (bytes, with its source and scope)."""

    name: str | None = None
    value: Number | None = None
    unit: str | None = None


class TimedFigure(Reading):
    """TTFT or TPOT of a generate case (seconds): centre and CI across processes, pooled percentiles."""

    ci_low: Number | None = None
    ci_high: Number | None = None
    p50: Number | None = None
    p90: Number | None = None
    p99: Number | None = None


class Generation(_Open):
    """A generate case's figures (``harness.generation``); each optional, a missing one with its reason."""

    prompt_tokens: int | None = None
    new_tokens: int | None = None
    batch: int | None = None
    ttft: TimedFigure | None = None
    tpot: TimedFigure | None = None
    request_latency: Reading | None = None
    decode_tokens_per_s: Reading | None = None
    decode_tokens_per_s_per_sequence: Reading | None = None
    prefill_tokens_per_s: Reading | None = None
    kv_cache: Reading | None = None
    prefill_mfu: Reading | None = None
    decode_mfu: Reading | None = None
    decode_bandwidth: Reading | None = None
    decode_bandwidth_fraction: Reading | None = None


class GenerationRecord(_Open):
    """One generate process's timings: each measured request's TTFT and its decode steps' TPOT (seconds)."""

    ttft_s: list[Number] = []
    tpot_s: list[list[Number]] = []


class Metrics(_Open):
    """What a case's processes add up to; every figure optional (a failed case has few)."""

    throughput: Reading | None = None
    token_throughput: Reading | None = None
    step_time: StepTime | None = None
    compile_time: Reading | None = None
    setup_time: Reading | None = None
    params: Reading | None = None
    memory: list[MemoryEntry] = []
    energy: _Open | None = None
    mfu: Reading | None = None
    generation: Generation | None = None


class Timing(_Open):
    """One process's timed loop: its synced step times and how it stopped."""

    samples_s: list[Number] = []
    warmup_samples_s: list[Number] = []
    compile_time_s: Number | None = None
    stop_reason: str | None = None


class Process(_Open):
    """One measured process of a case (a repeat)."""

    status: Status
    error: str | None = None
    index: int | None = None
    timing: Timing | None = None
    param_count: int | None = None
    memory: list[MemoryEntry] = []
    setup_time_s: Number | None = None
    ranks: list[Process] | None = None
    generation: GenerationRecord | None = None


class Spec(_Open):
    """The case spec (``tribench.core.spec.CaseSpec``)."""

    backend: str
    workload: str
    size: str
    mode: str
    batch_size: int
    precision: str
    compile: str
    device: str
    devices: int = 1
    nodes: int = 1
    env: str = ""
    prompt: int = 0
    new_tokens: int = 0


class Case(_Open):
    """One point of the matrix: its spec, its processes and what they add up to."""

    id: str
    spec: Spec
    status: Status | None = None      # None while its first process runs
    error: str | None = None
    repeats: list[Process] = []
    metrics: Metrics | None = None


class RunFileModel(_Open):
    """A whole run file (``kind`` "tribench-run")."""

    schema_version: Literal[1]
    kind: Literal["tribench-run"]
    tool_version: str
    run_id: str
    started_at: str
    finished_at: str | None = None
    state: str
    command: list[str] = []
    tags: dict[str, str] = {}
    settings: dict[str, Any] = {}
    environment: dict[str, Any] = {}
    cases: list[Case]


def problem(data: Any) -> str | None:
    """None if ``data`` is a valid run file, else its first problem as one line (where, then what)."""
    try:
        RunFileModel.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        return f"{_where(first['loc'])}: {_what(first)}"
    return None


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a run file (``tribench schema``)."""
    schema = RunFileModel.model_json_schema()
    schema["title"] = f"tribench run file, schema version {SCHEMA_VERSION}"
    return schema


def _where(location: tuple) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("float", "int", "str", "list", "dict", "bool", "none") or "[" in str(part):
            continue  # pydantic's name of a union member tried, not a place in the file
        else:
            text += f".{part}" if text else str(part)
    return text or "the document"


def _what(error: dict[str, Any]) -> str:
    if error["type"] == "missing":
        return "missing"
    given = error.get("input")
    shown = type(given).__name__ if not isinstance(given, (str, int, float)) or isinstance(given, bool) else repr(given)
    return f"{error['msg'].lower()} (got {shown[:60]})"
