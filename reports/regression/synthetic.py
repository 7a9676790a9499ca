"""Synthetic run files with two-level noise, for calibrating ``tribench compare``.

Whole worker processes of one case differ by 5-12% on shared machines while
each process's own median is tight, so the generator draws noise at two
levels, all multiplicative (log-normal):

* each process draws a factor ``exp(N(0, between_sigma))``;
* each step is ``true median x process factor x exp(N(0, within_sigma))``;
* with probability ``stall_rate`` a step is also multiplied by a stall factor
  drawn uniformly from ``stall_factor`` (GC pauses, preemption);
* with probability ``disturbed_fraction`` a process is *disturbed*: every step
  from a random step on is multiplied by ``disturbance_factor`` (a neighbour
  started; a level shift inside the process).

A planted shift multiplies a case's true median step time on one side. The
random draws never depend on the true medians or the shift, so two runs with
the same seed and different shifts differ exactly by the shift (common random
numbers: a power estimate then differs from its A/A twin by the shift alone).

Cases are derived with the harness's own ``case_status`` / ``case_metrics`` /
``workload_facts``, so their ``metrics`` are what ``tribench run`` writes for
the same per-process results, and every run carries the same environment
fingerprint, so two generated runs compare as one machine.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import case_metrics, case_status, workload_facts
from tribench.harness.environment import fingerprint
from tribench.harness.results import KIND, SCHEMA_VERSION

Steps = int | tuple[int, int]  # a fixed count, or an inclusive range each process draws from
Shift = Mapping[int | str, float]  # case index or case id -> factor on its true median step time

STARTED_AT = "2026-01-01T00:00:00+00:00"
HOST_RSS_BYTES = 300e6  # the same in every process: memory verdicts stay "unchanged" and never mask timing
COMPILE_TIME_S = 0.5
SETUP_TIME_S = 1.0


@dataclass(frozen=True)
class CaseTruth:
    """A benchmark case and its true median step time (a typical process, no stall, no disturbance)."""

    spec: CaseSpec
    median_step_s: float


@dataclass(frozen=True)
class NoiseModel:
    """The two-level noise of step times; sigmas are of the natural log of a factor."""

    within_sigma: float = 0.03
    between_sigma: float = 0.02
    stall_rate: float = 0.0
    stall_factor: tuple[float, float] = (5.0, 20.0)
    disturbed_fraction: float = 0.0
    disturbance_factor: float = 2.7


@dataclass(frozen=True)
class SyntheticProcess:
    """One worker process's step times and the hidden draws that made them."""

    factor: float
    samples: tuple[float, ...]
    stalled_steps: tuple[int, ...]
    disturbed_from: int | None  # index of the first disturbed step, None when the process was left alone


def _torch_case(workload: str, mode: str, median_step_s: float, backend: str = "torch") -> CaseTruth:
    spec = CaseSpec(backend=backend, workload=workload, size="tiny", mode=mode, batch_size=32)
    return CaseTruth(spec, median_step_s)


# Six torch cases as the CI example runs them (smoke suite, CPU); medians of the order a 2-core runner shows.
TORCH_CASES: tuple[CaseTruth, ...] = (
    _torch_case("cnn", "train", 0.012),
    _torch_case("cnn", "infer", 0.004),
    _torch_case("rnn", "train", 0.030),
    _torch_case("rnn", "infer", 0.010),
    _torch_case("transformer", "train", 0.050),
    _torch_case("transformer", "infer", 0.015),
)
JAX_CASES: tuple[CaseTruth, ...] = tuple(
    CaseTruth(CaseSpec(**{**truth.spec.to_dict(), "backend": "jax"}), truth.median_step_s * 0.8)
    for truth in TORCH_CASES)

