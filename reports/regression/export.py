"""Run files in the formats CI tools already read.

* ``pytest-benchmark``: pytest-benchmark's ``--benchmark-json`` schema, one
  benchmark per successful case; one *round* is one timed step, so ``ops`` is
  steps per second and ``stats`` are step times in seconds, derived from the
  raw samples of every successful process. ``pytest-benchmark compare`` and
  github-action-benchmark's ``pytest`` tool load it.
* ``github-action-benchmark``: the action's custom JSON, a list of
  ``{name, unit, value, range, extra}``. One file holds one direction, chosen
  with ``tool``: ``customBiggerIsBetter`` (throughput in samples/s and
  tokens/s) or ``customSmallerIsBetter`` (p50 and p99 step time in ms, peak
  memory in MiB, measured energy per sample in J).
* ``bencher``: the Bencher Metric Format (BMF), ``{benchmark: {measure: {value, lower_value,
  upper_value}}}``, both directions in one file: ``throughput`` (samples/s, Bencher's built-in
  operations/s measure) and ``token-throughput`` (tokens/s) where bigger is better; ``latency`` (the
  p50 step time in nanoseconds, Bencher's built-in measure), ``latency-p99`` (ns), ``device-peak-memory``
  and ``host-peak-rss`` (bytes) and ``energy-per-sample`` (J) where smaller is better. The lower and
  upper values are the 95% CI across processes where tribench has one (throughput, p50); a measure
  without a CI carries its value alone. Bencher creates the measures it does not know on first upload.
* ``csv``: one row per case, the columns of ``reports.load``.
"""

from __future__ import annotations

import statistics
from typing import Any

from tribench.core.errors import InvalidChoice
from tribench.harness.stats import percentile, summarize
from tribench.reports.regression.compare_metrics import reading_value, step_samples
from tribench.reports.report_format import ci_basis_text, quality_text

FORMATS = ("pytest-benchmark", "github-action-benchmark", "bencher", "csv")
TOOLS = ("customBiggerIsBetter", "customSmallerIsBetter")
PYTEST_BENCHMARK_VERSION = "5.1.0"  # the schema written; pytest-benchmark 4.x and 5.x read it


def _machine_info(environment: dict[str, Any]) -> dict[str, Any]:
    machine, python = environment.get("machine", {}), environment.get("python", {})
    return {"node": machine.get("hostname"), "processor": machine.get("cpu_model"),
            "machine": machine.get("architecture"), "python_compiler": "",
            "python_implementation": python.get("implementation"),
            "python_implementation_version": python.get("version"), "python_version": python.get("version"),
            "python_build": [], "release": machine.get("release"), "system": machine.get("system"),
            "cpu": {"brand_raw": machine.get("cpu_model"), "count": machine.get("logical_cores")},
            "tribench_fingerprint": environment.get("fingerprint")}


def _commit_info(environment: dict[str, Any]) -> dict[str, Any]:
    git = environment.get("git", {})
    return {"id": git.get("commit") or "unversioned", "time": git.get("commit_time"),
            "author_time": git.get("commit_time"), "dirty": bool(git.get("dirty")), "project": "tribench",
            "branch": git.get("branch") or "(unknown)"}


def _outliers(ordered: list[float], mean: float, stdev: float) -> tuple[int, int, float, float]:
    """pytest-benchmark's outlier counts: beyond 1.5 IQR (Tukey) and beyond one standard deviation."""
    q1, q3 = percentile(ordered, 25), percentile(ordered, 75)
    low_fence, high_fence = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    inside = [value for value in ordered if low_fence <= value <= high_fence]
    iqr_outliers = len(ordered) - len(inside)
    stdev_outliers = sum(1 for value in ordered if abs(value - mean) > stdev)
    return iqr_outliers, stdev_outliers, min(inside, default=ordered[0]), max(inside, default=ordered[-1])


