"""TensorFlow data-parallel cases (issue 8): MirroredStrategy over 2 logical CPU devices,
MultiWorkerMirroredStrategy over 2 localhost workers, the refusals and the multi-host cluster rules.

A process splits its CPU into logical devices only before TensorFlow's runtime starts, and pytest
may have started it already, so every check that runs a data-parallel step runs in a fresh
subprocess. One module fixture starts them all at once (they overlap on a 2-core machine) and each
test reads its subprocess's JSON. TensorFlow gives every MirroredStrategy of a process the same
collective keys, so each subprocess builds at most one data-parallel train session (one case per
worker process, as the harness runs them). The rest (pure rules, cluster resolvers, refusals that
happen before any device is touched) runs in this process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from tests.helpers import ROOT  # noqa: E402
from tribench.backends.base import CaseSkipped  # noqa: E402
from tribench.backends.tensorflow import adapter, cluster, devices, parallel  # noqa: E402
from tribench.backends.tensorflow import backend as entry  # noqa: E402
from tribench.core.errors import InvalidValue  # noqa: E402
from tribench.core.spec import CaseSpec  # noqa: E402

TINY_CNN_PARAMS = 93_322
PROCESS_TIMEOUT_S = 240
CLUSTER_VARS = ("TF_CONFIG", "SLURM_JOB_ID", "TRIBENCH_NODES", "TRIBENCH_NODE_RANK", "MASTER_ADDR", "MASTER_PORT")

PRELUDE = """
import json
import numpy as np
from tribench.backends.base import CaseSkipped
from tribench.backends.tensorflow import adapter
from tribench.backends.tensorflow import backend as entry
from tribench.core.spec import CaseSpec

backend = entry.backend()

def case(**changes):
    fields = dict(backend="tensorflow", workload="cnn", size="tiny", mode="train", batch_size=4,
                  precision="fp32", compile="native", device="cpu")
    return CaseSpec(**{**fields, **changes})

def run(session, steps):
    losses = []
    for _ in range(steps):
        handle = session.step()
        session.sync(handle)
        losses.append(float(handle.numpy()))
    return losses

def local(session, variable):
    return [value.numpy() for value in session.strategy.experimental_local_results(variable.value)]

def conv_devices(session):
    # how many Conv2D ops the traced step places on each device (white-box: the session's tf.function)
    graph = session._step.get_concrete_function().graph
    found = {}
    for op in graph.get_operations():
        if op.type == "Conv2D":
            found[op.device] = found.get(op.device, 0) + 1
    return found
"""

# 2 logical CPUs: train (and the gradient it applies), inference, the 1-device references, a shortage
SINGLE_HOST = PRELUDE + """
import keras
import tensorflow as tf
from tribench.suites import workloads

out = {}
dp = backend.build(case(devices=2))   # first: it splits the CPU before anything starts the runtime
losses = run(dp, 1)
momentum = {variable.path: variable for variable in dp.optimizer.variables}["adam/conv2d_kernel_momentum"]
momenta = local(dp, momentum)          # Adam's first step: momentum = (1 - beta_1) x gradient = 0.1 x gradient
losses += run(dp, 2)
out["train"] = {
    "losses": losses, "devices": dp.data_parallel_devices(), "param_count": dp.param_count(),
    "info": {key: dp.info[key] for key in ("strategy", "replicas", "per_replica_batch", "global_batch",
                                           "jit_compile", "tf_devices", "cross_device_ops")},
    "memory": [reading.to_dict() for reading in dp.memory()],
    "variable_devices": [v.device for v in dp.strategy.experimental_local_results(
        dp.model.trainable_variables[0].value)],
    "conv_devices": conv_devices(dp),
    "replicas_equal": all(np.array_equal(*local(dp, v)) for v in dp.model.trainable_variables),
    "momenta_equal": bool(np.array_equal(*momenta)),
}

one = backend.build(case(batch_size=8))    # one device, the same 8 samples, the same initial weights
inputs, targets = adapter.synthetic_batch(workloads.get("cnn").architecture("tiny"), 8)
with tf.GradientTape() as tape:
    mean_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(targets, one.model(inputs, training=True))
gradient = tape.gradient(mean_loss, one.model.trainable_variables[0]).numpy()
out["reference"] = {
    "losses": run(one, 3),
    "momentum_matches_gradient": bool(np.allclose(momenta[0] / 0.1, gradient, rtol=1e-4, atol=1e-7)),
    "momentum_vs_gradient_max_abs": float(np.max(np.abs(momenta[0] / 0.1 - gradient))),
    "batch4_first_loss": run(backend.build(case(batch_size=4)), 1)[0],
}

