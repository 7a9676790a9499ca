"""Measured device peaks: one worker process per framework, cached per machine.

``python -m tribench.harness.peak IN.json OUT.json`` imports ONE backend's ``peak`` module (the
package of its adapter, ``backends/<fw>/peak.py``) and measures each requested device
(``harness.peak_measure`` says how). Results are cached in
``$TRIBENCH_CACHE_DIR`` (default ``~/.cache/tribench/``) in ``peaks-<machine fingerprint>.json``:
the fingerprint hashes what changes performance (CPU, cores, memory, OS, Python, GPUs and
driver, speed-relevant environment variables — ``harness.environment``) but not the framework
set, so every framework's entries for one machine live in one file. An entry is reused only
for the same framework version and the same size options; ``refresh`` re-measures.

``tribench run`` stores the cached entries for the devices it uses in the run file's
``environment["peaks"]`` (measuring missing ones first with ``--measure-peak``), and
``harness.aggregate`` turns them into MFU per case. Nothing here imports a framework.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tribench import backends
from tribench.harness import environment
from tribench.harness.peak_measure import PeakOptions

CACHE_ENV = "TRIBENCH_CACHE_DIR"
CACHE_KIND = "tribench-peaks"
PEAK_TIMEOUT_S = 900.0

Measure = Callable[[str, list[str], PeakOptions], dict[str, dict[str, Any]]]


# ---------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where cached peaks live: ``$TRIBENCH_CACHE_DIR`` or ``~/.cache/tribench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tribench")


def machine_fingerprint(env: dict[str, Any]) -> str:
    """The environment's fingerprint without the framework versions (those are checked per entry)."""
    inputs = {key: value for key, value in env["fingerprint_inputs"].items() if key != "frameworks"}
    return environment.fingerprint(inputs)


def cache_path(fingerprint: str) -> Path:
    return cache_dir() / f"peaks-{fingerprint}.json"


def entry_key(backend: str, device: str) -> str:
    return f"{backend}/{device}"


def load_cache(path: Path) -> dict[str, Any]:
    """The cached entries; an unreadable or foreign file counts as empty (it is rewritten on the next save)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("kind") != CACHE_KIND or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def save_cache(path: Path, fingerprint: str, entries: dict[str, Any]) -> None:
    """Rewrite the cache file atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"kind": CACHE_KIND, "machine_fingerprint": fingerprint, "entries": entries}
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


def usable(entry: dict[str, Any] | None, version: str | None, options: PeakOptions | None) -> bool:
    """A cached entry serves when it was measured by this framework version (and, given ``options``, sizes)."""
    if not entry or "error" in entry or entry.get("framework_version") != version:
        return False
    if options is None:
        return True
    used = {key: entry.get("options", {}).get(key) for key in options.cache_key()}
    return used == options.cache_key()


# ---------------------------------------------------------------- measuring in a worker


def peak_module(backend: str) -> str:
    """``backends/<fw>/peak.py``: the module beside the backend's adapter."""
    return backends.entry(backend).module.rsplit(".", 1)[0] + ".peak"


