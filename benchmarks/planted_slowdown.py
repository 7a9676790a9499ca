"""Plant a known slowdown in one case of a same-job A/B run and see whether tribench finds it.

A real check of the statistics on a real, noisy machine: the head interpreter is this Python with
a ``sitecustomize`` that makes every measured step of ONE case (``--case``) take ``--slowdown``
longer, by spinning on the CPU after the step's own sync, inside the step's two clock reads. Every
other case, and the base interpreter, run untouched. Then ``tribench run --sequential`` adds
interleaved pairs of processes until each point is decided, and ``tribench compare --env`` judges
the file. The planted case should come out ``regressed``; the others ``unchanged`` or
``inconclusive`` (never ``regressed`` at more than the false-alarm rate).

    python benchmarks/planted_slowdown.py --slowdown 10% --case torch/cnn-tiny/infer/bs32/fp32/native/cpu

The tool is for validating tribench itself; nothing in the measured product path knows of it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SITECUSTOMIZE = '''
import json, os, sys

def _plant():
    import tribench.harness.timing as timing

    wanted, factor = os.environ["TRIBENCH_PLANT_CASE"], 1.0 + float(os.environ["TRIBENCH_PLANT_SLOWDOWN"])
    original = timing._timed_step
    state = {}

    def planted(session, clock):
        if "on" not in state:  # the worker's request names its case: python -m tribench.harness.worker IN OUT
            from tribench.core.spec import CaseSpec
            with open(sys.argv[1]) as handle:
                state["on"] = CaseSpec.from_dict(json.load(handle)["spec"]).point_id == wanted
        if not state["on"]:
            return original(session, clock)
        start = clock()
        session.sync(session.step())
        target = (clock() - start) * factor
        while clock() - start < target:
            pass
        return clock() - start

    timing._timed_step = planted

if os.environ.get("TRIBENCH_PLANT_CASE") and sys.argv[:1] == ["-m"]:  # a module run: the worker (or other -m)
    try:
        _plant()
    except ImportError:  # not a tribench process (harness not on its path): leave it alone
        pass
'''


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowdown", default="10%", help="the planted slowdown of the case's steps, e.g. 10%%")
    parser.add_argument("--case", default="torch/cnn-tiny/infer/bs32/fp32/native/cpu",
                        help="the case point to slow down (its id without an env label)")
    parser.add_argument("--workload", default="cnn,rnn", help="workloads of the run (torch, tiny, infer)")
    parser.add_argument("--threshold", default="5%", help="compare's threshold for the sequential rule")
    parser.add_argument("--max-processes", default="30", help="the pair cap per case point")
    parser.add_argument("--output", default="results/planted.json", help="the run file")
    return parser.parse_args()


def head_interpreter(folder: Path) -> Path:
    """This Python, with the planting sitecustomize first on its path."""
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    wrapper = folder / "python-planted"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{folder}:${{PYTHONPATH}}" exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def main() -> int:
    args = parse_args()
    slowdown = float(args.slowdown.rstrip("%")) / (100.0 if args.slowdown.endswith("%") else 1.0)
    env = {**os.environ, "TRIBENCH_PLANT_CASE": args.case, "TRIBENCH_PLANT_SLOWDOWN": str(slowdown)}
    with tempfile.TemporaryDirectory(prefix="tribench-plant-") as folder:
        head = head_interpreter(Path(folder))
        started = time.perf_counter()
        run = [sys.executable, "-m", "tribench", "run", "--backend", "torch", "--workload", args.workload,
               "--size", "tiny", "--mode", "infer", "--sequential", "--threshold", args.threshold,
               "--processes", "3", "--max-processes", args.max_processes, "--min-time", "0.5", "--max-time", "1",
               "--no-energy", "--python", f"base={sys.executable}", "--python", f"head={head}",
               "--output", args.output]
        subprocess.run(run, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
    compared = subprocess.run([sys.executable, "-m", "tribench", "compare", args.output, "--env", "base",
                               "--env", "head", "--format", "json"], cwd=ROOT, capture_output=True, text=True)
    verdict = json.loads(compared.stdout)
    print(f"planted +{slowdown:.0%} on {args.case}; run {wall:.0f} s; compare exit {verdict['exit_code']}")
    run_file = json.loads((ROOT / args.output).read_text())
    pairs = {case["spec"]["workload"]: case.get("sequential") for case in run_file["cases"]}
    for case in verdict["cases"]:
        throughput = next((m for m in case["metrics"] if m["metric"] == "throughput"), None)
        change = "n/a" if throughput is None or throughput["change"] is None else f"{throughput['change']:+.1%}"
        workload = case["key"].split("/")[1].split("-")[0]
        print(f"  {case['key']}: {case['verdict']} (throughput {change}; sequential {pairs.get(workload)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
