"""``tribench schema``: the JSON Schema of a run file, as every command checks it on load."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tribench.cli.console import out


def schema(output: Path | None = typer.Option(None, "--output", "-o",
                                              help="Write the schema to this file instead of printing it.")) -> None:
    """Print the JSON Schema of a run file (schema version, required fields and their types)."""
    from tribench.harness.results import check_writable
    from tribench.harness.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        print(text, end="")
        return
    check_writable(output)
    output.write_text(text)
    out.print(f"schema: {output}")
