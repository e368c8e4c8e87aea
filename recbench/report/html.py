"""The self-contained HTML leaderboard page (inline CSS and JS, no network).

``render_html(payload)`` embeds the payload built by :mod:`recbench.report.formats` (every
metric's tables as JSON) and a small script that renders them: a metric selector, sortable
columns (click a header; the state lives in the URL hash, e.g.
``#metric=auc&sort=mind&dir=desc``, optionally ``&table=zero-shot-generative``), best per
column highlighted, incomplete rows marked with a dagger, metadata flags, and links to each
row's results files (relative links only, whatever the folder names).
"""

from __future__ import annotations

import html
import json
from typing import Any, Dict

__all__ = ["render_html"]


def _json_for_script(payload: Dict[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # Inside <script> only "</" (and "<!--") could end the element early: escape "<".
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(payload: Dict[str, Any]) -> str:
    task = f"{payload['task']} " if payload.get("task") else ""  # a task other than ctr names itself
    title = f"RecBench {task}leaderboard ({payload.get('headline', 'gauc')})"
    return (
        _TEMPLATE.replace("%%TITLE%%", html.escape(title))
        .replace("%%DATA%%", _json_for_script(payload))
    )


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="recbench report">
<title>%%TITLE%%</title>
<style>
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --soft: #f6f8fa;
  --accent: #0969da; --best: #dafbe1; --best-fg: #116329; --warn: #9a6700; --warn-bg: #fff8c5;
  --pub: #6e7781;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 20px 28px 12px; border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .meta { color: var(--muted); font-size: 13px; }
.controls { display: flex; gap: 16px; align-items: center; margin-top: 10px; flex-wrap: wrap; }
.controls label { font-weight: 600; }
.controls select { font: inherit; padding: 3px 6px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.controls .desc { color: var(--muted); }
.controls a { color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; }
section.board { margin: 22px 0 30px; }
section.board h2 { font-size: 18px; margin: 0 0 8px; font-weight: 600; }
section.board h2 code { font-size: 12px; color: var(--muted); font-weight: 400; margin-left: 6px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
table.lb { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.lb th, table.lb td { padding: 6px 9px; border-bottom: 1px solid var(--line); white-space: nowrap; }
table.lb thead th { position: sticky; top: 0; background: var(--soft); font-weight: 600; text-align: right;
                    cursor: pointer; user-select: none; font-size: 13px; }
table.lb thead th:first-child, table.lb td.model { text-align: left; }
table.lb thead th.nosort { cursor: default; }
table.lb thead th:hover:not(.nosort) { background: #eaeef2; }
table.lb thead th .arrow { color: var(--accent); margin-left: 3px; font-size: 11px; }
table.lb thead th.overall, table.lb td.overall { border-left: 2px solid var(--line); }
table.lb td { text-align: right; }
table.lb td.flags { text-align: left; white-space: normal; min-width: 14em; font-size: 12px; color: var(--warn); }
table.lb tbody tr:nth-child(even) { background: #fbfcfd; }
table.lb tbody tr:hover { background: #f0f6ff; }
table.lb td a { color: inherit; text-decoration: none; }
table.lb td a:hover { text-decoration: underline; color: var(--accent); }
table.lb td.best { background: var(--best); color: var(--best-fg); font-weight: 700; }
table.lb td .ci { display: block; font-size: 10.5px; color: var(--muted); font-weight: 400; }
table.lb td.missing { color: #afb8c1; }
table.lb td.cellflag { box-shadow: inset 0 -3px 0 #d4a72c; }
tr.src-run td.model { font-weight: 600; box-shadow: inset 3px 0 0 var(--accent); }
tr.src-published td.model { color: var(--pub); font-style: italic; }
tr.src-published td:not(.model) { color: #57606a; }
tr.src-random td { color: #8c959f; border-top: 1px dashed #afb8c1; }
tr.flagged td.model::after { content: " \2691"; color: var(--warn); }
.badge { display: inline-block; font-size: 10.5px; font-style: normal; padding: 0 6px; margin-left: 6px; border-radius: 10px;
         border: 1px solid var(--line); color: var(--muted); background: #fff; vertical-align: 1px; }
.badge.pub { border-color: #d0d7de; }
.badge.sft { border-color: #8250df; color: #8250df; }
.badge.files { border-color: var(--accent); color: var(--accent); }
td.overall em { color: var(--warn); }
td.overall sup { color: var(--warn); font-weight: 700; }
ul.notes { margin: 8px 0 0; padding-left: 20px; color: var(--warn); font-size: 13px; }
.figs { display: flex; gap: 18px; flex-wrap: wrap; margin-top: 12px; }
.figs figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: #fff; max-width: 100%; }
.figs img { max-width: 100%; height: auto; display: block; }
.figs figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.figs figcaption a { color: var(--accent); }
.box { border: 1px solid #d4a72c; background: var(--warn-bg); border-radius: 8px; padding: 10px 14px; margin: 16px 0; }
.box h3 { margin: 0 0 6px; font-size: 14px; }
.box li code { font-size: 12px; }
footer { color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); padding: 14px 28px 28px; }
footer li { margin: 3px 0; }
footer a { color: var(--accent); }
.empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header>
  <h1>RecBench leaderboard</h1>
  <div class="meta" id="meta"></div>
  <div class="controls">
    <span><label for="metric">Metric</label> <select id="metric"></select></span>
    <span class="desc" id="metric-desc"></span>
    <a href="#" id="reset" title="back to the default order">reset order</a>
  </div>
</header>
<main>
  <noscript><p>This page needs JavaScript to draw its tables; the same tables are in the
  Markdown and CSV files beside it.</p></noscript>
  <div id="skipped"></div>
  <div id="boards"></div>
  <div id="status" hidden></div>
</main>
<footer id="footer"></footer>
<script type="application/json" id="recbench-data">%%DATA%%</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("recbench-data").textContent);
  var LOWER = {};
  (D.lower_is_better || []).forEach(function (m) { LOWER[m] = true; });
  var state = { metric: D.headline, sort: null, dir: null, table: null };

  // Links only ever point to relative paths: every segment percent-encoded (so ':', '#',
  // '?' and backslashes in a folder name stay part of the path: a folder named "javascript:..."
  // is a relative link, never a script) and nothing absolute; null (no link) otherwise.
  function relHref(h, folder) {
    if (typeof h !== "string" || h === "" || /^[\/\\]/.test(h)) return null;
    var out = h.split("/").map(function (seg) { return encodeURIComponent(seg); }).join("/");
    if (/^[A-Za-z][A-Za-z0-9+.\-]*:/.test(out)) out = "./" + out;
    return out + (folder ? "/" : "");
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "cls") node.className = v;
        else node.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function fmt(v, d) { return (v === null || v === undefined) ? "\u2014" : v.toFixed(d === undefined ? 4 : d); }
  function fmtN(n) {
    if (n === null || n === undefined) return "\u2014";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return Math.round(n / 1e3) + "k";
    return String(Math.round(n));
  }
  function title(col) { return (D.titles && D.titles[col]) || col; }

  function parseHash() {
    var h = (location.hash || "").replace(/^#/, "");
    var out = {};
    h.split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      var k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      out[k] = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1));
    });
    state.metric = (out.metric && D.tables[out.metric]) ? out.metric : D.headline;
    state.sort = out.sort || null;
    state.dir = (out.dir === "asc" || out.dir === "desc") ? out.dir : null;
    state.table = out.table || null;
  }
  function writeHash() {
    var parts = [];
    if (state.metric !== D.headline) parts.push("metric=" + encodeURIComponent(state.metric));
    if (state.sort) {
      parts.push("sort=" + encodeURIComponent(state.sort));
      parts.push("dir=" + (state.dir || "desc"));
      if (state.table) parts.push("table=" + encodeURIComponent(state.table));
    }
    var h = parts.join("&");
    if (h) location.hash = h;
    else if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    render();
  }

  function sortValue(row, col) {
    if (col === "model") return row.label.toLowerCase();
    if (col === "overall") return row.overall;
    if (col === "count") return row.count;
    if (col === "n") return row.n;
    var c = row.cells[col];
    return c ? c.v : null;
  }
  function sortedRows(t) {
    var rows = t.rows.slice();
    var applies = state.sort && (!state.table || state.table === t.key);
    if (!applies) return rows;
    var col = state.sort, dir = state.dir || defaultDir(col), sign = dir === "asc" ? 1 : -1;
    var idx = rows.map(function (r, i) { return i; });
    idx.sort(function (a, b) {
      var va = sortValue(rows[a], col), vb = sortValue(rows[b], col);
      var na = va === null || va === undefined, nb = vb === null || vb === undefined;
      if (na && nb) return a - b;
      if (na) return 1;   // missing values always last
      if (nb) return -1;
      if (va < vb) return -sign;
      if (va > vb) return sign;
      return a - b;
    });
    return idx.map(function (i) { return rows[i]; });
  }
  function defaultDir(col) {
    if (col === "model") return "asc";
    if (col !== "count" && col !== "n" && LOWER[state.metric]) return "asc";
    return "desc";
  }
  function onHeader(tkey, col) {
    if (state.sort === col && (!state.table || state.table === tkey)) {
      state.dir = (state.dir || defaultDir(col)) === "asc" ? "desc" : "asc";
    } else {
      state.sort = col; state.dir = defaultDir(col);
    }
    state.table = tkey;
    writeHash();
  }

  function header(t) {
    var tr = el("tr");
    var cols = [["model", "Model"]].concat(t.columns.map(function (c) { return [c, title(c)]; }))
      .concat([["overall", "Overall"], ["count", "Scen."], ["n", "n"]]);
    cols.forEach(function (pair) {
      var col = pair[0];
      var active = state.sort === col && (!state.table || state.table === t.key);
      var th = el("th", { "data-col": col, cls: col === "overall" ? "overall" : null,
                          title: col === "count" ? "benchmark scenarios present (of " + D.benchmark.length + ")"
                               : col === "n" ? "test samples, summed over the row's results files"
                               : "click to sort" + (D.benchmark.indexOf(col) < 0 && col !== "model" && col !== "overall" && col !== "count" && col !== "n" ? " (not counted in Overall)" : "") },
                  pair[1]);
      if (active) th.appendChild(el("span", { cls: "arrow" }, (state.dir || defaultDir(col)) === "asc" ? "\u25B2" : "\u25BC"));
      th.addEventListener("click", function () { onHeader(t.key, col); });
      tr.appendChild(th);
    });
    tr.appendChild(el("th", { cls: "nosort", style: "text-align:left" }, "Flags"));
    return el("thead", null, tr);
  }

  function modelCell(r) {
    var td = el("td", { cls: "model" });
    td.appendChild(document.createTextNode(r.label));
    if (r.source === "published") td.appendChild(el("span", { cls: "badge pub", title: D.citation }, "published"));
    if (r.source === "random") td.appendChild(el("span", { cls: "badge", title: "a random scorer's expected value is exactly 0.5" }, "baseline"));
    if (r.adapter) td.appendChild(el("span", { cls: "badge sft", title: "fine-tuned adapter " + r.adapter }, "adapter"));
    if (r.dir) {
      td.appendChild(el("a", { cls: "badge files", href: relHref(r.dir, true), title: (r.files || []).join("\n") },
                        r.files.length + " file" + (r.files.length === 1 ? "" : "s")));
    }
    return td;
  }
  function valueCell(r, col) {
    var c = r.cells[col];
    if (!c || c.v === null || c.v === undefined) return el("td", { cls: "missing", "data-col": col }, "\u2014");
    var tip = [];
    if (c.n !== undefined) tip.push("n = " + c.n);
    if (c.users !== undefined) tip.push("users = " + c.users);
    if (c.ci) tip.push("CI [" + fmt(c.ci[0]) + ", " + fmt(c.ci[1]) + "]");
    if (c.file) tip.push(c.file);
    if (c.flags) tip.push("\u2691 " + c.flags.join("; "));
    var cls = [];
    if (c.best) cls.push("best");
    if (c.flags) cls.push("cellflag");
    var td = el("td", { cls: cls.join(" ") || null, "data-col": col, "data-value": String(c.v), title: tip.join("\n") || null });
    var text = fmt(c.v) + (c.flags ? " \u2691" : "");
    td.appendChild(relHref(c.href) ? el("a", { href: relHref(c.href) }, text) : document.createTextNode(text));
    if (c.ci) td.appendChild(el("span", { cls: "ci" }, "[" + fmt(c.ci[0], 3) + ", " + fmt(c.ci[1], 3) + "]"));
    return td;
  }
  function overallCell(r) {
    var td = el("td", { cls: "overall" + (r.overall_best ? " best" : ""), "data-col": "overall",
                        "data-value": r.overall === null ? null : String(r.overall) });
    if (r.complete) { td.appendChild(document.createTextNode(fmt(r.overall))); return td; }
    td.setAttribute("title", "incomplete: mean over " + r.count + " of " + D.benchmark.length + " scenarios");
    td.appendChild(el("em", null, fmt(r.overall)));
    td.appendChild(el("sup", null, "\u2020"));
    return td;
  }

  function board(t) {
    var sec = el("section", { cls: "board", id: "t-" + t.key, "data-table": t.key });
    sec.appendChild(el("h2", null, t.title, el("code", null, t.key)));
    var table = el("table", { cls: "lb", "data-table": t.key });
    table.appendChild(header(t));
    var tbody = el("tbody");
    sortedRows(t).forEach(function (r) {
      var cls = ["src-" + r.source];
      if (r.flags && r.flags.length) cls.push("flagged");
      if (!r.complete) cls.push("incomplete");
      var tr = el("tr", { cls: cls.join(" "), "data-label": r.label, "data-source": r.source });
      tr.appendChild(modelCell(r));
      t.columns.forEach(function (col) { tr.appendChild(valueCell(r, col)); });
      tr.appendChild(overallCell(r));
      tr.appendChild(el("td", { "data-col": "count" }, r.count + "/" + D.benchmark.length));
      tr.appendChild(el("td", { "data-col": "n" }, fmtN(r.n)));
      tr.appendChild(el("td", { cls: "flags" }, (r.flags && r.flags.length) ? "\u2691 " + r.flags.join("; ") : ""));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    sec.appendChild(el("div", { cls: "scroll" }, table));
    if (t.notes && t.notes.length) {
      var ul = el("ul", { cls: "notes" });
      t.notes.forEach(function (n) { ul.appendChild(el("li", null, "\u2691 " + n)); });
      sec.appendChild(ul);
    }
    var f = t.figures || {};
    var figs = el("div", { cls: "figs" });
    [["heatmap", "Models \u00d7 scenarios"], ["overall", "Overall"]].forEach(function (kind) {
      var img = f[kind[0] + "_png"] || f[kind[0] + "_svg"];
      if (!img) return;
      var cap = el("figcaption", null, kind[1] + " (" + D.headline + "): ");
      ["png", "svg"].forEach(function (ext) {
        var name = f[kind[0] + "_" + ext];
        if (name) { cap.appendChild(el("a", { href: relHref(name) }, ext.toUpperCase())); cap.appendChild(document.createTextNode(" ")); }
      });
      figs.appendChild(el("figure", null, el("a", { href: relHref(img) }, el("img", { src: relHref(img), alt: kind[1] + " chart for " + t.key, loading: "lazy" })), cap));
    });
    if (figs.childNodes.length) sec.appendChild(figs);
    return sec;
  }

  function render() {
    var boards = document.getElementById("boards");
    boards.textContent = "";
    var tables = D.tables[state.metric] || [];
    if (!tables.length) boards.appendChild(el("p", { cls: "empty" }, "No results for this metric."));
    tables.forEach(function (t) { boards.appendChild(board(t)); });
    var sel = document.getElementById("metric");
    sel.value = state.metric;
    var desc = (D.descriptions || {})[state.metric];
    document.getElementById("metric-desc").textContent = desc ? state.metric + ": " + desc + "." : "";
    var st = document.getElementById("status");
    st.textContent = "metric=" + state.metric + (state.sort ? " sort=" + state.sort + " dir=" + (state.dir || defaultDir(state.sort)) : "");
    document.body.setAttribute("data-ready", "1");
  }

  function init() {
    document.getElementById("meta").textContent =
      "From " + D.results_dir + " (" + D.n_files + " results file" + (D.n_files === 1 ? "" : "s") +
      "), generated " + D.generated + " by recbench " + D.version + ".";
    var sel = document.getElementById("metric");
    D.metrics.forEach(function (m) { sel.appendChild(el("option", { value: m }, m + (m === D.headline ? " (headline)" : ""))); });
    sel.addEventListener("change", function () { state.metric = sel.value; writeHash(); });
    document.getElementById("reset").addEventListener("click", function (e) {
      e.preventDefault(); state.sort = null; state.dir = null; state.table = null; writeHash();
    });
    if (D.skipped && D.skipped.length) {
      var box = el("div", { cls: "box" }, el("h3", null, D.skipped.length + " results file" + (D.skipped.length === 1 ? "" : "s") + " skipped"));
      var ul = el("ul");
      D.skipped.forEach(function (s) { ul.appendChild(el("li", null, el("code", null, s.path), ": " + s.reason)); });
      box.appendChild(ul);
      document.getElementById("skipped").appendChild(box);
    }
    var foot = document.getElementById("footer");
    var ul2 = el("ul");
    ul2.appendChild(el("li", null, "Overall is the mean over the " + D.benchmark.length + " benchmark scenarios. " +
      "\u2020 marks an incomplete row: its Overall is the mean over the scenarios it has and is not comparable with complete rows."));
    ul2.appendChild(el("li", null, "Highlighted: best in its column (the random row excluded). Click a column header to sort; the order is kept in the address (e.g. #sort=mind&dir=desc)."));
    ul2.appendChild(el("li", null, "\u2691 The row's runs differ from the rest of its table in protocol version, seed, template or data fingerprint, or a scenario has several results files; such numbers are not directly comparable."));
    ul2.appendChild(el("li", null, D.random_label + (D.random_note || ": a random scorer's expected auc and gauc are exactly 0.5; for mrr and ndcg the expectation depends on candidate counts the results do not hold, so no random row is shown.")));
    ul2.appendChild(el("li", null, "Rows marked published: numbers from " + D.citation + " (",
      el("a", { href: D.citation_url }, D.citation_url), "), shown for gauc only (the paper's per-user AUC)."));
    foot.appendChild(ul2);
    parseHash();
    render();
    window.addEventListener("hashchange", function () { parseHash(); render(); });
    // Test hook: ?click=COL[&click=COL...] clicks that header of the first table, in order.
    (location.search || "").replace(/^\?/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i < 0 || kv.slice(0, i) !== "click") return;
      var col = decodeURIComponent(kv.slice(i + 1));
      var th = document.querySelector("table.lb thead th[data-col='" + col.replace(/'/g, "") + "']");
      if (th) th.click();
    });
  }
  init();
})();
</script>
</body>
</html>
"""
