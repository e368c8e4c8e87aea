"""The seqrec task end to end with the torch-free dummy backend: groups, metrics, the
full-catalogue path, the refusal of pairwise full ranking, CLI/API, results and report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import recbench
from recbench.cli import main
from recbench.config import RunConfig
from recbench.errors import ConfigError
from recbench.evaluate import RecBench
from recbench.tasks import get_task
from recbench.types import UserGroup


def _samples():
    return pd.DataFrame({"user_id": ["a", "b"], "history": [["h1", "h2"], ["h3", "h4"]],
                         "target": ["t1", "t2"], "candidates": [["t1", "n1", "n2"], ["t2", "n3"]]})


def test_groups_put_the_target_first_and_carry_no_labels():
    task = get_task("seqrec")
    groups = task.groups(_samples())
    assert groups == [UserGroup("a", ("h1", "h2"), ("t1", "n1", "n2"), (0, 1, 2)),
                      UserGroup("b", ("h3", "h4"), ("t2", "n3"), (3, 4))]
    assert task.num_scores(_samples()) == 5
    assert set(task.item_ids(_samples())) == {"h1", "h2", "h3", "h4", "t1", "t2", "n1", "n2", "n3"}


def test_metrics_from_slot_scores():
    task = get_task("seqrec")
    # a: target 0.5 below n1 0.9 -> rank 2; b: target 0.7 above n3 -> rank 1
    m = task.metrics(_samples(), np.array([0.5, 0.9, 0.1, 0.7, 0.2]), probabilities=True, bootstrap=0, seed=0)
    assert m["mean_rank"] == 1.5 and m["recall@1"] == 0.5 and m["candidates"] == 2.5
    assert m["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert "logloss" not in m and "gauc" not in m
    log = task.sample_log(_samples(), np.array([0.5, 0.9, 0.1, 0.7, 0.2]))
    assert log["label"].tolist() == [1, 0, 0, 1, 0] and log["item_id"].tolist() == ["t1", "n1", "n2", "t2", "n3"]


def _run(tmp_path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("task", "seqrec")
    bench = RecBench(model="dummy", scenarios="demo", output_dir=str(tmp_path), **kw)
    return bench, bench.evaluate()


def test_both_pointwise_schemes_through_the_api(tmp_path):
    for scheme in ("generative", "discriminative"):
        bench, table = _run(tmp_path, scheme=scheme, limit=40, bootstrap=50)
        row = table.iloc[0]
        assert row["task"] == "seqrec" and row["n"] == 40
        assert 0.045 * 2 < row["ndcg@10"] <= 1  # word overlap on the demo beats a random ranking
        path = tmp_path / "dummy" / scheme / "seqrec" / "demo.json"
        assert bench.runs[0].path == path
        doc = json.loads(path.read_text())
        assert doc["task"] == "seqrec" and doc["protocol_version"] == "seqrec-1"
        assert doc["meta"]["settings"]["candidates"] == 100 and doc["meta"]["settings"]["history_len"] == 19
        assert doc["metrics"]["candidates"] == 100 and len(doc["metrics"]["ndcg@10_ci"]) == 2
        t = doc["meta"]["timings"]
        # generative: one request per (user, candidate); discriminative: each distinct text once
        assert t["requests"] == (4000 if scheme == "generative" else t["distinct_users"] + t["distinct_items"])


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_cli_runs_resume_from_the_cache_and_variants_get_their_own_folder(tmp_path, capsys):
    out = tmp_path / "res"
    args = ["zero-shot", "--task", "seqrec", "--model", "dummy", "--scheme", "generative", "--limit", "10",
            "--output", str(out), "--quiet", "--log-samples"]
    assert main(args) == 0
    assert "0 from the cache" in capsys.readouterr().out
    path = out / "dummy" / "generative" / "seqrec" / "demo.json"
    first = json.loads(path.read_text())
    lines = path.with_name("demo.samples.jsonl").read_text().splitlines()
    assert len(lines) == 1000 and sum(json.loads(x)["label"] for x in lines) == 10
    assert main(args) == 0
    assert json.loads(path.read_text())["meta"]["timings"]["computed"] == 0
    assert json.loads(path.read_text())["metrics"] == first["metrics"]
    assert main(args[:-1] + ["--history-len", "5"]) == 0
    assert (out / "dummy+h5" / "generative" / "seqrec" / "demo.json").is_file()  # the default run is kept


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_full_catalogue_matrix_path_equals_scoring_every_pair(tmp_path, monkeypatch):
    bench, table = _run(tmp_path / "a", scheme="discriminative", candidates="all", limit=30, log_samples=True)
    meta = bench.runs[0].meta
    assert meta["full_catalogue"] is True and meta["timings"]["catalogue_items"] == 442
    assert bench.runs[0].path.parent.parent.parent.name == "dummy+all"
    ranks = dict(zip(bench.runs[0].samples["user_id"], bench.runs[0].samples["rank"]))
    assert len(ranks) == 30
    # the same run through the generic pairwise path: every (user, catalogue item) slot scored
    from recbench.schemes.discriminative import DiscriminativeScheme

    monkeypatch.setattr(DiscriminativeScheme, "ranks_catalogue", False)
    bench2, table2 = _run(tmp_path / "b", scheme="discriminative", candidates="all", limit=30, force=True,
                          log_samples=True)
    assert "full_catalogue" not in bench2.runs[0].meta
    pairs = bench2.runs[0].samples
    assert len(pairs) == 30 * 442
    test = recbench.load_scenario("demo", task="seqrec", candidates="all").test.iloc[:30]
    exact = 0
    by_user = dict(tuple(pairs.groupby("user_id")))
    for user, excl in zip(test["user_id"], test["exclude"]):
        mine = by_user[user][~by_user[user].item_id.isin(excl)]
        t = float(mine.loc[mine.label == 1, "score"].iloc[0])
        others = mine.loc[mine.label == 0, "score"].to_numpy()
        # the dummy's word-count vectors tie often; summation order may split a tie either way
        low, high = 1 + int(np.sum(others > t + 1e-6)), 1 + int(np.sum(others >= t - 1e-6))
        assert low <= ranks[user] <= high, user
        exact += low == high
    assert exact >= 8  # where the target is not tied, the ranks agree exactly
    assert table.loc[0, "candidates"] == table2.loc[0, "candidates"] < 442  # other interactions not ranked
    assert table.loc[0, "ndcg@10"] == pytest.approx(table2.loc[0, "ndcg@10"], abs=0.03)


def test_full_catalogue_with_a_pairwise_scheme_is_refused_unless_forced(tmp_path):
    with pytest.raises(ConfigError, match=r"generative scheme scores every .* 88,400 forward passes \(200 users x 442"):
        _run(tmp_path, scheme="generative", candidates="all")
    bench, table = _run(tmp_path, scheme="generative", candidates="all", limit=2, force=True)
    assert bench.runs[0].meta["timings"]["requests"] == 2 * 442 and table.loc[0, "n"] == 2


@pytest.mark.parametrize("value", ["0", "1", "some"])
def test_bad_candidates_fail_before_any_work(value, capsys, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("data work started before validation")

    monkeypatch.setattr("recbench.tasks.seqrec.SeqRecTask.load", boom)
    with pytest.raises(SystemExit):  # the parser refuses it
        main(["zero-shot", "--task", "seqrec", "--model", "dummy", "--candidates", value])
    with pytest.raises(ConfigError, match="candidates"):
        RecBench(model="dummy", task="seqrec", candidates=value)
    assert RunConfig(candidates="ALL").candidates == "all" and RunConfig(candidates="7").candidates == 7


def test_default_task_stays_ctr(tmp_path):
    bench, table = _run(tmp_path, scheme="discriminative", task="ctr", limit=20)
    assert table.loc[0, "task"] == "ctr" and "gauc" in table.columns
    assert bench.runs[0].path == tmp_path / "dummy" / "discriminative" / "demo.json"
    assert json.loads(bench.runs[0].path.read_text())["protocol_version"] == "1"
    assert RecBench(model="dummy", scenarios="demo").task.name == "ctr"


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_report_writes_a_separate_seqrec_leaderboard(tmp_path):
    from recbench.report import build_reports, leaderboard_tables, write_report

    res = tmp_path / "res"
    _run(res, scheme="discriminative", task="ctr", limit=20)
    _run(res, scheme="discriminative", limit=20)
    bench, _ = _run(res, scheme="generative", limit=5)
    written = {p.name for p in write_report(res, tmp_path / "lb", formats=("md", "csv", "tex", "html"))}
    # ctr's files as before; seqrec's named apart
    assert {"leaderboard.gauc.md", "zero-shot-discriminative.gauc.csv", "zero-shot-discriminative.gauc.tex",
            "results.csv", "index.html"} <= written
    assert {"seqrec-leaderboard.ndcg_10.md", "zero-shot-discriminative-seqrec.ndcg_10.csv",
            "zero-shot-generative-seqrec.ndcg_10.tex", "seqrec-results.csv", "seqrec-index.html"} <= written
    assert not any("seqrec" in n and "gauc" in n for n in written)
    md = (tmp_path / "lb" / "seqrec-leaderboard.ndcg_10.md").read_text()
    assert md.startswith("# RecBench seqrec leaderboard: ndcg@10") and "(seqrec)" in md
    assert "zero-shot-discriminative-seqrec" not in (tmp_path / "lb" / "leaderboard.gauc.md").read_text()
    tables = leaderboard_tables(res, task="seqrec")
    assert set(tables) == {"zero-shot-discriminative-seqrec", "zero-shot-generative-seqrec"}
    random_row = tables["zero-shot-generative-seqrec"].loc["random scorer (expected)"]
    assert random_row["demo"] == pytest.approx(0.0454, abs=5e-4)  # 100 candidates
    assert set(leaderboard_tables(res)) == {"zero-shot-discriminative"}  # ctr by default
    assert set(bench.leaderboard()) == set(tables)  # a seqrec bench: its own task
    # a metric applies to every task that has it; the others keep their headline
    assert [r.metric for r in build_reports(res, metric="mrr")] == ["mrr", "mrr"]
    assert [r.metric for r in build_reports(res, metric="gauc")] == ["gauc", "ndcg@10"]
    assert [r.metric for r in build_reports(res, metric="mean_rank")] == ["gauc", "mean_rank"]
    with pytest.raises(ConfigError, match="unknown metric"):
        build_reports(res, metric="ndgc@10")
    assert main(["report", "--results", str(res), "--output", str(tmp_path / "lb2"), "--format", "md"]) == 0
    assert (tmp_path / "lb2" / "seqrec-leaderboard.ndcg_10.md").is_file()


@pytest.mark.parametrize("scheme, extra", [("generative", []), ("discriminative", ["--candidates", "all"])])
def test_shards_then_merge_give_the_single_run(tmp_path, scheme, extra, monkeypatch):
    """--shard i/N jobs score a share of the users (the catalogue path too); the unsharded rerun
    reads everything from the cache and writes the numbers a single process writes. Together the
    shards embed each distinct text once (the catalogue is split, not embedded by every shard)."""
    from recbench.scorers.dummy import DummyEmbeddingScorer

    embedded: list = []
    real_embed = DummyEmbeddingScorer.embed
    monkeypatch.setattr(DummyEmbeddingScorer, "embed",
                        lambda self, texts, role: embedded.extend((role, t) for t in texts) or real_embed(self, texts, role))
    base = ["zero-shot", "--task", "seqrec", "--model", "dummy", "--scheme", scheme, "--limit", "12", "--quiet",
            *extra]
    cache, out = ["--cache-dir", str(tmp_path / "c")], tmp_path / "res"
    for i in range(2):  # as on two nodes: each job its own cache, merged afterwards
        assert main(base + ["--cache-dir", str(tmp_path / f"c{i}"), "--shard", f"{i}/2", "--output", str(out)]) == 0
    assert not list(out.glob("**/demo.json"))
    assert main(["cache", "merge", str(tmp_path / "c0"), str(tmp_path / "c1"), *cache]) == 0
    by_shards = list(embedded)
    assert len(by_shards) == len(set(by_shards))
    assert main(base + cache + ["--output", str(out)]) == 0
    [path] = list(out.glob("**/seqrec/demo.json"))
    merged = json.loads(path.read_text())
    assert merged["meta"]["timings"]["computed"] == 0  # everything came from the shards' cache entries
    single = tmp_path / "one"
    assert main(base + ["--cache-dir", str(tmp_path / "c2"), "--output", str(single)]) == 0
    [one] = list(single.glob("**/seqrec/demo.json"))
    assert json.loads(one.read_text())["metrics"] == merged["metrics"]
    if scheme == "discriminative":
        assert sorted(by_shards) == sorted(embedded[len(by_shards):]) != []  # the single run embeds the same
