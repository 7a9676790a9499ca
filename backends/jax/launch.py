"""What a JAX data-parallel worker needs before jax is imported, and the multi-host settings: no jax here.

The harness runs a JAX case with ``--devices N`` in ONE worker process that drives N local
devices (``backends.jax.parallel``). On a CPU, XLA shows one host device unless told otherwise
when it starts, so ``worker_env`` (called in the parent, before the worker exists) adds
``--xla_force_host_platform_device_count=N`` to ``XLA_FLAGS``. Those N "devices" split the one
CPU's cores between them; they are not N processors.

With ``--nodes M`` the harness sets ``TRIBENCH_NODES``, ``TRIBENCH_NODE_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT`` in every host's worker; ``coordinator`` turns them into the arguments of
``jax.distributed.initialize`` (process ``TRIBENCH_NODE_RANK`` of ``TRIBENCH_NODES``, the
coordinator service on ``MASTER_ADDR:MASTER_PORT``, served by process 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec

XLA_FLAGS = "XLA_FLAGS"
FORCE_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"

NODES_ENV = "TRIBENCH_NODES"
NODE_RANK_ENV = "TRIBENCH_NODE_RANK"
ADDRESS_ENV = "MASTER_ADDR"
PORT_ENV = "MASTER_PORT"
MULTI_HOST_ENV = (NODES_ENV, NODE_RANK_ENV, ADDRESS_ENV, PORT_ENV)


def _without_device_count(flags: str) -> list[str]:
    """``flags`` split into words, without any earlier host device count (XLA reads ``--name=value`` words)."""
    return [word for word in flags.split()
            if word != FORCE_DEVICE_COUNT_FLAG and not word.startswith(FORCE_DEVICE_COUNT_FLAG + "=")]


def worker_env(spec: CaseSpec, base: Mapping[str, str]) -> dict[str, str]:
    """Variables the JAX worker of ``spec`` needs set before jax loads (``base``: the worker's environment).

    A CPU case over N > 1 devices gets ``XLA_FLAGS`` = the flags already in ``base`` plus
    ``--xla_force_host_platform_device_count=N`` (replacing an earlier count); anything else, nothing.
    """
    if spec.device != "cpu" or spec.devices <= 1:
        return {}
    flags = [*_without_device_count(base.get(XLA_FLAGS, "")), f"{FORCE_DEVICE_COUNT_FLAG}={spec.devices}"]
    return {XLA_FLAGS: " ".join(flags)}


@dataclass(frozen=True)
class Coordinator:
    """The arguments of ``jax.distributed.initialize`` for one host of a multi-host case."""

    address: str          # "host:port" of the coordinator service (process 0 serves it)
    num_processes: int
    process_id: int


def _integer(environ: Mapping[str, str], name: str) -> int:
    text = environ[name].strip()
    try:
        return int(text)
    except ValueError:
        raise InvalidValue(f"{name}={environ[name]!r} is not an integer") from None


def coordinator(spec: CaseSpec, environ: Mapping[str, str]) -> Coordinator | None:
    """Where this host joins a multi-host case, from the harness's variables; None for one host.

    A missing or inconsistent variable is a user error (the message names the variable and the fix).
    """
    if spec.nodes <= 1:
        return None
    missing = [name for name in MULTI_HOST_ENV if not environ.get(name, "").strip()]
    if missing:
        raise InvalidValue(
            f"a JAX case over {spec.nodes} nodes needs {', '.join(missing)} set in the worker's environment "
            f"(tribench run --nodes sets {', '.join(MULTI_HOST_ENV)}); set them or run with --nodes 1"
        )
    nodes, rank, port = (_integer(environ, name) for name in (NODES_ENV, NODE_RANK_ENV, PORT_ENV))
    if nodes != spec.nodes:
        raise InvalidValue(f"{NODES_ENV}={nodes} but the case is for {spec.nodes} nodes")
    if not 0 <= rank < nodes:
        raise InvalidValue(f"{NODE_RANK_ENV}={rank} is outside 0..{nodes - 1} ({NODES_ENV}={nodes})")
    if not 0 < port < 65536:
        raise InvalidValue(f"{PORT_ENV}={port} is not a TCP port (1..65535)")
    host = environ[ADDRESS_ENV].strip()
    if ":" in host and not host.startswith("["):   # a bare IPv6 address needs brackets before the port
        host = f"[{host}]"
    return Coordinator(address=f"{host}:{port}", num_processes=nodes, process_id=rank)
