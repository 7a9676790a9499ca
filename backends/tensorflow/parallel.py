"""Data-parallel TensorFlow cases: one process drives N local devices through ``tf.distribute``.

One host (``spec.devices`` = N > 1): ``MirroredStrategy`` over the first N devices of the case's
kind. On a CPU, TensorFlow shows one CPU device, so ``build`` splits it into N logical devices
(``tf.config.set_logical_device_configuration``) before the runtime starts; those N devices share
the same cores and thread pools, so CPU "scaling" figures measure the runtime's data-parallel
overhead, not more hardware. GPUs are the first N physical GPUs.

Several hosts (``spec.nodes`` = M > 1, N devices per host): ``MultiWorkerMirroredStrategy``, the
cluster from ``TF_CONFIG`` or SLURM (``backends.tensorflow.cluster``), created before anything
starts the runtime (collective ops are configured at start-up). Each host sees N GPUs
(``tf.config.set_visible_devices``); on CPU the strategy drives one device per host.

The step is the one-device step of ``backends.tensorflow.adapter`` run on every replica by
``strategy.run`` inside one ``tf.function``. The data are the one-device generator's batch of
N x ``batch_size`` samples, made once on the host; replica i gets rows ``[i*b, (i+1)*b)`` as a
tensor on its device, so one host's global batch is exactly the one-device batch of N x b (on
several hosts, every host holds the same N x b samples: the content of synthetic data changes no
work). Variables are mirrored (the model and optimizer are created in ``strategy.scope()``, from
the same seed as one device); Keras's optimizer all-reduces (sums) the gradients and every replica
applies the same Adam update. Each replica's loss is its share of the global mean (its mean over
its own samples / the replicas in sync), so the summed gradient is the gradient of the global mean
and ``strategy.reduce(SUM)`` of the shares is the global mean loss, the figure the step returns.
BatchNorm (ResNets) keeps per-replica batch statistics (Keras's default, as in PyTorch DDP).

Compile modes: ``native`` = the ``tf.function`` graph, as for one device; ``op-by-op`` is refused
(``devices.parallel_problem``). ``compiled`` = the replica
step as ``tf.function(jit_compile=True)`` handed to ``strategy.run``: on GPUs TensorFlow calls it
once per replica and all-reduces through XLA collectives (``mirrored_run``: "all devices are GPU").
It is refused on CPU (``devices.XLA_PARALLEL_REASON``): tried here with TensorFlow 2.21, one host
fails with "Trying to access resource ... located in device CPU:1 from device CPU:0" (the strategy
compiles the whole multi-device step as one cluster) and two hosts with "Collectives are not yet
implemented for CPU devices when compiling with XLA"; compiling less than the whole step would not
be the case the id names.

``sync`` reads the reduced loss (train) and then waits on every device this process drives
(``SyncDevice`` on each, as ``tf.test.experimental.sync_devices`` does for all local devices).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.eager import context

from tribench.backends.base import CaseSkipped, MemoryReading
from tribench.backends.tensorflow import adapter, cluster, devices
from tribench.backends.tensorflow.models import build_model
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.suites.workloads import SEED, Architecture

TF_KINDS = {"cpu": "CPU", "gpu": "GPU"}
SLURM_DEFAULT_PORT = 8888   # SlurmClusterResolver's own default, when the harness gave no MASTER_PORT


# ---------------------------------------------------------------- devices and strategies


def split_cpu(count: int) -> str:
    """Split the host CPU into ``count`` logical devices; possible only before the runtime starts.

    Returns a note for the shortage message: empty when the split was made, else why it was not.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:  # the runtime started already, with the devices it had
        return f" (the runtime had started before the CPU could be split: {str(exc).strip()})"
    return ""


def local_devices(kind: str, count: int) -> list[str]:
    """The names of the first ``count`` devices of ``kind`` (splitting the CPU first); CaseSkipped when fewer."""
    note = split_cpu(count) if kind == "cpu" else ""
    found = tf.config.list_logical_devices(TF_KINDS[kind])   # starts the runtime
    problem = devices.shortage_reason(kind, count, len(found), note)
    if problem:
        raise CaseSkipped(problem)
    return [device.name for device in found[:count]]


