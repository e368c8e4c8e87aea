"""Leaderboard reporter: tables from fixture results trees, outputs, CLI, HTML in Chromium."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from recbench import report as rep
from recbench.errors import ConfigError, DataError, RecBenchError
from recbench.report import (
    BENCHMARK_SCENARIOS,
    ResultsWarning,
    collect_results,
    leaderboard_tables,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
TEN = list(BENCHMARK_SCENARIOS)


# --------------------------------------------------------------------------------------
# Fixture results trees (built in tmp_path: the contract's layout, one JSON per scenario)
# --------------------------------------------------------------------------------------


def write_result(root: Path, model: str, scenario: str, gauc: float, *, scheme="generative",
                 pipeline="zero-shot", adapter=None, seed=2024, fingerprint=None, protocol="1",
                 template_sha=None, ci=None, sub="", created="2026-11-22T10:00:00Z", n=20000,
                 extra_metrics=None) -> Path:
    folder = root / sub / (model + (f"-lora-{adapter}" if adapter else "")) / scheme
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "n": n, "users": 1500, "positive_rate": 0.41, "auc": round(gauc - 0.01, 6), "gauc": gauc,
        "gauc_users": 1400, "gauc_skipped_users": 100, "mrr": round(gauc / 2, 6),
        "ndcg@1": round(gauc / 3, 6), "ndcg@5": round(gauc / 2.5, 6), "ndcg@10": round(gauc / 2.2, 6),
        "recall@1": 0.1, "hit@1": 0.2,
    }
    if scheme == "generative":
        metrics["logloss"] = round(1.5 - gauc, 6)
    if ci:
        metrics["gauc_ci"] = list(ci)
    metrics.update(extra_metrics or {})
    obj = {
        "recbench_version": "0.1.0", "protocol_version": protocol, "scenario": scenario,
        "model": model, "scheme": scheme, "pipeline": pipeline, "metrics": metrics,
        "meta": {
            "model_id": f"org/{model}", "model_revision": "main",
            "adapter": {"path": f"adapters/{adapter}", "hash": adapter} if adapter else None,
            "backend": "hf", "scheme": scheme, "seed": seed, "template_id": "default",
            "template_sha256": template_sha or ("ab" * 32),
            "label_token_ids": {"yes": 1, "no": 2},
            "data_fingerprint": fingerprint or f"fp-{scenario}-{seed}", "n": n,
            "truncation": {}, "timings": {}, "packages": {}, "created": created,
        },
    }
    path = folder / f"{scenario}.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def value(model_idx: int, scen_idx: int) -> float:
    return round(0.5 + 0.01 * model_idx + 0.003 * scen_idx, 6)


@pytest.fixture
def complete_tree(tmp_path):
    """Two complete zero-shot generative models, one discriminative, samples files beside."""
    root = tmp_path / "results"
    for j, s in enumerate(TEN):
        write_result(root, "smollm2-135m", s, value(1, j), ci=(value(1, j) - 0.01, value(1, j) + 0.01))
        write_result(root, "qwen-2", s, value(5, j))
        write_result(root, "minilm", s, value(2, j), scheme="discriminative")
    (root / "smollm2-135m" / "generative" / "mind.samples.jsonl").write_text('{"score": 0.5}\n')
    (root / "smollm2-135m" / "generative" / "notes.txt").write_text("not a result")
    return root


@pytest.fixture
def incomplete_tree(tmp_path):
    """A complete model, an incomplete one (3 of ten + demo), and a tuned incomplete one."""
    root = tmp_path / "results"
    for j, s in enumerate(TEN):
        write_result(root, "qwen-2", s, value(5, j))
    for j, s in enumerate(TEN[:3]):
        write_result(root, "mistral", s, value(20, j))
    write_result(root, "mistral", "demo", 0.99)
    for j, s in enumerate(TEN[:2]):
        write_result(root, "smollm2-135m", s, value(8, j), pipeline="sft", adapter="a1b2c3d4")
    return root


@pytest.fixture
def conflicting_tree(tmp_path):
    """Same table, runs that differ in seed, protocol version, data fingerprint, template."""
    root = tmp_path / "results"
    for j, s in enumerate(TEN):
        write_result(root, "alpha", s, value(1, j))
        write_result(root, "beta", s, value(2, j))
        write_result(root, "gamma", s, value(3, j))
    # beta: one scenario with another seed (and so another fingerprint)
    write_result(root, "beta", "yelp", value(2, 4), seed=7)
    # another table (discriminative), to check that sorting one table leaves the other alone
    for j, s in enumerate(TEN):
        write_result(root, "delta", s, value(4, j), scheme="discriminative")
    # gamma: protocol "0" everywhere; a different template for cds
    for j, s in enumerate(TEN):
        write_result(root, "gamma", s, value(3, j), protocol="0",
                     template_sha=("cd" * 32) if s == "cds" else None)
    return root


def read_ref(name: str) -> pd.DataFrame:
    return pd.read_csv(REPO / "recbench" / "data" / "reference" / name).set_index("model")


# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------


def test_reference_copies_identical_and_cited():
    pkg = REPO / "recbench" / "data" / "reference"
    human = REPO / "leaderboard" / "reference"
    names = sorted(p.name for p in pkg.glob("*.csv"))
    assert names == ["sft_generative.csv", "zero_shot_discriminative.csv", "zero_shot_generative.csv"]
    for name in names:
        assert (pkg / name).read_bytes() == (human / name).read_bytes(), name
        df = pd.read_csv(pkg / name)
        assert list(df.columns) == ["model", *TEN, "overall"]
        assert df[TEN + ["overall"]].notna().all().all()
    readme = (human / "README.md").read_text()
    assert "2503.05493" in readme and "Liu" in readme and "gauc" in readme
    ref = rep.load_reference()
    assert set(ref) == {"zero-shot-generative", "zero-shot-discriminative", "sft-generative"}
    assert ref["zero-shot-generative"].loc["Mistral", "overall"] == pytest.approx(0.6156)


# --------------------------------------------------------------------------------------
# collect_results
# --------------------------------------------------------------------------------------


def test_collect_results_long_format(complete_tree):
    df = collect_results(complete_tree)
    assert len(df) == 30  # samples.jsonl and notes.txt ignored
    for col in ["model", "adapter", "label", "pipeline", "scheme", "scenario", "n", "auc", "gauc",
                "mrr", "ndcg@10", "gauc_ci_lo", "gauc_ci_hi", "seed", "template_sha256",
                "data_fingerprint", "protocol_version", "path", "file"]:
        assert col in df.columns, col
    row = df[(df.model == "smollm2-135m") & (df.scenario == "mind")].iloc[0]
    assert row.gauc == pytest.approx(value(1, 0))
    assert row.gauc_ci_lo == pytest.approx(value(1, 0) - 0.01)
    assert row.file == "smollm2-135m/generative/mind.json"
    assert Path(row.path).is_file()
    assert row.pipeline == "zero-shot" and row.seed == 2024 and row.protocol_version == "1"
    assert df.attrs["skipped"] == []
    assert set(df.scheme) == {"generative", "discriminative"}


def test_collect_results_empty_folder_gives_empty_frame(tmp_path):
    df = collect_results(tmp_path)
    assert df.empty and "gauc" not in df.columns and "model" in df.columns


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def test_complete_tables(complete_tree):
    tables = leaderboard_tables(complete_tree)
    assert list(tables) == ["zero-shot-generative", "zero-shot-discriminative"]
    gen = tables["zero-shot-generative"]
    assert list(gen.columns[:2]) == ["source", "adapter"]
    assert list(gen.columns[2:12]) == TEN
    assert list(gen.columns[12:]) == ["overall", "complete", "n_scenarios", "n", "flags", "files"]
    for label, k in (("smollm2-135m", 1), ("qwen-2", 5)):
        row = gen.loc[label]
        assert row.source == "run"
        assert [row[s] for s in TEN] == pytest.approx([value(k, j) for j in range(10)])
        assert row.overall == pytest.approx(sum(value(k, j) for j in range(10)) / 10)
        assert bool(row.complete) and row.n_scenarios == 10 and row.n == 200000
        assert row["flags"] == ""
        assert row.files.split(";")[0] == f"{label}/generative/cds.json"
        assert len(row.files.split(";")) == 10
    # random row: 0.5 everywhere, labelled
    rnd = gen.loc[rep.RANDOM_LABEL]
    assert rnd.source == "random" and rnd.overall == 0.5 and all(rnd[s] == 0.5 for s in TEN)
    # published rows, same numbers as the reference CSV
    ref = read_ref("zero_shot_generative.csv")
    pub = gen[gen.source == "published"]
    assert len(pub) == len(ref)
    assert gen.loc["Mistral (published)", "mind"] == pytest.approx(ref.loc["Mistral", "mind"])
    assert gen.loc["GLM-4 (published)", "overall"] == pytest.approx(ref.loc["GLM-4", "overall"])
    assert "2503.05493" in gen.attrs["citation"]
    # the user's runs first, each group sorted by overall, best first
    runs = gen[gen.source == "run"]
    assert list(gen.index[:2]) == ["qwen-2", "smollm2-135m"] == list(runs.index)
    rest = gen[gen.source != "run"]
    assert list(rest.overall) == sorted(rest.overall, reverse=True)
    disc = tables["zero-shot-discriminative"]
    assert "minilm" in disc.index and "E5-2 (published)" in disc.index
    assert "qwen-2" not in disc.index


def test_reference_and_random_only_where_they_apply(complete_tree):
    no_extra = leaderboard_tables(complete_tree, include_reference=False, include_random=False)
    assert set(no_extra["zero-shot-generative"].source) == {"run"}
    # published numbers are per-user AUC: not shown for auc; random row is (0.5 exactly)
    auc = leaderboard_tables(complete_tree, metric="auc")["zero-shot-generative"]
    assert set(auc.source) == {"run", "random"}
    # mrr: no published rows, no random row (its expectation needs candidate counts)
    mrr = leaderboard_tables(complete_tree, metric="MRR")["zero-shot-generative"]
    assert set(mrr.source) == {"run"}
    assert mrr.loc["qwen-2", "mind"] == pytest.approx(value(5, 0) / 2)
    # no SFT results -> no SFT table, even though published SFT numbers exist
    assert "sft-generative" not in leaderboard_tables(complete_tree)


def test_incomplete_rows_are_marked_and_ranked_after_complete(incomplete_tree):
    tables = leaderboard_tables(incomplete_tree, include_reference=False)
    gen = tables["zero-shot-generative"]
    assert list(gen.columns[2:13]) == TEN + ["demo"]
    mis = gen.loc["mistral"]
    assert not bool(mis.complete) and mis.n_scenarios == 3
    assert mis.overall == pytest.approx(sum(value(20, j) for j in range(3)) / 3)  # demo not counted
    assert mis.demo == 0.99 and math.isnan(mis.yelp)
    assert bool(gen.loc["qwen-2"].complete)
    # the user's runs first; among them a partial mean never outranks complete rows
    assert list(gen.index) == ["qwen-2", "mistral", rep.RANDOM_LABEL]
    sft = tables["sft-generative"]
    assert list(sft.index) == ["smollm2-135m +lora:a1b2c3d4", rep.RANDOM_LABEL]
    tuned = sft.loc["smollm2-135m +lora:a1b2c3d4"]
    assert tuned.adapter == "a1b2c3d4" and tuned.n_scenarios == 2 and not bool(tuned.complete)
    # Markdown marks the incomplete Overall and explains it
    report = rep.build_report(incomplete_tree, include_reference=False)
    md = rep.render_markdown(report)
    line = next(l for l in md.splitlines() if l.startswith("| mistral"))
    assert f"*{sum(value(20, j) for j in range(3)) / 3:.4f}*†" in line and "| 3/10 |" in line
    assert "† Incomplete row" in md
    # the best Overall counts complete rows only
    qwen_line = next(l for l in md.splitlines() if l.startswith("| qwen-2"))
    assert "**" in qwen_line.split("|")[-5]
    # published SFT rows appear once there are SFT generative results
    assert "Llama-3 (published)" in leaderboard_tables(incomplete_tree)["sft-generative"].index


def test_conflicting_metadata_is_flagged(conflicting_tree):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultsWarning)  # flags are not file warnings
        tables = leaderboard_tables(conflicting_tree, include_reference=False)
    gen = tables["zero-shot-generative"]
    assert gen.loc["alpha", "flags"] == ""
    beta = gen.loc["beta", "flags"]
    assert "seed 7" in beta and "2024" in beta and "yelp" in beta
    assert "data fingerprint" in beta
    gamma = gen.loc["gamma", "flags"]
    assert "protocol 0" in gamma and "template" in gamma and "cds" in gamma
    notes = " ".join(gen.attrs["notes"])
    assert "mixes seeds" in notes and "mixes protocols" in notes and "Column yelp mixes data fingerprints" in notes
    # numbers are still shown, not silently dropped or mixed
    assert gen.loc["beta", "yelp"] == pytest.approx(value(2, 4))
    report = rep.build_report(conflicting_tree, include_reference=False)
    md = rep.render_markdown(report)
    assert "⚑" in md and "not directly comparable" in md
    t = report.headline[0]
    beta_row = next(r for r in t.rows if r.label == "beta")
    assert beta_row.cells["yelp"].flags and not beta_row.cells["mind"].flags


def test_tie_in_metadata_flags_every_row(tmp_path):
    root = tmp_path / "r"
    write_result(root, "a", "mind", 0.6, seed=1)
    write_result(root, "b", "mind", 0.6, seed=2)
    gen = leaderboard_tables(root, include_reference=False)["zero-shot-generative"]
    assert "seed 1" in gen.loc["a", "flags"] and "seed 2" in gen.loc["b", "flags"]


def test_duplicate_results_newest_shown_and_flagged(tmp_path):
    root = tmp_path / "results"
    write_result(root, "m", "mind", 0.60, sub="run1", created="2026-01-01T00:00:00Z")
    write_result(root, "m", "mind", 0.70, sub="run2", created="2026-02-01T00:00:00Z")
    gen = leaderboard_tables(root, include_reference=False)["zero-shot-generative"]
    assert gen.loc["m", "mind"] == pytest.approx(0.70)
    assert "2 results files for mind" in gen.loc["m", "flags"]
    assert gen.loc["m", "files"] == "run1/m/generative/mind.json;run2/m/generative/mind.json"


def test_lower_is_better_metric(complete_tree):
    report = rep.build_report(complete_tree, metric="logloss", include_reference=False)
    t = report.headline[0]
    assert t.key == "zero-shot-generative"
    best = [r.label for r in t.rows if r.cells["mind"].best]
    assert best == ["qwen-2"]  # 1.5 - gauc: the higher-gauc model has the lower logloss
    assert t.rows[0].label == "qwen-2"
    # no discriminative logloss -> no discriminative table for it
    assert [x.key for x in report.headline] == ["zero-shot-generative"]


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_corrupt_and_incomplete_files_are_named_skipped_and_counted(complete_tree):
    bad = complete_tree / "qwen-2" / "generative" / "hm.json"
    bad.write_text("{not json")
    nokeys = complete_tree / "minilm" / "discriminative" / "yelp.json"
    nokeys.write_text(json.dumps({"model": "minilm", "scenario": "yelp", "scheme": "discriminative"}))
    stray = complete_tree / "minilm" / "adapter_config.json"  # not in a scheme folder: ignored
    stray.write_text(json.dumps({"r": 32}))
    with pytest.warns(ResultsWarning) as rec:
        report = rep.build_report(complete_tree)
    messages = " ".join(str(w.message) for w in rec)
    assert "hm.json" in messages and "not valid JSON" in messages
    assert "yelp.json" in messages and "missing keys: metrics, meta" in messages
    assert "adapter_config" not in messages
    assert len(report.skipped) == 2 and len(report.records) == 28
    gen = {t.key: t for t in report.headline}["zero-shot-generative"]
    qwen = next(r for r in gen.rows if r.label == "qwen-2")
    assert qwen.n_scenarios == 9 and not qwen.complete
    md = rep.render_markdown(report)
    assert "Skipped 2 results file(s)" in md and str(bad) in md


def test_missing_empty_and_unreadable_results_raise(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        leaderboard_tables(tmp_path / "nope")
    with pytest.raises(DataError, match="no results files"):
        leaderboard_tables(tmp_path)
    bad = tmp_path / "m" / "generative" / "mind.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    with pytest.warns(ResultsWarning), pytest.raises(DataError, match="1 file.*skipped.*mind.json"):
        write_report(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_metric_and_format(complete_tree, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown metric 'gacu' \(did you mean 'gauc'"):
        leaderboard_tables(complete_tree, metric="gacu")
    only_disc = tmp_path / "d"
    write_result(only_disc, "minilm", "mind", 0.6, scheme="discriminative")
    with pytest.raises(ConfigError, match="'logloss' is not in any results file"):
        leaderboard_tables(only_disc, metric="logloss")
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        write_report(complete_tree, tmp_path / "o", formats="md,pdf")
    for exc in (ConfigError, DataError):
        assert issubclass(exc, RecBenchError)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def test_write_report_text_formats(incomplete_tree, tmp_path):
    out = tmp_path / "lb"
    written = write_report(incomplete_tree, out, formats=("md", "csv", "tex", "html"))
    names = sorted(p.name for p in written)
    assert names == sorted([
        "leaderboard.gauc.md", "results.csv", "index.html",
        "zero-shot-generative.gauc.csv", "sft-generative.gauc.csv",
        "zero-shot-generative.gauc.tex", "sft-generative.gauc.tex",
    ])
    assert all(p.is_file() for p in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    if os.name == "posix":
        assert (out / "results.csv").stat().st_mode & 0o777 == 0o666 & ~rep._UMASK
    md = (out / "leaderboard.gauc.md").read_text()
    assert "## Zero-shot, generative (`zero-shot-generative`)" in md
    assert "Mistral (published)" in md and "2503.05493" in md
    assert "[mistral](../results/mistral/generative)" in md  # rows link to their files
    csv = pd.read_csv(out / "zero-shot-generative.gauc.csv", index_col="model")
    assert csv.loc["mistral", "n_scenarios"] == 3 and not csv.loc["mistral", "complete"]
    assert csv.loc["mistral", "files"].split(";")[0] == "mistral/generative/demo.json"
    long = pd.read_csv(out / "results.csv")
    assert len(long) == 16 and {"gauc", "seed", "data_fingerprint", "path"} <= set(long.columns)
    tex = (out / "zero-shot-generative.gauc.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\textbf{" in tex and "$^\\dagger$" in tex
    assert "H\\&M" in tex and "\\bottomrule" in tex
    html = (out / "index.html").read_text()
    data = _embedded_json(html)
    assert data["headline"] == "gauc" and "ndcg@10" in data["metrics"] and "auc" in data["tables"]
    gen = data["tables"]["gauc"][0]
    mis = next(r for r in gen["rows"] if r["label"] == "mistral")
    assert mis["complete"] is False and mis["count"] == 3
    assert mis["cells"]["mind"]["href"] == "../results/mistral/generative/mind.json"
    assert (out / mis["cells"]["mind"]["href"]).resolve().is_file()
    assert "<link" not in html and "src=\"http" not in html and "@import" not in html


def _embedded_json(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="recbench-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def test_html_escapes_hostile_names(tmp_path):
    root = tmp_path / "r"
    write_result(root, "evil</script><b>x", "mind", 0.6)
    out = tmp_path / "o"
    write_report(root, out, formats="html")
    html = (out / "index.html").read_text()
    assert "evil</script>" not in html
    rows = _embedded_json(html)["tables"]["gauc"][0]["rows"]
    assert [r["label"] for r in rows if r["source"] == "run"] == ["evil</script><b>x"]


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_write_report_figures(incomplete_tree, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    out = tmp_path / "lb"
    written = write_report(incomplete_tree, out, formats="png,svg,html")
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == ["sft-generative.gauc.heatmap.png", "sft-generative.gauc.overall.png",
                    "zero-shot-generative.gauc.heatmap.png", "zero-shot-generative.gauc.overall.png"]
    for name in pngs:
        img = mpimg.imread(out / name)
        assert img.shape[0] > 100 and img.shape[1] > 200 and img.std() > 0.05
        assert (out / name.replace(".png", ".svg")).read_text().lstrip().startswith("<?xml")
    figs = _embedded_json((out / "index.html").read_text())["tables"]["gauc"][0]["figures"]
    assert figs["heatmap_png"] == "zero-shot-generative.gauc.heatmap.png"


def test_demo_only_runs_come_first_and_are_drawn(tmp_path):
    """A new user's first runs cover only the demo: they head the table and the Overall chart."""
    pytest.importorskip("matplotlib")
    from recbench.report.figures import _overall_bars

    root = tmp_path / "results"
    write_result(root, "smollm2-135m", "demo", 0.56, n=500)
    write_result(root, "tiny", "demo", 0.52, n=500)
    report = rep.build_report(root, all_metrics=False)
    [table] = report.headline
    labels = [r.label for r in table.rows]
    assert labels[:2] == ["smollm2-135m", "tiny"]  # above every published row
    assert any(r.source == "published" for r in table.rows[2:])
    fig = _overall_bars(table)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks[-2:] == ["tiny (demo) †", "smollm2-135m (demo) †"]  # drawn at the top
    widths = [p.get_width() for p in fig.axes[0].patches if p.get_height() > 0]
    assert widths[-2:] == pytest.approx([0.52, 0.56])
    assert sum(1 for t in ticks if t.endswith("(published)")) == sum(1 for r in table.rows if r.source == "published")


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def cli(argv):
    """recbench.cli.main when it exists, else a parser built from register()."""
    try:
        from recbench.cli import main
    except ImportError:  # pragma: no cover - the main CLI is written elsewhere
        from recbench.cli import report as cmd

        parser = argparse.ArgumentParser(prog="recbench")
        cmd.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        try:
            return args.func(args)
        except RecBenchError as exc:
            import sys

            print(f"recbench: error: {exc}", file=sys.stderr)
            return 2
    return main(argv)


