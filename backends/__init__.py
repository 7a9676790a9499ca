"""The registry of backends: the ONLY place that knows which backends exist.

Each entry names the module that holds the adapter and the Python packages its
framework needs. Nothing here imports a framework: ``get`` imports the adapter
module on demand (in a worker process), and ``is_installed`` only asks the
import system whether the packages could be found.

Out-of-tree backends can be registered with the environment variable
``TRIBENCH_EXTRA_BACKENDS="name=package.module[,name2=...]"``; the module must
expose ``backend()`` returning an object that satisfies ``backends.base.Backend``.
The test suite uses this to run a fake backend through real worker processes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

from tribench.core.errors import InvalidChoice, InvalidValue


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str                 # module exposing backend()
    requires: tuple[str, ...]   # top-level import names that must be findable
    install_hint: str
    # How a data-parallel case (--devices N>1) runs: "process-per-device" (N worker processes, the
    # torchrun way, harness.distributed) or "single-process" (one worker drives every local device).
    launch: str = "process-per-device"
    # A framework-free module whose ``worker_env(spec, base) -> dict`` adds variables to the worker's
    # environment before the framework is imported there (e.g. JAX's forced host device count).
    worker_env: str | None = None
    # What each compile mode (core.spec.COMPILE_MODES) runs in this framework, in a few words: recorded in
    # every case (``execution``), shown under tables and by ``tribench list backends``.
    compile_modes: tuple[tuple[str, str], ...] = ()
    # The top-level packages of the framework: a worker of any other built-in backend blocks them
    # (harness.import_guard); empty for out-of-tree backends, which block nothing.
    packages: tuple[str, ...] = ()
    # The command that installs the framework's build for NVIDIA GPUs, shown when the machine has a GPU
    # this framework does not see (harness.accelerator_hints); empty: the framework has no such build.
    gpu_install_hint: str = ""


_BUILTIN = (
    BackendEntry("torch", "tribench.backends.torch.adapter", ("torch",), "pip install -e '.[torch]'",
                 gpu_install_hint="pip install torch --index-url https://download.pytorch.org/whl/cu128 (a CUDA build)",
                 packages=("torch", "torchvision", "torchaudio"), compile_modes=(
        ("native", "eager PyTorch"), ("compiled", "torch.compile (TorchInductor)"),
        ("op-by-op", "eager PyTorch (the same as native)"))),
    BackendEntry(
        "tensorflow", "tribench.backends.tensorflow.backend", ("tensorflow", "keras"),
        "pip install -e '.[tensorflow]'", launch="single-process",
        gpu_install_hint="pip uninstall -y tensorflow-cpu && pip install -e '.[tensorflow-cuda]'",
        packages=("tensorflow", "keras", "tf_keras"), compile_modes=(
            ("native", "tf.function graph (no XLA; on a TPU, XLA as every function)"),
            ("compiled", "tf.function(jit_compile=True) (XLA)"),
            ("op-by-op", "eager TensorFlow, no tf.function")),
    ),
    BackendEntry("jax", "tribench.backends.jax.backend", ("jax", "flax", "optax"), "pip install -e '.[jax]'",
                 launch="single-process", gpu_install_hint="pip install -e '.[jax-cuda]'",
                 worker_env="tribench.backends.jax.launch",
                 packages=("jax", "jaxlib", "flax", "optax", "orbax"), compile_modes=(
                     ("native", "jax.jit (XLA)"), ("compiled", "jax.jit (XLA; the same program as native)"),
                     ("op-by-op", "no jax.jit: every op dispatched on its own"))),
)

EXTRA_ENV = "TRIBENCH_EXTRA_BACKENDS"


def _extra_entries() -> tuple[BackendEntry, ...]:
    raw = os.environ.get(EXTRA_ENV, "")
    entries = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, module = item.partition("=")
        if not sep or not name.strip() or not module.strip():
            raise InvalidValue(f"{EXTRA_ENV} entries look like name=package.module, got {item!r}")
        entries.append(BackendEntry(name.strip(), module.strip(), (), "(registered via " + EXTRA_ENV + ")"))
    return tuple(entries)


def entries() -> dict[str, BackendEntry]:
    return {entry.name: entry for entry in _BUILTIN + _extra_entries()}


def names() -> list[str]:
    return list(entries())


def entry(name: str) -> BackendEntry:
    known = entries()
    if name not in known:
        raise InvalidChoice("backend", name, known)
    return known[name]


def missing_packages(name: str) -> list[str]:
    """The required packages of backend ``name`` that cannot be imported here (no import done)."""
    return [pkg for pkg in entry(name).requires if importlib.util.find_spec(pkg) is None]


def is_installed(name: str) -> bool:
    return not missing_packages(name)


def worker_env(spec, base: dict[str, str]) -> dict[str, str]:
    """The variables backend ``spec.backend`` needs set in its worker before its framework loads."""
    module = entry(spec.backend).worker_env
    return importlib.import_module(module).worker_env(spec, base) if module else {}


def compile_meanings(name: str) -> dict[str, str]:
    """compile mode -> what backend ``name`` runs under it (empty for a backend that does not say, or is unknown
    here: an old run file's backend, say)."""
    known = entries().get(name)
    return dict(known.compile_modes) if known else {}


def get(name: str):
    """Import the adapter of ``name`` (and so its framework) and return its Backend."""
    module = importlib.import_module(entry(name).module)
    return module.backend()


def gpu_install_hint(name: str) -> str:
    """The command that installs ``name``'s build for NVIDIA GPUs ("" when the registry has none)."""
    entry = entries().get(name)
    return entry.gpu_install_hint if entry else ""