def measure_in_subprocess(backend: str, devices: list[str], options: PeakOptions,
                          python: str = sys.executable, timeout_s: float = PEAK_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Measure ``devices`` through ``backend`` in a fresh process; device -> record (or {"error": ...})."""
    from tribench.harness.subprocesses import module_command, tail, worker_environment

    with tempfile.TemporaryDirectory(prefix="tribench-peak-") as folder:
        request, output = Path(folder, "in.json"), Path(folder, "out.json")
        request.write_text(json.dumps({"backend": backend, "devices": devices, "options": options.to_dict()}))
        try:
            command = module_command(python, "tribench.harness.peak", str(request), str(output))
            done = subprocess.run(command, env=worker_environment(), capture_output=True, text=True, errors="replace",
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {device: {"error": f"peak measurement took over {timeout_s:g} s"} for device in devices}
        if not output.exists():
            why = tail(done.stderr or "", 1) or f"exit code {done.returncode}"
            return {device: {"error": f"the peak worker failed: {why}"} for device in devices}
        return json.loads(output.read_text())


def _measure_here(backend: str, devices: list[str], options: PeakOptions) -> dict[str, dict[str, Any]]:
    module = importlib.import_module(peak_module(backend))
    results = {}
    for device in devices:
        try:
            results[device] = module.measure(device, options)
        except Exception as error:  # one device failing must not lose the others
            import traceback

            traceback.print_exc()
            results[device] = {"error": f"{type(error).__name__}: {error}"}
    return results


def main(argv: list[str]) -> int:
    input_path, output_path = argv
    request = json.loads(Path(input_path).read_text())
    from tribench.harness.import_guard import block_other_frameworks

    block_other_frameworks(request["backend"])
    results = _measure_here(request["backend"], request["devices"], PeakOptions.from_dict(request["options"]))
    Path(output_path).write_text(json.dumps(results))
    return 0


# ---------------------------------------------------------------- the peaks a caller asked for


@dataclass
class PeakRow:
    """One backend x device: its record (cached or just measured), or why there is none."""

    backend: str
    device: str
    entry: dict[str, Any] | None = None
    origin: str = ""                     # "cached" | "measured"
    reason: str | None = None            # why there is no entry


@dataclass
class PeakReport:
    fingerprint: str
    cache_file: Path
    rows: list[PeakRow] = field(default_factory=list)

    def entries(self) -> list[dict[str, Any]]:
        return [row.entry for row in self.rows if row.entry]


def get_peaks(wanted: dict[str, list[str]], versions: dict[str, str | None], env: dict[str, Any],
              options: PeakOptions | None = PeakOptions(), refresh: bool = False, measure_missing: bool = True,
              measure: Measure = measure_in_subprocess) -> PeakReport:
    """Peaks for ``wanted`` (backend -> devices): from the cache, or measured (one process per backend).

    ``versions`` are the framework versions the entries must match; ``options`` the sizes they must
    have been measured with (None: any sizes, the lookup a run does). With ``measure_missing`` off,
    only cached entries are returned (rows without one say so).
    """
    fingerprint = machine_fingerprint(env)
    path = cache_path(fingerprint)
    cache = load_cache(path)
    report = PeakReport(fingerprint, path)
    for backend, devices in wanted.items():
        keys = {device: entry_key(backend, device) for device in devices}
        missing = [d for d in devices if refresh or not usable(cache.get(keys[d]), versions.get(backend), options)]
        measured = measure(backend, missing, options or PeakOptions()) if (missing and measure_missing) else {}
        for device in devices:
            report.rows.append(_row(backend, device, cache, keys[device], missing, measured))
    if any(row.origin == "measured" for row in report.rows):
        save_cache(path, fingerprint, cache)
    return report


def _row(backend: str, device: str, cache: dict[str, Any], key: str, missing: list[str],
         measured: dict[str, dict[str, Any]]) -> PeakRow:
    if device not in missing:
        return PeakRow(backend, device, cache[key], "cached")
    result = measured.get(device)
    if result is None:
        return PeakRow(backend, device, reason="no cached peak for this framework version and sizes; "
                                               "run `tribench peak` (or `tribench run --measure-peak`)")
    if "error" in result:
        return PeakRow(backend, device, reason=result["error"])
    cache[key] = result
    return PeakRow(backend, device, result, "measured")


# ---------------------------------------------------------------- runs


def run_devices(planned: Iterable[Any]) -> dict[str, list[str]]:
    """backend -> the devices its runnable cases use (planned cases from ``harness.planner``)."""
    used: dict[str, list[str]] = {}
    for case in planned:
        if not case.skip_reason and case.spec.device not in used.setdefault(case.spec.backend, []):
            used[case.spec.backend].append(case.spec.device)
    return used


def peaks_for_run(env: dict[str, Any], used: dict[str, list[str]], versions: dict[str, str | None],
                  measure: bool = False, runner: Measure = measure_in_subprocess) -> dict[str, Any] | None:
    """What a run file stores as ``environment["peaks"]``, or None when nothing is known.

    ``used`` maps the run's backends to their devices, ``versions`` their framework versions
    (from their availability). Every installed framework's cached entry on those devices is
    included, because MFU holds a case against the best any framework reached on the device;
    frameworks the run does not use are matched by their installed package version.
    ``measure`` first measures the run's own backends where the cache has nothing.
    """
    devices = sorted({device for listed in used.values() for device in listed})
    every = {**installed_versions(), **versions}
    if measure:
        get_peaks({b: d for b, d in used.items() if b in versions}, versions, env, measure=runner)
    report = get_peaks({name: devices for name in every}, every, env, options=None, measure_missing=False)
    if not report.entries():
        return None
    return {
        "machine_fingerprint": report.fingerprint,
        "cache_file": str(report.cache_file),
        "stored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": "tribench peak (harness.peak): measured dense matmul and copy peaks, cached per machine",
        "entries": report.entries(),
    }


def store_in_run(run_file: Any, planned: Iterable[Any], measure: bool = False) -> dict[str, Any] | None:
    """Put the cached (or, with ``measure``, freshly measured) peaks for the run's devices in its environment.

    Framework versions come from the environment the run already captured (no new framework query).
    """
    used = run_devices(planned)
    frameworks = run_file.data["environment"].get("frameworks", {})
    versions = {name: (frameworks.get(name) or {}).get("version") for name in used}
    peaks = peaks_for_run(run_file.data["environment"], used, versions, measure=measure)
    if peaks is not None:
        run_file.data["environment"]["peaks"] = peaks
        run_file.save()
    return peaks


def installed_versions() -> dict[str, str]:
    """backend -> installed framework package version, read from package metadata (no framework import)."""
    from importlib import metadata

    distributions = metadata.packages_distributions()
    versions = {}
    for name, entry in backends.entries().items():
        found = distributions.get(entry.requires[0]) if entry.requires else None
        if found and backends.is_installed(name):
            try:
                versions[name] = metadata.version(found[0])
            except metadata.PackageNotFoundError:
                continue
    return versions


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
