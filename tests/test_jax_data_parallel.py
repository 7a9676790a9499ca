"""JAX data-parallel cases (issue 8): the worker's XLA_FLAGS, the multi-host settings, and real sharded
sessions over 2 forced host devices and over 2 localhost processes joined by jax.distributed.

XLA reads ``--xla_force_host_platform_device_count`` once, when jax starts, and this pytest process
may already have imported jax: every session over several devices runs in a fresh interpreter that
writes what it saw to a JSON file. One such process checks everything about the 2-device sessions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tribench.backends.jax import launch
from tribench.backends.jax.launch import Coordinator, coordinator, worker_env
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.distributed import free_port

FLAG = "--xla_force_host_platform_device_count"
TINY_CNN_PARAMS = 93_322
# Full sharded cases take seconds each on 2 cores; these are the only JAX processes this file starts.
PROCESS_TIMEOUT = 240


def spec(**fields) -> CaseSpec:
    return CaseSpec(**{"backend": "jax", "workload": "cnn", "size": "tiny", "mode": "train", "batch_size": 4,
                       "compile": "compiled", **fields})


# ---------------------------------------------------------------- worker_env (no jax)


def test_worker_env_appends_the_device_count_to_existing_flags():
    assert worker_env(spec(devices=2), {}) == {"XLA_FLAGS": f"{FLAG}=2"}
    assert worker_env(spec(devices=4), {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}) == {
        "XLA_FLAGS": f"--xla_cpu_enable_fast_math=false {FLAG}=4"}


def test_worker_env_replaces_an_earlier_device_count():
    base = {"XLA_FLAGS": f"{FLAG}=8 --xla_dump_to=/tmp/x  {FLAG}"}
    assert worker_env(spec(devices=2), base) == {"XLA_FLAGS": f"--xla_dump_to=/tmp/x {FLAG}=2"}


def test_worker_env_is_empty_for_one_device_or_an_accelerator():
    flags = {"XLA_FLAGS": f"{FLAG}=8"}
    assert worker_env(spec(), flags) == {}
    assert worker_env(spec(devices=1, nodes=2), flags) == {}
    assert worker_env(spec(device="gpu", devices=2), flags) == {}
    assert worker_env(spec(device="tpu", devices=4), {}) == {}


def test_launch_module_does_not_import_jax():
    code = ("import sys; import tribench.backends.jax.launch; "
            "print(sorted(m for m in ('jax', 'jaxlib', 'flax', 'optax') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- multi-host settings (no jax)

HOSTS = {"TRIBENCH_NODES": "2", "TRIBENCH_NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def test_coordinator_comes_from_the_harness_variables():
    assert coordinator(spec(nodes=2), HOSTS) == Coordinator("10.0.0.1:29500", num_processes=2, process_id=1)
    assert coordinator(spec(nodes=2), {**HOSTS, "MASTER_ADDR": "fd00::1"}).address == "[fd00::1]:29500"
    assert coordinator(spec(nodes=1, devices=2), HOSTS) is None


@pytest.mark.parametrize(("change", "message"), [
    ({"MASTER_PORT": ""}, "a JAX case over 2 nodes needs MASTER_PORT set in the worker's environment "
                          "(tribench run --nodes sets TRIBENCH_NODES, TRIBENCH_NODE_RANK, MASTER_ADDR, MASTER_PORT); "
                          "set them or run with --nodes 1"),
    ({"TRIBENCH_NODES": "3"}, "TRIBENCH_NODES=3 but the case is for 2 nodes"),
    ({"TRIBENCH_NODE_RANK": "2"}, "TRIBENCH_NODE_RANK=2 is outside 0..1 (TRIBENCH_NODES=2)"),
    ({"TRIBENCH_NODE_RANK": "first"}, "TRIBENCH_NODE_RANK='first' is not an integer"),
    ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000 is not a TCP port (1..65535)"),
])
def test_coordinator_refuses_missing_or_inconsistent_variables(change, message):
    with pytest.raises(InvalidValue) as error:
        coordinator(spec(nodes=2), {**HOSTS, **change})
    assert str(error.value) == message


def test_shortage_reason_names_the_process_that_lacks_devices():
    parallel = pytest.importorskip("tribench.backends.jax.parallel")   # imports jax; no device is used
    assert parallel.shortage_reason("gpu", 2, {0: 2, 1: 2}, 2) is None
    assert parallel.shortage_reason("gpu", 2, {0: 2, 1: 1}, 2) == (
        "only 1 gpu devices visible to JAX in process 1 of 2, the case asks for 2 per process")
    assert parallel.shortage_reason("gpu", 4, {0: 2}, 1) == "only 2 gpu devices visible to JAX, the case asks for 4"


# ---------------------------------------------------------------- real sessions (subprocesses)

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

TWO_DEVICES = r"""
import json, sys
import jax, numpy as np
from tribench.backends.base import CaseSkipped
from tribench.backends.jax import adapter
from tribench.backends.jax import backend as entry
from tribench.backends.jax.devices import DeviceFacts
from tribench.harness import worker
from tribench.core.spec import CaseSpec
from tribench.harness.timing import TimingConfig
from tribench.suites import workloads