infer = backend.build(case(mode="infer", devices=2))
outputs = infer.step()
infer.sync(outputs)
shards = infer.strategy.experimental_local_results(outputs)
whole = backend.build(case(mode="infer", batch_size=8)).step().numpy()
out["infer"] = {
    "shapes": [list(shard.shape) for shard in shards], "conv_devices": conv_devices(infer),
    "equals_one_device": bool(np.allclose(np.concatenate([s.numpy() for s in shards]), whole, rtol=1e-5, atol=1e-6)),
    "memory_sources": [reading.source for reading in infer.memory()],
}

try:
    backend.build(case(devices=4))
    out["shortage"] = None
except CaseSkipped as skipped:
    out["shortage"] = str(skipped)
print(json.dumps(out))
"""

# the harness's own worker function builds and times the session (no TF runtime started before build)
WORKER_PATH = """
import json
from tribench.harness.probes.energy import EnergySettings
from tribench.core.spec import CaseSpec
from tribench.harness.timing import TimingConfig
from tribench.harness.worker import run_case

spec = CaseSpec("tensorflow", "cnn", "tiny", "train", 4, "fp32", "native", "cpu", devices=2)
timing = TimingConfig(min_steps=5, min_time_s=0.1, max_time_s=0.3, max_warmup_steps=3, max_warmup_time_s=0.3)
result = run_case(spec, timing, EnergySettings(enabled=False))
print(json.dumps({"status": result["status"], "param_count": result["param_count"], "memory": result["memory"],
                  "samples": len(result["timing"]["samples_s"])}))
"""

# fp16: this CPU's instruction rule aside (it refuses fp16 here), the loss scaling runs under the strategy
FP16 = """
from tribench.backends.tensorflow import devices
devices.precision_problem = lambda *args, **kwargs: None
""" + PRELUDE + """
import keras

