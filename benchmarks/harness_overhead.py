"""Is tribench's reported throughput the model's, not the harness's? (target: within 3%)

Runs, side by side and alternately, ROUNDS times each:
  A. ``tribench run`` of the tiny CNN training case on the CPU (reported samples/s), and
  B. a bare PyTorch loop in a fresh process over the same model, data and optimizer
     (torch.nn module from backends/torch/models.py, fused Adam, the same batch), timed
     as a whole: samples/s = steps x batch / wall seconds after a warm-up.
and prints each round's figures, the medians and the ratio A/B.

    .venv/bin/python benchmarks/harness_overhead.py [--rounds 5] [--seconds 5] [--batch 32]

Exit code 0 when the median ratio is within the target, 1 when not (a figure, not a unit test:
shared machines are noisy; rerun before concluding).
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
TARGET = 0.03

BARE_LOOP = r"""
import sys, time, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from backends.torch import models
from suites import workloads
spec = workloads.get("cnn").architecture("tiny")
torch.manual_seed(workloads.SEED)
model = models.build_model(spec).train()
gen = torch.Generator().manual_seed(workloads.SEED)
x = torch.randn({batch}, spec.channels, spec.height, spec.width, generator=gen)
y = torch.randint(spec.classes, ({batch},), generator=gen)
opt = torch.optim.Adam(model.parameters(), lr=workloads.LEARNING_RATE, fused=True)

def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

for _ in range(30):
    step()
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    step()
    steps += 1
print(steps * {batch} / (time.perf_counter() - start))
"""


def tribench_throughput(seconds: float, batch: int, folder: Path, index: int) -> float:
    output = folder / f"run-{index}.json"
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--backend", "torch", "--workload", "cnn", "--size", "tiny",
         "--mode", "train", "--batch", str(batch), "--device", "cpu", "--min-time", str(seconds),
         "--max-time", str(seconds), "--output", str(output)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    (case,) = json.loads(output.read_text())["cases"]
    if case["status"] != "ok":
        raise SystemExit(f"tribench case {case['status']}: {case['error']}")
    return case["metrics"]["throughput"]["value"]


def bare_throughput(seconds: float, batch: int) -> float:
    code = BARE_LOOP.format(root=str(ROOT), batch=batch, seconds=seconds)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    harness, bare = [], []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(args.rounds):
            harness.append(tribench_throughput(args.seconds, args.batch, Path(folder), index))
            bare.append(bare_throughput(args.seconds, args.batch))
            print(f"round {index + 1}: tribench {harness[-1]:9.1f} samples/s   bare loop {bare[-1]:9.1f} samples/s"
                  f"   ratio {harness[-1] / bare[-1]:.3f}", flush=True)
    ratios = [a / b for a, b in zip(harness, bare, strict=True)]
    ratio = statistics.median(ratios)
    print(f"median: tribench {statistics.median(harness):.1f} samples/s, bare loop {statistics.median(bare):.1f} "
          f"samples/s; ratio tribench/bare {ratio:.3f} (per-round min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"target within ±{TARGET:.0%}")
    return 0 if abs(ratio - 1) <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
