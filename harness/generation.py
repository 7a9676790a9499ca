"""The generate mode's figures: what a request's prefill and decode steps cost, and how fast they ran.

Definitions (``DEFINITIONS``, recorded with each metric in the run file):

* **TTFT** (time to first token): from the start of a request to its first token on the host: the prefill
  of the prompt and the first token's greedy choice, synced.
* **TPOT** (time per output token): one decode step: one token per sequence from the KV cache, synced and
  read. A request of N new tokens has N - 1 of them.
* **decode tokens/s**: per sequence 1 / TPOT; in total batch / TPOT. **prefill tokens/s**: batch x prompt /
  TTFT. The end-to-end latency of a request is the case's step time (the harness times whole requests).

As everywhere, the process is the unit of uncertainty: each figure's centre and 95% CI come from the
per-process medians (``harness.stats.estimate``); the p50/p90/p99 are over every measured request (TTFT) or
decode step (TPOT) of every process, labelled as pooled.

FLOPs are analytic (``suites.workloads.generation_flops``): a prefill over the prompt with the head on its
last position, and each decode step attending over the context it has. MFU compares them with the run's
measured peaks; decode is memory-bound, so each decode step is also put against the device's measured
bandwidth: the bytes it must read are every weight once plus the KV cache so far.
"""

from __future__ import annotations

import statistics
from typing import Any

from tribench.core.spec import CaseSpec
from tribench.harness.efficiency import FLOPS_UNIT, device_bandwidth, device_peak, peak_entries, reference_precision
from tribench.harness.process_stats import estimate
from tribench.harness.stats import percentile
from tribench.harness.traffic import ACTIVATION_BYTES, decode_bytes_per_step
from tribench.suites import workloads
from tribench.suites.workloads import DecoderSpec, generation_flops, kv_cache_bytes

POOLED = "every measured {what} of every process, pooled"
DEFINITIONS = {
    "ttft": "time to first token: from the start of a request to its first token read on the host (the prompt's "
            "prefill and the first greedy choice)",
    "tpot": "time per output token: one cached decode step, one new token per sequence, read on the host; a "
            "request of N new tokens has N - 1",
    "decode_tokens_per_s_per_sequence": "1 / TPOT",
    "decode_tokens_per_s": "batch / TPOT",
    "prefill_tokens_per_s": "batch x prompt / TTFT",
    "request_latency": "one request end to end: the case's median step time",
}


def decoder_of(spec: CaseSpec) -> DecoderSpec:
    return workloads.get(spec.workload).architecture(spec.size)


def request_flops(spec: CaseSpec) -> int:
    """FLOPs of one request over the whole batch (prefill + decode)."""
    prefill, decode = generation_flops(decoder_of(spec), spec.prompt, spec.new_tokens)
    return (prefill + decode) * spec.batch_size


def _timed(per_process: list[list[float]], what: str, unit: str = "s") -> dict[str, Any]:
    """Centre and CI across processes (their medians), and the pooled percentiles."""
    used = [values for values in per_process if values]
    pooled = sorted(value for values in used for value in values)
    if not pooled:
        return {"value": None, "unit": unit, "reason": f"no measured {what}"}
    center = estimate(used)
    return {"value": center.center, "unit": unit, "ci_low": center.ci_low, "ci_high": center.ci_high,
            "ci_basis": center.basis, "processes": center.processes,
            "p50": percentile(pooled, 50), "p90": percentile(pooled, 90), "p99": percentile(pooled, 99),
            "samples": len(pooled), "percentiles_source": POOLED.format(what=what),
            "per_process_median": [statistics.median(values) for values in used]}


