"""The HTML report in a real browser: headless Chromium renders every chart, logs nothing, sorts tables.

How: Chromium runs the report offline (every host name resolves to nothing, so a report that
needed the network would lose its charts) with ``--dump-dom`` after a virtual-time budget,
which prints the DOM after every script ran. Plotly draws each chart as an ``<svg
class="main-svg">`` inside its ``div.chart``, so the dumped DOM says which charts rendered.
With ``--enable-logging=stderr --v=0`` Chromium writes every console message (console.log,
console.error, uncaught exceptions) to stderr as a ``:CONSOLE`` line; a clean report logs none,
and ``test_the_detectors_catch_errors`` proves those lines do appear when a page errs. A second
run writes a screenshot: results/test-artifacts/report-screenshot.png.

Chromium comes from Debian's ``chromium`` package, installed by scripts/ensure-chromium, which
``make test`` (and so CI's .ci/run) runs first; $TRIBENCH_CHROMIUM names another binary.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tribench.reports import dataset
from tribench.reports.html.report import render

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
ARTIFACTS = ROOT / "results" / "test-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

# Appended to a copy of the report: sorts the case table by throughput both ways and by the case
# column, then writes the orders and the page height into the DOM for the test to read.
SORT_DRIVER = """<script>
window.addEventListener('load', function () {
  var table = document.querySelector('table.cases');
  var headings = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function column(prefix) {
    return headings.findIndex(function (h) { return h.textContent.indexOf(prefix) === 0; });
  }
  function values(index) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
      var cell = row.cells[index];
      var sort = cell.getAttribute('data-sort');
      return sort === null ? cell.textContent.trim() : sort;
    });
  }
  var throughput = column('throughput'), cases = column('case');
  headings[throughput].click(); var ascending = values(throughput);
  headings[throughput].click(); var descending = values(throughput);
  headings[cases].click(); var byCase = values(cases);
  var out = document.createElement('pre');
  out.id = 'sort-check';
  out.textContent = JSON.stringify({ascending: ascending, descending: descending, byCase: byCase,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script></body>"""


def chromium() -> str:
    found = os.environ.get("TRIBENCH_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if not found:
        pytest.fail("Chromium is missing: run `bash scripts/ensure-chromium` (make test does it first)")
    return found


def browse(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=20000", "--hide-scrollbars", *mode, page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


class RenderedCharts(HTMLParser):
    """For each div.chart, whether a plotly <svg class="main-svg"> ended up inside it."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.charts: dict[str, bool] = {}
        self.tags: list[str] = []
        self._open: list[str | None] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        inside = next((key for key in reversed(self._open) if key), None)
        if tag == "svg" and inside and "main-svg" in (attrs.get("class") or "").split():
            self.charts[inside] = True
        if tag in VOID:
            return
        key = attrs.get("data-chart") if tag == "div" else None
        if key:
            self.charts.setdefault(key, False)
        self._open.append(key)

    def handle_endtag(self, tag):
        if tag not in VOID and self._open:
            self._open.pop()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _chart_keys(report: str) -> list[str]:
    return re.findall(r'<div class="chart" id="chart-[^"]+" data-chart="([^"]+)">', report)


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_report_renders_every_chart_without_console_errors(tmp_path):
    report = render(dataset.load([DATA / "run-sweep.json", DATA / "run-problems.json"]))
    keys = _chart_keys(report)
    assert len(keys) >= 14 and any(k.startswith("scaling") for k in keys)
    page = _write(tmp_path, "report.html", report.replace("</body>", SORT_DRIVER))
    done = browse(page, tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    charts = RenderedCharts(done.stdout).charts
    assert list(charts) == keys and all(charts.values()), [k for k, ok in charts.items() if not ok]

    check = json.loads(html.unescape(re.search(r'<pre id="sort-check">(.*?)</pre>', done.stdout, re.S)[1]))
    numbers = [float(v) for v in check["ascending"] if v != ""]
    assert numbers == sorted(numbers) and len(numbers) == 19  # 19 ok cases: numbers first, ascending
    assert check["ascending"][19:] == [""] * 9  # failed/skipped/timeout (no throughput) always last
    assert [float(v) for v in check["descending"][:19]] == sorted(numbers, reverse=True)
    assert check["descending"][19:] == [""] * 9
    assert check["byCase"][0].startswith("fake/cnn-tiny/") and check["byCase"][-1].startswith("torch/transformer")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report-screenshot.png"
    screenshot.unlink(missing_ok=True)
    height = min(int(check["height"]), 16000)
    shot = browse(_write(tmp_path, "shot.html", report), tmp_path / "profile2", f"--window-size=1400,{height}",
                  f"--screenshot={screenshot}")
    assert console_messages(shot.stderr) == []
    assert _png_size(screenshot) == (1400, height) and screenshot.stat().st_size > 100_000
    print(f"screenshot of the report: {screenshot}")


def test_malicious_report_stays_inert_in_the_browser(tmp_path):
    report = render(dataset.load([DATA / "run-malicious.json"]))
    done = browse(_write(tmp_path, "evil.html", report), tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    rendered = RenderedCharts(done.stdout)
    assert rendered.charts and all(rendered.charts.values())
    assert "img" not in rendered.tags and "iframe" not in rendered.tags
    assert rendered.tags.count("script") == 4  # the report's own scripts only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in done.stdout  # shown as text


def test_scaling_report_renders_in_the_browser(tmp_path):
    """A run with data-parallel cases: the "Scaling with devices" charts draw too, with their legends."""
    run = json.loads((DATA / "run-scaling.json").read_text())
    points = {tuple(case["spec"][k] for k in ("workload", "size", "mode", "batch_size", "precision", "compile"))
              for case in run["cases"]}
    report = render(dataset.load([DATA / "run-scaling.json"]))
    keys = _chart_keys(report)
    assert [k for k in keys if k.startswith("scale-out")] == [f"scale-out-{i}" for i in range(len(points))]
    done = browse(_write(tmp_path, "scaling.html", report), tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    charts = RenderedCharts(done.stdout).charts
    assert list(charts) == keys and all(charts.values()), [k for k, ok in charts.items() if not ok]
    assert done.stdout.count("ideal: 100% efficiency") >= len(points)  # each chart's legend, drawn as SVG text


def test_generation_report_renders_in_the_browser(tmp_path):
    """A run with generate cases: the "Generation" section's tokens/s lines and TTFT/TPOT boxes draw too."""
    report = render(dataset.load([DATA / "run-generate.json"]))
    keys = _chart_keys(report)
    assert [k for k in keys if k.startswith("generation")] == ["generation-tokens-0", "generation-distributions-1"]
    done = browse(_write(tmp_path, "generation.html", report), tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    charts = RenderedCharts(done.stdout).charts
    assert list(charts) == keys and all(charts.values()), [k for k, ok in charts.items() if not ok]
    assert "time per output token (ms)" in done.stdout  # a subplot title, drawn as SVG text


def test_the_detectors_catch_errors(tmp_path):
    """The checks above can fail: a page that errs is seen erring, a chart that did not draw is seen missing."""
    page = _write(tmp_path, "bad.html", '<html><body><div class="chart" data-chart="k"></div><script>'
                                        'console.error("boom"); undefinedFunction();</script></body></html>')
    done = browse(page, tmp_path / "profile", "--dump-dom")
    messages = console_messages(done.stderr)
    assert len(messages) == 2 and "boom" in messages[0] and "undefinedFunction" in messages[1]
    assert RenderedCharts(done.stdout).charts == {"k": False}