_ENVIRONMENT: dict[str, Any] = {
    "tribench_version": "0.1.0",
    "machine": {"hostname": "synthetic", "system": "Linux", "release": "6.1.0", "architecture": "x86_64",
                "cpu_model": "Synthetic CPU", "logical_cores": 2, "physical_cores": 2, "usable_cores": 2,
                "memory_total_bytes": 8 * 2**30},
    "python": {"version": "3.11.7", "implementation": "CPython", "executable": "/usr/bin/python3"},
    "accelerators": {"nvidia": {"available": False, "reason": "synthetic run: no devices", "devices": []}},
    "frameworks": {"torch": {"version": "2.13.0+cpu"}, "jax": {"version": "0.10.2"}},
    "env_vars": {},
    "git": {"commit": "0" * 40, "commit_time": STARTED_AT, "branch": "synthetic", "dirty": False},
}
_FINGERPRINT_INPUTS: dict[str, Any] = {
    "cpu_model": "Synthetic CPU", "logical_cores": 2, "usable_cores": 2, "memory_total_gib": 8, "system": "Linux",
    "release": "6.1.0", "architecture": "x86_64", "python": "3.11.7", "gpus": [], "gpu_driver": None,
    "frameworks": {"jax": "0.10.2", "torch": "2.13.0+cpu"}, "env_vars": {},
}


def synthetic_environment(commit: str = "0" * 40) -> dict[str, Any]:
    """The one synthetic machine: every generated run has this fingerprint, whatever its commit."""
    environment = copy.deepcopy(_ENVIRONMENT)
    environment["git"]["commit"] = commit
    environment["fingerprint_inputs"] = copy.deepcopy(_FINGERPRINT_INPUTS)
    environment["fingerprint"] = fingerprint(_FINGERPRINT_INPUTS)
    return environment


def shift_factors(cases: Sequence[CaseTruth], shift: Shift | None) -> tuple[float, ...]:
    """Each case's planted factor (1.0 when not shifted); a key naming no case is refused."""
    factors = [1.0] * len(cases)
    ids = [truth.spec.id for truth in cases]
    for key, factor in (shift or {}).items():
        if isinstance(key, int) and 0 <= key < len(cases):
            index = key
        elif isinstance(key, str) and key in ids:
            index = ids.index(key)
        else:
            raise ValueError(f"shift names no case: {key!r} (valid: 0..{len(cases) - 1} or {', '.join(ids)})")
        if factor <= 0:
            raise ValueError(f"shift factor must be positive, got {factor} for {key!r}")
        factors[index] = float(factor)
    return tuple(factors)


def true_median_step_times(cases: Sequence[CaseTruth] = TORCH_CASES,
                           shift: Shift | None = None) -> dict[str, float]:
    """Each case's TRUE median step time on a side with ``shift`` planted, by case id.

    It is the median step time of a typical process (factor 1) without stalls or
    disturbance; stalls at a rate r move the population median up by the
    (0.5 / (1 - r))-quantile of the noise, under 0.05% for r <= 1% and 3% noise.
    """
    factors = shift_factors(cases, shift)
    return {truth.spec.id: truth.median_step_s * factor for truth, factor in zip(cases, factors, strict=True)}


def _step_count(rng: np.random.Generator, steps: Steps) -> int:
    low, high = (steps, steps) if isinstance(steps, int) else steps
    if not 2 <= low <= high:
        raise ValueError(f"steps per process must be at least 2 (a range low <= high), got {steps!r}")
    return int(rng.integers(low, high + 1))


def process_step_times(rng: np.random.Generator, median_step_s: float, steps: Steps,
                       noise: NoiseModel) -> SyntheticProcess:
    """One process's step times; the draws taken from ``rng`` do not depend on ``median_step_s``."""
    count = _step_count(rng, steps)
    factor = float(np.exp(rng.normal(0.0, noise.between_sigma)))
    within = np.exp(rng.normal(0.0, noise.within_sigma, count))
    stalled = rng.random(count) < noise.stall_rate
    stalls = np.where(stalled, rng.uniform(*noise.stall_factor, count), 1.0)
    disturbed = bool(rng.random() < noise.disturbed_fraction)
    disturbed_from = int(rng.integers(1, count)) if disturbed else None
    level = np.ones(count)
    if disturbed_from is not None:
        level[disturbed_from:] = noise.disturbance_factor
    samples = median_step_s * factor * within * stalls * level
    return SyntheticProcess(factor, tuple(float(s) for s in samples),
                            tuple(int(i) for i in np.flatnonzero(stalled)), disturbed_from)