def show_first_gpus(count: int) -> None:
    """Before a multi-worker strategy starts the runtime: make only the first ``count`` GPUs visible."""
    gpus = tf.config.list_physical_devices("GPU")
    problem = devices.shortage_reason("gpu", count, len(gpus))
    if problem:
        raise CaseSkipped(problem)
    tf.config.set_visible_devices(gpus[:count], "GPU")


def cluster_resolver(case: CaseSpec, environ: Mapping[str, str]) -> tuple[Any, dict[str, Any]]:
    """The resolver of the multi-host cluster (TF_CONFIG, else SLURM), checked against --nodes and --node-rank.

    Returns it with the facts the session records (where the cluster came from, workers, this host's rank).
    """
    kind = cluster.resolver_kind(environ, case.nodes)
    resolvers = tf.distribute.cluster_resolver
    if kind == "tf_config":
        resolver, source = resolvers.TFConfigClusterResolver(), cluster.TF_CONFIG_VAR
    else:
        resolver, source = _slurm_resolver(case, environ), "the SLURM job step"
    spec = resolver.cluster_spec().as_dict()   # SlurmClusterResolver sets task_type/task_id here
    workers, rank = cluster.worker_count_and_rank(spec, resolver.task_type, resolver.task_id)
    problem = cluster.cluster_problem(workers, rank, case.nodes, cluster.node_rank(environ), source)
    if problem:
        raise InvalidValue(problem)
    return resolver, {"source": source, "workers": workers, "rank": rank, "cluster": spec}


def _slurm_resolver(case: CaseSpec, environ: Mapping[str, str]) -> Any:
    """SlurmClusterResolver with the case's MASTER_PORT as port base and this host's N GPUs (or none)."""
    port = cluster.slurm_port_base(environ)
    gpus = case.devices if case.device == "gpu" else 0
    try:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port if port is not None else SLURM_DEFAULT_PORT, gpus_per_node=gpus, auto_set_gpu=False)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise InvalidValue(
            f"SLURM_JOB_ID is set but the SLURM job step could not be resolved ({type(exc).__name__}: {exc}): "
            f"run one tribench per host with srun --ntasks-per-node=1, or set {cluster.TF_CONFIG_VAR}"
        ) from exc


def make_strategy(case: CaseSpec) -> tuple[tf.distribute.Strategy, dict[str, Any]]:
    """MirroredStrategy over N local devices, or MultiWorkerMirroredStrategy across ``case.nodes`` hosts.

    Returns the strategy and the facts to record about it.
    """
    if case.nodes > 1:
        if case.device == "gpu":
            show_first_gpus(case.devices)
        resolver, facts = cluster_resolver(case, os.environ)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        return strategy, {"strategy": "MultiWorkerMirroredStrategy", "multi_worker": facts}
    strategy = tf.distribute.MirroredStrategy(devices=local_devices(case.device, case.devices))
    return strategy, {"strategy": "MirroredStrategy"}


# ---------------------------------------------------------------- data


def shard_rows(strategy: tf.distribute.Strategy, batch: tf.Tensor, per_replica: int) -> tf.distribute.DistributedValues:
    """Local replica i's rows ``[i*b, (i+1)*b)`` of ``batch``, each a tensor on that replica's device."""
    local = strategy.extended.worker_devices

    def rows(context_: tf.distribute.experimental.ValueContext) -> tf.Tensor:
        index = context_.replica_id_in_sync_group % len(local)   # a host's replicas have consecutive ids
        with tf.device(local[index]):
            return tf.identity(batch[index * per_replica:(index + 1) * per_replica])

    return strategy.experimental_distribute_values_from_function(rows)


def sharded_batch(strategy: tf.distribute.Strategy, spec: Architecture, per_replica: int) -> tuple[Any, Any]:
    """The one-device generator's batch of (local replicas x ``per_replica``) samples, split over the replicas."""
    with tf.device("/CPU:0"):   # made once on the host, then each shard copied to its device
        inputs, targets = adapter.synthetic_batch(spec, len(strategy.extended.worker_devices) * per_replica)
    return shard_rows(strategy, inputs, per_replica), shard_rows(strategy, targets, per_replica)


# ---------------------------------------------------------------- steps and session


def replica_step(model: keras.Model, optimizer: Any, mode: str) -> Callable[[Any, Any], Any]:
    """One replica's step on its shard: the one-device train step (its loss a share of the global mean) or forward."""
    if mode == "train":
        return lambda inputs, targets: adapter.train_step_fn(model, optimizer, inputs, targets, distributed=True)()
    return lambda inputs, targets: adapter.infer_step_fn(model, inputs)()


