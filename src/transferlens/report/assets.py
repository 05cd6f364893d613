"""The report's inline stylesheet and script (no external resources: the page works offline)."""

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --soft: #f5f7fa; --accent: #2b5fb8;
        --ok: #1f7a3a; --warn: #9a6200; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
header { background: #1f2a44; color: #fff; padding: 18px 32px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d3e8; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 2; background: var(--soft); border-bottom: 1px solid var(--line); padding: 6px 32px; font-size: 13px; }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 48px; }
section { margin-top: 28px; }
h2 { font-size: 19px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.headline { font-size: 21px; font-weight: 600; margin: 8px 0 10px; }
#recommendation { background: #eef4ff; border: 1px solid #c6d6f5; border-radius: 8px; padding: 4px 22px 12px; }
#recommendation h2 { border: none; }
.muted { color: var(--muted); font-size: 13px; }
.caveats li { color: var(--warn); }
.error, .problem { color: var(--bad); }
.box { border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.box.problem { background: #fdecea; border: 1px solid #f3c1bc; }
.box.info { background: var(--soft); border: 1px solid var(--line); }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.badge.ok, .badge.cached { background: #e3f3e7; color: var(--ok); }
.badge.failed, .badge.skipped { background: #fdecea; color: var(--bad); }
.badge.unavailable { background: #fff3dc; color: var(--warn); }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; width: auto; max-width: 100%; }
.scroll { overflow-x: auto; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; vertical-align: top; }
th { background: var(--soft); position: sticky; top: 0; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.wrap { white-space: normal; text-align: left; max-width: 520px; }
tbody tr:nth-child(even) { background: #fafbfd; }
tr.best td { font-weight: 600; background: #eef7f0; }
tr.failed td { color: var(--bad); }
tfoot td { color: var(--muted); font-style: italic; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa3b2; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--accent); }
figure.plot { margin: 10px 0 16px; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figure.plot figcaption { color: var(--muted); font-size: 12.5px; max-width: 900px; }
article.candidate { border-top: 1px dashed var(--line); padding-top: 6px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 8px 18px; align-items: start; }
details summary { cursor: pointer; color: var(--accent); font-size: 13px; }
code { background: var(--soft); padding: 0 3px; border-radius: 3px; font-size: 12.5px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; word-break: break-all; }
"""

JS = """
(function () {
  "use strict";
  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function compare(a, b) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (r1, r2) {
      var a = sortKey(r1.cells[col]), b = sortKey(r2.cells[col]);
      if (a === null || b === null) { return compare(a, b); }
      return asc ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = th.title || "click to sort";
      th.addEventListener("click", function () { sortTable(table, col, th); });
    });
  });
  window.addEventListener("load", function () {
    var imgs = document.querySelectorAll("figure.plot img");
    var ok = 0;
    Array.prototype.forEach.call(imgs, function (img) { if (img.complete && img.naturalWidth > 0) { ok += 1; } });
    document.body.setAttribute("data-images-ok", ok + "/" + imgs.length);
  });
  document.body.setAttribute("data-ready", "1");
})();
"""
