"""One CPU threading policy for every framework: how many threads a measured process runs, on which CPUs.

Left alone, each framework sizes its pools its own way: PyTorch from the physical cores, TensorFlow and
XLA from the logical CPUs, none of them from a cgroup CPU quota. The policy replaces that with one rule:

- **The budget** is the CPUs this process may run on (``sched_getaffinity``), cut to the whole CPUs of
  the cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, the tightest of
  the cgroup and its ancestors) when there is one: threads beyond the quota only wait to be throttled.
- **A CPU for the rest**: with 4 or more CPUs in the budget, one of them is kept for the parent process
  (which pins every thread of its own there) and for the worker's probe threads (energy samplers, which
  pin themselves there); the measured threads get the others. Below 4 nothing is reserved, and the run
  file says so: on 2 CPUs a reserved one would halve the measured budget.
- **The measured process** is pinned to its CPU set (``sched_setaffinity``, before its framework starts a
  thread) and runs ``intra_op`` = ``inter_op`` = the set's size (each op may use every CPU, and as many
  independent ops may run at once), set through each framework's own API (``Backend.apply_threads``).
  XLA:CPU (JAX) has no such API: it sizes its pool from the CPU set, which is why the set, not only the
  counts, is the policy. Inter-op 1 was tried and refused: TensorFlow runs a graph's independent ops
  (Adam's per-variable updates, attention heads) on its inter-op pool, and serialising them made its
  transformer-tiny training 28.5% slower on 2 CPUs (``benchmarks/thread_policy.py``).
- ``--threads N`` (or ``OMP_NUM_THREADS`` in the environment, when ``--threads`` is not given) asks
  for N threads: the set shrinks to N CPUs; above the budget the set stays whole and the excess is
  noted as oversubscribed. ``--threads framework`` leaves every framework to its own defaults.
- Ranks of a data-parallel case on one host share the set out: rank r of k gets the r-th of k parts.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tribench.core.errors import InvalidValue

RESERVE_FROM = 4  # a budget of this many CPUs or more keeps one for the parent and the probe threads
FRAMEWORK_DEFAULTS = "framework"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CpuQuota:
    """A cgroup CPU quota in CPUs (1.5 = one and a half CPUs of time per period), and where it was read."""

    cpus: float
    source: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ancestors(relative: str) -> list[str]:
    """``/a/b`` -> ``["/a/b", "/a", "/"]``: the quota that binds is the tightest on the way up."""
    parts = [part for part in relative.split("/") if part]
    return ["/" + "/".join(parts[:count]) for count in range(len(parts), -1, -1)]


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 cpu-controller path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _v2_quota(root: Path, path: str) -> CpuQuota | None:
    found = []
    for relative in _ancestors(path):
        text = _read(root / relative.lstrip("/") / "cpu.max")
        if text and not text.startswith("max"):
            quota, _, period = text.partition(" ")
            found.append(CpuQuota(int(quota) / int(period or 100000), f"cgroup v2 {relative} cpu.max {text!r}"))
    return min(found, key=lambda q: q.cpus, default=None)


def _v1_quota(root: Path, path: str) -> CpuQuota | None:
    found = []
    for base in (root / "cpu", root / "cpu,cpuacct"):
        for relative in _ancestors(path):
            folder = base / relative.lstrip("/")
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                found.append(CpuQuota(int(quota) / int(period),
                                      f"cgroup v1 {relative} cpu.cfs_quota_us {quota} / cpu.cfs_period_us {period}"))
    return min(found, key=lambda q: q.cpus, default=None)


def read_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CpuQuota | None:
    """The cgroup CPU quota binding this process, or None where there is none (or no cgroup to read)."""
    v2, v1 = _cgroup_paths(proc_cgroup)
    quotas = [quota for quota in ((_v2_quota(root, v2) if v2 is not None else None),
                                  (_v1_quota(root, v1) if v1 is not None else None)) if quota]
    return min(quotas, key=lambda q: q.cpus, default=None)


def allowed_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (every CPU where the platform has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def cpu_list(cpus: tuple[int, ...] | list[int]) -> str:
    """``(0, 1, 2, 5)`` -> ``"0-2,5"``: the kernel's own notation for CPU sets."""
    ranges: list[str] = []
    ordered = sorted(cpus)
    start = previous = None
    for cpu in ordered + [None]:
        if start is not None and (cpu is None or cpu != previous + 1):
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        previous = cpu
    return ",".join(ranges)


