"""Which multi-worker cluster a multi-host TensorFlow case joins, and whether it is the one asked for.

No TensorFlow here: these functions take the environment and the resolver's plain answers (its
cluster as a dict, its task type and index), so every branch is tested without a cluster.

``tribench run --nodes M`` tells each host's worker ``TRIBENCH_NODES=M`` and
``TRIBENCH_NODE_RANK=k``. TensorFlow's ``MultiWorkerMirroredStrategy`` needs every worker's
address, which the harness does not know, so the cluster comes from the launcher: ``TF_CONFIG``
when set (``TFConfigClusterResolver``), else SLURM when ``SLURM_JOB_ID`` is set
(``SlurmClusterResolver``, with the case's ``MASTER_PORT`` as its port base, so every case process
gets fresh ports). The resolved cluster must hold M workers and put this host at rank k.

``TF_CONFIG``'s addresses and ports are used as given, by every case process in turn: a host starts
its next case only after its previous case process exited, but a slower peer may still be closing
its previous case process for a moment on the same port. tribench does not rewrite TF_CONFIG, so
that overlap is possible (untested here); under SLURM each case gets its own ports, which rules it out.
"""

from __future__ import annotations

from collections.abc import Mapping

from tribench.core.errors import InvalidValue

TF_CONFIG_VAR = "TF_CONFIG"
SLURM_JOB_VAR = "SLURM_JOB_ID"
NODE_RANK_VAR = "TRIBENCH_NODE_RANK"
PORT_VAR = "MASTER_PORT"

# MultiWorkerMirroredStrategy's task types, in rank order: the chief (if any) is rank 0.
WORKER_TYPES = ("chief", "worker")


def resolver_kind(environ: Mapping[str, str], nodes: int) -> str:
    """``"tf_config"`` or ``"slurm"``: where this host learns the cluster; an error naming the fix otherwise."""
    if environ.get(TF_CONFIG_VAR, "").strip():
        return "tf_config"
    if environ.get(SLURM_JOB_VAR, "").strip():
        return "slurm"
    raise InvalidValue(
        f"a TensorFlow case over {nodes} nodes needs the cluster's worker addresses: set {TF_CONFIG_VAR} on every "
        f'host (e.g. {{"cluster": {{"worker": ["host0:12345", "host1:12345"]}}, "task": {{"type": "worker", '
        f'"index": <node rank>}}}}) or launch under SLURM with srun'
    )


def node_rank(environ: Mapping[str, str]) -> int:
    """This host's rank as the harness set it (``TRIBENCH_NODE_RANK``)."""
    text = environ.get(NODE_RANK_VAR, "").strip()
    if not text.isdigit():
        raise InvalidValue(f"{NODE_RANK_VAR}={environ.get(NODE_RANK_VAR)!r}: a multi-host case needs this host's "
                           "rank (tribench run --nodes M --node-rank k sets it)")
    return int(text)


def slurm_port_base(environ: Mapping[str, str]) -> int | None:
    """The case's rendezvous port (``MASTER_PORT``) as the SLURM workers' first port; None: TensorFlow's default."""
    text = environ.get(PORT_VAR, "").strip()
    return int(text) if text.isdigit() else None


def worker_count_and_rank(cluster: Mapping[str, list[str]], task_type: str | None,
                          task_id: int | None) -> tuple[int, int]:
    """(workers, this task's rank) of a MultiWorkerMirroredStrategy cluster: the chief first, then the workers.

    Other task types (``ps``, ``evaluator``) take no part in the strategy's collectives, so they do not count.
    """
    if task_type not in WORKER_TYPES or task_id is None:
        raise InvalidValue(f"this host's task is {task_type!r} #{task_id}; a MultiWorkerMirroredStrategy host must be "
                           f"a 'chief' or a 'worker' (set the task in {TF_CONFIG_VAR})")
    chiefs = len(cluster.get("chief", ()))
    workers = chiefs + len(cluster.get("worker", ()))
    return workers, task_id + (chiefs if task_type == "worker" else 0)


def cluster_problem(workers: int, rank: int, nodes: int, expected_rank: int, source: str) -> str | None:
    """Why the resolved cluster is not the one tribench was asked for, or None."""
    if workers != nodes:
        return (f"{source} describes {workers} workers but the case runs on {nodes} nodes (--nodes): "
                f"make them agree")
    if rank != expected_rank:
        return (f"{source} makes this host worker {rank} but tribench runs it as node {expected_rank} "
                f"(--node-rank): make them agree")
    return None
