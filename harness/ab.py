"""Same-job A/B: every case under two (or more) Python interpreters, in one run file.

``--python PATH`` alone runs every case under that interpreter. Given twice or more
(``--python .venv-base/bin/python --python .venv-head/bin/python``, or with labels
``--python base=... --python head=...``), every case runs under each interpreter, labelled
with its ``env`` (A, B, ... unless named), in a random order per case point and repeat, so the
two sides share the same machine state as closely as a shared runner allows.
``tribench compare RUN.json --env A --env B`` then judges the pair.
"""

from __future__ import annotations

import os
import string
from dataclasses import replace
from pathlib import Path

from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec


def _check_interpreter(path: str) -> str:
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise InvalidValue(f"--python {path}: not an executable file; give the path of a Python interpreter, "
                           "e.g. .venv/bin/python")
    return path


def parse_pythons(values: list[str]) -> dict[str, str]:
    """``[PATH | LABEL=PATH, ...]`` -> {label: path}; unlabelled ones are A, B, C... in order."""
    pythons: dict[str, str] = {}
    for index, value in enumerate(values):
        label, sep, path = value.partition("=")
        if not sep:
            label, path = string.ascii_uppercase[index], value
        label = label.strip()
        if not label or not label.replace("-", "").replace("_", "").isalnum():
            raise InvalidValue(f"--python label {label!r} must be letters, digits, '-' or '_'")
        if label in pythons:
            raise InvalidValue(f"--python label {label!r} is given twice")
        pythons[label] = _check_interpreter(path.strip())
    return pythons


def with_envs(specs: list[CaseSpec], labels: list[str]) -> list[CaseSpec]:
    """Every spec once per label, the labels of one case point next to each other."""
    return [replace(spec, env=label) for spec in specs for label in labels]
