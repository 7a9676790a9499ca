"""A fork server: one interpreter imports one backend's framework once, then forks a fresh child per process.

``python -m tribench.harness.fork_server BACKEND`` blocks the other frameworks (``harness.import_guard``),
imports the backend's adapter (and so its framework) and the modules the backend names in
``preload_modules``, and nothing else: no model is built, no device
runtime is started, no thread of ours runs. It then answers requests, one JSON line each on stdin:

    {"kind": "case", "input": IN.json, "output": OUT.json, "log": LOG}   one measured process
    {"kind": "availability", "output": OUT.json, "log": LOG}             the backend's Availability

For each it forks a child that starts a session of its own (so the runner can kill it and all it
started), sends its stdout to /dev/null and its stderr to ``log``, does the work exactly as
``harness.worker`` (or ``harness.availability``) does in a fresh interpreter, and leaves with
``os._exit``. The server replies ``{"started": PID}`` at once and ``{"exited": PID, "code": CODE}``
when the child is gone (CODE negative: killed by that signal), then waits for the next line. At
startup it replies ``{"ready": true, ...}`` with what it imported and how long that took, or exits
with the reason on stderr. End of stdin ends the server.

What a child shares with its siblings is the parent's memory image right after import: the
interpreter, tribench's modules and the framework's modules. Every model, batch, allocator pool,
compiled program, device runtime and thread pool is created in the child, as in a fresh process.
Frameworks are not fork-safe once their runtimes run threads, which is why the server never runs a
step, never asks for devices itself (availability is answered by a child too) and runs on CPU only
(``harness.fork_pool``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(request: dict[str, Any], backend_name: str) -> int:
    """The work of one child (its stdio already redirected); returns the exit code."""
    if request["kind"] == "availability":
        from tribench import backends

        availability = backends.get(backend_name).availability()
        with open(request["output"], "w") as handle:
            json.dump(availability.to_dict(), handle)
        return 0
    from tribench.harness import worker

    return worker.main([request["input"], request["output"]])


def _become_child(request: dict[str, Any], backend_name: str) -> None:
    """Run in the forked child: own session, own stdio, the work, then ``os._exit`` (never returns)."""
    code = 1
    try:
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        code = _child(request, backend_name)
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else 1
    except BaseException:  # the child's traceback goes to its log, as a fresh worker's goes to its stderr
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken stream must not keep the child alive
                pass
        os._exit(code)


def serve_one(request: dict[str, Any], backend_name: str) -> None:
    """Fork a child for ``request``, report its pid, wait for it and report its exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _become_child(request, backend_name)
    _reply({"started": pid})
    _, status = os.waitpid(pid, 0)
    _reply({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def load(backend_name: str) -> dict[str, Any]:
    """Import the backend and its preload modules; return the ``ready`` message."""
    from tribench import backends
    from tribench.harness.import_guard import block_other_frameworks

    block_other_frameworks(backend_name)  # inherited by every child, as a fresh worker installs it first
    started = time.perf_counter()
    backend = backends.get(backend_name)
    imported_s = time.perf_counter() - started
    preload = list(getattr(backend, "preload_modules", ()))
    for module in preload:
        importlib.import_module(module)
    return {"ready": True, "pid": os.getpid(), "backend": backend_name, "import_s": imported_s,
            "preload_s": time.perf_counter() - started - imported_s, "preloaded": preload}


def main(argv: list[str]) -> int:
    (backend_name,) = argv
    _reply(load(backend_name))
    for line in sys.stdin:
        if line.strip():
            serve_one(json.loads(line), backend_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
