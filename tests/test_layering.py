"""The package's layering, asserted from the code's own imports (every import statement, at any depth).

* ``tribench.core`` (case spec, errors, readings) imports nothing else of tribench: everything may import it.
* ``tribench.suites`` (the workloads) imports only ``core``: the workload specs never import the engine.
* ``tribench.harness`` (the engine) and ``tribench.backends`` never import ``reports`` or ``cli``.
* A backend takes from the engine only its toolkit for backends (``BACKEND_TOOLKIT``: CPU facts,
  the numeric policy, memory-reading scopes, the peak-measuring discipline, the neutral profiling
  part), never the runner, the worker or the run file.
* ``tribench.reports`` never imports ``cli`` or a backend.
* No module imports itself back through others (no import cycles among modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

SOURCE_ROOTS = {"tribench": ROOT / "tribench", "tribench.harness": ROOT / "harness",
                "tribench.backends": ROOT / "backends", "tribench.suites": ROOT / "suites",
                "tribench.reports": ROOT / "reports"}


def module_files() -> dict[str, Path]:
    """Every tribench module name -> its file."""
    modules = {}
    for prefix, folder in SOURCE_ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([prefix, *parts])] = path
    return modules


MODULES = module_files()


def resolve(name: str) -> str | None:
    """The tribench module an imported name lands in (a module, else its package), or None if not ours."""
    while name and name.startswith("tribench"):
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """The tribench modules ``module`` imports, anywhere in its file (module level or inside functions)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: "from . import x" in package a.b is a.b.x
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # "from pkg import sub" depends on the module pkg.sub; "from pkg import name" on pkg (resolve walks up)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


TOP = ("tribench.cli", "tribench.api", "tribench.pytest_plugin")  # the ways in: nothing below imports them
RULES = [  # (layer, layers it must not import)
    ("tribench.core", ("tribench.suites", "tribench.backends", "tribench.harness", "tribench.reports") + TOP),
    ("tribench.suites", ("tribench.backends", "tribench.harness", "tribench.reports") + TOP),
    ("tribench.harness", ("tribench.reports",) + TOP),
    ("tribench.backends", ("tribench.reports",) + TOP),
    ("tribench.reports", ("tribench.backends",) + TOP),
    ("tribench.api", ("tribench.cli", "tribench.pytest_plugin")),
]


BACKEND_TOOLKIT = {"tribench.harness", "tribench.harness.cpuinfo", "tribench.harness.numerics",
                   "tribench.harness.probes", "tribench.harness.probes.memory", "tribench.harness.peak_measure",
                   "tribench.harness.profiling"}


def test_a_backend_takes_only_the_engines_toolkit_for_backends():
    taken = {target for module, targets in GRAPH.items() if layer(module) == "tribench.backends"
             for target in targets if layer(target) == "tribench.harness"}
    assert taken <= BACKEND_TOOLKIT, sorted(taken - BACKEND_TOOLKIT)
    toolkit_needs = {target for module in BACKEND_TOOLKIT for target in GRAPH[module]
                     if layer(target) == "tribench.harness"}
    assert toolkit_needs <= BACKEND_TOOLKIT, sorted(toolkit_needs - BACKEND_TOOLKIT)


@pytest.mark.parametrize("source,forbidden", RULES, ids=[rule[0] for rule in RULES])
def test_a_layer_never_imports_the_layers_above_it(source, forbidden):
    breaches = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() if layer(module) == source
                      for target in targets if layer(target) in forbidden)
    assert breaches == []


def test_the_layers_exist_where_the_rules_say():
    assert {layer(module) for module in MODULES} >= {"tribench.core", "tribench.suites", "tribench.backends",
                                                      "tribench.harness", "tribench.reports", "tribench.cli",
                                                      "tribench.api", "tribench.pytest_plugin", "tribench.plugins"}


def test_no_module_imports_itself_back():
    """Tarjan's strongly connected components over every import: a component of two or more is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []
