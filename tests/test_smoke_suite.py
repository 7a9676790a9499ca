"""The smoke suite with all four frameworks: 24 cases, all ok, backends side by side per workload, three
processes each forked from one server per framework."""

import os

from tests.helpers import tribench
from tribench.harness.results import load_run

BACKENDS = ["torch", "tensorflow", "jax", "paddle"]


def test_smoke_runs_all_24_cases_ok_with_backends_side_by_side(tmp_path):
    out = tmp_path / "smoke.json"
    done = tribench("run", "--suite", "smoke", "--min-time", "0.1", "--max-time", "0.3", "--min-steps", "5",
                    "--output", str(out), env={**os.environ, "COLUMNS": "250"}, timeout=900)
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    cases = run["cases"]
    assert len(cases) == 24
    assert {case["id"]: case["status"] for case in cases} == {case["id"]: "ok" for case in cases}
    # the default run: each framework's production path, three forked processes per case, CIs across them
    assert {case["spec"]["compile"] for case in cases} == {"native"}
    assert {case["metrics"]["step_time"]["ci_basis"] for case in cases} == {"across-processes"}
    assert {len(case["repeats"]) for case in cases} == {3}
    assert {p["launch"]["method"] for case in cases for p in case["repeats"]} == {"fork-server"}
    assert len({p["launch"]["server_pid"] for case in cases for p in case["repeats"]}) == 4  # one per framework
    legend = " ".join(done.stdout.split())
    assert ("native: torch = eager PyTorch; tensorflow = tf.function graph (no XLA; on a TPU, XLA as every "
            "function); jax = jax.jit (XLA); paddle = dygraph (eager Paddle)") in legend
    # the table lists the four backends one after another for each workload point
    first_cells = [line.split("│")[1].strip() for line in done.stdout.splitlines() if line.startswith("│ ")]
    rows = [cell for cell in first_cells if cell]   # continuation lines (tokens/s) have an empty first cell
    assert len(rows) == 24
    for start in range(0, 24, 4):
        group = [row.split("/", 1) for row in rows[start:start + 4]]
        assert [backend for backend, _ in group] == BACKENDS
        assert len({rest for _, rest in group}) == 1   # same workload, size, mode, batch, precision, device
    # parameters per backend match the documented counts (PyTorch's and Paddle's second LSTM bias)
    params = {(c["spec"]["backend"], c["spec"]["workload"]): c["metrics"]["params"]["value"] for c in cases}
    assert params == {
        **{(b, "cnn"): 93_322 for b in BACKENDS},
        **{(b, "transformer"): 229_096 for b in BACKENDS},
        ("torch", "rnn"): 92_298, ("tensorflow", "rnn"): 91_530, ("jax", "rnn"): 91_530, ("paddle", "rnn"): 92_298,
    }
