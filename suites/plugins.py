"""Workloads from outside tribench: the contract a plugin fulfils, and the places plugins are found.

A workload plugin is a ``Workload`` object. It names its sizes (each with the plugin's own settings)
and, per framework it supports, a *builder*: a function that takes a ``BuildRequest`` and returns
``Parts`` (the model, one synthetic batch and the loss). The backend does everything else the way it
does for the built-in workloads: the device, the precision (autocast, Keras dtype policies), Adam,
the compile mode, the timed loop. A framework without a builder is ``skipped`` with that reason.

What each backend expects in ``Parts``:

* ``torch``: ``model`` an ``nn.Module``; ``inputs`` a tensor, a tuple (positional arguments) or a
  dict (keyword arguments); ``loss(outputs, targets)`` a scalar tensor.
* ``tensorflow``: ``model`` a ``keras.Model``; ``inputs`` and ``targets`` tensors (or tuples/dicts);
  ``loss(outputs, targets)`` a scalar tensor. The builder runs under the case's Keras dtype policy.
* ``jax``: ``model`` a pure function ``apply(params, inputs) -> outputs``; ``params`` the parameter
  pytree (every leaf trainable); ``loss(outputs, targets)`` a scalar array. The builder gets the
  compute dtype in ``BuildRequest.compute_dtype`` and applies it itself.
* ``paddle``: ``model`` a ``paddle.nn.Layer``; ``inputs`` a tensor, a tuple or a dict (as torch);
  ``loss(outputs, targets)`` a scalar tensor. The forward pass runs under the case's ``paddle.amp.auto_cast``.

A builder may be given as the function or as ``"module:function"``: the string form keeps the
plugin's own module free of framework imports (tribench imports it in its parent process to list it,
so its top level should import no framework).

Analytic figures are optional: ``params(size)``, ``forward_flops(size)`` (per sample) and
``tokens_per_sample(size)``. Without ``forward_flops`` the worker counts the step's FLOPs with the
framework's own counter and the run file names it (``workload.flops_per_step.source``).

Where plugins come from (``catalog``): the entry-point group ``tribench.workloads`` (``name =
module:ATTRIBUTE``), Python files named on the command line (``--workload path/model.py:NAME``,
passed to worker processes in ``TRIBENCH_WORKLOAD_FILES``), and ``hf:<model>`` (``suites.huggingface``).
A plugin that cannot be loaded is still listed, as a ``BrokenWorkload`` whose cases fail with its
one-line reason; the other cases still run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tribench.core.errors import InvalidValue

ENTRY_POINT_GROUP = "tribench.workloads"
FILES_ENV = "TRIBENCH_WORKLOAD_FILES"
TRAIN_FLOPS_FACTOR = 3
COMPUTE_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class BuildRequest:
    """What a builder is asked to build: one case, in the builder's framework."""

    workload: str
    size: str
    config: Mapping[str, Any]   # the plugin's own settings for ``size``
    batch_size: int
    mode: str                   # "train" | "infer"
    precision: str              # fp32 | tf32 | bf16 | fp16
    compute_dtype: str          # float32 | bfloat16 | float16: what the precision computes in
    device: Any                 # the framework's device (torch.device, jax.Device, a TensorFlow or Paddle device name)
    seed: int


@dataclass(frozen=True)
class Parts:
    """A builder's answer: the model, one fixed synthetic batch, and the loss (required to train)."""

    model: Any
    inputs: Any
    targets: Any = None
    loss: Callable[[Any, Any], Any] | None = None
    params: Any = None          # JAX only: the parameter pytree ``model`` applies


Builder = Callable[[BuildRequest], Parts] | str


