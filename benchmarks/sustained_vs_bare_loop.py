"""Is tribench's sustained throughput what a bare loop of the same model delivers? Interleaved, in one process.

Whole processes of one case differ by 5-20% on a shared machine, far more than the 2% this check is
about, so each comparison is made inside one fresh process, on one built session, alternating:

- **tribench**: the worker's own measurement (``harness.probes.timed_window.measure_in_window`` with
  the disturbance window, energy off) under the CLI's default timing: compile step, warm-up, synced
  latency steps, then the sustained blocks; its figure is batch size x sustained steps / their wall time;
- **bare loop**: ``for _ in range(n): handle = step()`` and one ``sync(handle)`` after the last, n sized
  to last as long as tribench's sustained phase; batch size x n / its wall time.

Each pair runs the two in random order; the ratio is tribench / bare loop. Every case gets
``--processes`` fresh processes (pinned and threaded by the run's thread policy, its framework
alone imported) of ``--pairs`` pairs each; the table gives the median ratio over all pairs and its
range, e.g.

    python benchmarks/sustained_vs_bare_loop.py --processes 2 --pairs 5

Nothing in it is specific to the CPU: ``--device gpu`` runs the same check on a GPU machine. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tribench.core.spec import CaseSpec  # noqa: E402

SUSTAINED_S = 0.3


def timing_defaults():
    """The CLI's default timing (``tribench run``)."""
    from tribench.harness.timing import TimingConfig

    return TimingConfig(min_time_s=0.5, max_time_s=10.0, min_warmup_time_s=0.2, target_ci=0.05,
                        sustained_time_s=SUSTAINED_S)


def tribench_figure(session, spec: CaseSpec) -> tuple[float, float]:
    """tribench's own measurement of the session: (sustained samples/s, the sustained phase's seconds)."""
    from tribench.harness.probes.disturbance import DisturbanceWindow
    from tribench.harness.probes.energy import EnergySettings
    from tribench.harness.probes.timed_window import measure_in_window

    timing, _ = measure_in_window(session, timing_defaults(), [], EnergySettings(enabled=False), spec.device,
                                  spec.batch_size, inner=DisturbanceWindow())
    steps = sum(timing.sustained_block_steps)
    return spec.batch_size * steps / timing.sustained_wall_s, timing.sustained_wall_s / steps


def bare_figure(session, spec: CaseSpec, per_step_s: float, seconds: float) -> float:
    """n steps back to back, one sync after the last (n sized to last about ``seconds``): samples/s."""
    count = max(10, round(seconds / per_step_s))
    start = time.perf_counter()
    handle = None
    for _ in range(count):
        handle = session.step()
    session.sync(handle)
    return spec.batch_size * count / (time.perf_counter() - start)


def child(spec_json: str, pairs: int, seed: int) -> list[dict[str, float]]:
    """In a fresh process: pin and size threads as a worker does, build once, then the interleaved pairs."""
    from tribench.harness import threads
    from tribench.harness.import_guard import block_other_frameworks
    from tribench.harness.worker import framework_threads

    spec = CaseSpec.from_dict(json.loads(spec_json))
    block_other_frameworks(spec.backend)
    record = threads.apply_in_worker(threads.policy_for_run(None))
    from tribench import backends

    backend = backends.get(spec.backend)
    framework_threads(backend, record)
    session = backend.build(spec)
    session.sync(session.step())  # the compile step, before either side
    order = random.Random(seed)
    per_step_s = None
    results = []
    for _ in range(pairs):
        figures: dict[str, float] = {}
        sides = order.sample(("tribench", "bare"), 2)
        if per_step_s is None:  # the bare loop's length comes from a tribench measurement: measure first once
            sides = ["tribench", "bare"]
        for side in sides:
            if side == "tribench":
                figures["tribench"], per_step_s = tribench_figure(session, spec)
            else:
                figures["bare"] = bare_figure(session, spec, per_step_s, SUSTAINED_S)
        results.append(figures)
    return results


def run_child(spec: CaseSpec, pairs: int, seed: int) -> list[dict[str, float]]:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec.to_dict()), str(pairs), str(seed)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{spec.id}: the check failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cases(args: argparse.Namespace) -> list[CaseSpec]:
    return [CaseSpec(backend=backend, workload=workload, size=args.size, mode=mode, batch_size=args.batch,
                     precision="fp32", compile="native", device=args.device)
            for backend in args.backend.split(",") for workload in args.workload.split(",")
            for mode in args.mode.split(",")]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2, help="fresh processes per case")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs per process")
    parser.add_argument("--backend", default="torch,tensorflow,jax")
    parser.add_argument("--workload", default="cnn,rnn,transformer")
    parser.add_argument("--mode", default="train,infer")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order within each pair")
    parser.add_argument("--json", type=Path, help="also write the table's rows to this JSON file")
    args = parser.parse_args()
    print(f"{'case':46} {'tribench / bare loop':>20} {'range over pairs':>18} {'tribench':>12} {'bare':>12}")
    rows = []
    for index, spec in enumerate(cases(args)):
        pairs = [pair for process in range(args.processes)
                 for pair in run_child(spec, args.pairs, args.seed * 1000 + index * 10 + process)]
        ratios = [pair["tribench"] / pair["bare"] for pair in pairs]
        ours, bare = statistics.median(p["tribench"] for p in pairs), statistics.median(p["bare"] for p in pairs)
        print(f"{spec.id:46} {statistics.median(ratios):20.3f} [{min(ratios):6.3f}, {max(ratios):6.3f}]  "
              f"{ours:10.0f}/s {bare:10.0f}/s", flush=True)
        rows.append({"case": spec.id, "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
                     "tribench": ours, "bare": bare, "pairs": len(pairs)})
        if args.json:  # after every case, so a time limit leaves what was measured
            args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
