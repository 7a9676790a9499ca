"""Which metrics a comparison judges, which way is better, and how to read them from a case.

Timed metrics (throughput, p50 and p99 step time) are judged from the raw
per-step samples of ``case["repeats"][i]["timing"]["samples_s"]``. The others
are single readings per process (peak memory, energy per sample, compile
time): one number per side, with the per-process values kept to show how much
they vary. Energy is read defensively from ``metrics.energy`` (or a repeat's
``energy``) and only a *measured* joules-per-sample value counts; an estimate
never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tribench.core.errors import InvalidChoice, InvalidValue


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    direction: str  # "higher" or "lower" is better
    unit: str
    kind: str  # "timed" (raw samples) or "reading" (one value per process)
    gated: bool = True  # takes part in the verdict and the exit code by default
    statistic: str = "median"  # timed metrics: which statistic of the step times


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("throughput", "throughput", "higher", "samples/s", "timed", statistic="median"),
    Metric("latency_p50", "p50 step time", "lower", "s", "timed", statistic="median"),
    Metric("latency_p99", "p99 step time", "lower", "s", "timed", statistic="p99"),
    Metric("device_memory", "device peak memory", "lower", "bytes", "reading"),
    Metric("host_memory", "host peak RSS", "lower", "bytes", "reading"),
    Metric("energy_per_sample", "energy per sample", "lower", "J/sample", "reading"),
    Metric("compile_time", "compile time", "lower", "s", "reading", gated=False),
    # generate cases only (a case without them simply has none): per-process medians of the measured requests'
    # TTFT and decode steps, tested like the step times
    Metric("ttft", "time to first token", "lower", "s", "timed"),
    Metric("tpot", "time per output token", "lower", "s", "timed"),
    Metric("decode_tokens_per_s", "decode tokens/s", "higher", "tokens/s", "timed"),
)}
GENERATION_METRICS = ("ttft", "tpot", "decode_tokens_per_s")

# Short names accepted by --threshold and --metric; each stands for one or more metrics.
ALIASES: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in METRICS},
    "p50": ("latency_p50",), "p99": ("latency_p99",), "latency": ("latency_p50", "latency_p99"),
    "memory": ("device_memory", "host_memory"), "energy": ("energy_per_sample",), "compile": ("compile_time",),
    "generation": GENERATION_METRICS,
}


def resolve(names: list[str]) -> list[str]:
    """Metric names (or aliases) -> metric names, in METRICS order; unknown names are refused."""
    wanted: set[str] = set()
    for name in names:
        if name not in ALIASES:
            raise InvalidChoice("metric", name, list(ALIASES))
        wanted.update(ALIASES[name])
    return [name for name in METRICS if name in wanted]


@dataclass(frozen=True)
class Thresholds:
    """The smallest relative change that counts, per metric (``--threshold 5%,throughput=3%``)."""

    default: float = 0.05
    per_metric: dict[str, float] = field(default_factory=dict)

    def of(self, metric: str) -> float:
        return self.per_metric.get(metric, self.default)

    def describe(self) -> str:
        extra = ", ".join(f"{name} {value * 100:g}%" for name, value in sorted(self.per_metric.items()))
        return f"{self.default * 100:g}%" + (f" ({extra})" if extra else "")


def parse_fraction(text: str) -> float:
    """'5%' -> 0.05 and '0.05' -> 0.05; a bare number of 1 or more is ambiguous and refused."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InvalidValue(f"threshold {text!r} is not a number; write e.g. 5% or 0.05") from None
    if not raw.endswith("%") and value >= 1.0:
        raise InvalidValue(f"threshold {text!r} is ambiguous; write {raw}% or a fraction such as 0.05")
    if not 0.0 <= value < 1.0:
        raise InvalidValue(f"threshold {text!r} must be between 0% and 100%")
    return value


def parse_thresholds(text: str | None) -> Thresholds:
    """Parse ``5%`` or ``throughput=3%,memory=1%`` or both (``4%,p99=10%``)."""
    if not text:
        return Thresholds()
    default, per_metric = 0.05, {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        if not sep:
            default = parse_fraction(item)
            continue
        for metric in resolve([name.strip()]):
            per_metric[metric] = parse_fraction(value)
    return Thresholds(default, per_metric)


# ---- reading values out of a case ---------------------------------------------------------------

def ok_repeats(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The processes a comparison judges: the ones the run's estimate used (a disturbed one left out)."""
    from tribench.harness.aggregate import used_results

    return used_results(case)


def generation_values(case: dict[str, Any], metric: str) -> list[float]:
    """Per process of a generate case: the median TTFT, the median decode step, or batch / that step."""
    import statistics

    values = []
    for repeat in ok_repeats(case):
        record = repeat.get("generation") or {}
        steps = [step for request in record.get("tpot_s", []) for step in request]
        if metric == "ttft" and record.get("ttft_s"):
            values.append(statistics.median(record["ttft_s"]))
        elif metric in ("tpot", "decode_tokens_per_s") and steps:
            tpot = statistics.median(steps)
            values.append(tpot if metric == "tpot" else float(case["spec"]["batch_size"]) / tpot)
    return values


def step_samples(case: dict[str, Any]) -> list[list[float]]:
    """The raw step times of each successful process of a case."""
    return [list(repeat["timing"]["samples_s"]) for repeat in ok_repeats(case) if repeat["timing"].get("samples_s")]


@dataclass(frozen=True)
class ReadingValue:
    """One side's value of a single-reading metric, or why there is none."""

    value: float | None
    source: str | None = None
    per_process: tuple[float, ...] = ()
    reason: str | None = None


def _memory(readings: list[dict[str, Any]], device: bool) -> dict[str, Any] | None:
    from tribench.reports.frame import device_memory

    if device:
        chosen = device_memory(readings)
        if chosen["device_peak_memory_bytes"] is None:
            return {"value": None, "reason": chosen["device_peak_memory_reason"]}
        return {"value": chosen["device_peak_memory_bytes"], "source": chosen["device_peak_memory_source"]}
    for reading in readings:
        if reading.get("name") == "host_peak_rss":
            return reading
    return None


def _memory_value(case: dict[str, Any], device: bool) -> ReadingValue:
    metrics = case.get("metrics") or {}
    chosen = _memory(metrics.get("memory", []), device)
    if chosen is None or chosen.get("value") is None:
        reason = (chosen or {}).get("reason") or "not recorded"
        return ReadingValue(None, reason=reason)
    per_process = []
    for repeat in ok_repeats(case):
        reading = _memory(repeat.get("memory", []), device)
        if reading and reading.get("value") is not None and reading.get("source", chosen.get("source")) == \
                chosen.get("source"):
            per_process.append(float(reading["value"]))
    return ReadingValue(float(chosen["value"]), chosen.get("source"), tuple(per_process))


def _candidates(node: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict under ``node`` that looks like a reading (has a ``value``), with its key path."""
    if depth > 4:
        return
    if isinstance(node, dict):
        if "value" in node:
            yield key, node
        for child_key, child in node.items():
            if isinstance(child, (dict, list)):
                yield from _candidates(child, f"{key}.{child_key}", depth + 1)
    elif isinstance(node, list):
        for child in node:
            yield from _candidates(child, key, depth + 1)


def _is_estimate(key: str, reading: dict[str, Any]) -> bool:
    labels = " ".join(str(reading.get(name, "")) for name in ("method", "status", "name", "kind")) + key
    return "estimat" in labels.lower()


def _per_sample_energy(node: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A measured joules-per-sample reading under ``node``, else (None, the reason one was not used)."""
    reasons = []
    for key, reading in _candidates(node):
        name = f"{key} {reading.get('name', '')}".lower()
        unit = str(reading.get("unit", "")).lower().replace(" ", "")
        if "token" in name or "token" in unit:
            continue
        if not ("per_sample" in name or "persample" in name or unit in ("j/sample", "joules/sample")):
            continue
        if _is_estimate(key, reading):
            reasons.append("only an estimate (estimates never take part in a verdict)")
        elif isinstance(reading.get("value"), (int, float)) and not isinstance(reading.get("value"), bool):
            return reading, None
        else:
            reasons.append(str(reading.get("reason") or "unavailable"))
    return None, (reasons[0] if reasons else "not measured")


def _energy_value(case: dict[str, Any]) -> ReadingValue:
    reading, reason = _per_sample_energy((case.get("metrics") or {}).get("energy"))
    if reading is None:
        return ReadingValue(None, reason=reason)
    per_process = []
    for repeat in ok_repeats(case):
        own, _ = _per_sample_energy(repeat.get("energy"))
        if own is not None:
            per_process.append(float(own["value"]))
    source = reading.get("source") or reading.get("method")
    return ReadingValue(float(reading["value"]), str(source) if source else None, tuple(per_process))


def _compile_value(case: dict[str, Any]) -> ReadingValue:
    compile_time = (case.get("metrics") or {}).get("compile_time") or {}
    if compile_time.get("value") is None:
        return ReadingValue(None, reason="not recorded")
    per_process = tuple(float(value) for value in compile_time.get("per_repeat", []) if value is not None)
    return ReadingValue(float(compile_time["value"]), compile_time.get("source"), per_process)


def reading_value(case: dict[str, Any], metric: str) -> ReadingValue:
    """The value of a single-reading metric for one side of a comparison."""
    if metric == "device_memory":
        return _memory_value(case, device=True)
    if metric == "host_memory":
        return _memory_value(case, device=False)
    if metric == "energy_per_sample":
        return _energy_value(case)
    if metric == "compile_time":
        return _compile_value(case)
    raise ValueError(f"{metric} is not a single-reading metric")


def series_value(case: dict[str, Any], metric: str) -> float | None:
    """The case's summary value of a metric in one run (what a history series plots)."""
    metrics = case.get("metrics") or {}
    if metric == "throughput":
        return (metrics.get("throughput") or {}).get("value")
    if metric in ("latency_p50", "latency_p99"):
        return (metrics.get("step_time") or {}).get("median" if metric == "latency_p50" else "p99")
    return reading_value(case, metric).value
