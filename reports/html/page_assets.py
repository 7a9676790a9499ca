"""The HTML report's own stylesheet and scripts (no external dependencies besides plotly.js)."""

from __future__ import annotations

CSS = """
:root { --fg: #1d2330; --muted: #5b6473; --line: #dde1e8; --bg: #ffffff; --panel: #f6f7f9;
        --ok: #2e7d32; --bad: #c62828; --skip: #8d6e00; --warn-bg: #fff4e5; --warn-line: #f0a030;
        --info-bg: #eef4fb; --info-line: #7aa7d9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main, header, nav { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 36px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); font-size: 20px; }
h3 { margin: 20px 0 6px; font-size: 15px; }
p.lead { font-size: 16px; margin: 4px 0; }
p.what, p.generated, p.caption { color: var(--muted); margin: 4px 0; }
nav { position: sticky; top: 0; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--line);
      padding-top: 8px; padding-bottom: 8px; z-index: 10; display: flex; flex-wrap: wrap; gap: 2px 14px; }
nav a { color: #1f5fbf; text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
.notice { border-left: 4px solid var(--warn-line); background: var(--warn-bg); padding: 10px 14px;
          margin: 12px 0; border-radius: 4px; }
.notice.info { border-left-color: var(--info-line); background: var(--info-bg); }
.notice .mark { font-weight: bold; }
.notice table { margin-top: 8px; background: #fff; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
thead th { background: var(--panel); position: sticky; top: 0; }
table.numbers td[data-sort] { white-space: nowrap; }
table.cases { font-size: 12px; } table.cases td, table.cases th { white-space: nowrap; padding: 4px 7px; }
table.runs th[scope=row] { background: var(--panel); white-space: nowrap; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " ↕"; color: #aab; }
table.sortable thead th[data-dir=asc]::after { content: " ▲"; color: var(--fg); }
table.sortable thead th[data-dir=desc]::after { content: " ▼"; color: var(--fg); }
tbody tr:hover { background: #fafbfd; }
.status { font-weight: 600; }
.status.ok { color: var(--ok); } .status.failed { color: var(--bad); } .status.skipped { color: var(--skip); }
.flag { color: var(--bad); font-weight: 600; }
.na { color: var(--muted); border-bottom: 1px dotted var(--muted); cursor: help; }
figure.chart-box { margin: 16px 0 24px; }
div.chart { width: 100%; min-height: 320px; }
div.chart.chart-missing { min-height: 0; padding: 12px; background: var(--warn-bg); }
ul.reasons { padding-left: 20px; } ul.reasons details { display: inline; margin-left: 6px; color: var(--muted); }
pre.reason { max-width: 760px; }
table.problems td:first-child { white-space: nowrap; }
footer { max-width: 1400px; margin: 40px auto; padding: 0 24px; color: var(--muted); }
"""

# Renders every figure from the JSON block; charts that cannot render say why instead of failing silently.
CHARTS_JS = """
(function () {
  var figures = JSON.parse(document.getElementById('tribench-figures').textContent);
  var config = {displaylogo: false, responsive: true};
  document.querySelectorAll('div.chart[data-chart]').forEach(function (div) {
    var figure = figures[div.getAttribute('data-chart')];
    if (typeof Plotly === 'undefined') {
      div.classList.add('chart-missing');
      div.textContent = 'This chart needs plotly.js, which could not be loaded (the report links it from a CDN ' +
                        'and there is no network). Rebuild the report without --cdn to embed it.';
      return;
    }
    Plotly.newPlot(div, figure.data, figure.layout, config);
  });
})();
"""

# Click a heading to sort by it (numbers by data-sort, text otherwise); empty cells always sort last.
SORT_JS = """
(function () {
  function key(row, column) {
    var cell = row.cells[column];
    var value = cell.getAttribute('data-sort');
    return value === null ? cell.textContent.trim() : value;
  }
  function numeric(rows, column) {
    return rows.every(function (row) { var v = key(row, column); return v === '' || !isNaN(Number(v)); });
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var headings = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headings, function (heading, column) {
      heading.addEventListener('click', function () {
        var direction = heading.getAttribute('data-dir') === 'asc' ? 'desc' : 'asc';
        Array.prototype.forEach.call(headings, function (h) { h.removeAttribute('data-dir'); });
        heading.setAttribute('data-dir', direction);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asNumbers = numeric(rows, column);
        var sign = direction === 'asc' ? 1 : -1;
        rows.sort(function (a, b) {
          var x = key(a, column), y = key(b, column);
          if (x === '' || y === '') { return (x === '') - (y === ''); }
          if (asNumbers) { return sign * (Number(x) - Number(y)); }
          return sign * x.localeCompare(y);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
"""
