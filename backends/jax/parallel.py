"""Data-parallel JAX cases: one process drives N local devices with ``jax.sharding``; M hosts via ``jax.distributed``.

The devices form a one-axis ``Mesh`` named ``"data"``: the first N devices of the case's kind of
every process, processes in order (one host: just its first N). The global batch (N x per-device
batch on each host) is sharded over that axis with ``NamedSharding(mesh, P("data"))``: device i
of the mesh holds ``batch_size`` samples drawn on it from ``fold_in(build_key(), i)`` by the same
generator as one-device cases. Parameters, optimizer moments, BatchNorm statistics and the fp16
loss scale are replicated (``NamedSharding(mesh, P())``).

The step is the one-device step, unchanged: its loss is the mean over the global batch, so the
gradient XLA's SPMD partitioner computes is the average of the devices' gradients (it inserts the
all-reduce) and every replica applies the same Adam update. Compiled mode jits the step with those
in/out shardings and donates the train state; eager mode calls the same step without ``jax.jit``
on the sharded arrays, so every jax op is dispatched on its own as a small program over all N
devices. BatchNorm (ResNets) normalises with the statistics of the global batch: a mean over a
sharded axis is a cross-device reduction, i.e. synchronised BatchNorm, where PyTorch DDP keeps
per-device statistics. Inference runs the forward pass on each device's shard.

Several hosts (``spec.nodes`` = M > 1): ``jax.distributed.initialize`` runs first, with the
coordinator from ``backends.jax.launch.coordinator``; then ``jax.devices()`` lists every host's
devices, each process makes only its own devices' shards, and each host times its own steps (the
harness gives every host the same step counts, so the collectives pair up). On CPU the
cross-process collectives are gloo over TCP, the default of ``jax_cpu_collectives_implementation``
in the jax we pin (0.10.2), so nothing is set here; ``JAX_CPU_COLLECTIVES_IMPLEMENTATION=mpi`` picks MPI.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tribench.backends.base import CaseSkipped, MemoryReading
from tribench.backends.jax import adapter, launch
from tribench.backends.jax.devices import precision_skip_reason
from tribench.core.readings import Reading
from tribench.core.spec import CaseSpec
from tribench.harness.probes.memory import LIFETIME
from tribench.suites.workloads import Architecture

DATA_AXIS = "data"
START_BARRIER = "tribench: start of the measurement"


# ---------------------------------------------------------------- hosts and devices


def initialize_distributed(case: CaseSpec) -> None:
    """Join the other hosts of a multi-host case (``jax.distributed.initialize``); nothing for one host.

    It must run before anything asks jax for devices, so ``build`` calls it first.
    """
    settings = launch.coordinator(case, os.environ)
    if settings is None or jax.distributed.is_initialized():
        return
    jax.distributed.initialize(coordinator_address=settings.address, num_processes=settings.num_processes,
                               process_id=settings.process_id)


def shortage_reason(kind: str, wanted: int, found: dict[int, int], processes: int) -> str | None:
    """Why the mesh cannot be formed: some process has fewer than ``wanted`` devices of ``kind``.

    ``found``: devices of ``kind`` per process index. None when every process has enough.
    """
    short = {process: count for process, count in sorted(found.items()) if count < wanted}
    if not short:
        return None
    process, count = next(iter(short.items()))
    if processes == 1:
        hint = (f" (CPU devices come from XLA_FLAGS={launch.FORCE_DEVICE_COUNT_FLAG}={wanted}, which the "
                "tribench worker sets)" if kind == "cpu" else "")
        return f"only {count} {kind} devices visible to JAX, the case asks for {wanted}{hint}"
    return (f"only {count} {kind} devices visible to JAX in process {process} of {processes}, "
            f"the case asks for {wanted} per process")


def mesh_devices(kind: str, per_process: int) -> tuple[list[jax.Device], list[jax.Device]]:
    """(this process's devices, the mesh's devices): the first ``per_process`` devices of ``kind`` of
    every process, processes in order. CaseSkipped when a process has fewer."""
    by_process: dict[int, list[jax.Device]] = {index: [] for index in range(jax.process_count())}
    for device in jax.devices(kind):
        by_process[device.process_index].append(device)
    reason = shortage_reason(kind, per_process, {p: len(found) for p, found in by_process.items()},
                             jax.process_count())
    if reason:
        raise CaseSkipped(reason)
    chosen = [device for process in sorted(by_process) for device in by_process[process][:per_process]]
    return by_process[jax.process_index()][:per_process], chosen


# ---------------------------------------------------------------- data and state


def sharded_batch(spec: Architecture, per_device: int, local: Sequence[jax.Device],
                  sharding: NamedSharding) -> tuple[jax.Array, jax.Array]:
    """(inputs, targets) as global arrays sharded by ``sharding``; each local device makes its own shard."""
    position = {device: index for index, device in enumerate(sharding.mesh.devices.flat)}
    shards = [adapter.synthetic_batch(spec, per_device, device, shard=position[device]) for device in local]
    rows = per_device * sharding.mesh.size

    def global_array(parts: tuple[jax.Array, ...]) -> jax.Array:
        return jax.make_array_from_single_device_arrays((rows, *parts[0].shape[1:]), sharding, list(parts))

    inputs, targets = zip(*shards, strict=True)
    return global_array(inputs), global_array(targets)


def replicated_state(model: Any, inputs: jax.Array, precision: str, optimizer: Any,
                     replicated: NamedSharding) -> adapter.TrainState:
    """``adapter.initial_state`` computed straight into a copy on every device (no gather on one device)."""
    init = jax.jit(lambda batch: adapter.initial_state(model, batch, precision, optimizer), out_shardings=replicated)
    return init(inputs)


# ---------------------------------------------------------------- session


def peak_memory_over(devices: Sequence[jax.Device]) -> Reading:
    """The largest allocator peak among ``devices`` (this process's), or why it cannot be read."""
    names = ", ".join(str(device) for device in devices)
    source = f"max over {len(devices)} devices ({names}) of {adapter.PEAK_MEMORY_SOURCE}"
    readings = [adapter.peak_memory_reading(device.memory_stats(), device.platform) for device in devices]
    missing = next((reading for reading in readings if not reading.available), None)
    if missing is not None:
        return Reading.unavailable("peak_allocated", "bytes", source, "process", reason=missing.reason, span=LIFETIME)
    return Reading("peak_allocated", "bytes", source, "process", value=max(r.value for r in readings), span=LIFETIME)


class DataParallelSession(adapter.JaxSession):
    """A JAX session over a device mesh: the step sees the global batch, sharded on ``"data"``.

    ``step()`` returns the loss (replicated on every device) or the outputs (sharded); ``sync``
    (``block_until_ready``) waits for every shard, i.e. for every local device to finish the step.
    """

    def __init__(self, model: Any, optimizer: Any, state: adapter.TrainState, batch: tuple[jax.Array, jax.Array],
                 mesh: Mesh, local: Sequence[jax.Device], compiled: bool) -> None:
        self._mesh, self._local = mesh, tuple(local)
        self._replicated = NamedSharding(mesh, PartitionSpec())
        self._sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
        super().__init__(model, optimizer, state, batch, self._local[0], compiled)

    def _jit(self, function: Callable, train: bool) -> Callable:
        """The step under jit with explicit shardings; training donates the (replicated) state."""
        replicated, sharded = self._replicated, self._sharded
        if train:
            return jax.jit(function, in_shardings=(replicated, sharded, sharded),
                           out_shardings=(replicated, replicated), donate_argnums=0)
        return jax.jit(function, in_shardings=(replicated, sharded), out_shardings=sharded)

    def mark_window(self) -> None:
        """Nothing to mark: JAX cannot reset its allocator peaks, and this reading is each device's lifetime peak."""

    def memory(self) -> MemoryReading:
        return (peak_memory_over(self._local),)

    def data_parallel_devices(self) -> list[str]:
        """The devices this process drives, in mesh order (e.g. ``cpu:0``, ``cuda:1``)."""
        return [str(device) for device in self._local]

    @contextlib.contextmanager
    def distributed_scope(self) -> Iterator[None]:
        """Around the measurement: with several hosts, a barrier first, so no host's first step waits
        for another host to finish building."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(START_BARRIER)
        yield


def build(spec: Architecture, case: CaseSpec) -> DataParallelSession:
    """The data-parallel session for ``case`` (``devices`` per host, ``nodes`` hosts); CaseSkipped when
    the kind, the precision or enough devices are missing."""
    initialize_distributed(case)
    _, facts = adapter.select_device(case.device)
    reason = precision_skip_reason(case.precision, facts)
    if reason:
        raise CaseSkipped(reason)
    local, devices = mesh_devices(case.device, case.devices)
    mesh = Mesh(np.array(devices), (DATA_AXIS,))
    model, optimizer, paths = adapter.model_and_optimizer(spec, case, facts)
    batch = sharded_batch(spec, case.batch_size, local, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))
    state = replicated_state(model, batch[0], case.precision, optimizer, NamedSharding(mesh, PartitionSpec()))
    session = DataParallelSession(model, optimizer, state, batch, mesh, local,
                                  compiled=case.compile in adapter.JIT_MODES)
    session.info = {"fast_paths": paths}
    return session
