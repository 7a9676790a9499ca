"""``tribench list`` (workloads, backends, suites, devices) and ``tribench env``: what this machine has.

Framework facts come from one subprocess per backend (``harness.availability``): nothing here
imports a framework.
"""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from tribench.cli.console import err, out

LIST_CHOICES = ("workloads", "backends", "suites", "devices")



def list_(what: str = typer.Argument(..., help="workloads | backends | suites | devices")) -> None:
    """List workloads, backends (installed or not), suites or devices."""
    from tribench.core.spec import check_choice

    check_choice("list topic", what, LIST_CHOICES)
    {"workloads": _list_workloads, "backends": _list_backends, "suites": _list_suites,
     "devices": _list_devices}[what]()


def _list_workloads() -> None:
    from tribench.suites import huggingface, workloads
    from tribench.suites.plugins import BrokenWorkload

    table = Table(title="workloads (parameters: Keras/Flax convention; PyTorch LSTMs add 4 x hidden per layer)")
    for column in ("workload", "size", "parameters", "forward GFLOP/sample", "frameworks", "from", "description"):
        table.add_column(column)
    for workload in workloads.WORKLOADS.values():
        for size, spec in workload.sizes.items():
            table.add_row(workload.name, size, f"{workload.expected_params(size):,}",
                          f"{workloads.forward_flops_per_sample(spec) / 1e9:.4g}", "all", "built in",
                          workload.description)
    plugins, refused = workloads.plugin_workloads()
    for name in huggingface.known_models():
        _plugin_rows(table, workloads.get(name))
    for workload in plugins.values():
        if isinstance(workload, BrokenWorkload):
            table.add_row(workload.name, "", "", "", "", workload.origin, f"[red]cannot be used[/]: {workload.reason}")
        else:
            _plugin_rows(table, workload)
    out.print(table)
    out.print("hf:<config.json> builds any Hugging Face configuration offline; path/model.py:NAME runs a workload "
              "defined in a file (README: Your own models)")
    for line in refused:
        err.print(f"[yellow]plugin refused[/]: {escape(line)}")


def _plugin_rows(table: Table, workload) -> None:
    """One row per size of a plugin workload; figures the plugin gives no formula for are counted at run time."""
    for size in workload.sizes:
        params = workload.expected_params(size)
        flops = workload.flops_per_step(size, "infer", 1)
        table.add_row(workload.name, size, f"{params:,}" if params is not None else "counted when run",
                      f"{flops / 1e9:.4g}" if flops is not None else "counted when run",
                      ", ".join(workload.builders), workload.origin, workload.description)


def _availabilities():
    from tribench import backends
    from tribench.harness import availability

    with err.status("asking each framework (one process each)…"):
        return [availability.query(name) for name in backends.names()]


def _gpu_hints(availabilities, nvidia: dict | None = None) -> dict[str, str]:
    """backend -> why it sees no GPU the machine has, and the fix (``harness.accelerator_hints``); ``nvidia``:
    NVML's view when the caller already has it."""
    from tribench.harness.accelerator_hints import unseen_gpus
    from tribench.harness.environment import nvidia_gpus

    return unseen_gpus(nvidia if nvidia is not None else nvidia_gpus(), availabilities)


def _list_backends() -> None:
    from tribench import backends

    table = Table(title="backends")
    for column in ("backend", "from", "installed", "version", "devices", "notes"):
        table.add_column(column, overflow="fold")
    availabilities = _availabilities()
    origins = {name: entry.origin for name, entry in backends.entries().items()}
    hints = _gpu_hints(availabilities)
    for info in availabilities:
        notes = list(info.notes)
        if info.name in hints:
            notes.insert(0, hints[info.name])
        if info.reason:
            notes.insert(0, info.reason + (f"; install with: {info.install_hint}" if not info.installed else ""))
        table.add_row(info.name, escape(origins.get(info.name, "?")), "yes" if info.installed else "[red]missing[/]",
                      info.version or "-", ", ".join(info.devices) or "-", escape("\n".join(notes)))
    out.print(table)
    for line in backends.refused_plugins():
        err.print(f"[yellow]plugin refused[/]: {escape(line)}")
    out.print(_compile_modes_table())


def _compile_modes_table() -> Table:
    """What each compile mode (--compile) runs in each backend, from the registry (no framework imported)."""
    from tribench import backends
    from tribench.core.spec import COMPILE_MODES

    table = Table(title="compile modes (--compile; default native)")
    names = backends.names()
    for column in ("mode", *names):
        table.add_column(column, overflow="fold")
    for mode in COMPILE_MODES:
        table.add_row(mode, *(escape(backends.compile_meanings(name).get(mode, "-")) for name in names))
    return table


def _list_devices() -> None:
    table = Table(title="devices per backend")
    for column in ("backend", "device", "name"):
        table.add_column(column)
    for info in _availabilities():
        if not info.devices:
            table.add_row(info.name, "-", escape(info.reason or "no devices"))
        for kind in info.devices:
            table.add_row(info.name, kind, escape(info.device_names.get(kind, "")))
    out.print(table)


def _list_suites() -> None:
    from tribench import backends
    from tribench.suites import expand, suite_file

    table = Table(title="suites (run one with: tribench run --suite NAME)")
    for column in ("suite", "cases", "description"):
        table.add_column(column)
    for name in suite_file.builtin_names():
        matrix = suite_file.load(name)
        table.add_row(name, str(len(expand(matrix, backends.names()))), matrix.description)
    out.print(table)



def env(as_json: bool = typer.Option(False, "--json", help="Print the capture as JSON.")) -> None:
    """Print the environment a run would record (machine, accelerators, frameworks, fingerprint, energy sources)."""
    from tribench.harness import environment
    from tribench.harness.probes import sources
    from tribench.reports.text.table import energy_sources_table

    availabilities = _availabilities()
    captured = environment.capture({info.name: info.to_dict() for info in availabilities})
    captured["energy_sources"] = sources.describe()  # which energy counters this machine offers, and why not
    hints = _gpu_hints(availabilities, captured["accelerators"]["nvidia"])
    if hints:  # a GPU the machine has that a framework does not see
        captured["accelerator_hints"] = hints
    if as_json:
        print(json.dumps(captured, indent=2))
        return
    _print_tree({key: value for key, value in captured.items() if key not in ("energy_sources", "accelerator_hints")})
    out.print(energy_sources_table(captured["energy_sources"]))
    for name, hint in hints.items():
        out.print(f"[yellow]{escape(name)}[/]: {escape(hint)}")


def _print_tree(data: dict, indent: int = 0) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            out.print(" " * indent + f"[bold]{escape(str(key))}[/]:")
            _print_tree(value, indent + 2)
        else:
            out.print(" " * indent + f"[bold]{escape(str(key))}[/]: {escape(json.dumps(value))}")


