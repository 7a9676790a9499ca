"""What looks secret, and how it is kept out of everything tribench writes.

Run files, reports and exports are made to be shared, so nothing that looks like a credential may
reach them. Three rules, each a pure function here:

* a **name** looks secret when one of its words is a credential word (TOKEN, SECRET, PASSWORD, KEY,
  AUTH, ...): such a variable or tag is never stored, whatever its prefix;
* a **value** looks like a credential when it is a URL with a password, starts with a known token
  prefix (GitHub, Hugging Face, AWS, Slack, OpenAI, ...), or is a long random-looking mix of upper-
  and lower-case letters and digits (hex digests such as commit ids are not: they are lower-case);
* a **text** (a stderr tail, an error, the command line) is scrubbed of every value the process's
  own environment holds under a secret-looking name, and of URL passwords and token-like words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "PWD", "KEY", "APIKEY", "CREDENTIAL",
                "CREDENTIALS", "AUTH", "AUTHORIZATION", "COOKIE", "SESSION", "PRIVATE", "SIGNATURE", "CERT")
SUBSTRING_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY")
TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "hf_", "AKIA", "ASIA",
                  "xoxb-", "xoxp-", "xoxa-", "sk-", "sk_live_", "rk_live_", "AIza", "ya29.", "npm_", "pypi-")
URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
TOKEN_WORD = re.compile(r"[A-Za-z0-9_\-+=]{20,}")  # no "/" or ".": paths in tracebacks stay readable
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would scrub ordinary text, and guess nothing
MIN_TOKEN_LENGTH = 20  # a known prefix and this long: AWS access key ids are 20
MIN_RANDOM_LENGTH = 24  # keys without a known prefix are longer (AWS secret keys 40, most API keys 32+)
MIN_RANDOM_RUN = 16  # letters and digits without a separator: keys have them, snake_case identifiers do not
MIN_RANDOM_BITS_PER_CHAR = 3.5
# An identifier whose every capital starts a lower-case word. Written without alternatives that overlap, so a
# failed match is linear: every group starts at its capital, which the tail before it cannot take.
CAMEL_CASE = re.compile(r"[a-z0-9_]*(?:[A-Z][a-z][a-z0-9_]*)*")


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[^A-Za-z0-9]+", name.upper()) if word]


def secret_name_reason(name: str) -> str | None:
    """Why a variable or tag called ``name`` is never stored (its credential word), or None.

    A word of the name (split at anything not a letter or digit) that is a credential word counts, and so
    does a word containing TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL or APIKEY (``HFTOKEN``); KEY, AUTH
    and SESSION count only as whole words (``KEYBOARD`` and ``AUTHOR`` are not secrets).
    """
    for word in _words(name):
        if word in SECRET_WORDS:
            return f"its name looks secret ({word})"
        inside = next((part for part in SUBSTRING_WORDS if part in word), None)
        if inside:
            return f"its name looks secret ({inside})"
    return None


def _bits_per_char(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(text: str) -> bool:
    """A long word mixing upper case, lower case and digits with high entropy and a long unbroken run of them:
    an API key, not an identifier or a hex digest (commit ids and hashes are lower-case hex and stay). A
    CamelCase identifier (every capital starts a lower-case word: Paddle's ``Global_Conv2dGradNodeFinal``) is
    not random: a random key of that length almost always has two capitals in a row or a capital at its end."""
    core = text.strip()
    longest_run = max((len(run) for run in re.findall(r"[A-Za-z0-9]+", core)), default=0)
    return (len(core) >= MIN_RANDOM_LENGTH and longest_run >= MIN_RANDOM_RUN and not CAMEL_CASE.fullmatch(core)
            and any(c.isupper() for c in core) and any(c.islower() for c in core)
            and any(c.isdigit() for c in core) and _bits_per_char(core) >= MIN_RANDOM_BITS_PER_CHAR)


def credential_value_reason(value: str) -> str | None:
    """Why ``value`` looks like a credential whatever its name, or None."""
    if URL_PASSWORD.search(value):
        return "it holds a URL with a password"
    for word in TOKEN_WORD.findall(value) + value.split():
        if word.startswith(TOKEN_PREFIXES) and len(word) >= MIN_TOKEN_LENGTH:
            return "it holds a word with a known access-token prefix"
        if looks_random(word):
            return "it holds a long random-looking word (an access key?)"
    return None


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Every value of ``environ`` that must never be written: under a secret-looking name, or credential-like;
    longest first, so that a value containing another is scrubbed whole."""
    found = {value for name, value in environ.items()
             if len(value) >= MIN_SECRET_LENGTH and (secret_name_reason(name) or credential_value_reason(value))}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value, URL password and token-like word replaced by ``<redacted>``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:{REDACTED}@", text)

    def word(match: re.Match) -> str:
        token = match.group(0)
        return REDACTED if token.startswith(TOKEN_PREFIXES) or looks_random(token) else token

    return TOKEN_WORD.sub(word, text)


def safe_tags(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the tags to store, tag -> why its value was redacted): a secret-looking name or credential-like value."""
    stored, redacted = {}, {}
    for name, value in tags.items():
        why = secret_name_reason(name) or credential_value_reason(value)
        stored[name] = REDACTED if why else value
        if why:
            redacted[name] = why
    return stored, redacted


def tag_secrets(tags: Mapping[str, str]) -> list[str]:
    """The tag values ``safe_tags`` redacts (to scrub from the recorded command line too)."""
    return [value for name, value in tags.items()
            if len(value) >= MIN_SECRET_LENGTH and (secret_name_reason(name) or credential_value_reason(value))]


def scrub_strings(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with every string scrubbed (``scrub``); numbers and lists of them untouched."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {key: scrub_strings(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_strings(item, secrets) for item in value]
    return value