def pytest_stats(samples: list[float]) -> dict[str, Any]:
    """The ``stats`` block of one pytest-benchmark benchmark, from raw step times (seconds)."""
    ordered = sorted(samples)
    summary = summarize(ordered)
    mean, stdev = float(summary["mean"]), float(summary["stdev"] or 0.0)
    iqr_outliers, stdev_outliers, low, high = _outliers(ordered, mean, stdev)
    return {"min": ordered[0], "max": ordered[-1], "mean": mean, "stddev": stdev, "rounds": len(ordered),
            "median": summary["median"], "iqr": summary["iqr"], "q1": summary["q1"], "q3": summary["q3"],
            "iqr_outliers": iqr_outliers, "stddev_outliers": stdev_outliers,
            "outliers": f"{stdev_outliers};{iqr_outliers}", "ld15iqr": low, "hd15iqr": high, "ops": 1.0 / mean,
            "total": sum(ordered), "iterations": 1, "data": list(samples)}


def _benchmark(case: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    spec, metrics = case["spec"], case["metrics"]
    samples = [sample for process in step_samples(case) for sample in process]
    timing = run.get("settings", {}).get("timing", {})
    return {
        "group": f"{spec.get('workload')}-{spec.get('size')}/{spec.get('mode')}",
        "name": case["id"], "fullname": f"tribench::{case['id']}",
        "params": dict(spec), "param": case["id"],
        "extra_info": {"throughput_samples_per_s": metrics["throughput"]["value"],
                       "batch_size": spec.get("batch_size"), "processes": len(step_samples(case)),
                       "noise_iqr_over_median": metrics["step_time"].get("noise"),
                       "compile_time_s": (metrics.get("compile_time") or {}).get("value"),
                       "source": metrics["step_time"].get("source"), "tribench_run_id": run.get("run_id")},
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": timing.get("min_steps"),
                    "max_time": timing.get("max_time_s"), "min_time": timing.get("min_time_s"),
                    "precision": None, "confidence": timing.get("confidence"), "warmup": True},
        "stats": pytest_stats(samples),
    }


def to_pytest_benchmark(run: dict[str, Any]) -> dict[str, Any]:
    """A pytest-benchmark JSON document for the run's successful cases."""
    environment = run.get("environment", {})
    benchmarks = [_benchmark(case, run) for case in run["cases"]
                  if case.get("status") == "ok" and case.get("metrics") and step_samples(case)]
    return {"machine_info": _machine_info(environment), "commit_info": _commit_info(environment),
            "benchmarks": benchmarks, "datetime": run.get("started_at"), "version": PYTEST_BENCHMARK_VERSION}


def _extra(case: dict[str, Any], run: dict[str, Any]) -> str:
    step = case["metrics"]["step_time"]
    noise = step.get("noise")
    flags = quality_text(step)
    return "\n".join([f"samples: {step.get('n')}", f"processes: {len(step_samples(case))}",
                      f"CI: {ci_basis_text(step.get('ci_basis'), step.get('processes'))}",
                      *([f"process flags: {flags}"] if flags else []),
                      f"noise (IQR/median): {'n/a' if noise is None else f'{noise:.1%}'}",
                      f"run: {run.get('run_id')}", f"fingerprint: {run.get('environment', {}).get('fingerprint')}"])


def _throughput_range(case: dict[str, Any], tokens: int) -> str | None:
    """± half the width of the throughput's 95% CI (its own when sustained, else from the median step time's)."""
    throughput = case["metrics"]["throughput"]
    if throughput.get("basis") == "sustained":
        if throughput.get("ci_low") is None or throughput.get("ci_high") is None:
            return None
        return f"± {(throughput['ci_high'] - throughput['ci_low']) * tokens / 2:.6g}"
    step = case["metrics"]["step_time"]
    if step.get("ci_low") is None or step.get("ci_high") is None:
        return None
    per_step = case["spec"]["batch_size"] * tokens
    return f"± {(per_step / step['ci_low'] - per_step / step['ci_high']) / 2:.6g}"


