"""Does ``--profile`` change the timed numbers? (It must not: the trace is captured after the timed steps.)

Runs the same case through ``tribench run`` without and with ``--profile`` (who goes first
alternates between rounds), ROUNDS times each, each run in fresh worker processes, and prints
every run's median step time with its own noise (IQR / median) and 95% CI of the median, then
compares the two sides:

* difference = the median over rounds of (with-profile median / without-profile median of the same
  round) minus 1 (paired by round, so a slow drift of the machine cancels);
* the run's own noise = the larger of: the typical IQR/median of these runs (their median), and the
  spread between rounds of the runs without profiling ((max - min) / median of their medians).

The numbers "agree" when |difference| <= the run's own noise. Exit code 0 when they agree, 1 when
not (a figure, not a unit test: rerun on a quiet machine before concluding).

    .venv/bin/python benchmarks/profile_overhead.py [--backend torch] [--workload cnn] [--rounds 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(args: argparse.Namespace, profile: bool, output: Path) -> dict:
    """The step-time summary (median, noise, CI) of one tribench run of the case."""
    command = [sys.executable, "-m", "tribench", "run", "--backend", args.backend, "--workload", args.workload,
               "--size", args.size, "--mode", args.mode, "--batch", str(args.batch), "--device", "cpu",
               "--min-time", str(args.seconds), "--max-time", str(args.seconds), "--no-energy",
               "--idle-baseline", "0", "--output", str(output)]
    if profile:
        command += ["--profile", "--profile-steps", "3"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    (case,) = json.loads(output.read_text())["cases"]
    if case["status"] != "ok":
        raise SystemExit(f"case {case['status']}: {case['error']}")
    step = case["metrics"]["step_time"]
    captured = (case["metrics"].get("profile") or {}).get("status")
    return {"median": step["median"], "noise": step["noise"], "ci": (step["ci_low"], step["ci_high"]),
            "n": step["n"], "profile": captured}


def describe(label: str, result: dict) -> str:
    low, high = result["ci"]
    ci = f"95% CI {low * 1e3:.3f}-{high * 1e3:.3f}" if low is not None else "too few steps for a CI"
    profile = f", profile {result['profile']}" if result["profile"] else ""
    return (f"{label}: median {result['median'] * 1e3:.3f} ms ({ci}), "
            f"noise {result['noise']:.1%}, {result['n']} steps{profile}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--workload", default="cnn")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--mode", default="train")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    plain, profiled = [], []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(args.rounds):
            for profile in ((False, True) if index % 2 == 0 else (True, False)):   # alternate who goes first
                result = one_run(args, profile, Path(folder, f"{'profiled' if profile else 'plain'}-{index}.json"))
                (profiled if profile else plain).append(result)
            print(f"round {index + 1}: {describe('without', plain[-1])}\n         {describe('with   ', profiled[-1])}",
                  flush=True)
    without = statistics.median(r["median"] for r in plain)
    with_profile = statistics.median(r["median"] for r in profiled)
    difference = statistics.median(w["median"] / p["median"] for w, p in zip(profiled, plain, strict=True)) - 1
    spread = (max(r["median"] for r in plain) - min(r["median"] for r in plain)) / without
    typical = statistics.median(r["noise"] for r in plain + profiled)
    noise = max(spread, typical)
    agree = abs(difference) <= noise
    print(f"median step time without --profile {without * 1e3:.3f} ms, with {with_profile * 1e3:.3f} ms; "
          f"paired difference {difference:+.1%}; the run's own noise {noise:.1%} "
          f"(between-round spread {spread:.1%}, typical IQR/median {typical:.1%}) -> {'agree' if agree else 'DIFFER'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
