"""What machine, software and settings a run ran under, and a fingerprint to compare runs by.

Nothing here imports a framework: framework versions and build flags come from
each backend's ``Availability`` (asked in a subprocess), GPUs from NVML.
The ``fingerprint`` hashes only what changes performance (CPU model and count,
memory, OS kernel, Python, accelerators and driver, framework versions, thread
and library settings), not the host name, so two identical machines compare as
like with like; ``fingerprint_inputs`` keeps what was hashed, so a mismatch can
be explained field by field.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from tribench.harness import cpuinfo, env_capture
from tribench.version import __version__

# Of those, the ones that change speed: part of the fingerprint.
FINGERPRINT_ENV = ("XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE",
                   "KMP_AFFINITY", "OMP_PROC_BIND")


def _affects_speed(name: str) -> bool:
    return name in FINGERPRINT_ENV or "THREADS" in name


def _memory_total_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    text = cpuinfo.read_cpuinfo()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "hostname": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "os": platform.platform(),
        "architecture": platform.machine(),
        "cpu_model": cpuinfo.parse_model(text) or platform.processor() or "unknown",
        "logical_cores": os.cpu_count(),
        "physical_cores": cpuinfo.physical_cores(text),
        "usable_cores": len(affinity) if affinity is not None else os.cpu_count(),
        "memory_total_bytes": _memory_total_bytes(),
    }


def python_info() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def nvidia_gpus(nvml: Any = None) -> dict[str, Any]:
    """GPUs as NVML sees them, or why NVML could not tell (``pynvml`` is injectable for tests)."""
    try:
        if nvml is None:
            import pynvml as nvml
        nvml.nvmlInit()
    except Exception as error:  # NVML raises its own error types for a missing library/driver
        return {"available": False, "reason": f"NVML unavailable: {error}", "devices": []}
    try:
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            devices.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_total_bytes": nvml.nvmlDeviceGetMemoryInfo(handle).total,
            })
        driver = nvml.nvmlSystemGetDriverVersion()
        return {
            "available": True,
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
            "devices": devices,
        }
    finally:
        nvml.nvmlShutdown()


def relevant_env_vars(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a run records, by name (``harness.env_capture``): never a secret."""
    return env_capture.capture(os.environ if environ is None else environ).values


def git_state(folder: Path | None = None) -> dict[str, Any]:
    folder = folder or Path.cwd()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "reason": f"{folder} is not a git checkout (or git is missing)"}
    return {
        "commit": commit,
        "commit_time": git("show", "-s", "--format=%cI", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def fingerprint_inputs(env: dict[str, Any]) -> dict[str, Any]:
    mach = env["machine"]
    gpus = env["accelerators"]["nvidia"]
    return {
        "cpu_model": mach["cpu_model"],
        "logical_cores": mach["logical_cores"],
        "usable_cores": mach["usable_cores"],
        "memory_total_gib": round((mach["memory_total_bytes"] or 0) / 2**30),
        "system": mach["system"],
        "release": mach["release"],
        "architecture": mach["architecture"],
        "python": env["python"]["version"],
        "gpus": [device["name"] for device in gpus.get("devices", [])],
        "gpu_driver": gpus.get("driver"),
        "frameworks": {name: info.get("version") for name, info in sorted(env["frameworks"].items())},
        "env_vars": {key: value for key, value in env["env_vars"].items() if _affects_speed(key)},
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def capture(frameworks: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole environment record; ``frameworks`` maps backend name -> Availability dict."""
    env: dict[str, Any] = {
        "tribench_version": __version__,
        "machine": machine(),
        "python": python_info(),
        "accelerators": {"nvidia": nvidia_gpus()},
        "frameworks": frameworks or {},
        "git": git_state(),
    }
    captured = env_capture.capture(os.environ)
    env["env_vars"] = captured.values
    env["env_vars_capture"] = {**captured.record(), "rule": "by name (harness/env_capture.py); secret-looking names "
                                                           "withheld, credential-looking values redacted"}
    env["fingerprint_inputs"] = fingerprint_inputs(env)
    env["fingerprint"] = fingerprint(env["fingerprint_inputs"])
    return env
