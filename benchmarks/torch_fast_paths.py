"""Which of PyTorch's implementations is fastest for tribench's models on this machine? Fresh processes, interleaved.

Three choices, each between two implementations of the same computation:

* ``memory-format``: the CNNs in NCHW (``contiguous``) or ``channels_last``;
* ``optimizer``: Adam as ``foreach`` (multi-tensor) or ``fused`` (one kernel for all parameters);
* ``attention``: ``F.scaled_dot_product_attention`` with the kernel PyTorch picks (``picked``), or its
  reference ``math`` kernel (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``).

Each pair runs two fresh interpreters in random order, one per implementation; each builds the
backend's own model (``backends.torch.models``) and batch at the given size, mode and batch, takes
``--warmup`` steps, then times ``--steps`` steps (each ended by the device's sync) and prints its
median step time. The table gives, per workload, size and mode, the median over pairs of the ratio
second / first implementation and its range, e.g.

    python benchmarks/torch_fast_paths.py --choice optimizer --pairs 6 --sizes tiny,small --modes train

These are the measurements behind ``backends.torch.fast_paths``. Run it alone: on a shared machine
anything else running disturbs the processes.
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

# choice -> (the two implementations, the workloads it applies to, the modes it applies to)
CHOICES = {
    "memory-format": (("contiguous", "channels_last"), ("cnn",), ("train", "infer")),
    "optimizer": (("foreach", "fused"), ("cnn", "rnn", "transformer"), ("train",)),
    "attention": (("math", "picked"), ("transformer",), ("train", "infer")),
}

CHILD = """
import contextlib, json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tribench.backends.torch import models
from tribench.backends.torch.adapter import synthetic_batch
from tribench.suites import workloads
workload, size, mode, batch_size, implementation, device, warmup, steps = {args!r}
device = torch.device(device)
spec = workloads.get(workload).architecture(size)
torch.manual_seed(0)
model = models.build_model(spec).to(device)
batch = synthetic_batch(spec, batch_size, device)
inputs, targets = batch.inputs, batch.targets
if workload == "cnn" and implementation != "contiguous":
    model = model.to(memory_format=torch.channels_last)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
model.train(mode == "train")
adam = {{"foreach": {{"foreach": True}}, "fused": {{"fused": True}}}}.get(implementation, {{"fused": True}})
optimizer = torch.optim.Adam(model.parameters(), **adam) if mode == "train" else None
kernel = sdpa_kernel([SDPBackend.MATH]) if implementation == "math" else contextlib.nullcontext()

def loss_of(outputs):
    return torch.nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

def step():
    if optimizer is None:
        with torch.no_grad():
            model(inputs)
        return
    optimizer.zero_grad(set_to_none=True)
    loss_of(model(inputs)).backward()
    optimizer.step()

def synced_step():
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)

with kernel:
    for _ in range(warmup):
        synced_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        synced_step()
        times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""


def one_process(case: tuple, implementation: str, device: str, warmup: int, steps: int) -> float:
    """The median step time (s) of one fresh interpreter running ``case`` with ``implementation``."""
    workload, size, mode, batch = case
    code = CHILD.format(root=str(ROOT), args=(workload, size, mode, batch, implementation, device, warmup, steps))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{case} with {implementation} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choice", choices=sorted(CHOICES), required=True)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--sizes", default="tiny")
    parser.add_argument("--modes", default="train,infer", help="modes the choice does not apply to are left out")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="a torch device: cpu, cuda")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    (first, second), workloads, modes = CHOICES[options.choice]
    order = random.Random(options.seed)
    print(f"{'workload':12} {'size':6} {'mode':6} {first + ' ms':>14} {second + ' ms':>14} "
          f"{'ratio':>7} {'range':>15}   (ratio: {second} / {first}, median of {options.pairs} pairs)")
    for workload in workloads:
        for size in options.sizes.split(","):
            for mode in [mode for mode in options.modes.split(",") if mode in modes]:
                case = (workload, size, mode, options.batch)
                medians: dict[str, list[float]] = {first: [], second: []}
                for _ in range(options.pairs):
                    for implementation in order.sample((first, second), 2):
                        medians[implementation].append(
                            one_process(case, implementation, options.device, options.warmup, options.steps))
                ratios = [b / a for a, b in zip(medians[first], medians[second], strict=True)]
                print(f"{workload:12} {size:6} {mode:6} {statistics.median(medians[first]) * 1e3:14.2f} "
                      f"{statistics.median(medians[second]) * 1e3:14.2f} {statistics.median(ratios):7.3f} "
                      f"[{min(ratios):.3f}, {max(ratios):.3f}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
