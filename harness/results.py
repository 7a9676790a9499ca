"""The run file: one JSON document per run, rewritten atomically after every case.

Top level: ``schema_version``, ``kind``, ``run_id``, timestamps, ``state``
(running | complete | interrupted), the command, tags, settings,
``environment`` and ``cases``. Each case: ``id``, ``spec``, ``status``
(ok | failed | skipped | timeout), ``error``, ``workload`` facts, the raw
per-process ``repeats`` and the derived ``metrics``. A crash of the runner
between two cases leaves the previous complete document on disk, because the
file is only ever replaced whole (temp file + ``os.replace``).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tribench import backends
from tribench.core.errors import OutputPathError, ResultFileError
from tribench.core.spec import CaseSpec
from tribench.harness import redaction
from tribench.harness.aggregate import case_metrics, case_status, workload_facts
from tribench.harness.schema import KIND, SCHEMA_VERSION, problem
from tribench.version import __version__


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same folder, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def check_writable(path: Path) -> None:
    """Fail early, as a user error, if the run file's folder cannot be created or written."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create output folder {folder}: {error.strerror}; choose another --output"
        raise OutputPathError(message) from None
    if path.is_dir():
        raise OutputPathError(f"--output {path} is a folder; give a file path such as {path / 'run.json'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"output folder {folder} is not writable; choose another --output")


class RunFile:
    """The run document being written by ``tribench run``."""

    def __init__(self, path: Path, environment: dict[str, Any], settings: dict[str, Any],
                 tags: dict[str, str], command: list[str], run_id: str | None = None) -> None:
        self.path = path
        safe_tags, tags_redacted = redaction.safe_tags(tags)
        self._secrets = redaction.environment_secrets(os.environ) + redaction.tag_secrets(tags)
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "tool_version": __version__,
            "run_id": run_id or new_run_id(),
            "started_at": now_iso(),
            "finished_at": None,
            "state": "running",
            "command": [redaction.scrub(str(arg), self._secrets) for arg in command],
            "tags": safe_tags,
            **({"tags_redacted": tags_redacted} if tags_redacted else {}),
            "settings": settings,
            "environment": environment,
            "cases": [],
        }
        self._repeats: dict[str, list[dict[str, Any]]] = {}

    def _case_entry(self, spec: CaseSpec) -> dict[str, Any]:
        for case in self.data["cases"]:
            if case["id"] == spec.id:
                return case
        case = {"id": spec.id, "spec": spec.to_dict(), "workload": workload_facts(spec)}
        execution = backends.compile_meanings(spec.backend).get(spec.compile)
        if execution:  # what the compile mode ran in this framework (a backend that does not say: nothing)
            case["execution"] = execution
        self.data["cases"].append(case)
        return case

    def record(self, spec: CaseSpec, process_result: dict[str, Any]) -> dict[str, Any]:
        """Add one process's result for ``spec``, re-derive the case, and save the file."""
        repeats = self._repeats.setdefault(spec.id, [])
        process_result = redaction.scrub_strings(process_result, self._secrets)  # stderr tails, errors
        repeats.append({"index": len(repeats), **process_result})
        case = self._case_entry(spec)
        case["status"], case["error"] = case_status(repeats)
        case["repeats"] = repeats
        if "threads" in process_result and "threads" not in case:  # the first process's CPU set and pools
            case["threads"] = process_result["threads"]
        case["metrics"] = case_metrics(spec, repeats, self.data.get("environment"))
        if case["workload"]["flops_per_step"]["value"] is None:  # a plugin's: counted by the framework
            case["workload"] = workload_facts(spec, repeats)
        self.save()
        return case

    def case_of(self, spec: CaseSpec) -> dict[str, Any]:
        return next(case for case in self.data["cases"] if case["id"] == spec.id)

    def has_case(self, spec: CaseSpec) -> bool:
        return any(case["id"] == spec.id for case in self.data["cases"])

    def finish(self, state: str) -> None:
        self.data["state"] = state
        self.data["finished_at"] = now_iso()
        self.save()

    def save(self) -> None:
        write_atomically(self.path, self.data)


def _migrate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    version = data.get("schema_version")
    if version == SCHEMA_VERSION:
        return data
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ResultFileError(
            f"{path}: schema version {version} is newer than this tribench reads ({SCHEMA_VERSION}); "
            "upgrade tribench (pip install -U -e .)"
        )
    raise ResultFileError(
        f"{path}: schema version {version!r} is not one this tribench can read or migrate "
        f"(it reads {SCHEMA_VERSION}); re-run the benchmark with this version"
    )


def load_run(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a run file; every problem is one clear ResultFileError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such run file") from None
    except OSError as error:
        raise ResultFileError(f"{path}: cannot read ({error.strerror})") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultFileError(f"{path}: not valid JSON ({error}); the file is corrupt or truncated") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ResultFileError(f"{path}: not a tribench run file (expected \"kind\": \"{KIND}\")")
    data = _migrate(data, path)
    if not isinstance(data.get("cases"), list):
        raise ResultFileError(f"{path}: run file has no list of cases; the file is damaged")
    found = problem(data)
    if found:
        raise ResultFileError(f"{path}: not a valid run file: {found} (the format: tribench schema)")
    return data
