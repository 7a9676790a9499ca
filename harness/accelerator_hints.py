"""An accelerator the machine has but a framework does not see: say so, and how to fix it.

A CPU-only build on a GPU machine is the commonest wrong install (PyTorch's CPU wheel, TensorFlow's
``tensorflow-cpu``, JAX without its CUDA plugin): the framework then lists only ``cpu`` and a run
on ``--device auto`` quietly measures the CPU. NVML (``harness.environment.nvidia_gpus``) tells
what the machine has without any framework; each backend's availability tells what it sees; the
registry has the command that installs the GPU build (``backends.gpu_install_hint``).
"""

from __future__ import annotations

from typing import Any

from tribench import backends
from tribench.backends.base import Availability


def unseen_gpus(nvidia: dict[str, Any], availabilities: list[Availability]) -> dict[str, str]:
    """backend name -> one line, for every installed backend that sees no GPU where NVML lists some."""
    devices = nvidia.get("devices") or []
    if not nvidia.get("available") or not devices:
        return {}
    names = ", ".join(sorted({str(device.get("name", "?")) for device in devices}))
    hints = {}
    for info in availabilities:
        if not info.installed or "gpu" in info.devices:
            continue
        fix = backends.gpu_install_hint(info.name) or "install its GPU build"
        framework = f"{info.name} {info.version}" if info.version else info.name
        hints[info.name] = (f"this machine has {len(devices)} NVIDIA GPU(s) ({names}; NVML) but {framework} sees "
                            f"none: a CPU-only build, or GPU libraries it cannot load; fix: {fix}")
    return hints
