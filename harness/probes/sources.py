"""Which energy probes measure a case on each kind of device, and which sources this machine offers.

* ``cpu``: RAPL package (and DRAM, platform) counters.
* ``gpu``: the NVIDIA GPU through NVML, plus the host CPU's RAPL counters as a second reading.
* ``tpu``, ``mps``: no counter a user process can read; ``unavailable`` with the reason (plus host RAPL).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from tribench.harness.probes import nvml, rapl
from tribench.harness.probes.energy import Clock, EnergyProbe, EnergySettings, UnavailableProbe

NO_COUNTER = {
    "tpu": ("TPUs expose no energy or power counter to the processes that use them", "no TPU energy counter"),
    "mps": ("Apple GPUs report power only through `powermetrics`, which needs root and is not read",
            "no Apple GPU energy counter"),
}


def probes_for(device: str, settings: EnergySettings, clock: Clock = time.perf_counter,
               environ: Mapping[str, str] | None = None) -> list[EnergyProbe]:
    """The probes for a case on ``device`` (their first reading is the case's energy); none are opened yet."""
    environ = os.environ if environ is None else environ
    host = rapl.RaplProbe(settings.powercap_root, clock, settings.min_periods)
    if device == "cpu":
        return [host]
    if device == "gpu":
        return [nvml.NvmlProbe(settings, environ.get("CUDA_VISIBLE_DEVICES"), clock), host]
    reason, short = NO_COUNTER.get(device, (f"no energy source is known for {device} devices", "no energy source"))
    return [UnavailableProbe(device, "none", "device", reason, short), host]


def describe(settings: EnergySettings = EnergySettings()) -> list[dict[str, Any]]:
    """For ``tribench env``: every source, whether this machine offers it, and why not."""
    return [
        {**rapl.describe(settings.powercap_root), "for": "cpu cases; the host CPU of other cases"},
        {**nvml.describe(settings.nvml_module), "for": "gpu (NVIDIA)"},
        *({"source": kind, "available": False, "reason": reason, "for": f"{kind} cases"}
          for kind, (reason, _) in NO_COUNTER.items()),
    ]
