"""The registry of backends: the ONLY place that knows which backends exist.

Each entry names the module that holds the adapter and the Python packages its
framework needs. Nothing here imports a framework: ``get`` imports the adapter
module on demand (in a worker process), and ``is_installed`` only asks the
import system whether the packages could be found.

Out-of-tree backends are plugins: a distribution registers one under the entry-point group
``tribench.backends`` (``name = package.module``, the module exposing ``backend()`` that returns
an object satisfying ``backends.base.Backend``). The environment variable
``TRIBENCH_EXTRA_BACKENDS="name=package.module[,name2=...]"`` does the same without installing
anything (the test suite runs a fake backend through real worker processes with it). A plugin can
add a backend, never replace a built-in one: one that takes a built-in name is not registered, and
``tribench list backends`` says so. Every entry records where it came from (``origin``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from functools import cache

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
    # Where the entry came from: "built in", the entry point's distribution, or the environment variable.
    origin: str = "built in"
    # Whether the framework's LSTM layer carries two bias vectors per gate set (input and hidden, the cuDNN
    # layout: PyTorch, Paddle) rather than one (Keras, Flax): the expected parameter count depends on it.
    lstm_second_bias: bool = False
    # Environment variables that change how the framework runs (regular expressions, each with why): run
    # files record them and the machine's fingerprint includes them (harness.env_capture).
    env_vars: tuple[tuple[str, str], ...] = ()


_BUILTIN = (
    BackendEntry("torch", "tribench.backends.torch.adapter", ("torch",), "pip install -e '.[torch]'",
                 gpu_install_hint="pip install torch --index-url https://download.pytorch.org/whl/cu128 (a CUDA build)",
                 packages=("torch", "torchvision", "torchaudio"), lstm_second_bias=True, compile_modes=(
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
    BackendEntry("paddle", "tribench.backends.paddle.adapter", ("paddle",), "pip install -e '.[paddle]'",
                 gpu_install_hint="pip install paddlepaddle-gpu==3.3.1 -i "
                                  "https://www.paddlepaddle.org.cn/packages/stable/cu126/ (a CUDA build)",
                 packages=("paddle", "paddlenlp"), lstm_second_bias=True,
                 env_vars=((r"FLAGS_[A-Za-z0-9_]+", "PaddlePaddle runtime flags (FLAGS_*)"),
                           (r"PADDLE_[A-Z0-9_]+", "PaddlePaddle's distributed and runtime settings")),
                 compile_modes=(("native", "dygraph (eager Paddle)"),
                                ("compiled", "paddle.jit.to_static (CINN where Paddle was built with it)"),
                                ("op-by-op", "dygraph (the same as native)"))),
)

EXTRA_ENV = "TRIBENCH_EXTRA_BACKENDS"
ENTRY_POINT_GROUP = "tribench.backends"


def _extra_entries() -> tuple[BackendEntry, ...]:
    raw = os.environ.get(EXTRA_ENV, "")
    entries = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, module = item.partition("=")
        if not sep or not name.strip() or not module.strip():
            raise InvalidValue(f"{EXTRA_ENV} entries look like name=package.module, got {item!r}")
        entries.append(BackendEntry(name.strip(), module.strip(), (), "(registered via " + EXTRA_ENV + ")",
                                    origin=EXTRA_ENV))
    return tuple(entries)


@cache
def _plugin_entries() -> tuple[BackendEntry, ...]:
    """Backends installed distributions register under ``tribench.backends`` (read once per process)."""
    found = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{point.dist.name} {point.dist.version}" if point.dist else "an unnamed distribution"
        module = point.value.partition(":")[0].strip()
        found.append(BackendEntry(point.name, module, (), f"(a plugin: reinstall {dist.split()[0]})",
                                  origin=f"entry point of {dist}"))
    return tuple(found)


def _registered() -> tuple[dict[str, BackendEntry], list[BackendEntry]]:
    """(name -> entry, the plugin entries refused because they take a built-in name)."""
    known = {entry.name: entry for entry in _BUILTIN}
    builtin = set(known)
    refused = []
    for added in _plugin_entries() + _extra_entries():  # the variable overrides an installed plugin
        if added.name in builtin:
            refused.append(added)
        else:
            known[added.name] = added
    return known, refused


def entries() -> dict[str, BackendEntry]:
    return _registered()[0]


def refused_plugins() -> list[str]:
    """One line per plugin that was not registered because its name is a built-in backend's."""
    return [f"{entry.name} from {entry.origin} ({entry.module}) is not registered: {entry.name!r} is the built-in "
            "backend's name; a plugin adds backends, it cannot replace one" for entry in _registered()[1]]


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
    found = entry(name)
    module = importlib.import_module(found.module)
    factory = getattr(module, "backend", None)
    if not callable(factory):
        raise ImportError(f"backend {name} ({found.origin}): module {found.module} has no backend() function")
    return factory()


def lstm_second_bias(name: str) -> bool:
    """Whether backend ``name``'s LSTM carries two bias vectors (False for a name this process does not know)."""
    known = entries().get(name)
    return known.lstm_second_bias if known else False


def env_var_reasons() -> tuple[tuple[str, str], ...]:
    """(pattern, why) of every registered backend's environment variables (``BackendEntry.env_vars``)."""
    return tuple(pair for entry in entries().values() for pair in entry.env_vars)


def gpu_install_hint(name: str) -> str:
    """The command that installs ``name``'s build for NVIDIA GPUs ("" when the registry has none)."""
    entry = entries().get(name)
    return entry.gpu_install_hint if entry else ""
