"""One case in one fresh process: ``python -m harness.worker INPUT.json OUTPUT.json``.

The input holds the CaseSpec and the timing settings; the output holds the
process's result (status, timing samples, readings). The result goes to a
file rather than stdout because frameworks print to stdout at will. Anything
that kills this process (a crash, a signal, a hang the parent times out) leaves
no output file, and the parent records the case as failed with our stderr tail.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from harness.probes import memory as host_memory
from harness.spec import CaseSpec
from harness.timing import TimingConfig, measure


def _write_json(path: str, data: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def run_case(spec: CaseSpec, config: TimingConfig) -> dict[str, Any]:
    """Build the case's session and time it; return the process result (status ok)."""
    import backends  # the registry; the framework itself is imported by backends.get

    setup_start = time.perf_counter()
    session = backends.get(spec.backend).build(spec)
    setup_time = time.perf_counter() - setup_start
    reset_error = host_memory.reset_window_peak()
    timing = measure(session, config)
    readings = list(session.memory()) + [
        host_memory.process_peak_rss(),
        host_memory.window_peak_rss(reset_error),
    ]
    return {
        "status": "ok",
        "error": None,
        "setup_time_s": setup_time,
        "timing": timing.to_dict(),
        "param_count": session.param_count(),
        "memory": [reading.to_dict() for reading in readings],
    }


def main(argv: list[str]) -> int:
    input_path, output_path = argv
    with open(input_path) as handle:
        request = json.load(handle)
    spec = CaseSpec.from_dict(request["spec"])
    config = TimingConfig(**request["timing"])
    from backends.base import CaseSkipped

    try:
        result = run_case(spec, config)
    except CaseSkipped as skipped:
        result = {"status": "skipped", "error": str(skipped)}
    except Exception as error:  # a case's failure must not hide its traceback
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    result["pid"] = os.getpid()
    _write_json(output_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