dp = backend.build(case(precision="fp16", devices=2))
losses = run(dp, 3)
out = {
    "optimizer": type(dp.optimizer).__name__,
    "scales": [float(x) for x in local(dp, dp.optimizer.dynamic_scale)],
    "losses": losses,
    "reference": run(backend.build(case(precision="fp16", batch_size=8)), 1),
    "policy": dp.info["dtype_policy"],
}
print(json.dumps(out))
"""

# one host of a 2-host case (TF_CONFIG, TRIBENCH_NODES/NODE_RANK set by the fixture), one CPU device each
MULTI_WORKER = PRELUDE + """
session = backend.build(case(devices=1, nodes=2))
print(json.dumps({"losses": run(session, 3), "devices": session.data_parallel_devices(),
                  "strategy": session.info["strategy"], "multi_worker": session.info["multi_worker"],
                  "global_batch": session.info["global_batch"]}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in CLUSTER_VARS}
    env.update({"PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return env


def _start(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Runs:
    """The subprocesses, started together; ``result(name)`` waits for one and parses its last line."""

    def __init__(self) -> None:
        ports = [_free_port(), _free_port()]
        workers = [f"localhost:{port}" for port in ports]
        self.processes = {
            "single_host": _start(SINGLE_HOST, _env()),
            "worker_path": _start(WORKER_PATH, _env()),
            "fp16": _start(FP16, _env()),
        }
        for rank in (0, 1):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
            self.processes[f"host{rank}"] = _start(MULTI_WORKER, _env(
                TF_CONFIG=json.dumps(config), TRIBENCH_NODES="2", TRIBENCH_NODE_RANK=str(rank),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())))
        self._results: dict[str, dict] = {}

    def result(self, name: str) -> dict:
        if name not in self._results:
            process = self.processes[name]
            try:
                stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            assert process.returncode == 0, f"{name} exited {process.returncode}:\n{stderr[-4000:]}"
            self._results[name] = json.loads(stdout.strip().splitlines()[-1])
        return self._results[name]

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def runs():
    started = Runs()
    yield started
    started.close()


# ---------------------------------------------------------------- one host, 2 logical CPU devices


def test_train_step_runs_on_two_devices_with_a_per_device_batch(runs):
    train = runs.result("single_host")["train"]
    names = ["/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:1"]
    assert train["devices"] == names
    assert train["info"] == {
        "strategy": "MirroredStrategy", "replicas": 2, "per_replica_batch": 4, "global_batch": 8,
        "jit_compile": False, "tf_devices": names, "cross_device_ops": "CollectiveAllReduce (RING)"}
    assert train["variable_devices"] == names   # one copy of each variable per device
    assert train["conv_devices"] == {names[0]: 3, names[1]: 3}   # the 3 forward convolutions on each device
    assert train["param_count"] == TINY_CNN_PARAMS
    assert all(loss == loss and loss < 10 for loss in train["losses"])   # finite
    assert train["losses"][2] < train["losses"][0]


def test_replicas_stay_in_sync(runs):
    train = runs.result("single_host")["train"]
    assert train["replicas_equal"] is True    # every weight identical on both devices after 3 steps
    assert train["momenta_equal"] is True     # both applied the same (all-reduced) gradient


def test_split_and_reduction_equal_one_device_on_the_global_batch(runs):
    single = runs.result("single_host")
    train, reference = single["train"], single["reference"]
    # the same 8 samples and weights: the first loss is the 1-device loss (global mean, reduced exactly)
    assert train["losses"][0] == pytest.approx(reference["losses"][0], rel=1e-6)
    # the gradient applied is that of the global mean (not scaled by the replica count once more)
    assert reference["momentum_matches_gradient"], reference["momentum_vs_gradient_max_abs"]
    assert train["losses"] == pytest.approx(reference["losses"], rel=1e-4)


def test_inference_runs_each_shard_on_its_device(runs):
    infer = runs.result("single_host")["infer"]
    assert infer["shapes"] == [[4, 10], [4, 10]]
    assert infer["conv_devices"] == {"/job:localhost/replica:0/task:0/device:CPU:0": 3,
                                     "/job:localhost/replica:0/task:0/device:CPU:1": 3}
    assert infer["equals_one_device"] is True   # device i ran rows [4i, 4i+4) of the 1-device batch of 8


def test_memory_names_the_shared_cpu_allocator(runs):
    memory = runs.result("single_host")["train"]["memory"]
    assert len(memory) == 1
    assert memory[0]["source"] == ("tf.config.experimental.get_memory_info('CPU:0')['peak']; "
                                   "one allocator serves all 2 logical CPU devices")
    assert memory[0]["scope"] == "process"
    if adapter.onednn_enabled():
        assert memory[0]["status"] == "measured" and memory[0]["value"] > 0
    else:  # an AVX2-only CPU: oneDNN off, no allocator statistics, and the reading says why (never 0)
        assert memory[0]["status"] == "unavailable" and memory[0]["value"] is None
        assert "keeps statistics only with oneDNN on" in memory[0]["reason"]


def test_fewer_devices_than_asked_is_skipped_with_the_count(runs):
    shortage = runs.result("single_host")["shortage"]
    assert shortage.startswith("the case needs 4 cpu devices but TensorFlow sees only 2 cpu devices "
                               "(the runtime had started before the CPU could be split: ")


def test_the_harness_worker_builds_and_times_the_session(runs):
    result = runs.result("worker_path")
    assert result["status"] == "ok"
    assert result["param_count"] == TINY_CNN_PARAMS
    assert result["samples"] >= 5
    assert result["memory"][0]["source"].endswith("one allocator serves all 2 logical CPU devices")


def test_fp16_scales_the_loss_on_every_replica(runs):
    fp16 = runs.result("fp16")
    assert fp16["optimizer"] == "LossScaleOptimizer"
    assert fp16["policy"] == "mixed_float16"
    assert fp16["scales"] == [32768.0, 32768.0]   # Keras's initial dynamic scale, mirrored, no overflow seen
    assert fp16["losses"][0] == pytest.approx(fp16["reference"][0], rel=1e-3)
    assert fp16["losses"][2] < fp16["losses"][0]


# ---------------------------------------------------------------- two hosts (localhost, one CPU each)


def test_two_workers_train_in_lockstep(runs):
    hosts = [runs.result("host0"), runs.result("host1")]
    for rank, host in enumerate(hosts):
        assert host["devices"] == [f"/job:worker/replica:0/task:{rank}/device:CPU:0"]
        assert host["strategy"] == "MultiWorkerMirroredStrategy"
        assert host["multi_worker"]["source"] == "TF_CONFIG"
        assert (host["multi_worker"]["workers"], host["multi_worker"]["rank"]) == (2, rank)
        assert host["global_batch"] == 8
    assert hosts[0]["losses"] == hosts[1]["losses"]   # one reduced loss for the whole cluster
    # every host holds the same 4 samples, so the global mean is the 1-device loss on those 4
    reference = runs.result("single_host")["reference"]["batch4_first_loss"]
    assert hosts[0]["losses"][0] == pytest.approx(reference, rel=1e-6)


# ---------------------------------------------------------------- refusals before any device is touched


@pytest.mark.parametrize("changes, reason", [
    ({"compile": "compiled"}, devices.XLA_PARALLEL_REASON),
    ({"device": "tpu"}, "--devices/--nodes are not offered on a TPU: a tpu case already runs on every core of "
                        "the TPU (TPUStrategy, the batch split over the cores)"),
    ({"device": "gpu"}, "this TensorFlow build has no GPU support (built without CUDA or ROCm)"),
])
def test_build_refuses_what_cannot_run(changes, reason):
    if changes.get("device") == "gpu" and adapter._gpu_build(dict(adapter.tf.sysconfig.get_build_info())):
        pytest.skip("this TensorFlow has GPU support")
    fields = {"backend": "tensorflow", "workload": "cnn", "size": "tiny", "mode": "train", "batch_size": 4,
              "precision": "fp32", "compile": "native", "device": "cpu", "devices": 2, **changes}
    with pytest.raises(CaseSkipped) as skipped:
        entry.backend().build(CaseSpec(**fields))
    assert str(skipped.value) == reason


def test_backend_declares_data_parallel():
    assert entry.backend().data_parallel is True


def test_parallel_problem():
    assert devices.parallel_problem("cpu", 2, 1, "native") is None
    assert devices.parallel_problem("gpu", 8, 4, "compiled") is None
    assert devices.parallel_problem("cpu", 1, 2, "native") is None
    assert devices.parallel_problem("cpu", 2, 1, "compiled") == devices.XLA_PARALLEL_REASON
    assert devices.parallel_problem("cpu", 1, 2, "compiled") == devices.XLA_PARALLEL_REASON
    assert devices.parallel_problem("cpu", 2, 2, "native") == (
        "MultiWorkerMirroredStrategy drives one CPU device per host (it splits no CPU into logical devices): "
        "run multi-host CPU cases with --devices 1")
    assert devices.parallel_problem("tpu", 2, 1, "compiled").startswith("--devices/--nodes are not offered on a TPU")
    assert devices.parallel_problem("gpu", 2, 1, "op-by-op") == (
        "op-by-op TensorFlow runs on one device: a data-parallel step runs as a tf.function under its strategy "
        "(compile=native)")


def test_shortage_reason():
    assert devices.shortage_reason("gpu", 2, 2) is None
    assert devices.shortage_reason("gpu", 2, 8) is None
    assert devices.shortage_reason("gpu", 4, 1) == "the case needs 4 gpu devices but TensorFlow sees only 1 gpu device"
    assert devices.shortage_reason("gpu", 2, 0) == "the case needs 2 gpu devices but TensorFlow sees only 0 gpu devices"


def test_gpu_memory_is_the_largest_device_peak_then_each_device():
    readings = devices.parallel_memory_readings("gpu", {"GPU:0": 300, "GPU:1": 500}, {})
    assert [(r.name, r.value, r.scope) for r in readings] == [
        ("peak_allocated", 500.0, "device"), ("peak_allocated_GPU0", 300.0, "device"),
        ("peak_allocated_GPU1", 500.0, "device")]
    assert readings[0].source == "max over GPU:0, GPU:1 of tf.config.experimental.get_memory_info(device)['peak']"
    assert readings[2].source == "tf.config.experimental.get_memory_info('GPU:1')['peak']"


def test_gpu_memory_is_unavailable_when_one_device_kept_no_figure():
    readings = devices.parallel_memory_readings("gpu", {"GPU:0": 300, "GPU:1": None}, {"GPU:1": "no stats"})
    assert readings[0].value is None
    assert readings[0].reason == "peak_allocated_GPU1: no stats"
    assert readings[1].value == 300.0


def test_one_cpu_device_reads_as_for_one_device():
    (reading,) = devices.parallel_memory_readings("cpu", {"CPU:0": 1024}, {})
    assert reading == devices.peak_memory_reading("cpu", 1024)


# ---------------------------------------------------------------- multi-host cluster rules


def test_resolver_kind_prefers_tf_config_then_slurm():
    assert cluster.resolver_kind({"TF_CONFIG": "{}", "SLURM_JOB_ID": "7"}, 2) == "tf_config"
    assert cluster.resolver_kind({"SLURM_JOB_ID": "7"}, 2) == "slurm"
    with pytest.raises(InvalidValue) as error:
        cluster.resolver_kind({"TF_CONFIG": " "}, 3)
    assert str(error.value).startswith("a TensorFlow case over 3 nodes needs the cluster's worker addresses: "
                                       "set TF_CONFIG on every host")


def test_worker_count_and_rank_put_the_chief_first():
    spec = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"], "ps": ["h3:1"]}
    assert cluster.worker_count_and_rank(spec, "chief", 0) == (3, 0)
    assert cluster.worker_count_and_rank(spec, "worker", 1) == (3, 2)
    assert cluster.worker_count_and_rank({"worker": ["a:1", "b:1"]}, "worker", 1) == (2, 1)
    with pytest.raises(InvalidValue, match="must be a 'chief' or a 'worker'"):
        cluster.worker_count_and_rank(spec, "ps", 0)


def test_cluster_problem():
    assert cluster.cluster_problem(2, 1, 2, 1, "TF_CONFIG") is None
    assert cluster.cluster_problem(3, 1, 2, 1, "TF_CONFIG") == (
        "TF_CONFIG describes 3 workers but the case runs on 2 nodes (--nodes): make them agree")
    assert cluster.cluster_problem(2, 0, 2, 1, "TF_CONFIG") == (
        "TF_CONFIG makes this host worker 0 but tribench runs it as node 1 (--node-rank): make them agree")


def test_node_rank_and_slurm_port():
    assert cluster.node_rank({"TRIBENCH_NODE_RANK": "3"}) == 3
    with pytest.raises(InvalidValue, match="TRIBENCH_NODE_RANK=None"):
        cluster.node_rank({})
    assert cluster.slurm_port_base({"MASTER_PORT": "29517"}) == 29517
    assert cluster.slurm_port_base({}) is None


def _two_nodes() -> CaseSpec:
    return CaseSpec("tensorflow", "cnn", "tiny", "train", 4, "fp32", "native", "gpu", devices=2, nodes=2)


def _tf_config(rank: int, workers: int = 2) -> str:
    return json.dumps({"cluster": {"worker": [f"h{i}:2222" for i in range(workers)]},
                       "task": {"type": "worker", "index": rank}})


def test_tf_config_cluster_is_checked_against_the_nodes(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config(1))
    resolver, facts = parallel.cluster_resolver(_two_nodes(), {"TF_CONFIG": "set", "TRIBENCH_NODE_RANK": "1"})
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert facts == {"source": "TF_CONFIG", "workers": 2, "rank": 1, "cluster": {"worker": ["h0:2222", "h1:2222"]}}
    with pytest.raises(InvalidValue, match="TF_CONFIG makes this host worker 1 but tribench runs it as node 0"):
        parallel.cluster_resolver(_two_nodes(), {"TF_CONFIG": "set", "TRIBENCH_NODE_RANK": "0"})
    monkeypatch.setenv("TF_CONFIG", _tf_config(1, workers=3))
    with pytest.raises(InvalidValue, match="TF_CONFIG describes 3 workers but the case runs on 2 nodes"):
        parallel.cluster_resolver(_two_nodes(), {"TF_CONFIG": "set", "TRIBENCH_NODE_RANK": "1"})


def test_slurm_cluster_uses_the_case_port(monkeypatch):
    slurm = {"SLURM_JOB_ID": "42", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
             "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    resolver, facts = parallel.cluster_resolver(_two_nodes(), {**slurm, "MASTER_PORT": "29517",
                                                                "TRIBENCH_NODE_RANK": "1"})
    assert facts == {"source": "the SLURM job step", "workers": 2, "rank": 1,
                     "cluster": {"worker": ["node01:29517", "node02:29517"]}}
    assert resolver.num_accelerators() == {"GPU": 2}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ   # the case picks its GPUs itself


def test_slurm_without_a_job_step_names_the_fix(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    for name in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidValue) as error:
        parallel.cluster_resolver(_two_nodes(), {"SLURM_JOB_ID": "42", "TRIBENCH_NODE_RANK": "0"})
    assert str(error.value).startswith("SLURM_JOB_ID is set but the SLURM job step could not be resolved (")
    assert str(error.value).endswith("run one tribench per host with srun --ntasks-per-node=1, or set TF_CONFIG")


def test_no_cluster_source_fails_with_the_fix_not_a_skip():
    with pytest.raises(InvalidValue, match="set TF_CONFIG on every host"):
        parallel.cluster_resolver(_two_nodes(), {"TRIBENCH_NODE_RANK": "0"})