@dataclass(frozen=True)
class Workload:
    """A workload defined outside tribench (see the module docstring)."""

    name: str
    description: str
    sizes: Mapping[str, Mapping[str, Any]]
    builders: Mapping[str, Builder]
    params: Callable[[str], int] | None = None
    forward_flops: Callable[[str], int] | None = None
    tokens_per_sample_of: Callable[[str], int | None] | None = None
    origin: str = field(default="", compare=False)      # filled in by the catalog: where it came from
    requires: tuple[str, ...] = ()   # importable packages the builders need beyond the framework
    install_hint: str = ""            # the command that installs them
    unsupported_note: str = ""        # why frameworks without a builder have none (said when skipping)

    def check_size(self, size: str) -> Mapping[str, Any]:
        if size not in self.sizes:
            raise InvalidValue(f"workload {self.name} has no size {size!r}; its sizes: {', '.join(self.sizes)}")
        return self.sizes[size]

    def flops_per_step(self, size: str, mode: str, batch_size: int) -> int | None:
        """Analytic FLOPs of one step (train = 3 x forward), or None: the worker's counter answers."""
        if self.forward_flops is None:
            return None
        forward = self.forward_flops(size) * batch_size
        return forward * TRAIN_FLOPS_FACTOR if mode == "train" else forward

    def expected_params(self, size: str, lstm_second_bias: bool = False) -> int | None:
        return self.params(size) if self.params else None

    def tokens_per_sample(self, size: str) -> int | None:
        return self.tokens_per_sample_of(size) if self.tokens_per_sample_of else None

    def builder(self, framework: str) -> Callable[[BuildRequest], Parts] | None:
        """The builder for ``framework`` (a ``"module:function"`` string is imported now), None if not declared."""
        found = self.builders.get(framework)
        if found is None or callable(found):
            return found
        module, _, attribute = found.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def unsupported_reason(self, framework: str) -> str | None:
        if framework in self.builders:
            return None
        return (f"workload {self.name} has no {framework} builder (it supports: "
                f"{', '.join(self.builders) or 'no framework'})" + (f": {self.unsupported_note}"
                                                                    if self.unsupported_note else ""))

    def missing_requirement(self) -> str | None:
        """Why this process cannot build the workload (a required package is not installed), with the fix."""
        missing = [name for name in self.requires if importlib.util.find_spec(name) is None]
        if not missing:
            return None
        return f"workload {self.name} needs {', '.join(missing)} (not installed); install with: {self.install_hint}"

    def request(self, size: str, batch_size: int, mode: str, precision: str, device: Any, seed: int) -> BuildRequest:
        return BuildRequest(self.name, size, self.check_size(size), batch_size, mode, precision,
                            COMPUTE_DTYPES.get(precision, "float32"), device, seed)


@dataclass(frozen=True)
class BrokenWorkload:
    """A plugin that could not be loaded: listed, and its cases fail with ``reason``."""

    name: str
    origin: str
    reason: str
    description: str = "(could not be loaded)"
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def flops_per_step(self, size: str, mode: str, batch_size: int) -> None:
        return None

    def expected_params(self, size: str, lstm_second_bias: bool = False) -> None:
        return None

    def tokens_per_sample(self, size: str) -> None:
        return None


class PluginError(Exception):
    """A workload plugin that is broken (its cases fail with this one line)."""


# ---------------------------------------------------------------- where plugins are found


def _made(found: Any, origin: str) -> Workload:
    """``found`` itself, or what it returns when it is a factory; PluginError unless that is a Workload."""
    value = found() if callable(found) and not isinstance(found, Workload) else found
    if not isinstance(value, Workload):
        raise PluginError(f"{origin} gives a {type(value).__name__}, not a tribench.plugins.Workload")
    return value


def _as_workload(value: Workload, name: str, origin: str) -> Workload:
    if value.name != name:
        raise PluginError(f"{origin} is registered as {name!r} but its Workload is named {value.name!r}")
    if not value.sizes:
        raise PluginError(f"{origin}: workload {name} declares no sizes")
    return dataclasses.replace(value, origin=origin)


def _load_entry_point(point: importlib.metadata.EntryPoint) -> Workload | BrokenWorkload:
    dist = f"{point.dist.name} {point.dist.version}" if point.dist else "an unnamed distribution"
    origin = f"entry point {point.value} of {dist}"
    try:
        return _as_workload(_made(point.load(), origin), point.name, origin)
    except PluginError as error:
        return BrokenWorkload(point.name, origin, str(error))
    except Exception as error:  # a plugin's import error is its own: list it broken, run the rest
        return BrokenWorkload(point.name, origin, f"{origin} failed to load: {type(error).__name__}: {error}")


