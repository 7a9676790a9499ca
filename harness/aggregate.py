"""Turn a case's per-process results (one per repeat) into its status and metrics.

The process is the unit of uncertainty (``harness.process_stats``): the case's median step time
(the latency of single synced steps) and its throughput (what a loop of steps sustains,
``harness.sustained``) and their CIs come from one value per process, never from steps
pooled across processes. Pooled steps only give descriptive percentiles (p90, p99, IQR noise),
labelled as such. A process flagged as disturbed (``disturbance.disturbed``) is left out of the
estimate while undisturbed ones exist, and listed. Each metric names its unit and source.
"""

from __future__ import annotations

import statistics
from typing import Any

from tribench import backends
from tribench.core.spec import CaseSpec
from tribench.harness.distributed_metrics import data_parallel_efficiency, global_metrics
from tribench.harness.efficiency import case_efficiency
from tribench.harness.probes.energy_summary import case_energy, case_telemetry
from tribench.harness.process_stats import estimate
from tribench.harness.stats import summarize
from tribench.harness.sustained import throughput_metric
from tribench.suites import workloads

STATUS_ORDER = ("ok", "skipped", "timeout", "failed")  # a case is as bad as its worst repeat

STEP_TIME_SOURCE = "latency: host wall clock (time.perf_counter) around step() + sync(), one synced step at a time"
POOLED_SOURCE = "percentiles of the steps of every used process, pooled: descriptive only, no CI"


def is_disturbed(repeat: dict[str, Any]) -> bool:
    return bool((repeat.get("disturbance") or {}).get("disturbed"))


def converged(repeat: dict[str, Any]) -> bool:
    """The process met its stopping rule (or ran its counted steps), rather than running out of time or steps."""
    return repeat["timing"]["stop_reason"] in ("converged", "fixed_steps")


