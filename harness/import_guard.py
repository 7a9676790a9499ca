"""A worker imports its own framework and no other: the others' packages are blocked in it.

Installed side by side, frameworks import each other when they find them: TensorFlow 2.21 loads JAX
when JAX is installed (about 140 MiB of a TensorFlow worker's memory, measured here), which made a
TensorFlow case's memory and import time depend on what else the machine had. A worker (and a fork
server, an availability probe, a peak measurement) of a built-in backend therefore puts first in
``sys.modules`` a ``None`` for each of the other built-in frameworks' top-level packages: Python's own
way to block an import, so ``import jax`` raises ``ModuleNotFoundError`` and
``importlib.util.find_spec("jax")`` answers None, exactly what optional imports and availability
checks see when the package is absent. The worker records which frameworks
its process held at the end (``frameworks_imported``) and which it blocked, so the claim is checked
on every case. Out-of-tree backends (``TRIBENCH_EXTRA_BACKENDS``) block nothing: we do not know what
they need.
"""

from __future__ import annotations

import sys

from tribench import backends


def framework_packages() -> dict[str, tuple[str, ...]]:
    """Built-in backend -> the top-level packages that make up its framework."""
    return {name: entry.packages for name, entry in backends.entries().items() if entry.packages}


def packages_to_block(backend: str) -> tuple[str, ...]:
    """The other built-in frameworks' packages, minus any the backend itself needs; none for other backends."""
    packages = framework_packages()
    if backend not in packages:
        return ()
    own = set(packages[backend])
    return tuple(sorted({name for other, names in packages.items() if other != backend for name in names} - own))


def block_other_frameworks(backend: str) -> tuple[str, ...]:
    """Block the other frameworks' packages for ``backend`` (module docstring); returns the names blocked.
    A package already imported stays (blocking cannot unload it): ``frameworks_imported`` would show it."""
    blocked = tuple(name for name in packages_to_block(backend) if sys.modules.get(name) is None)
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # Python's documented import block
    return blocked


def frameworks_imported() -> list[str]:
    """The built-in frameworks' packages this process has imported."""
    known = {name for names in framework_packages().values() for name in names}
    return sorted(known & {name.partition(".")[0] for name, module in sys.modules.items() if module is not None})
