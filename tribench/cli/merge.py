"""``tribench merge``: the run files of a multi-host run's hosts joined into one (``harness.merge``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from tribench.cli.console import out


def merge(
    runs: list[Path] = typer.Argument(..., help="The run file of every host of one multi-host run (--nodes)."),
    output: Path = typer.Option(..., "--output", "-o", help="The merged run file to write."),
) -> None:
    """Join the hosts' run files of a multi-host run into one run file holding every host's ranks."""
    from tribench.harness.merge import merge_runs
    from tribench.harness.results import check_writable
    from tribench.reports.text.table import generation_summary, summary_table

    check_writable(output)
    data = merge_runs(runs, output)
    out.print(summary_table(data))
    generation = generation_summary(data)
    if generation is not None:
        out.print(generation)
    out.print(f"merged {len(runs)} hosts' run files into {escape(str(output))}")


