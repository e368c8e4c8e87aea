"""Report outputs are inert whatever the model and folder names: no HTML in Markdown, no
spreadsheet formulas in CSV, no link that is not a relative path."""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from recbench.report import write_report
from recbench.report.html import _TEMPLATE

from test_report import TEN, _embedded_json, write_result  # noqa: E402  (tests/ is on sys.path)

EVIL = '<img src=x onerror="alert(1)">'
SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


@pytest.fixture
def hostile_tree(tmp_path):
    """Results whose folder is named like a script URL, with names that look like HTML and
    spreadsheet formulas."""
    root = tmp_path / "javascript:alert(1)"
    for j, s in enumerate(TEN[:2]):
        write_result(root, "javascript:alert(2)", s, 0.6 + j / 100, extra_metrics={"delta": -0.25})
        write_result(root, "=HYPERLINK(1)", s, 0.55)
        write_result(root, "@SUM(A1)", s, 0.54)
        write_result(root, "-cmd", s, 0.53)
        write_result(root, "+cmd", s, 0.52)
    # a model name with HTML in it (the folder keeps a plain name)
    for s in TEN[:2]:
        path = write_result(root, "htmlname", s, 0.51)
        obj = json.loads(path.read_text())
        obj["model"] = EVIL
        path.write_text(json.dumps(obj))
    return root


def test_markdown_escapes_names_and_links_only_relative_paths(hostile_tree, tmp_path):
    out = tmp_path  # the results folder "javascript:alert(1)" is a direct child of the output
    write_report(hostile_tree, out, formats=("md",))
    md = (out / "leaderboard.gauc.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=" in md
    targets = re.findall(r"\]\(([^)\s]*)\)", md)
    assert targets  # the run rows do link to their folders
    for t in targets:
        assert not SCHEME_LIKE.match(t) and not t.startswith(("/", "\\")), t
    assert "(./javascript%3Aalert%281%29/javascript%3Aalert%282%29/generative)" in md


def test_csv_cells_never_start_a_formula(hostile_tree, tmp_path):
    write_report(hostile_tree, tmp_path / "out", formats=("csv",))
    table = pd.read_csv(tmp_path / "out" / "zero-shot-generative.gauc.csv", index_col="model")
    assert {"'=HYPERLINK(1)", "'@SUM(A1)", "'-cmd", "'+cmd"} <= set(table.index)
    long = pd.read_csv(tmp_path / "out" / "results.csv")
    assert {"'=HYPERLINK(1)", "'-cmd"} <= set(long["model"])
    assert list(long["delta"].dropna()) == [-0.25, -0.25]  # negative numbers stay numbers
    for path in (tmp_path / "out").glob("*.csv"):
        for line in path.read_text().splitlines():
            for cell in line.split(","):
                cell = cell.strip('"')
                if cell[:1] in ("=", "+", "@") or (cell[:1] == "-" and not re.fullmatch(r"-[\d.eE+-]+", cell)):
                    pytest.fail(f"{path.name}: formula-like cell {cell!r}")


def test_html_payload_links_are_relative(hostile_tree, tmp_path):
    write_report(hostile_tree, tmp_path, formats=("html",))
    data = _embedded_json((tmp_path / "index.html").read_text())
    hrefs = []
    for tables in data["tables"].values():
        for t in tables:
            for r in t["rows"]:
                hrefs += r["hrefs"] + ([r["dir"]] if r["dir"] else [])
                hrefs += [c["href"] for c in r["cells"].values() if "href" in c]
    assert hrefs
    for h in hrefs:
        assert not SCHEME_LIKE.match(h) and not h.startswith("/"), h
    assert any(h.startswith("./javascript:alert(1)/") for h in hrefs)


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_html_script_builds_only_relative_links():
    src = re.search(r"function relHref\(h, folder\) \{.*?\n  \}\n", _TEMPLATE, re.DOTALL).group(0)
    cases = ["javascript:alert(1)/x.json", "../r/a#b?c/mind.json", "/etc/passwd", "\\\\evil.com\\x",
             "JaVaScRiPt:alert(1)", "ok/fine.json", "", None]
    script = src + f"console.log(JSON.stringify({json.dumps(cases)}.map(function (h) {{ return relHref(h); }})));"
    out = json.loads(subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True).stdout)
    assert out == ["javascript%3Aalert(1)/x.json", "../r/a%23b%3Fc/mind.json", None, None,
                   "JaVaScRiPt%3Aalert(1)", "ok/fine.json", None, None]