def case(workload, mode, **fields):
    return CaseSpec(**{"backend": "jax", "workload": workload, "size": "tiny", "mode": mode, "batch_size": 4,
                       "compile": "compiled", "devices": 2, **fields})

def shards(array):
    return [[str(shard.device), list(shard.data.shape)] for shard in array.addressable_shards]

def max_diff(left, right):
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True))

CPU_FACTS = DeviceFacts(platform="cpu")
out = {"devices": [str(device) for device in jax.devices()]}
backend = entry.backend()

# Training, compiled: the sharded step against the one-device step on the same 8 samples.
train = backend.build(case("cnn", "train"))
inputs, targets = np.asarray(train._inputs), np.asarray(train._targets)
initial = jax.tree.map(np.asarray, train._state.params)
CNN, TRANSFORMER = workloads.get("cnn").architecture("tiny"), workloads.get("transformer").architecture("tiny")
model, optimizer, _ = adapter.model_and_optimizer(CNN, case("cnn", "train"), CPU_FACTS)
cpu0 = jax.devices("cpu")[0]
x, y = jax.device_put((inputs, targets), cpu0)
reference = adapter.initial_state(model, x, "fp32", optimizer)
grads = jax.grad(lambda p: adapter.cross_entropy(model.apply({"params": p}, x, train=True), y))(reference.params)
stepped, reference_loss = jax.jit(adapter.make_train_step(model, optimizer))(reference, x, y)
losses = []
for _ in range(4):
    handle = train.step()
    train.sync(handle)
    losses.append(float(handle))
    if len(losses) == 1:
        mu = train._state.opt_state[0].mu
        flat_mu = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(mu)])
        flat_grad = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(grads)])
        out["first_step"] = {
            "loss": losses[0], "reference_loss": float(reference_loss),
            "initial_params_diff": max_diff(initial, reference.params),
            "params_diff": max_diff(train._state.params, stepped.params),
            "mu_diff": max_diff(mu, stepped.opt_state[0].mu),
            "mu_per_grad": float(flat_mu @ flat_grad / (flat_grad @ flat_grad)),
        }
out["train"] = {
    "losses": losses, "handle_spec": list(handle.sharding.spec), "handle_devices": len(handle.sharding.device_set),
    "input_spec": list(train._inputs.sharding.spec), "input_shards": shards(train._inputs),
    "target_shards": shards(train._targets), "global_shape": list(train._inputs.shape),
    "shards_differ": bool(np.any(inputs[:4] != inputs[4:])),
    "state_replicated": all(leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 2
                            for leaf in jax.tree.leaves(train._state)),
    "data_parallel_devices": train.data_parallel_devices(), "param_count": train.param_count(),
    "memory": [reading.to_dict() for reading in train.memory()],
}