def used_processes(ok: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The processes the estimate is made from: the undisturbed ones, or all when fewer than two would be left
    of two or more (one process gives only a within-process CI: its spread across processes would be lost,
    so the disturbed ones stay in, flagged, rather than hide it)."""
    calm = [r for r in ok if not is_disturbed(r)]
    return calm if len(calm) >= min(2, len(ok)) else ok


def used_results(case: dict[str, Any]) -> list[dict[str, Any]]:
    """A recorded case's successful processes that its estimate was made from (``step_time.used``):
    a disturbed one is left out as the run left it out; an older file has no such list: all of them."""
    ok = [r for r in case.get("repeats", []) if r.get("status") == "ok" and r.get("timing")]
    used = ((case.get("metrics") or {}).get("step_time") or {}).get("used")
    if used is None or len(used) != len(ok):
        return ok
    return [result for result, keep in zip(ok, used, strict=True) if keep]


def process_quality(ok: list[dict[str, Any]], used: list[dict[str, Any]]) -> dict[str, Any]:
    """How many processes made the estimate, and how many did not converge, warm up or stay undisturbed."""
    return {
        "processes": len(used),
        "ok_processes": len(ok),
        "not_converged": sum(not converged(r) for r in used),
        "not_steady": sum(not r["timing"]["warmup_steady"] for r in used),
        "disturbed": sum(is_disturbed(r) for r in ok),
        "disturbed_used": sum(is_disturbed(r) for r in used),
    }


def case_status(repeats: list[dict[str, Any]]) -> tuple[str, str | None]:
    worst = max(repeats, key=lambda r: STATUS_ORDER.index(r["status"]))
    return worst["status"], worst.get("error")


ANALYTIC_FLOPS_SOURCE = "analytic (suites.workloads; train = 3 x forward)"


def step_flops(spec: CaseSpec, repeats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """FLOPs of one step: the workload's analytic formula, else what the framework's own counter gave a process
    (a plugin without a formula: ``build.counted_flops``), else unavailable with the reason."""
    if spec.mode == "generate":  # a step is one request: prefill + decode steps (harness.generation)
        from tribench.harness.generation import request_flops

        return {"value": request_flops(spec), "unit": "FLOP",
                "source": "analytic (suites.workloads.generation_flops: prefill + cached decode steps)"}
    analytic = workloads.get(spec.workload).flops_per_step(spec.size, spec.mode, spec.batch_size)
    if analytic is not None:
        source = ANALYTIC_FLOPS_SOURCE if workloads.is_builtin(spec.workload) else (
            "analytic (the workload plugin's forward_flops; train = 3 x forward)")
        return {"value": analytic, "unit": "FLOP", "source": source}
    counted = next((r["build"]["counted_flops"] for r in repeats or []
                    if r.get("status") == "ok" and (r.get("build") or {}).get("counted_flops")), None)
    if counted is not None:
        return dict(counted)
    return {"value": None, "unit": "FLOP", "source": "the framework's FLOP counter",
            "reason": "the workload has no analytic formula and no process counted its FLOPs"}


def tokens_per_sample(spec: CaseSpec) -> int | None:
    """Sequence positions a step handles per sample; for generate, the tokens it generates per sequence."""
    if spec.mode == "generate":
        return spec.new_tokens
    return workloads.get(spec.workload).tokens_per_sample(spec.size)


def workload_facts(spec: CaseSpec, repeats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    workload = workloads.get(spec.workload)
    facts = {
        "flops_per_step": step_flops(spec, repeats),
        "expected_params": workload.expected_params(spec.size,
                                                    lstm_second_bias=backends.lstm_second_bias(spec.backend)),
        "tokens_per_sample": tokens_per_sample(spec),
    }
    if not workloads.is_builtin(spec.workload):
        facts["origin"] = workload.origin
    return facts


def _larger(new: dict[str, Any], current: dict[str, Any] | None) -> bool:
    if current is None:
        return True
    if new["value"] is None:
        return False
    return current["value"] is None or new["value"] > current["value"]


def _max_readings(repeats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per reading name, the largest measured value over repeats (or the first unavailable one)."""
    chosen: dict[str, dict[str, Any]] = {}
    for repeat in repeats:
        for reading in repeat.get("memory", []):
            if _larger(reading, chosen.get(reading["name"])):
                chosen[reading["name"]] = reading
    return list(chosen.values())


def case_metrics(spec: CaseSpec, repeats: list[dict[str, Any]],
                 environment: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The case's metrics from its ok repeats; ``environment`` (the run file's) supplies the measured peaks."""
    ok = [r for r in repeats if r["status"] == "ok"]
    if not ok:
        return None
    used = used_processes(ok)
    process_estimate = estimate([r["timing"]["samples_s"] for r in used])
    median = process_estimate.center
    pooled = summarize([s for r in used for s in r["timing"]["samples_s"]])
    throughput = throughput_metric(spec.batch_size, used, median)
    loop_step_s = throughput.pop("step_s")  # seconds per step the loop sustained (or the synced median)
    metrics: dict[str, Any] = {
        "throughput": throughput,
        "step_time": {
            "unit": "s",
            "source": STEP_TIME_SOURCE,
            **pooled,
            "pooled_source": POOLED_SOURCE,
            "pooled_median": pooled["median"],
            "median": median,
            "p50": median,
            "ci_low": process_estimate.ci_low,
            "ci_high": process_estimate.ci_high,
            "ci_confidence": process_estimate.confidence,
            "ci_rel_halfwidth": process_estimate.ci_rel_halfwidth,
            "ci_basis": process_estimate.basis,
            "ci_source": process_estimate.source,
            "processes": process_estimate.processes,
            "between_process_cv": process_estimate.between_cv,
            "prediction_low": process_estimate.prediction_low,
            "prediction_high": process_estimate.prediction_high,
            "quality": process_quality(ok, used),
            "per_repeat_median": [statistics.median(r["timing"]["samples_s"]) for r in ok],
            "stop_reasons": [r["timing"]["stop_reason"] for r in ok],
            "warmup_steady": [r["timing"]["warmup_steady"] for r in ok],
            "used": [not is_disturbed(r) or len(used) == len(ok) for r in ok],
            "disturbed": [r["disturbance"]["disturbed"] if "disturbance" in r else None for r in ok],
            "disturbance_reasons": [r["disturbance"]["reasons"] if "disturbance" in r else None for r in ok],
        },
        "compile_time": {
            "value": statistics.median(r["timing"]["compile_time_s"] for r in ok),
            "unit": "s",
            "source": "first step (trace/compile/autotune) incl. sync; median over repeats",
            "per_repeat": [r["timing"]["compile_time_s"] for r in ok],
        },
        "setup_time": {
            "value": statistics.median(r["setup_time_s"] for r in ok),
            "unit": "s",
            "source": "backend build(): model, data, optimizer on device; median over repeats",
        },
        "params": {"value": ok[0]["param_count"], "unit": "parameters", "source": "backend param_count()"},
        "memory": _max_readings(ok),
    }
    tokens = tokens_per_sample(spec)
    if tokens:
        metrics["token_throughput"] = {
            "value": spec.batch_size * tokens / loop_step_s,
            "unit": "tokens/s",
            "source": ("generated tokens per request x batch / request time (end to end, prefill included)"
                       if spec.mode == "generate" else "throughput x sequence length"),
        }
    if spec.total_devices > 1:  # data-parallel: global throughput over the ranks (harness.distributed)
        metrics.update(global_metrics(spec, ok))
        if tokens:
            metrics["token_throughput"] = {"value": metrics["throughput"]["value"] * tokens, "unit": "tokens/s",
                                           "source": "global throughput x sequence length"}
    metrics["energy"] = case_energy(spec.batch_size, tokens, ok)  # J/sample, or unavailable with the reason
    telemetry = case_telemetry(ok)
    if telemetry:
        metrics["telemetry"] = telemetry
    if spec.total_devices > 1:  # the ranks' FLOPs over the devices that did them (harness.distributed)
        metrics.update(data_parallel_efficiency(spec, metrics["throughput"]["value"], metrics["ranks"], environment))
    else:
        metrics.update(efficiency_metrics(spec, step_flops(spec, ok), loop_step_s, environment))  # sustained
    if spec.mode == "generate":  # TTFT, TPOT, tokens/s, KV cache, prefill and decode MFU, decode bandwidth
        from tribench.harness.generation import generation_metrics

        metrics["generation"] = generation_metrics(spec, ok, median, environment)
    profile = next((r["profile"] for r in ok if r.get("profile")), None)
    if profile:
        metrics["profile"] = profile   # the first repeat's trace and top operators (harness.profiling)
    return metrics


def efficiency_metrics(spec: CaseSpec, flops: dict[str, Any], step_s: float,
                       environment: dict[str, Any] | None) -> dict[str, Any]:
    """achieved FLOP/s, MFU against the run's stored peaks and % of datasheet spec (``harness.efficiency``);
    ``flops``: ``step_flops``, whose source they name (unavailable, with its reason, when it has no value)."""
    return case_efficiency(spec.to_dict(), flops["value"], step_s, environment, flops_source=flops["source"],
                           flops_reason=flops.get("reason"))
