"""The markdown summary (GitHub job summary) and the terminal tables, from the checked-in run files."""

from __future__ import annotations

import json
import re
from pathlib import Path

from markdown_it import MarkdownIt
from rich.console import Console

from tribench.reports import dataset
from tribench.reports.text import markdown, terminal

DATA = Path(__file__).resolve().parent / "data"
XSS = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
MARKDOWN = "| *bold* `tick` [x](javascript:alert(1)) _u_ # !"


def _markdown(*names: str) -> str:
    return markdown.render(dataset.load([DATA / name for name in names]))


def _to_html(text: str) -> str:
    """What GitHub would show, near enough: CommonMark with tables and raw HTML allowed."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def _terminal(*names: str) -> str:
    console = Console(record=True, width=250, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(terminal.render(dataset.load([DATA / name for name in names])))
    return console.export_text()


def test_md_escapes_markup_and_html():
    assert markdown.md("a|b*c_d`e[f](g)<h>&i\nj") == r"a\|b\*c\_d\`e\[f\]\(g\)&lt;h&gt;&amp;i j"
    rendered = _to_html(markdown.md(f"{XSS} {BREAKOUT} {MARKDOWN}"))
    assert rendered == ("<p>&lt;script&gt;alert(1)&lt;/script&gt; &quot;&gt;&lt;img src=x onerror=alert(1)&gt; "
                        "| *bold* `tick` [x](javascript:alert(1)) _u_ # !</p>\n")


def test_golden_sweep_summary():
    text = _markdown("run-sweep.json")
    run = json.loads((DATA / "run-sweep.json").read_text())
    assert text.startswith("## tribench report\n\n1 run(s), 16 case(s): 16 ok\n")
    assert f"| {markdown.md(run['run_id'])} | vm |" in text
    line = next(line for line in text.splitlines() if line.startswith(r"| torch/cnn\-tiny/infer/bs8/"))
    assert line == (r"| torch/cnn\-tiny/infer/bs8/fp32/eager/cpu | 5,327 | 5,258 – 5,388 | pooled steps \(old file\) "
                    r"| 1\.5 ms | 1\.92 ms | 6\.7% | – | 238 MiB \(host RSS\) | not measured |")
    assert "### Failed" not in text and "[!WARNING]" not in text
    assert "⚠ noise (IQR / median of the step time) above 10%" in text
    assert re.search(r"Energy not measured for 16 case\(s\): .+\.", text)


def test_fingerprint_warning():
    text = _markdown("run-fingerprint-a.json", "run-fingerprint-b.json")
    assert "> [!WARNING]\n> **Fingerprints differ** between these runs (differs in: env\\_vars)" in text
    assert text.count(r"| torch/cnn\-tiny/") == 4  # two cases in each run, with a run column
    assert "| run | case | throughput (samples/s) |" in text


def test_problems_listed_with_reasons():
    text = _markdown("run-problems.json")
    assert "1 run(s), 12 case(s): 3 ok, 2 failed, 5 skipped, 2 timeout" in text
    assert "### Failed, timed-out and skipped (9)" in text
    assert r"| fake/cnn\-tiny/infer/bs32/fp32/eager/cpu | **failed** | RuntimeError\: the fake model exploded |" in text
    assert r"| fake/rnn\-tiny/infer/bs32/fp32/eager/cpu | **timeout** | timed out after 20 s |" in text
    assert r"| fake/transformer\-tiny/infer/bs32/fp32/eager/cpu | **skipped** | the fake cannot do this |" in text


def test_malicious_markdown_renders_inert():
    text = _markdown("run-malicious.json")
    html = _to_html(text)
    assert "<script" not in html and "<img" not in html and "<a " not in html and "href" not in html
    assert "<em>" not in html and "<code>" not in html  # no *bold*, _u_ or `tick` took effect
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    header = html.count("<th>")
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    tables = [len(re.findall(r"<t[dh]", row)) for row in rows]
    assert header and all(cells in (5, 10, 3) for cells in tables)  # runs, results, problems: no cell split by |


def test_step_summary_is_appended(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    text = _markdown("run-fingerprint-a.json")
    assert markdown.append_to_step_summary(text, {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    markdown.append_to_step_summary(text, {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text() == "earlier step\n" + text + text
    assert markdown.append_to_step_summary(text, {}) is None


def test_terminal_tables():
    text = _terminal("run-problems.json", "run-sweep.json")
    assert "tribench report: 2 run(s), 19 ok, 2 failed, 5 skipped, 2 timeout" in text
    assert "⚠ fingerprints differ (in: frameworks)" in text
    assert "torch/transformer-tiny/infer/bs32/fp32/eager/cpu" in text
    assert "RuntimeError: the fake model exploded" in text and "timed out after 20 s" in text


def test_terminal_tables_print_markup_as_text():
    text = _terminal("run-malicious.json")
    assert "[x](javascript:alert(1))" in text and XSS in text
