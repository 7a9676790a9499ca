"""Is channels-last faster than NCHW for tribench's PyTorch CNNs on this CPU? Fresh processes, interleaved.

Each pair runs two fresh interpreters in random order, one per memory format; each builds the
backend's own CNN (``backends.torch.models``) and batch at the given size, mode and batch, takes
``--warmup`` steps, then times ``--steps`` steps and prints its median step time. The table gives,
per size and mode, the median over pairs of the channels-last / NCHW ratio and its range, e.g.

    python benchmarks/torch_memory_format.py --pairs 6 --sizes tiny,small --modes train,infer

This is the measurement behind ``backends.torch.devices.uses_channels_last``. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("contiguous", "channels_last")

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
from backends.torch import models
from backends.torch.adapter import synthetic_batch
from suites import workloads
size, mode, batch_size, fmt, warmup, steps = {args!r}
spec = workloads.get("cnn").architecture(size)
torch.manual_seed(0)
model = models.build_model(spec)
batch = synthetic_batch(spec, batch_size, torch.device("cpu"))
inputs, targets = batch.inputs, batch.targets
if fmt == "channels_last":
    model = model.to(memory_format=torch.channels_last)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
model.train(mode == "train")
optimizer = torch.optim.Adam(model.parameters(), fused=True) if mode == "train" else None

def step():
    if optimizer is None:
        with torch.no_grad():
            model(inputs)
        return
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()

for _ in range(warmup):
    step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""


def one_process(size: str, mode: str, batch: int, fmt: str, warmup: int, steps: int) -> float:
    code = CHILD.format(root=str(ROOT), args=(size, mode, batch, fmt, warmup, steps))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--sizes", default="tiny")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    order = random.Random(options.seed)
    print(f"{'size':8} {'mode':6} {'NCHW ms':>8} {'CL ms':>8} {'CL/NCHW':>8} {'range':>15}")
    for size in options.sizes.split(","):
        for mode in options.modes.split(","):
            ratios, medians = [], {fmt: [] for fmt in FORMATS}
            for _ in range(options.pairs):
                pair = {fmt: one_process(size, mode, options.batch, fmt, options.warmup, options.steps)
                        for fmt in order.sample(FORMATS, len(FORMATS))}
                ratios.append(pair["channels_last"] / pair["contiguous"])
                for fmt in FORMATS:
                    medians[fmt].append(pair[fmt])
            print(f"{size:8} {mode:6} {statistics.median(medians['contiguous']) * 1e3:8.2f} "
                  f"{statistics.median(medians['channels_last']) * 1e3:8.2f} {statistics.median(ratios):8.3f} "
                  f"[{min(ratios):.3f}, {max(ratios):.3f}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