# Op-by-op: the same step without jit on the sharded arrays gives the same losses.
eager = backend.build(case("cnn", "train", compile="op-by-op"))
out["eager_losses"] = [float(eager.step()) for _ in range(2)]

# Inference: each device runs its shard; the outputs equal one device's on the whole batch.
infer = backend.build(case("transformer", "infer"))
outputs = infer.step()
infer.sync(outputs)
model, _, _ = adapter.model_and_optimizer(TRANSFORMER, case("transformer", "infer"), CPU_FACTS)
tokens = jax.device_put(np.asarray(infer._inputs), cpu0)
variables = {"params": adapter.initial_state(model, tokens, "fp32", None).params}
expected = jax.jit(adapter.make_forward(model))(variables, tokens)
out["infer"] = {"shape": list(outputs.shape), "spec": list(outputs.sharding.spec), "shards": shards(outputs),
                "max_diff": max_diff(outputs, expected), "scale": float(np.max(np.abs(np.asarray(expected))))}

# The harness's worker builds and times a case as the CLI would.
result = worker.run_case(case("cnn", "infer"), TimingConfig(min_steps=3, min_time_s=0.05, max_time_s=0.2,
                                                            max_warmup_steps=3, max_warmup_time_s=0.2))
out["run_case"] = {"status": result["status"], "samples": len(result["timing"]["samples_s"]),
                   "param_count": result["param_count"]}

try:
    backend.build(case("cnn", "train", devices=4))
except CaseSkipped as skipped:
    out["skipped"] = str(skipped)

with open(sys.argv[1], "w") as handle:
    json.dump(out, handle)
"""

TWO_HOSTS = r"""
import json, sys
from tribench.backends.jax import adapter
from tribench.backends.jax import backend as entry
from tribench.harness import worker
from tribench.core.spec import CaseSpec
from tribench.harness.timing import TimingConfig

def case(mode):
    return CaseSpec("jax", "cnn", "tiny", mode, 4, compile="compiled", nodes=2)

session = entry.backend().build(case("train"))
import jax
losses = []
with session.distributed_scope():
    for _ in range(4):
        handle = session.step()
        session.sync(handle)
        losses.append(float(handle))
result = worker.run_case(case("infer"), TimingConfig().with_fixed_steps(3, warmup_steps=2))
with open(sys.argv[1], "w") as handle:
    json.dump({
        "process": [jax.process_index(), jax.process_count()], "losses": losses,
        "local": session.data_parallel_devices(), "mesh": [str(d) for d in session._mesh.devices.flat],
        "global_shape": list(session._inputs.shape),
        "local_shards": [list(shard.data.shape) for shard in session._inputs.addressable_shards],
        "run_case": [result["status"], len(result["timing"]["samples_s"]), result["timing"]["stop_reason"]],
    }, handle)