@dataclass(frozen=True)
class ThreadPolicy:
    """What every measured process of a run is given (the module docstring has the rule)."""

    worker_cpus: tuple[int, ...]
    intra_op: int
    inter_op: int
    reserved_cpus: tuple[int, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def for_rank(self, rank: int, world: int) -> ThreadPolicy:
        """Rank ``rank``'s share of the set when ``world`` processes of one case share this host."""
        if world <= 1:
            return self
        cpus = self.worker_cpus
        if world > len(cpus):  # more ranks than CPUs: one thread each, CPUs shared round-robin
            return replace(self, worker_cpus=(cpus[rank % len(cpus)],), intra_op=1, inter_op=1, notes=self.notes + (
                f"{world} ranks on {len(cpus)} CPUs: each rank 1 thread, CPUs shared (oversubscribed)",))
        size = len(cpus) // world
        share = cpus[rank * size:(rank + 1) * size]
        threads = max(1, min(self.intra_op, len(share)))
        return replace(self, worker_cpus=share, intra_op=threads, inter_op=threads,
                       notes=self.notes + (f"rank {rank} of {world} on this host: CPUs {cpu_list(share)}",))

    def to_dict(self) -> dict[str, Any]:
        return {"policy": "tribench", "worker_cpus": cpu_list(self.worker_cpus), "intra_op": self.intra_op,
                "inter_op": self.inter_op, "reserved_cpus": cpu_list(self.reserved_cpus) or None,
                "source": self.source, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadPolicy:
        return cls(worker_cpus=parse_cpu_list(data["worker_cpus"]), intra_op=int(data["intra_op"]),
                   inter_op=int(data["inter_op"]), reserved_cpus=parse_cpu_list(data.get("reserved_cpus") or ""),
                   source=data.get("source", ""), notes=tuple(data.get("notes", ())))


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0-2,5"`` -> ``(0, 1, 2, 5)``."""
    cpus: list[int] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return tuple(cpus)


def parse_threads_option(value: str | None, environ: dict[str, str] | None = None) -> int | str | None:
    """``--threads``: None/"auto" (the budget, or ``OMP_NUM_THREADS`` when set), "framework", or N >= 1."""
    text = (value or "auto").strip().lower()
    if text == FRAMEWORK_DEFAULTS:
        return FRAMEWORK_DEFAULTS
    if text == "auto":
        omp = (environ if environ is not None else os.environ).get("OMP_NUM_THREADS", "").strip()
        return int(omp) if omp.isdigit() and int(omp) >= 1 else None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise InvalidValue(f"--threads takes a whole number of threads (1 or more), 'auto' or '{FRAMEWORK_DEFAULTS}', "
                       f"got {value!r}")


def decide(allowed: tuple[int, ...], quota: CpuQuota | None, threads: int | None = None,
           from_environment: bool = False) -> ThreadPolicy:
    """The run's policy from the CPUs it may use, the cgroup quota, and ``--threads`` (None: the budget)."""
    allowed = tuple(sorted(allowed)) or (0,)
    budget = len(allowed) if quota is None else max(1, min(len(allowed), math.floor(quota.cpus)))
    source = (f"affinity: CPUs {cpu_list(allowed)} ({len(allowed)}); "
              + (f"CPU quota {quota.cpus:g} CPUs ({quota.source})" if quota else "no cgroup CPU quota"))
    notes: list[str] = []
    if budget >= RESERVE_FROM:
        reserved, usable = (allowed[-1],), allowed[:budget - 1]
        notes.append(f"CPU {allowed[-1]} kept for the parent process and the probe threads")
    else:
        reserved, usable = (), allowed[:budget]
        notes.append(f"no CPU kept for the parent and the probe threads: {budget} CPU{'s' if budget != 1 else ''} "
                     f"(one is kept from {RESERVE_FROM})")
    intra = len(usable)
    if threads is not None:
        origin = "OMP_NUM_THREADS" if from_environment else "--threads"
        if threads <= len(usable):
            usable, intra = usable[:threads], threads
            notes.append(f"{threads} thread{'s' if threads != 1 else ''} from {origin}")
        else:
            intra = threads
            notes.append(f"{threads} threads from {origin} on {len(usable)} CPUs: oversubscribed "
                         f"(XLA:CPU still sizes its pool from the {len(usable)} CPUs)")
    return ThreadPolicy(worker_cpus=usable, intra_op=intra, inter_op=intra, reserved_cpus=reserved,
                        source=source, notes=tuple(notes))


def policy_for_run(option: str | None) -> ThreadPolicy | None:
    """The policy for this machine and ``--threads`` value; None for ``--threads framework``."""
    threads = parse_threads_option(option)
    if threads == FRAMEWORK_DEFAULTS:
        return None
    from_environment = (option or "auto").strip().lower() == "auto" and threads is not None
    return decide(allowed_cpus(), read_quota(), threads if isinstance(threads, int) else None, from_environment)


def pin_every_thread(cpus: tuple[int, ...]) -> str:
    """Pin each thread of this process (``/proc/self/task``) to ``cpus``; say what was done."""
    if not cpus:
        return "not pinned: no CPU kept for it"
    try:
        tasks = [int(tid) for tid in os.listdir("/proc/self/task")]
        for tid in tasks:
            os.sched_setaffinity(tid, set(cpus))
    except (OSError, AttributeError) as error:
        return f"not pinned: {error}"
    return f"pinned to CPU {cpu_list(cpus)} ({len(tasks)} threads)"


_probe_cpus: tuple[int, ...] = ()


def set_probe_cpus(cpus: tuple[int, ...]) -> None:
    """Where this process's probe threads pin themselves when they start (``pin_probe_thread``)."""
    global _probe_cpus
    _probe_cpus = tuple(cpus)


def pin_probe_thread() -> None:
    """Called first in a probe thread: pin the calling thread (Linux: pid 0 is the thread) off the measured CPUs."""
    if _probe_cpus and hasattr(os, "sched_setaffinity") and threading.current_thread() is not threading.main_thread():
        try:
            os.sched_setaffinity(0, set(_probe_cpus))
        except OSError:  # a CPU taken away since the policy was made: the probe runs where it may
            pass


def apply_in_worker(policy: ThreadPolicy) -> dict[str, Any]:
    """Pin this (single-threaded, framework-free) worker to its CPUs; the record of what it now has."""
    record = policy.to_dict()
    try:
        os.sched_setaffinity(0, set(policy.worker_cpus))
        record["cpus"] = cpu_list(tuple(sorted(os.sched_getaffinity(0))))
    except (OSError, AttributeError) as error:
        record["cpus"] = None
        record["notes"] = record["notes"] + [f"CPU set not applied: {error}"]
    set_probe_cpus(policy.reserved_cpus)
    return record
