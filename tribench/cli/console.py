"""The two consoles every command prints to: results on stdout, progress and errors on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)