"""


def python_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in launch.MULTI_HOST_ENV}
    env.update({"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **extra})
    return env


def start(script: str, output: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, str(output)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, output: Path) -> dict:
    try:
        log, _ = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        log, _ = process.communicate()
        pytest.fail(f"the JAX process timed out after {PROCESS_TIMEOUT} s:\n{log[-3000:]}")
    assert process.returncode == 0, log[-3000:]
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory) -> dict:
    """What one process with 2 forced host devices saw (the env the harness's worker_env gives it)."""
    output = tmp_path_factory.mktemp("jax_two_devices") / "out.json"
    env = python_env()
    env.update(worker_env(spec(devices=2), env))
    return finish(start(TWO_DEVICES, output, env), output)


@needs_jax
def test_two_devices_shard_the_batch_and_replicate_the_state(two_devices):
    train = two_devices["train"]
    assert two_devices["devices"] == ["cpu:0", "cpu:1"]
    assert train["data_parallel_devices"] == ["cpu:0", "cpu:1"]
    assert train["global_shape"] == [8, 28, 28, 1]
    assert train["input_spec"] == ["data"]
    assert train["input_shards"] == [["cpu:0", [4, 28, 28, 1]], ["cpu:1", [4, 28, 28, 1]]]
    assert train["target_shards"] == [["cpu:0", [4]], ["cpu:1", [4]]]
    assert train["shards_differ"] is True            # each device drew its own samples
    assert train["state_replicated"] is True
    assert train["handle_spec"] == [] and train["handle_devices"] == 2   # the loss: one copy per device
    assert train["param_count"] == TINY_CNN_PARAMS    # the model's, not times the devices
    (memory,) = train["memory"]
    assert memory["status"] == "unavailable"
    assert memory["source"] == "max over 2 devices (cpu:0, cpu:1) of jax.Device.memory_stats()['peak_bytes_in_use']"
    assert memory["reason"] == ("the cpu device's memory_stats() returned None: its XLA client keeps no "
                                "allocator statistics")


@needs_jax
def test_two_device_step_equals_one_device_step_on_the_global_batch(two_devices):
    first = two_devices["first_step"]
    assert first["initial_params_diff"] == 0.0
    assert first["loss"] == pytest.approx(first["reference_loss"], rel=1e-6)
    assert first["params_diff"] < 1e-6
    assert first["mu_diff"] < 1e-7
    # Adam's first moment after one step is (1 - b1) x gradient = 0.1 x the gradient of the MEAN loss over
    # all 8 samples: the devices' gradients are averaged (a sum over 2 devices would give 0.2).
    assert first["mu_per_grad"] == pytest.approx(0.1, rel=1e-5)
    losses = two_devices["train"]["losses"]
    assert losses[0] == first["loss"]
    assert all(loss == loss and abs(loss) < 1e3 for loss in losses) and losses[-1] < losses[0]


@needs_jax
def test_two_device_eager_step_matches_compiled(two_devices):
    assert two_devices["eager_losses"] == pytest.approx(two_devices["train"]["losses"][:2], rel=1e-5)


@needs_jax
def test_two_device_inference_runs_each_shard(two_devices):
    infer = two_devices["infer"]
    assert infer["shape"] == [8, 32, 1000]
    assert infer["spec"] == ["data"]
    assert infer["shards"] == [["cpu:0", [4, 32, 1000]], ["cpu:1", [4, 32, 1000]]]
    assert infer["max_diff"] <= 1e-5 * infer["scale"]


@needs_jax
def test_two_device_case_runs_through_the_worker(two_devices):
    assert two_devices["run_case"] == {"status": "ok", "samples": two_devices["run_case"]["samples"],
                                       "param_count": TINY_CNN_PARAMS}
    assert two_devices["run_case"]["samples"] >= 3


@needs_jax
def test_more_devices_than_present_is_skipped_with_the_reason(two_devices):
    assert two_devices["skipped"] == (
        "only 2 cpu devices visible to JAX, the case asks for 4 (CPU devices come from "
        f"XLA_FLAGS={FLAG}=4, which the tribench worker sets)")


@needs_jax
def test_two_hosts_on_localhost_agree_with_two_local_devices(tmp_path, two_devices):
    """Two processes, one CPU device each, joined by jax.distributed (gloo): a 2 x 1 mesh over the same
    shards as the 2-device process, so the same losses."""
    port = str(free_port())
    outputs = [tmp_path / f"host{rank}.json" for rank in range(2)]
    hosts = [start(TWO_HOSTS, output, python_env(TRIBENCH_NODES="2", TRIBENCH_NODE_RANK=str(rank),
                                                 MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for rank, output in enumerate(outputs)]
    try:
        results = [finish(host, output) for host, output in zip(hosts, outputs, strict=True)]
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
                host.wait()
    for rank, result in enumerate(results):
        assert result["process"] == [rank, 2]
        assert result["global_shape"] == [8, 28, 28, 1]
        assert result["local_shards"] == [[4, 28, 28, 1]]
        assert len(result["local"]) == 1 and result["mesh"][rank] == result["local"][0]
        assert result["losses"] == pytest.approx(two_devices["train"]["losses"], rel=1e-6)
        assert result["run_case"] == ["ok", 3, "fixed_steps"]
    assert results[0]["losses"] == results[1]["losses"]