def short_name(device: str) -> str:
    """``/job:localhost/replica:0/task:0/device:GPU:1`` -> ``GPU:1`` (what get_memory_info takes)."""
    return device.rsplit("/device:", 1)[-1]


class DataParallelSession(adapter.TensorFlowSession):
    """A case over several devices: ``step`` runs one synchronous step on all of them."""

    def __init__(self, step: Callable[[], Any], model: keras.Model, kind: str, mode: str, info: dict[str, Any],
                 strategy: tf.distribute.Strategy, optimizer: Any) -> None:
        super().__init__(step, model, kind, mode, info)
        self.strategy = strategy     # for inspection: strategy.experimental_local_results(variable.value)
        self.optimizer = optimizer   # None for inference
        self._devices = list(strategy.extended.worker_devices)

    def sync(self, handle: object) -> None:
        """Train: read the reduced loss on the host; then wait until every device of this process is done."""
        if self._sync_by_loss:
            handle.numpy()
        for device in self._devices:
            with tf.device(device):
                tf.raw_ops.SyncDevice()
        context.async_wait()

    def mark_window(self) -> None:
        """Restart every replica device's allocator peak at the end of the compile step (as one device does)."""
        _reset_memory_stats(self._devices)

    def memory(self) -> MemoryReading:
        peaks: dict[str, int | None] = {}
        errors: dict[str, str] = {}
        for device in map(short_name, self._devices):
            try:
                peaks[device] = tf.config.experimental.get_memory_info(device)["peak"]
            except ValueError as exc:
                peaks[device], errors[device] = None, str(exc)
        return devices.parallel_memory_readings(self._kind, peaks, errors)

    def data_parallel_devices(self) -> list[str]:
        """The devices this process drives, in replica order."""
        return list(self._devices)


def cross_device_ops(strategy: tf.distribute.Strategy) -> str:
    """How the strategy all-reduces, for the record: e.g. ``CollectiveAllReduce (RING)`` on CPUs.

    TensorFlow has no public accessor, so the strategy's own (private) attributes are read; a
    TensorFlow without them says so instead of failing the case.
    """
    extended = strategy.extended
    chosen = getattr(extended, "_cross_device_ops", None)
    if chosen is None:
        return "not exposed by this TensorFlow"
    options = getattr(extended, "_communication_options", None)
    implementation = getattr(options, "implementation", None)
    return type(chosen).__name__ + (f" ({implementation.name})" if implementation is not None else "")


def _reset_memory_stats(replica_devices: list[str]) -> None:
    for device in map(short_name, replica_devices):
        try:
            tf.config.experimental.reset_memory_stats(device)
        except ValueError:   # no statistics kept (CPU without oneDNN); memory() says so
            pass


def build(case: CaseSpec, spec: Architecture, memory_growth: dict[str, Any]) -> DataParallelSession:
    """The session of a data-parallel case; ``backend.TensorFlowBackend.build`` has checked device and precision."""
    strategy, facts = make_strategy(case)   # first: the runtime starts here, after the CPU split / GPU visibility
    replica_devices = list(strategy.extended.worker_devices)
    xla = case.compile == "compiled"
    policy = devices.DTYPE_POLICIES[case.precision]
    inputs, targets = sharded_batch(strategy, spec, case.batch_size)
    with strategy.scope(), adapter.dtype_policy(policy):
        keras.utils.set_random_seed(SEED)
        model = build_model(spec, xla=xla)
        optimizer = adapter.make_optimizer(case.precision, model.trainable_variables) if case.mode == "train" else None
    step = replica_step(model, optimizer, case.mode)
    if xla:
        step = tf.function(step, jit_compile=True)
    function = tf.function(adapter.distribute(strategy, step, case.mode, args=(inputs, targets)))
    replicas = strategy.num_replicas_in_sync
    info = {
        **facts, "tf_devices": replica_devices, "replicas": replicas,
        "per_replica_batch": case.batch_size, "global_batch": replicas * case.batch_size,
        "cross_device_ops": cross_device_ops(strategy),
        "dtype_policy": policy, "jit_compile": xla, "gpu_memory_growth": memory_growth,
        "fast_paths": adapter.fast_path_record(spec, case, graph=True, xla=xla),
    }
    return DataParallelSession(function, model, case.device, case.mode, info, strategy, optimizer)
