"""``--redact``: a run file's data made safe to post publicly, still joinable with other redacted runs.

A run file already holds no secrets (``harness.env_capture``, ``harness.redaction``), but it names
the machine and its users: host names, home-directory paths (``/home/alice/...``), the absolute
paths of the command that ran. ``redact_run`` replaces them with stable placeholders:

* every host name the file records (the machine's, data-parallel ranks' hosts, the cluster's
  address) becomes ``host-<8 hex>``, the same for the same name in every file;
* ``/home/<user>``, ``/Users/<user>`` and ``/root`` become ``~``, and each such user name found
  (and the name of the user redacting) becomes ``user`` wherever it appears as a word;
* the command's absolute paths become ``<path>/<file name>``.

Case ids, specs, metrics and the fingerprint are untouched, so redacted runs still join by case
and fingerprint, and ``compare``, ``history`` and ``report`` work on them as on the originals.
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

HOME = re.compile(r"(?P<root>/home|/Users)/(?P<user>[A-Za-z0-9._-]+)|/root(?=/|\b)")
ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[^\s/=:,;\"']+/)*(?P<name>[^\s/=:,;\"']+)")
HOST_KEYS = ("hostname", "host", "master_addr", "node")
REDACTED_MARK = {"redacted": "host names, user names, home paths and the command's absolute paths replaced"}


def host_placeholder(name: str) -> str:
    return "host-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def _strings(value: Any) -> Iterable[tuple[str | None, str]]:
    """Every (key, string) pair in a JSON-like value (key None for list items)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                yield key, item
            else:
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from ((None, item),) if isinstance(item, str) else _strings(item)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value


def _hosts(run: dict[str, Any]) -> set[str]:
    names = {text for key, text in _strings(run) if key in HOST_KEYS and text and text not in ("localhost",)}
    return {name for name in names if not re.fullmatch(r"[\d.:]+", name) or "." in name}


def _users(run: dict[str, Any]) -> set[str]:
    users = {match["user"] for _, text in _strings(run) for match in HOME.finditer(text) if match["user"]}
    try:
        users.add(getpass.getuser())
    except (KeyError, OSError):  # no passwd entry (containers): nothing more to add
        pass
    return {user for user in users if len(user) >= 2 and user not in ("user", "root")}  # root names nobody


def _words_replacer(words: Iterable[str], placeholder: Callable[[str], str]) -> Callable[[str], str]:
    ordered = sorted(set(words), key=len, reverse=True)
    if not ordered:
        return lambda text: text
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, ordered)) + r")(?![A-Za-z0-9])")
    return lambda text: pattern.sub(lambda match: placeholder(match.group(1)), text)


def _command(argv: list[str]) -> list[str]:
    return [ABSOLUTE.sub(lambda match: f"<path>/{match['name']}", arg) for arg in argv]


def redact_run(run: dict[str, Any]) -> dict[str, Any]:
    """A redacted copy of a loaded run file (module docstring); the original is not changed."""
    hosts = _words_replacer(_hosts(run), host_placeholder)
    users = _words_replacer(_users(run), lambda _: "user")

    def change(text: str) -> str:
        return users(HOME.sub("~", hosts(text)))

    redacted = copy.deepcopy(run)
    if isinstance(redacted.get("command"), list):
        redacted["command"] = _command([str(arg) for arg in redacted["command"]])
    redacted = _map_strings(redacted, change)
    redacted["share_safe"] = REDACTED_MARK
    return redacted


def redact_label(path: str) -> str:
    """A run file's path as shown in a redacted report: its file name only."""
    return path.rstrip("/").rsplit("/", 1)[-1]
