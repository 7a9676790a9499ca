"""paddle.DataParallel for a rank launched the torchrun way (``harness.distributed`` starts the ranks).

tribench gives every rank the torchrun variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK);
``paddle.distributed.init_parallel_env`` reads its own names, so ``paddle_env`` translates them before it
runs: ``PADDLE_TRAINER_ID`` = RANK, ``PADDLE_TRAINERS_NUM`` = WORLD_SIZE, the endpoints at the master's
address and port (Paddle's TCP store meets there, as torch's does), and on a GPU ``FLAGS_selected_gpus`` =
LOCAL_RANK. The collective backend is ``gloo`` on the CPU (``PADDLE_DISTRI_BACKEND``) and NCCL on a GPU.

The harness runs every rank for the same counted steps (``harness.distributed.lockstep``), so no rank steps
alone and Paddle, which has no equivalent of DDP's ``join()``, needs none. One barrier before the first
step aligns the ranks. Inference ranks are independent replicas (no DataParallel: an inference step has no
collective to make).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


def paddle_env(environ: Mapping[str, str], device: str) -> dict[str, str]:
    """Paddle's rendezvous variables from the torchrun ones in ``environ``."""
    endpoint = f"{environ['MASTER_ADDR']}:{environ['MASTER_PORT']}"
    world = int(environ["WORLD_SIZE"])
    env = {"PADDLE_TRAINER_ID": environ["RANK"], "PADDLE_TRAINERS_NUM": str(world),
           "PADDLE_CURRENT_ENDPOINT": endpoint, "PADDLE_TRAINER_ENDPOINTS": ",".join([endpoint] * world),
           "PADDLE_MASTER": endpoint}
    if device == "gpu":
        env["FLAGS_selected_gpus"] = environ.get("LOCAL_RANK", "0")
    else:
        env["PADDLE_DISTRI_BACKEND"] = "gloo"
    return env


def init(device: str) -> int:
    """Join the rank group (the torchrun variables, translated); returns this rank's local device index."""
    import paddle.distributed as dist

    os.environ.update(paddle_env(os.environ, device))
    dist.init_parallel_env()
    return int(os.environ.get("LOCAL_RANK", "0")) if device == "gpu" else 0


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """A barrier, then the measurement; every rank has run the same counted steps when it ends."""
    import paddle.distributed as dist

    dist.barrier()
    yield
    dist.barrier()
