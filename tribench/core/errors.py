"""User-facing errors.

Every mistake a user can make (a bad flag, a malformed suite file, a missing
framework, an unreadable result file) raises a subclass of ``TribenchError``.
The CLI prints its message as one line and exits 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class TribenchError(Exception):
    """A user error: printed as one line, exit code 2."""

    exit_code = 2


class InvalidChoice(TribenchError):
    """A value outside a fixed set of choices."""

    def __init__(self, what: str, value: object, choices: Iterable[str]) -> None:
        choices = list(choices)
        super().__init__(f"unknown {what} {value!r}; valid choices: {', '.join(choices)}")
        self.what, self.value, self.choices = what, value, choices


class InvalidValue(TribenchError):
    """A value of the right kind but out of range or malformed."""


class SuiteFileError(TribenchError):
    """A suite file that cannot be read or does not describe cases."""


class ResultFileError(TribenchError):
    """A result file that is missing, corrupt, foreign or of an unknown schema."""


class OutputPathError(TribenchError):
    """An output folder or file that cannot be written."""


class BackendUnavailable(TribenchError):
    """A backend whose framework is not installed (message names the install command)."""