def _bigger(case: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = case["metrics"]
    entries = [{"name": f"{case['id']} throughput", "unit": "samples/s", "value": metrics["throughput"]["value"],
                "range": _throughput_range(case, 1), "extra": _extra(case, run)}]
    if metrics.get("token_throughput"):
        tokens = case.get("workload", {}).get("tokens_per_sample") or 1
        entries.append({"name": f"{case['id']} token throughput", "unit": "tokens/s",
                        "value": metrics["token_throughput"]["value"], "range": _throughput_range(case, tokens),
                        "extra": _extra(case, run)})
    return entries


def _smaller(case: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    step = case["metrics"]["step_time"]
    per_process = [statistics.median(process) for process in step_samples(case)]
    spread = f"± {(max(per_process) - min(per_process)) / 2 * 1e3:.6g}" if len(per_process) > 1 else None
    entries = [{"name": f"{case['id']} p50 step time", "unit": "ms", "value": step["median"] * 1e3,
                "range": spread, "extra": _extra(case, run)},
               {"name": f"{case['id']} p99 step time", "unit": "ms", "value": step["p99"] * 1e3,
                "extra": _extra(case, run)}]
    for metric, label, unit, scale in (("device_memory", "device peak memory", "MiB", 1 / 2**20),
                                       ("host_memory", "host peak RSS", "MiB", 1 / 2**20),
                                       ("energy_per_sample", "energy per sample", "J/sample", 1.0)):
        reading = reading_value(case, metric)
        if reading.value is not None:
            entries.append({"name": f"{case['id']} {label}", "unit": unit, "value": reading.value * scale,
                            "extra": f"source: {reading.source}\n{_extra(case, run)}"})
    return entries


def to_github_action_benchmark(run: dict[str, Any], tool: str) -> list[dict[str, Any]]:
    """github-action-benchmark custom JSON for one tool (direction); entries without a range omit it."""
    if tool not in TOOLS:
        raise InvalidChoice("github-action-benchmark tool", tool, TOOLS)
    build = _bigger if tool == "customBiggerIsBetter" else _smaller
    entries = [entry for case in run["cases"] if case.get("status") == "ok" and case.get("metrics")
               and step_samples(case) for entry in build(case, run)]
    return [{key: value for key, value in entry.items() if value is not None} for entry in entries]


def _bounded(value: float, low: float | None, high: float | None) -> dict[str, float]:
    metric = {"value": value}
    if low is not None and high is not None:
        metric.update(lower_value=min(low, high), upper_value=max(low, high))
    return metric


def _throughput_bounds(case: dict[str, Any], per_sample: float) -> tuple[float | None, float | None]:
    """The throughput's 95% CI x ``per_sample`` (its own when sustained, else from the median step time's)."""
    throughput = case["metrics"]["throughput"]
    if throughput.get("basis") == "sustained":
        low, high = throughput.get("ci_low"), throughput.get("ci_high")
        return (None, None) if low is None or high is None else (low * per_sample, high * per_sample)
    step = case["metrics"]["step_time"]
    if not step.get("ci_low") or not step.get("ci_high"):
        return None, None
    per_step = case["spec"]["batch_size"] * per_sample
    return per_step / step["ci_high"], per_step / step["ci_low"]


def _bencher_measures(case: dict[str, Any]) -> dict[str, dict[str, float]]:
    metrics, step = case["metrics"], case["metrics"]["step_time"]
    nanoseconds = 1e9
    measures = {"throughput": _bounded(metrics["throughput"]["value"], *_throughput_bounds(case, 1.0))}
    if metrics.get("token_throughput"):
        tokens = case.get("workload", {}).get("tokens_per_sample") or 1
        measures["token-throughput"] = _bounded(metrics["token_throughput"]["value"],
                                                *_throughput_bounds(case, float(tokens)))
    low, high = step.get("ci_low"), step.get("ci_high")
    measures["latency"] = _bounded(step["median"] * nanoseconds, low and low * nanoseconds,
                                   high and high * nanoseconds)
    measures["latency-p99"] = {"value": step["p99"] * nanoseconds}
    for metric, slug in (("device_memory", "device-peak-memory"), ("host_memory", "host-peak-rss"),
                         ("energy_per_sample", "energy-per-sample")):
        reading = reading_value(case, metric)
        if reading.value is not None:
            measures[slug] = {"value": float(reading.value)}
    return measures


def to_bencher(run: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Bencher Metric Format: one benchmark per successful case (its id), the measures in the module docstring."""
    return {case["id"]: _bencher_measures(case) for case in run["cases"]
            if case.get("status") == "ok" and case.get("metrics") and step_samples(case)}


def to_csv(path: str, redact: bool = False) -> str:
    """One row per case (the columns of ``reports.load``), as CSV text (share-safe with ``redact``)."""
    from tribench.reports.frame import load

    return load([path], redact=redact).to_csv(index=False)
