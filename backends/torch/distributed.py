"""DistributedDataParallel for a rank launched the torchrun way (harness.distributed starts the ranks).

``gloo`` on CPU, ``nccl`` on CUDA with the rank's device = ``cuda:LOCAL_RANK``. Every rank runs the
harness's own adaptive timed loop, so ranks may stop after different step counts: the measurement
runs inside ``DistributedDataParallel.join()``, which shadows the collectives of ranks that are done
instead of deadlocking. One barrier before the first step aligns the ranks; no other is added.
Inference ranks are independent replicas (no DDP: an inference step has no collective to make).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

INIT_TIMEOUT = timedelta(minutes=5)


def init(device_type: str) -> torch.device:
    """Join the process group (env:// rendezvous) and return this rank's device."""
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=INIT_TIMEOUT)
    if device_type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device_type)


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP around a training ``model`` (gradients all-reduced in backward)."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@contextlib.contextmanager
def scope(ddp: DistributedDataParallel | None) -> Iterator[None]:
    """Barrier, then the measurement (inside ``join()`` when training); leave the process group afterwards.

    Inference runs no collective per step, so it is not wrapped (``ddp`` None): DDP's join would shadow
    a backward all-reduce that an inference rank never makes, and the ranks' collectives would mismatch.
    """
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()
    with ddp.join() if ddp is not None else contextlib.nullcontext():
        yield
    dist.destroy_process_group()
