"""Multi-host runs (``--nodes M``): which host this is and where the ranks meet.

Every host runs its own ``tribench run`` with the same cases and the same flags, plus its node rank;
the hosts meet at a rendezvous endpoint (``--master-addr``/``--master-port``), the torchrun way.
tribench is its own launcher: it starts the worker processes on each host, so no torchrun, mpirun
or ``srun --ntasks-per-node=N`` is needed, only one ``tribench run`` per host. Values not given as
flags are read from the launcher's environment: an ``srun`` job step's ``SLURM_STEP_NUM_NODES`` and
``SLURM_NODEID``, and the torchrun-style ``MASTER_ADDR``/``MASTER_PORT``. Only a job step counts:
a batch script or ``salloc`` shell on a multi-node allocation runs on one host, so its
``SLURM_NNODES`` must not turn a plain run into a multi-host one that waits for absent hosts.
Each host writes its own run file with its own ranks;
``tribench merge`` joins them (``harness.merge``).

Every case process gets its own rendezvous port, ``master_port + launch % PORT_SPAN``: a host that
finishes a case first must not reach the previous case's store, still open on a slower host. Both
hosts count launches the same way: a case's launch number is its place in the plan, skipped cases
included (``harness.runner.execute``), and the A/B order seed is 0 on every multi-host run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from tribench.core.errors import InvalidValue

PORT_SPAN = 64
DEFAULT_PORT = 29500


@dataclass(frozen=True)
class Cluster:
    nodes: int
    node_rank: int
    master_addr: str
    master_port: int

    def port_for(self, launch: int) -> int:
        """The rendezvous port of the ``launch``-th case process of the run (the same on every host)."""
        return self.master_port + launch % PORT_SPAN

    def worker_env(self, launch: int) -> dict[str, str]:
        """What a host's workers are told: how many hosts, which one this is, where to meet."""
        return {"TRIBENCH_NODES": str(self.nodes), "TRIBENCH_NODE_RANK": str(self.node_rank),
                "MASTER_ADDR": self.master_addr, "MASTER_PORT": str(self.port_for(launch))}

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ports": f"{self.master_port}-{self.master_port + PORT_SPAN - 1}"}


def _whole(name: str, value: object, minimum: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < minimum:
        raise InvalidValue(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(text)


def resolve(nodes: int | None, node_rank: int | None, master_addr: str | None, master_port: int | None,
            env: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster from the flags, else the launcher's environment; None for a one-host run."""
    count = _whole("--nodes", nodes if nodes is not None else env.get("SLURM_STEP_NUM_NODES", 1), 1)
    if count == 1:
        if node_rank not in (None, 0):
            raise InvalidValue(f"--node-rank {node_rank} needs --nodes above 1")
        return None
    in_step = "SLURM_STEP_NUM_NODES" in env  # SLURM_NODEID is also set in a batch script: not a job step
    rank_value = node_rank if node_rank is not None else (env.get("SLURM_NODEID") if in_step else None)
    if rank_value is None:
        raise InvalidValue(f"--nodes {count} needs --node-rank (0..{count - 1}) on each host "
                           "(or SLURM_NODEID from srun)")
    rank = _whole("--node-rank", rank_value, 0)
    if rank >= count:
        raise InvalidValue(f"--node-rank must be 0..{count - 1} with --nodes {count}, got {rank}")
    address = master_addr or env.get("MASTER_ADDR")
    if not address:
        raise InvalidValue("--nodes above 1 needs --master-addr: the address of node 0 that every host can "
                           "reach (or MASTER_ADDR)")
    port = _whole("--master-port", master_port if master_port is not None
                  else env.get("MASTER_PORT", DEFAULT_PORT), 1)
    if port + PORT_SPAN - 1 > 65535:
        raise InvalidValue(f"--master-port must leave {PORT_SPAN} ports below 65536, got {port}")
    return Cluster(count, rank, address, port)


def from_env(env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(nodes, node rank) as the harness told this worker; (1, 0) on a one-host run."""
    return int(env.get("TRIBENCH_NODES", "1")), int(env.get("TRIBENCH_NODE_RANK", "0"))