def parse_file_reference(text: str) -> tuple[Path, str]:
    """``path/model.py:NAME`` -> (absolute path, NAME); one line naming the fix when malformed or missing."""
    path, sep, name = text.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise InvalidValue(f"a workload file is given as path/to/model.py:NAME (NAME: the Workload object in "
                           f"the file), got {text!r}")
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise InvalidValue(f"workload file {path} does not exist (from --workload {text})")
    return resolved, name


_LOADED: dict[tuple[Path, str, int], Workload | BrokenWorkload] = {}


def load_file(path: Path, attribute: str) -> Workload | BrokenWorkload:
    """The Workload ``attribute`` of the Python file ``path`` (a Workload, or a function returning one),
    imported as a module of its own; loaded once per version of the file (a notebook that edits the file
    gets the new one).

    The file's folder joins the END of ``sys.path`` so the file can import the modules beside it (``python
    model.py`` would put it first): an installed package of the same name as a neighbour wins, and tribench's
    own imports never see the user's files. A file that fails to load is a BrokenWorkload named ``attribute``
    (its Workload's name is unknown); ``get`` finds a file's workload by either name."""
    origin = f"file {path}:{attribute}"
    try:
        version = path.stat().st_mtime_ns
    except OSError as error:
        return BrokenWorkload(attribute, origin, f"{origin} cannot be read: {error.strerror}")
    key = (path, attribute, version)
    if key not in _LOADED:
        _LOADED[key] = _load_file(path, attribute, origin)
    return _LOADED[key]


def _load_file(path: Path, attribute: str, origin: str) -> Workload | BrokenWorkload:
    module_name = "tribench_workload_file_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        if not hasattr(module, attribute):
            raise PluginError(f"{path} has no {attribute!r}")
        value = _made(getattr(module, attribute), origin)
        return _as_workload(value, value.name, origin)
    except PluginError as error:
        return BrokenWorkload(attribute, origin, str(error))
    except Exception as error:
        return BrokenWorkload(attribute, origin, f"{origin} failed to load: {type(error).__name__}: {error}")


def registered_files() -> list[tuple[Path, str]]:
    """The workload files this process was told about (``TRIBENCH_WORKLOAD_FILES``)."""
    return [parse_file_reference(item) for item in _file_entries()]


def _file_entries() -> list[str]:
    """``TRIBENCH_WORKLOAD_FILES``: a JSON list of ``path:NAME`` (a path may hold ``:``, the separator of paths)."""
    raw = os.environ.get(FILES_ENV, "").strip()
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise InvalidValue(f"{FILES_ENV} must be a JSON list of path/to/model.py:NAME strings, got {raw!r}")
    return entries


def register_file(reference: str, taken: Callable[[str], str | None] = lambda name: None) -> str:
    """Load ``path/model.py:NAME``, make it known to this process and its workers; the workload's name.

    ``taken(name)`` says why a name is not free (a built-in workload, another plugin's), and the file is
    refused with that one line: a case must never measure another model than the one the user named."""
    path, attribute = parse_file_reference(reference)
    loaded = load_file(path, attribute)
    entry = f"{path}:{attribute}"
    known = _file_entries()
    if entry not in known:
        clash = taken(loaded.name)
        if clash:
            raise InvalidValue(f"--workload {reference}: its workload is named {loaded.name!r}, which {clash}; "
                               "rename it")
        os.environ[FILES_ENV] = json.dumps(known + [entry])
    return loaded.name


@contextlib.contextmanager
def files_scope() -> Iterator[None]:
    """Workload files registered inside stay registered only until the end (an API call, a test), so a
    later run in the same process does not carry them to its workers."""
    before = os.environ.get(FILES_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FILES_ENV, None)
        else:
            os.environ[FILES_ENV] = before


@cache
def entry_point_workloads() -> tuple[Workload | BrokenWorkload, ...]:
    """Workloads installed distributions register under ``tribench.workloads`` (loaded once per process)."""
    return tuple(_load_entry_point(point) for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def file_workloads() -> tuple[Workload | BrokenWorkload, ...]:
    return tuple(load_file(path, attribute) for path, attribute in registered_files())