def generation_metrics(spec: CaseSpec, ok: list[dict[str, Any]], step_s: float,
                       environment: dict[str, Any] | None) -> dict[str, Any]:
    """``metrics.generation`` of an ok generate case (``ok``: its ok process results; ``step_s``: the median
    request time)."""
    records = [r["generation"] for r in ok if r.get("generation")]
    ttft = _timed([record["ttft_s"] for record in records], "request's time to first token")
    tpot = _timed([[s for request in record["tpot_s"] for s in request] for record in records], "decode step")
    decoder = decoder_of(spec)
    batch, prompt, new = spec.batch_size, spec.prompt, spec.new_tokens
    prefill_flops, decode_flops = generation_flops(decoder, prompt, new)
    source = records[0]["source"] if records else None
    figures: dict[str, Any] = {
        "prompt_tokens": prompt, "new_tokens": new, "batch": batch,
        "ttft": {**ttft, "definition": DEFINITIONS["ttft"], "source": source},
        "tpot": {**tpot, "definition": DEFINITIONS["tpot"], "source": source},
        "request_latency": {"value": step_s, "unit": "s", "definition": DEFINITIONS["request_latency"]},
    }
    rates = (("decode_tokens_per_s_per_sequence", tpot["value"], 1.0),
             ("decode_tokens_per_s", tpot["value"], float(batch)),
             ("prefill_tokens_per_s", ttft["value"], float(batch * prompt)))
    for name, seconds, tokens in rates:
        figures[name] = ({"value": tokens / seconds, "unit": "tokens/s", "definition": DEFINITIONS[name]}
                         if seconds else {"value": None, "unit": "tokens/s", "definition": DEFINITIONS[name],
                                          "reason": "nothing timed"})
    value_bytes = ACTIVATION_BYTES.get(spec.precision, 4)
    figures["kv_cache"] = {"value": kv_cache_bytes(decoder, batch, prompt + new, value_bytes), "unit": "bytes",
                           "source": f"analytic: 2 x layers x batch x (prompt + new tokens) x kv_dim x "
                                     f"{value_bytes} bytes"}
    figures.update(_efficiency(spec, decoder, prefill_flops * batch, decode_flops * batch, ttft["value"],
                               tpot["value"], environment))
    return figures


def _efficiency(spec: CaseSpec, decoder: DecoderSpec, prefill_flops: int, decode_flops: int,
                ttft: float | None, tpot: float | None,
                environment: dict[str, Any] | None) -> dict[str, Any]:
    """Prefill and decode MFU against the run's measured peaks, and decode's achieved memory bandwidth."""
    entries = peak_entries(environment)
    precision = reference_precision(spec.precision, spec.backend, spec.device, entries)
    peak, peak_why = device_peak(entries, spec.device, precision) if entries else (None, "no measured peaks")
    bandwidth, bandwidth_why = device_bandwidth(entries, spec.device) if entries else (None, "no measured peaks")
    steps = max(spec.new_tokens - 1, 1)
    per_step_flops = decode_flops / steps
    step_bytes = decode_bytes_per_step(decoder, spec.batch_size, spec.prompt, spec.new_tokens, spec.precision)
    out: dict[str, Any] = {
        "prefill_flops": {"value": prefill_flops, "unit": "FLOP", "source": "suites.workloads.generation_flops"},
        "decode_flops_per_step": {"value": per_step_flops, "unit": "FLOP",
                                  "source": "suites.workloads.generation_flops / decode steps (mean over the "
                                            "context)"},
        "decode_bytes_per_step": {"value": step_bytes, "unit": "bytes",
                                  "source": "float32 weights read once + the KV cache at its mean length"},
    }
    for name, flops, seconds, timer in (("prefill", prefill_flops, ttft, "TTFT"),
                                        ("decode", per_step_flops, tpot, "TPOT")):
        achieved = flops / seconds if seconds else None
        source = f"{name} FLOPs / {timer}"
        out[f"{name}_achieved_flops_per_s"] = (
            {"value": achieved, "unit": FLOPS_UNIT, "source": source} if achieved else
            {"value": None, "unit": FLOPS_UNIT, "source": source, "reason": f"no {timer} measured"})
        mfu_source = f"{source} / the run's measured {spec.device} peak ({precision})"
        out[f"{name}_mfu"] = ({"value": achieved / peak["value"], "unit": "fraction", "source": mfu_source,
                               "peak_flops_per_s": peak["value"], "peak_precision": precision}
                              if achieved and peak else {"value": None, "unit": "fraction", "source": mfu_source,
                                                         "reason": peak_why or f"no {timer} measured"})
    moved = step_bytes / tpot if tpot else None
    source = "decode bytes per step / TPOT"
    out["decode_bandwidth"] = ({"value": moved, "unit": "bytes/s", "source": source} if moved else
                               {"value": None, "unit": "bytes/s", "source": source, "reason": "no TPOT measured"})
    fraction_source = f"{source} / the run's measured {spec.device} memory bandwidth"
    out["decode_bandwidth_fraction"] = (
        {"value": moved / bandwidth["value"], "unit": "fraction", "source": fraction_source,
         "peak_bytes_per_s": bandwidth["value"]} if moved and bandwidth else
        {"value": None, "unit": "fraction", "source": fraction_source, "reason": bandwidth_why or "no TPOT measured"})
    return out