def test_cli_end_to_end(complete_tree, tmp_path, capsys):
    (complete_tree / "qwen-2" / "generative" / "hm.json").write_text("{broken")
    out = tmp_path / "board"
    rc = cli(["report", "--results", str(complete_tree), "--output", str(out), "--format", "md,csv,html"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "| Model | MIND | MovieLens |" in captured.out
    assert "| smollm2-135m |" in captured.out or "[smollm2-135m](" in captured.out
    assert "Wrote 5 files:" in captured.out and str(out / "index.html") in captured.out
    assert "warning: skipped results file" in captured.err and "hm.json" in captured.err
    assert (out / "leaderboard.gauc.md").is_file() and (out / "index.html").is_file()
    # --strict: a skipped file is a failure
    rc = cli(["report", "--results", str(complete_tree), "--output", str(out), "--format", "md",
              "--strict", "--no-reference"])
    captured = capsys.readouterr()
    assert rc == 1 and "(published)" not in captured.out


def test_cli_bad_input(tmp_path, capsys, complete_tree):
    rc = cli(["report", "--results", str(tmp_path / "missing"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = cli(["report", "--results", str(empty), "--output", str(tmp_path / "o")])
    assert rc == 2 and "no results files" in capsys.readouterr().err
    broken = tmp_path / "broken" / "m" / "generative" / "mind.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("")
    rc = cli(["report", "--results", str(tmp_path / "broken"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "warning: skipped results file" in err and "error: no readable results" in err
    assert err.count("mind.json") == 2  # named in the warning and in the error
    rc = cli(["report", "--results", str(complete_tree), "--output", str(tmp_path / "o"), "--metric", "ndcg"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown metric 'ndcg'" in err and "ndcg@" in err
    assert not (tmp_path / "o").exists()


def test_cli_register_defaults():
    from recbench.cli import report as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report"])
    assert (args.results, args.output, args.metric) == ("results", None, None)  # None: each task's headline
    assert args.formats == "md,csv,tex,html,png,svg" and args.no_reference is False
    assert args.func is cmd.run


def test_cli_default_output_is_beside_the_results_never_the_checkout(complete_tree, monkeypatch, capsys):
    """The default output never lands in (or overwrites) the repository's own leaderboard/."""
    from recbench.cli.report import output_dir

    monkeypatch.chdir(complete_tree.parent)
    rc = cli(["report", "--format", "md"])  # --results results, no --output
    assert rc == 0, capsys.readouterr().err
    assert (complete_tree / "leaderboard" / "leaderboard.gauc.md").is_file()
    # run from a checkout, the defaults stay out of its tracked leaderboard/
    monkeypatch.chdir(REPO)
    out = output_dir("results", None).resolve()
    assert out == REPO / "results" / "leaderboard" and out != REPO / "leaderboard"
    # the old habit (--output leaderboard in a checkout) is refused before anything is written
    before = {p: p.stat().st_mtime_ns for p in (REPO / "leaderboard").iterdir() if p.is_file()}
    rc = cli(["report", "--results", str(complete_tree), "--output", "leaderboard", "--format", "md"])
    err = capsys.readouterr().err
    assert rc == 2 and "recbench's own published leaderboard" in err and len(err.strip().splitlines()) == 1
    assert before == {p: p.stat().st_mtime_ns for p in (REPO / "leaderboard").iterdir() if p.is_file()}
    # regenerating the published leaderboard from its own results stays possible
    assert output_dir(str(REPO / "leaderboard" / "results"), "leaderboard").resolve() == REPO / "leaderboard"


# --------------------------------------------------------------------------------------
# The HTML page in headless Chromium
# --------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def chromium(tmp_path, url, *extra, timeout=90):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra, url]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - a broken browser install
        pytest.skip("chromium did not finish in time")
    return proc


class _Rows(HTMLParser):
    """table key -> list of (row label, {column: value or None})."""

    def __init__(self):
        super().__init__()
        self.tables, self._table, self._row = {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "lb" in (a.get("class") or ""):
            self._table = self.tables.setdefault(a["data-table"], [])
        elif tag == "tr" and a.get("data-label") is not None and self._table is not None:
            self._row = (a["data-label"], {})
            self._table.append(self._row)
        elif tag == "td" and self._row is not None and a.get("data-col"):
            v = a.get("data-value")
            self._row[1][a["data-col"]] = float(v) if v not in (None, "") else None


def _page(tmp_path, tree):
    out = tmp_path / "lb"
    write_report(tree, out, formats=("html",))
    return (out / "index.html").resolve()


@needs_chromium
def test_html_renders_in_chromium_screenshot(tmp_path, incomplete_tree):
    import matplotlib.image as mpimg

    page = _page(tmp_path, incomplete_tree)
    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    img = mpimg.imread(shot)
    assert img.shape[:2] == (900, 1280)
    assert img[..., :3].std() > 0.05  # not blank
    # the table area (below the header) has ink in many rows, not only the page header
    rows_with_ink = (img[200:800, :, :3].std(axis=(1, 2)) > 0.02).sum()
    assert rows_with_ink > 100


@needs_chromium
@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_html_sorting_in_chromium(tmp_path, conflicting_tree):
    page = _page(tmp_path, conflicting_tree)
    default = _Rows()
    proc = chromium(tmp_path, page.as_uri(), "--dump-dom")
    default.feed(proc.stdout)
    gen = default.tables["zero-shot-generative"]
    labels = [label for label, _ in gen]
    assert labels == list(leaderboard_tables(conflicting_tree)["zero-shot-generative"].index)
    assert any(l.endswith("(published)") for l in labels) and rep.RANDOM_LABEL in labels
    assert 'data-ready="1"' in proc.stdout
    for col in ("mind", "yelp"):  # the default order is by Overall, not by these columns
        vals = [cols.get(col) for _, cols in gen]
        assert vals != sorted(vals) and vals != sorted(vals, reverse=True)

    for direction in ("asc", "desc"):
        parsed = _Rows()
        proc = chromium(tmp_path, page.as_uri() + f"#sort=mind&dir={direction}", "--dump-dom")
        parsed.feed(proc.stdout)
        rows = parsed.tables["zero-shot-generative"]
        mind = [cols.get("mind") for _, cols in rows]
        present = [v for v in mind if v is not None]
        assert present == sorted(present, reverse=direction == "desc"), (direction, mind)
        assert len(present) == len(rows)  # every row has mind here
        assert f"sort=mind dir={direction}" in proc.stdout

    # clicking a header sorts (first click: best first; second click: reversed)
    for clicks, reverse in ((["yelp"], True), (["yelp", "yelp"], False)):
        parsed = _Rows()
        query = "?" + "&".join(f"click={c}" for c in clicks)
        proc = chromium(tmp_path, page.as_uri() + query, "--dump-dom")
        parsed.feed(proc.stdout)
        yelp = [cols.get("yelp") for _, cols in parsed.tables["zero-shot-generative"]]
        assert yelp == sorted(yelp, reverse=reverse), (clicks, yelp)
        # the other table keeps its default order
        disc_default = default.tables["zero-shot-discriminative"]
        disc_yelp = [cols.get("yelp") for _, cols in disc_default]
        assert disc_yelp != sorted(disc_yelp, reverse=True)  # a yelp sort would show
        assert parsed.tables["zero-shot-discriminative"] == disc_default

    # metric selector via the address: auc has no published rows, mrr no random row
    parsed = _Rows()
    proc = chromium(tmp_path, page.as_uri() + "#metric=mrr&sort=model&dir=asc", "--dump-dom")
    parsed.feed(proc.stdout)
    labels = [label for label, _ in parsed.tables["zero-shot-generative"]]
    assert labels == ["alpha", "beta", "gamma"]
