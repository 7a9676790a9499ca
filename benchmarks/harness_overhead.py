"""Is tribench's reported throughput the model's, not the harness's? (target: within 3%)

Runs, side by side and alternately, ROUNDS times each:
  A. ``tribench run`` of the tiny CNN training case on the CPU (reported samples/s), and
  B. a bare PyTorch loop in a fresh process over the same model, data and optimizer
     (torch.nn module from backends/torch/models.py, fused Adam, the same batch) after a
     warm-up of 30 steps,
and prints each round's figures, the medians and the ratios A/B for the same statistic on
both sides: tribench reports batch / median step time, so the bare loop's per-step times give
batch / median too ("median"); and steps x batch / total time on both sides ("mean"). On a
noisy machine the two statistics differ (a median ignores slow outliers); comparing like with
like isolates what the harness itself costs.

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
from tribench.backends.torch import models
from tribench.suites import workloads
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
times, start = [], time.perf_counter()
while time.perf_counter() - start < {seconds}:
    before = time.perf_counter()
    step()
    times.append(time.perf_counter() - before)
times.sort()
print({batch} / times[len(times) // 2], len(times) * {batch} / sum(times))
"""


def tribench_throughput(seconds: float, batch: int, folder: Path, index: int) -> tuple[float, float]:
    """(batch / median step time as reported, steps x batch / summed step time) of one tribench run."""
    output = folder / f"run-{index}.json"
    subprocess.run(
        [sys.executable, "-m", "tribench", "run", "--backend", "torch", "--workload", "cnn", "--size", "tiny",
         "--mode", "train", "--batch", str(batch), "--device", "cpu", "--min-time", str(seconds),
         "--max-time", str(seconds), "--output", str(output)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    (case,) = json.loads(output.read_text())["cases"]
    if case["status"] != "ok":
        raise SystemExit(f"tribench case {case['status']}: {case['error']}")
    step = case["metrics"]["step_time"]
    return case["metrics"]["throughput"]["value"], batch / step["mean"]


def bare_throughput(seconds: float, batch: int) -> tuple[float, float]:
    """(batch / median step time, steps x batch / summed step time) of one bare loop."""
    code = BARE_LOOP.format(root=str(ROOT), batch=batch, seconds=seconds)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    median, mean = done.stdout.strip().splitlines()[-1].split()
    return float(median), float(mean)


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
            print(f"round {index + 1}: median-based tribench {harness[-1][0]:8.1f} bare {bare[-1][0]:8.1f} samples/s"
                  f" (ratio {harness[-1][0] / bare[-1][0]:.3f}); mean-based tribench {harness[-1][1]:8.1f}"
                  f" bare {bare[-1][1]:8.1f} (ratio {harness[-1][1] / bare[-1][1]:.3f})", flush=True)
    within = True
    for index, statistic in enumerate(("median", "mean")):
        ratios = [a[index] / b[index] for a, b in zip(harness, bare, strict=True)]
        ratio = statistics.median(ratios)
        within &= abs(ratio - 1) <= TARGET
        print(f"{statistic}-based: tribench {statistics.median(a[index] for a in harness):.1f} samples/s, "
              f"bare loop {statistics.median(b[index] for b in bare):.1f} samples/s; median ratio {ratio:.3f} "
              f"(rounds: min {min(ratios):.3f}, max {max(ratios):.3f}); target 1 ± {TARGET:.2f}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
