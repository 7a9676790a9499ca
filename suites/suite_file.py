"""Suite files: TOML documents that spell a case matrix.

A suite file holds the axes of one matrix at the top level (``backends``,
``workloads``, ``sizes``, ``modes``, ``batch_sizes``, ``precisions``,
``compile``, ``devices``; each a list or a single value) and an optional
``description``. Built-in suites live beside this module (``smoke``,
``standard``); any other path to a ``.toml`` file works too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from tribench.core.errors import SuiteFileError, TribenchError
from tribench.suites import Matrix

SUITE_FOLDER = Path(__file__).parent
AXES = ("backends", "workloads", "sizes", "modes", "batch_sizes", "precisions", "compile", "devices", "prompts",
        "new_tokens")
REQUIRED = ("backends", "workloads")


def builtin_names() -> list[str]:
    return sorted(path.stem for path in SUITE_FOLDER.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A built-in suite name (``smoke``) or a path to a TOML file."""
    if name_or_path in builtin_names():
        return SUITE_FOLDER / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    raise SuiteFileError(
        f"unknown suite {name_or_path!r}; built-in suites: {', '.join(builtin_names())}, or give a path to a .toml file"
    )


def _as_tuple(path: Path, key: str, value: object) -> tuple:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise SuiteFileError(f"{path}: {key} must hold strings or numbers, got {item!r}")
    return tuple(values)


def load(name_or_path: str) -> Matrix:
    """Read a suite file into a Matrix; every problem is one SuiteFileError line."""
    path = resolve(name_or_path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteFileError(f"suite file {path} does not exist") from None
    except OSError as error:
        raise SuiteFileError(f"cannot read suite file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SuiteFileError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - set(AXES) - {"description"})
    if unknown:
        raise SuiteFileError(f"{path}: unknown keys {', '.join(unknown)}; valid keys: description, {', '.join(AXES)}")
    missing = [key for key in REQUIRED if key not in document]
    if missing:
        raise SuiteFileError(f"{path}: missing {', '.join(missing)}")
    axes = {key: _as_tuple(path, key, document[key]) for key in AXES if key in document}
    description = document.get("description", "")
    try:
        return Matrix(description=str(description), **axes).validated()
    except TribenchError as error:
        raise SuiteFileError(f"{path}: {error}") from None
