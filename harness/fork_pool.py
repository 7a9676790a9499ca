"""The runner's side of the fork servers (``harness.fork_server``): start them, send work, time it out.

A run with many short processes per case pays each framework's import in every one of them
(measured on a 2-core VM: torch 1.2 s, TensorFlow 4 s, JAX 1.7 s, plus 1.1 s for torch's optimizers
pulling in ``torch._dynamo``). A fork server pays it once per run and interpreter; each measured
process is a child forked from it, so everything the process builds, compiles and measures is its
own. One server per (interpreter, backend), started on first use and kept for the run.

Only single-device CPU cases without a profile go through a server; anything else, and any case
whose server failed to start or died, gets a fresh interpreter as before (``eligible``). The result
of every process says which way it was started (``launch``), and the run file's settings say what
the processes shared.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tribench.harness.subprocesses import module_command

SERVER_START_TIMEOUT_S = 180.0
SHARED = ("the interpreter with tribench and the framework already imported (forked from a per-run "
          "server); every model, batch, compiled program, allocator and device runtime is the process's own")
FRESH = "nothing: a fresh interpreter that imports its framework and builds its model afresh"


ACCELERATOR_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/accel0", "/dev/vfio/0")


def accelerator_present(nodes: tuple[str, ...] = ACCELERATOR_NODES) -> bool:
    """Whether the machine shows an accelerator's device node (NVIDIA, AMD, TPU). There, availability is
    asked of fresh interpreters: a forked child must not be the first to load a driver its parent might have
    touched, and we have not verified on every framework that import alone touches none."""
    return any(os.path.exists(node) for node in nodes)


class ServerGone(Exception):
    """The fork server stopped answering; its cases fall back to fresh interpreters."""


@dataclass(frozen=True)
class Outcome:
    """How one forked child ended: its exit code (None when it was killed for the timeout) and stderr."""

    pid: int
    code: int | None
    stderr: str
    timed_out: bool


class _LineReader:
    """Reads whole lines from a pipe with a timeout (select on the raw descriptor, our own buffer)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def readline(self, timeout_s: float | None) -> str | None:
        """The next line, or None when ``timeout_s`` passed first; EOF raises ServerGone."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise ServerGone("the fork server closed its output")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")


def _kill_session(pid: int, leader_alive: bool = False) -> None:
    """Kill the session a child started (its group id is its pid). ``leader_alive``: the child itself is
    known not to have been reaped yet, so its pid can be killed even if it had not yet left our group."""
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except (ProcessLookupError, PermissionError):
        pass
    if leader_alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ForkServer:
    """One running ``harness.fork_server`` process for one backend under one interpreter."""

    def __init__(self, python: str, backend: str, env: dict[str, str], folder: Path,
                 start_timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        self.python, self.backend = python, backend
        self._folder = folder
        self._stderr_path = folder / f"server-{backend}-{os.getpid()}-{id(self)}.log"
        with open(self._stderr_path, "w") as stderr:
            self._process = subprocess.Popen(
                module_command(python, "tribench.harness.fork_server", backend), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, env=env)
        self._reader = _LineReader(self._process.stdout.fileno())
        self.ready = self._await_ready(start_timeout_s)

    def _await_ready(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._reader.readline(timeout_s)
        except ServerGone:
            line = None
        if line is None:
            self.close()
            last = (self._stderr_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise ServerGone(f"the {self.backend} fork server did not start: {last}")
        return json.loads(line)

    def launch_record(self) -> dict[str, Any]:
        """What a forked process's result says about how it was started."""
        return {"method": "fork-server", "server_pid": self.ready["pid"], "shared": SHARED,
                "framework_import_s": self.ready["import_s"], "preloaded": self.ready["preloaded"],
                "preload_s": self.ready["preload_s"]}

    def run(self, request: dict[str, Any], timeout_s: float) -> Outcome:
        """Send one request and wait for its child; kill the child's session when ``timeout_s`` passes."""
        log = self._folder / f"child-{time.monotonic_ns()}.log"
        try:
            self._process.stdin.write((json.dumps({**request, "log": str(log)}) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise ServerGone(f"the {self.backend} fork server is gone: {error}") from None
        pid = json.loads(self._reader.readline(SERVER_START_TIMEOUT_S) or "{}").get("started")
        if pid is None:
            raise ServerGone(f"the {self.backend} fork server did not fork")
        timed_out = False
        try:
            line = self._reader.readline(timeout_s)
            if line is None:
                timed_out = True
                _kill_session(pid, leader_alive=True)
                line = self._reader.readline(SERVER_START_TIMEOUT_S)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: take the child down with us
            _kill_session(pid, leader_alive=True)
            raise
        finally:
            _kill_session(pid)  # anything the child left behind in its session
        code = json.loads(line or "{}").get("code")
        stderr = log.read_text(errors="replace") if log.exists() else ""
        log.unlink(missing_ok=True)
        return Outcome(pid=pid, code=None if timed_out else code, stderr=stderr, timed_out=timed_out)

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill_session(self._process.pid, leader_alive=self._process.poll() is None)
        self._process.wait()


class ForkServerPool:
    """The run's fork servers, one per (interpreter, backend), started on first use; a context manager."""

    def __init__(self, env: dict[str, str], start_timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        self._env = env
        self._start_timeout_s = start_timeout_s
        self._servers: dict[tuple[str, str], ForkServer | None] = {}
        self._folder = tempfile.TemporaryDirectory(prefix="tribench-fork-")
        self.failures: dict[str, str] = {}  # backend -> why its server could not serve (cases ran fresh)

    def server(self, python: str, backend: str) -> ForkServer | None:
        """The running server for ``backend`` under ``python``, or None when it cannot be had."""
        key = (python, backend)
        if key not in self._servers:
            try:
                self._servers[key] = ForkServer(python, backend, self._env, Path(self._folder.name),
                                                self._start_timeout_s)
            except ServerGone as gone:
                self._servers[key] = None
                self.failures[backend] = str(gone)
        return self._servers[key]

    def forget(self, server: ForkServer, reason: str) -> None:
        """Stop using a server that failed mid-run; later cases of its backend start fresh."""
        server.close()
        self._servers[(server.python, server.backend)] = None
        self.failures[server.backend] = reason

    def availability(self, python: str, backend: str) -> dict[str, Any] | None:
        """The backend's Availability as a dict, answered by a forked child; None when no server can."""
        server = self.server(python, backend)
        if server is None:
            return None
        output = Path(self._folder.name, f"availability-{backend}-{time.monotonic_ns()}.json")
        try:
            outcome = server.run({"kind": "availability", "output": str(output)}, SERVER_START_TIMEOUT_S)
        except ServerGone as gone:
            self.forget(server, str(gone))
            return None
        if outcome.code != 0 or not output.exists():
            return None  # the fresh query reports the failure in its own words
        return json.loads(output.read_text())

    def close(self) -> None:
        for server in self._servers.values():
            if server is not None:
                server.close()
        self._servers.clear()
        self._folder.cleanup()

    def __enter__(self) -> ForkServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