def _repeat(index: int, process: SyntheticProcess, param_count: int) -> dict[str, Any]:
    """A process's result as the worker writes it (``harness.worker``) with its index."""
    samples = list(process.samples)
    return {
        "index": index, "status": "ok", "error": None, "setup_time_s": SETUP_TIME_S, "param_count": param_count,
        "timing": {"compile_time_s": COMPILE_TIME_S, "warmup_samples_s": [], "warmup_steady": True,
                   "samples_s": samples, "stop_reason": "max_steps", "measure_wall_s": float(sum(samples)),
                   "final_ci_rel_halfwidth": None},
        "memory": [
            {"name": "peak_allocated", "unit": "bytes", "source": "synthetic allocator", "scope": "device",
             "value": None, "reason": "synthetic run: no device allocator", "status": "unavailable"},
            {"name": "host_peak_rss", "unit": "bytes", "source": "getrusage(RUSAGE_SELF).ru_maxrss",
             "scope": "process", "value": HOST_RSS_BYTES, "reason": None, "status": "measured"},
        ],
        "energy": None,
    }


def synthetic_case(rng: np.random.Generator, truth: CaseTruth, processes: int, steps: Steps, noise: NoiseModel,
                   factor: float = 1.0, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """A case entry of ``processes`` worker processes; ``factor`` multiplies its true median step time."""
    if processes < 1:
        raise ValueError(f"a case needs at least one process, got {processes}")
    facts = workload_facts(truth.spec)
    draws = [process_step_times(rng, truth.median_step_s * factor, steps, noise) for _ in range(processes)]
    repeats = [_repeat(index, process, facts["expected_params"]) for index, process in enumerate(draws)]
    status, error = case_status(repeats)
    return {"id": truth.spec.id, "spec": truth.spec.to_dict(), "workload": facts, "status": status,
            "error": error, "repeats": repeats, "metrics": case_metrics(truth.spec, repeats, environment)}


def synthetic_run(cases: Sequence[CaseTruth] = TORCH_CASES, processes: int = 5, steps: Steps = 100,
                  noise: NoiseModel | None = None, shift: Shift | None = None, seed: int = 0,
                  run_id: str | None = None) -> dict[str, Any]:
    """A complete run file (the dict ``tribench run`` writes) of ``cases`` on the synthetic machine."""
    noise = noise or NoiseModel()
    factors = shift_factors(cases, shift)
    rng = np.random.default_rng(seed)
    environment = synthetic_environment()
    entries = [synthetic_case(rng, truth, processes, steps, noise, factor, environment)
               for truth, factor in zip(cases, factors, strict=True)]
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "tool_version": "0.1.0",
            "run_id": run_id or f"synthetic-{seed}", "started_at": STARTED_AT, "finished_at": STARTED_AT,
            "state": "complete", "command": ["tribench", "run", "(synthetic)"],
            "tags": {"synthetic": "true"},
            "settings": {"timing": {"steps": list(steps) if isinstance(steps, tuple) else steps},
                         "repeats": processes, "noise": noise_settings(noise), "shift": [*factors]},
            "environment": environment, "cases": entries}


def noise_settings(noise: NoiseModel) -> dict[str, Any]:
    """The noise model as plain JSON, recorded in a synthetic run's settings."""
    return {"within_sigma": noise.within_sigma, "between_sigma": noise.between_sigma,
            "stall_rate": noise.stall_rate, "stall_factor": list(noise.stall_factor),
            "disturbed_fraction": noise.disturbed_fraction, "disturbance_factor": noise.disturbance_factor}
