"""Build synthetic run files in code (for compare, history and export tests).

Cases are derived with the harness's own ``case_status`` / ``case_metrics`` /
``workload_facts``, so their ``metrics`` are exactly what ``tribench run``
would write for the same per-process results.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import case_metrics, case_status, workload_facts
from tribench.harness.environment import fingerprint
from tribench.harness.results import KIND, SCHEMA_VERSION

BASE_ENV: dict[str, Any] = {
    "tribench_version": "0.1.0",
    "machine": {"hostname": "ci-runner", "system": "Linux", "release": "6.1.0", "architecture": "x86_64",
                "cpu_model": "AMD EPYC", "logical_cores": 2, "physical_cores": 2, "usable_cores": 2,
                "memory_total_bytes": 25 * 2**30},
    "python": {"version": "3.11.7", "implementation": "CPython", "executable": "/usr/bin/python3"},
    "accelerators": {"nvidia": {"available": False, "reason": "NVML unavailable", "devices": []}},
    "frameworks": {"torch": {"version": "2.13.0+cpu"}, "jax": {"version": "0.10.2"}},
    "env_vars": {},
    "git": {"commit": "a" * 40, "commit_time": "2026-01-01T00:00:00+00:00", "branch": "main", "dirty": False},
}
FINGERPRINT_INPUTS: dict[str, Any] = {
    "cpu_model": "AMD EPYC", "logical_cores": 2, "usable_cores": 2, "memory_total_gib": 25, "system": "Linux",
    "release": "6.1.0", "architecture": "x86_64", "python": "3.11.7", "gpus": [], "gpu_driver": None,
    "frameworks": {"jax": "0.10.2", "torch": "2.13.0+cpu"}, "env_vars": {},
}


def environment(commit: str = "a" * 40, commit_time: str | None = "2026-01-01T00:00:00+00:00",
                **fingerprint_changes: Any) -> dict[str, Any]:
    env = copy.deepcopy(BASE_ENV)
    env["git"].update(commit=commit, commit_time=commit_time)
    inputs = copy.deepcopy(FINGERPRINT_INPUTS)
    for key, value in fingerprint_changes.items():
        if key == "frameworks":
            inputs["frameworks"].update(value)
        else:
            inputs[key] = value
    env["fingerprint_inputs"] = inputs
    env["fingerprint"] = fingerprint(inputs)
    return env


def lognormal(rng: np.random.Generator, n: int, median: float, sigma: float = 0.03) -> list[float]:
    """Step times whose median is ``median`` with multiplicative (log-normal) noise ``sigma``."""
    return list(median * np.exp(rng.normal(0.0, sigma, n)))


def memory_readings(host_rss: float | None = 300e6, device_peak: float | None = None) -> list[dict[str, Any]]:
    device = ({"name": "peak_allocated", "unit": "bytes", "source": "fake allocator", "scope": "device",
               "value": device_peak, "reason": None, "status": "measured"} if device_peak is not None else
              {"name": "peak_allocated", "unit": "bytes", "source": "fake allocator", "scope": "device",
               "value": None, "reason": "the fake keeps no allocator statistics", "status": "unavailable"})
    host = {"name": "host_peak_rss", "unit": "bytes", "source": "getrusage(RUSAGE_SELF).ru_maxrss",
            "scope": "process", "value": host_rss, "reason": None if host_rss else "not read",
            "status": "measured" if host_rss else "unavailable"}
    return [device, host]


def repeat(samples: list[float], index: int = 0, compile_time: float = 0.5, host_rss: float | None = 300e6,
           device_peak: float | None = None, status: str = "ok", error: str | None = None,
           energy: Any = None) -> dict[str, Any]:
    if status != "ok":
        return {"index": index, "status": status, "error": error or f"the case {status}", "stderr_tail": ""}
    result = {
        "index": index, "status": "ok", "error": None, "setup_time_s": 1.0, "param_count": 93322,
        "timing": {"compile_time_s": compile_time, "warmup_samples_s": [], "warmup_steady": True,
                   "samples_s": [float(s) for s in samples], "stop_reason": "converged",
                   "measure_wall_s": float(sum(samples)), "final_ci_rel_halfwidth": 0.01},
        "memory": memory_readings(host_rss, device_peak),
    }
    if energy is not None:
        result["energy"] = energy
    return result


def case(repeats: list[dict[str, Any]], energy: Any = None, **spec_fields: Any) -> dict[str, Any]:
    """A case as the run file holds it; ``spec_fields`` override the default torch cnn-tiny train case."""
    extra = {key: spec_fields.pop(key) for key in list(spec_fields) if key not in CaseSpec.__dataclass_fields__}
    spec = CaseSpec(**{"backend": "torch", "workload": "cnn", "size": "tiny", "mode": "train", "batch_size": 32,
                       **spec_fields})
    status, error = case_status(repeats)
    entry = {"id": spec.id, "spec": {**spec.to_dict(), **extra}, "workload": workload_facts(spec),
             "status": status, "error": error, "repeats": repeats, "metrics": case_metrics(spec, repeats)}
    if energy is not None and entry["metrics"] is not None:
        entry["metrics"]["energy"] = energy
    return entry


def skipped_case(reason: str = "the fake cannot do this", **spec_fields: Any) -> dict[str, Any]:
    spec = CaseSpec(**{"backend": "torch", "workload": "cnn", "size": "tiny", "mode": "train", "batch_size": 32,
                       **spec_fields})
    return {"id": spec.id, "spec": spec.to_dict(), "workload": workload_facts(spec), "status": "skipped",
            "error": reason, "repeats": [], "metrics": None}


def run(cases: list[dict[str, Any]], run_id: str = "run-1", env: dict[str, Any] | None = None,
        started_at: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "tool_version": "0.1.0", "run_id": run_id,
            "started_at": started_at, "finished_at": started_at, "state": "complete", "command": ["tribench", "run"],
            "tags": {}, "settings": {"timing": {"min_steps": 10, "min_time_s": 1.0, "max_time_s": 10.0},
                                     "repeats": 1}, "environment": env or environment(), "cases": cases}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def simple_case(rng: np.random.Generator, median: float, n: int = 60, repeats: int = 4, sigma: float = 0.03,
                between: float = 0.0, **spec_fields: Any) -> dict[str, Any]:
    """A case with ``repeats`` processes of ``n`` log-normal step times around ``median``, each process's
    median moved by its own log-normal factor of spread ``between``."""
    medians = median * np.exp(rng.normal(0.0, between, repeats)) if between else [median] * repeats
    return case([repeat(lognormal(rng, n, m, sigma), index=i) for i, m in enumerate(medians)], **spec_fields)
