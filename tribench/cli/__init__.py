"""The ``tribench`` command line (typer + rich): one module per command group.

* ``run``: ``tribench run``;
* ``listing``: ``tribench list`` and ``tribench env``;
* ``report``: ``tribench report``;
* ``regress``: ``tribench compare``, ``history``, ``export`` and ``redact``;
* ``peak``: ``tribench peak``;
* ``merge``: ``tribench merge``;
* ``schema``: ``tribench schema``.

Importing this package must stay cheap: no framework, no pandas; each command imports what it needs
when it runs. User mistakes are ``TribenchError``s: one line on stderr, exit code 2.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from tribench.cli import listing, merge, peak, regress, report, run, schema
from tribench.cli.console import err, out
from tribench.core.errors import TribenchError
from tribench.version import __version__

app = typer.Typer(
    help="Benchmark the same CNN, RNN and Transformer workloads through PyTorch, TensorFlow and JAX.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _version(shown: bool) -> None:
    if shown:
        out.print(f"tribench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print tribench's version and exit.")) -> None:
    """Benchmark the same CNN, RNN and Transformer workloads through PyTorch, TensorFlow and JAX."""


app.command("run")(run.run)
app.command("list")(listing.list_)
app.command("env")(listing.env)
app.command("report")(report.report)
for _name in ("compare", "history", "export", "redact"):
    app.command(_name)(getattr(regress, _name))
app.command("peak")(peak.peak)
app.command("merge")(merge.merge)
app.command("schema")(schema.schema)


def main() -> None:
    try:
        app()
    except TribenchError as error:
        err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
