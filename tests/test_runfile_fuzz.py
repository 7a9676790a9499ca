"""Broken run files in every command that reads them: one line and exit 2, never a traceback.

The corpus is generated, seeded, from the checked-in run files: truncated JSON, a required key
removed, a typed value replaced by one of another type (``harness.schema``'s required fields and
typed figures), and foreign JSON. Every broken file must give ``report`` (three formats),
``compare``, ``export``, ``history``, ``merge`` and ``redact`` one ``TribenchError`` (exit 2, one
line). Mutations that leave a file valid (an optional figure removed) must not crash a reader either.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import ROOT, tribench
from tribench.cli import app
from tribench.core.errors import TribenchError
from tribench.harness.schema import problem

SOURCES = [ROOT / "tests" / "data" / name for name in ("run-sweep.json", "run-problems.json", "run-scaling.json",
                                                       "run-generate.json")]
GOOD = SOURCES[0]
GENERATE = SOURCES[3]  # the generate mode's figures live only there
SEED = 20261203

# (path to a field, its type) the schema requires or types; "*" is every case / process
REQUIRED_PATHS = [("kind",), ("schema_version",), ("run_id",), ("state",), ("cases",), ("cases", "*", "id"),
                  ("cases", "*", "spec"), ("cases", "*", "spec", "backend"), ("cases", "*", "spec", "batch_size"),
                  ("cases", "*", "spec", "mode"), ("cases", "*", "repeats", "*", "status")]
TYPED_PATHS = [("cases", "*", "metrics", "throughput", "value"), ("cases", "*", "metrics", "step_time", "median"),
               ("cases", "*", "repeats", "*", "timing", "samples_s"), ("cases", "*", "spec", "batch_size"),
               ("cases", "*", "status"), ("cases", "*", "metrics"), ("cases",), ("tags",),
               ("cases", "*", "repeats", "*", "param_count"), ("cases", "*", "metrics", "memory"),
               ("cases", "*", "metrics", "generation"), ("cases", "*", "metrics", "generation", "ttft"),
               ("cases", "*", "metrics", "generation", "decode_tokens_per_s"),
               ("cases", "*", "repeats", "*", "generation", "ttft_s"),
               ("cases", "*", "repeats", "*", "generation", "tpot_s"), ("cases", "*", "spec", "prompt")]
OPTIONAL_PATHS = [("cases", "*", "metrics", "compile_time"), ("cases", "*", "metrics", "energy"),
                  ("cases", "*", "repeats", "*", "stderr_tail"), ("cases", "*", "workload"), ("environment", "peaks"),
                  ("cases", "*", "metrics", "step_time", "p99"), ("cases", "*", "error"),
                  ("cases", "*", "metrics", "generation"), ("cases", "*", "repeats", "*", "generation")]
WRONG_VALUES = ["12", 12, [], {}, True, "ok?"]  # not None: most typed figures may be missing


def holders(data, path: tuple) -> list[tuple[dict, str]]:
    """(the dict holding the last key of ``path``, that key) for every place ``path`` matches in ``data``."""
    nodes = [data]
    for key in path[:-1]:
        found = []
        for node in nodes:
            if key == "*" and isinstance(node, list):
                found.extend(node)
            elif key != "*" and isinstance(node, dict) and key in node:
                found.append(node[key])
        nodes = found
    return [(node, path[-1]) for node in nodes if isinstance(node, dict) and path[-1] in node]


def mutations(source: Path, rng: random.Random):
    """(label, text) of broken files made from ``source``: at most one change each."""
    text = source.read_text()
    data = json.loads(text)
    for cut in sorted(rng.sample(range(1, len(text) - 1), 4)):
        yield f"truncated at byte {cut}", text[:cut]
    yield "foreign JSON", json.dumps({"hello": "world"})
    yield "a list, not a run", json.dumps([data])
    for path in REQUIRED_PATHS:
        places = holders(data, path)
        if places:
            broken = copy.deepcopy(data)
            node, key = holders(broken, path)[rng.randrange(len(places))]
            del node[key]
            yield f"{'.'.join(path)} removed", json.dumps(broken)
    for path in TYPED_PATHS:
        places = holders(data, path)
        if places:
            broken = copy.deepcopy(data)
            node, key = holders(broken, path)[rng.randrange(len(places))]
            node[key] = _wrong_type(node[key], rng)
            yield f"{'.'.join(path)} = {node[key]!r}"[:80], json.dumps(broken)


def _wrong_type(value, rng: random.Random):
    choices = [candidate for candidate in WRONG_VALUES if type(candidate) is not type(value)
               and not (isinstance(value, float) and type(candidate) is int)]
    return rng.choice(choices)


def corpus() -> list[tuple[str, str, str]]:
    rng = random.Random(SEED)
    return [(source.name, label, text) for source in SOURCES for label, text in mutations(source, rng)]


CORPUS = corpus()
runner = CliRunner()


def commands(broken: Path, out: Path) -> list[list[str]]:
    return [
        ["report", str(broken), "--format", "markdown"],
        ["report", str(broken), "--format", "table"],
        ["report", str(broken), "-o", str(out / "r.html")],
        ["compare", str(GOOD), str(broken)],
        ["export", str(broken), "--to", "csv"],
        ["history", str(GOOD), str(broken)],
        ["merge", str(broken), str(broken), "-o", str(out / "merged.json")],
        ["redact", str(broken), "-o", str(out / "redacted.json")],
    ]


def invoke(args: list[str]):
    """The CLI in this process; a TribenchError is what ``tribench.cli.main`` turns into one line, exit 2."""
    return runner.invoke(app, args, catch_exceptions=True)


def test_the_corpus_is_broken_by_the_schemas_own_measure():
    assert len(CORPUS) >= 60
    for source, label, text in CORPUS:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            continue
        assert problem(data) is not None or not isinstance(data, dict) or data.get("kind") != "tribench-run", \
            (source, label)


@pytest.mark.parametrize("source,label,text", CORPUS, ids=[f"{s}:{label}" for s, label, _ in CORPUS])
def test_every_reader_refuses_a_broken_file_in_one_line(source, label, text, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(text)
    for args in commands(broken, tmp_path):
        result = invoke(args)
        assert isinstance(result.exception, TribenchError), (args[0], label, result.exception, result.output[-400:])
        assert "\n" not in str(result.exception).strip(), (args[0], label)


@pytest.mark.parametrize("path", OPTIONAL_PATHS, ids=[".".join(path) for path in OPTIONAL_PATHS])
def test_a_valid_file_without_an_optional_figure_is_read_by_every_command(path, tmp_path):
    data = json.loads((GENERATE if "generation" in path else GOOD).read_text())
    places = holders(data, path)
    for node, key in places:
        del node[key]
    assert problem(data) is None and (places or "generation" not in path)
    trimmed = tmp_path / "trimmed.json"
    trimmed.write_text(json.dumps(data))
    for args in commands(trimmed, tmp_path):
        if args[0] == "merge":
            continue  # a single-host run is not mergeable: that refusal is its own test
        result = invoke(args)
        assert result.exception is None or isinstance(result.exception, (TribenchError, SystemExit)), \
            (args, result.exception)


def test_the_real_command_prints_one_line_and_exits_2(tmp_path):
    broken = tmp_path / "broken.json"
    data = json.loads(GOOD.read_text())
    del data["cases"][1]["id"]
    broken.write_text(json.dumps(data))
    for args in (["report", str(broken), "--format", "markdown"], ["export", str(broken), "--to", "csv"]):
        done = tribench(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0
        assert done.stderr.strip() == f"error: {broken}: not a valid run file: cases[1].id: missing (the format: " \
                                      "tribench schema)"


def test_tribench_schema_prints_the_json_schema_every_load_checks(tmp_path):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["title"] == "tribench run file, schema version 1"
    assert {"schema_version", "kind", "run_id", "cases"} <= set(schema["required"])
    case = schema["$defs"]["Case"]
    assert set(case["required"]) == {"id", "spec"}
    assert schema["$defs"]["Spec"]["properties"]["batch_size"]["type"] == "integer"
