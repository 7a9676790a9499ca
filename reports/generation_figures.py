"""A generate case's figures for reports: flat columns for the DataFrame and plain-text cells for tables.

Read from ``metrics.generation`` (``harness.generation``, which defines every figure): TTFT and TPOT
(the centre and 95% CI across processes, the pooled p50/p90/p99), decode tokens/s in total and per
sequence, prefill tokens/s, the request latency, the analytic KV cache, prefill and decode MFU and
decode's achieved bandwidth (and its fraction of the measured peak). A figure the run file does not
hold is NaN in the frame and "n/a" in the text, with its reason kept; never 0. No pandas and no
markup here: the HTML, markdown and terminal formats escape these strings their own way.
"""

from __future__ import annotations

from typing import Any

from tribench.reports import units
from tribench.reports.report_format import missing, number, whole

TIMED = ("ttft", "tpot")
TIMED_FIELDS = {"value": "", "ci_low": "_ci_low", "ci_high": "_ci_high", "p50": "_p50", "p90": "_p90", "p99": "_p99"}
RATES = {"decode_tokens_per_s": "decode_tokens_per_s", "decode_tokens_per_s_per_sequence":
         "decode_tokens_per_s_per_sequence", "prefill_tokens_per_s": "prefill_tokens_per_s",
         "request_latency": "request_latency_s", "kv_cache": "kv_cache_bytes", "prefill_mfu": "prefill_mfu",
         "decode_mfu": "decode_mfu", "decode_bandwidth": "decode_bandwidth_bytes_per_s",
         "decode_bandwidth_fraction": "decode_bandwidth_fraction"}
REASONS = ("prefill_mfu", "decode_mfu", "decode_bandwidth_fraction")  # the figures that need the run's peaks

GENERATION_NUMERIC = (*(f"{name}{suffix}_s" for name in TIMED for suffix in TIMED_FIELDS.values()),
                      *RATES.values())
GENERATION_COLUMNS = ("case", "prompt → new", "TTFT (95% CI)", "TPOT (95% CI)", "TPOT p50 / p90 / p99",
                      "decode tokens/s (total)", "decode tokens/s per sequence", "prefill tokens/s", "request",
                      "KV cache", "MFU prefill / decode", "decode bandwidth")


def generation_columns(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The frame's generation columns (``GENERATION_NUMERIC`` plus ``*_reason`` for the peak-based figures);
    every one None for a case that has no ``metrics.generation`` (any other mode, or a case that failed)."""
    generation = (metrics or {}).get("generation") or {}
    columns: dict[str, Any] = {}
    for name in TIMED:
        figure = generation.get(name) or {}
        columns.update({f"{name}{suffix}_s": figure.get(field) for field, suffix in TIMED_FIELDS.items()})
    columns.update({column: (generation.get(name) or {}).get("value") for name, column in RATES.items()})
    columns.update({f"{name}_reason": (generation.get(name) or {}).get("reason") for name in REASONS})
    return columns


SECOND_SCALES = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def _unit_of(seconds: float) -> tuple[str, float]:
    """The unit ``units.seconds`` shows ``seconds`` in, and its scale; one unit up where three significant digits
    would round up to 1000 (999.6 µs shows as 1 ms, never 1e+03 µs)."""
    unit = units.seconds(seconds).split()[-1]
    if "e" in f"{seconds / SECOND_SCALES[unit]:.3g}" and unit != "s":
        unit = list(SECOND_SCALES)[list(SECOND_SCALES).index(unit) - 1]
    return unit, SECOND_SCALES[unit]


def seconds_with_ci(value: Any, low: Any, high: Any) -> str:
    """'1.08 ms (0.909 – 1.27)': the bounds in the unit of the largest; 'n/a' without a centre."""
    if missing(value):
        return "n/a"
    if missing(low) or missing(high):
        return f"{units.seconds(value)} (no CI)"
    unit, scale = _unit_of(max(value, low, high))
    return f"{value / scale:.3g} {unit} ({low / scale:.3g} – {high / scale:.3g})"


def _percentiles(figure: dict[str, Any]) -> str:
    """'0.876 / 0.915 / 1.11 ms': p50, p90 and p99 in the unit of the largest."""
    values = [figure.get(name) for name in ("p50", "p90", "p99")]
    if any(missing(value) for value in values):
        return "n/a"
    unit, scale = _unit_of(max(values))
    return " / ".join(f"{value / scale:.3g}" for value in values) + f" {unit}"


def _value(generation: dict[str, Any], name: str) -> Any:
    return (generation.get(name) or {}).get("value")


def _percent(value: Any) -> str:
    return "n/a" if missing(value) else units.percent(value)


def _bandwidth(generation: dict[str, Any]) -> str:
    achieved = _value(generation, "decode_bandwidth")
    if missing(achieved):
        return "n/a"
    return f"{units.rate(achieved, 'B/s')} ({_percent(_value(generation, 'decode_bandwidth_fraction'))} of peak)"


def generation_cells(case_id: str, generation: dict[str, Any]) -> dict[str, str]:
    """Plain-text cells (``GENERATION_COLUMNS``) of one generate case's ``metrics.generation``."""
    ttft, tpot = generation.get("ttft") or {}, generation.get("tpot") or {}
    return {
        "case": case_id,
        "prompt → new": f"{whole(generation.get('prompt_tokens'))} → {whole(generation.get('new_tokens'))}",
        "TTFT (95% CI)": seconds_with_ci(ttft.get("value"), ttft.get("ci_low"), ttft.get("ci_high")),
        "TPOT (95% CI)": seconds_with_ci(tpot.get("value"), tpot.get("ci_low"), tpot.get("ci_high")),
        "TPOT p50 / p90 / p99": _percentiles(tpot),
        "decode tokens/s (total)": number(_value(generation, "decode_tokens_per_s")),
        "decode tokens/s per sequence": number(_value(generation, "decode_tokens_per_s_per_sequence")),
        "prefill tokens/s": number(_value(generation, "prefill_tokens_per_s")),
        "request": "n/a" if missing(_value(generation, "request_latency")) else units.seconds(
            _value(generation, "request_latency")),
        "KV cache": "n/a" if missing(_value(generation, "kv_cache")) else units.bytes_(_value(generation, "kv_cache")),
        "MFU prefill / decode": f"{_percent(_value(generation, 'prefill_mfu'))} / "
                                f"{_percent(_value(generation, 'decode_mfu'))}",
        "decode bandwidth": _bandwidth(generation),
    }


def missing_peak_reasons(generations: list[dict[str, Any]]) -> list[str]:
    """Why MFU or the bandwidth fraction is n/a, once per distinct reason, in order (for a table's caption)."""
    reasons = [(generation.get(name) or {}).get("reason") for generation in generations for name in REASONS
               if missing(_value(generation, name))]
    return list(dict.fromkeys(reason for reason in reasons if reason))


GENERATION_LEGEND = ("generation: TTFT = prefill to the first token on the host; TPOT = one cached decode step; "
                     "centre and 95% CI across processes, p50/p90/p99 pooled over every decode step; decode "
                     "tokens/s = batch / TPOT; prefill tokens/s = batch x prompt / TTFT; request = one request end "
                     "to end (median)")
