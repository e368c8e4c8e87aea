"""Conventional baselines without a training library: random, popularity and item-kNN checked
against hand-worked cases and an independent recomputation; the `conventional` scheme, the
`recbench baseline` command, the trained-model cache, LLM-for-RS vector-cache sharing and the
report's baseline table and "LLMs vs conventional" comparison, all in seconds (no torch)."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbench.baselines import BaselineConfig
from recbench.baselines.base import FitData
from recbench.baselines.data import Vocab, encode_rows, pairs_from_frame
from recbench.baselines.simple import ItemKNNRecommender, PopularityRecommender, RandomRecommender
from recbench.cli import main
from recbench.errors import ConfigError
from recbench.evaluate import RecBench
from recbench.models import resolve_model

FIX = Path(__file__).parent / "fixtures" / "movielens"

# Three fine-tuning users. Liked (history + positive candidates): A {a, b, c}, B {b, c}, C {a, e}.
TRAIN = pd.DataFrame([
    ("A", "c", 1, ["a", "b"]), ("A", "d", 0, ["a", "b"]),
    ("B", "c", 1, ["b"]),
    ("C", "e", 1, ["a"]), ("C", "b", 0, ["a"]),
], columns=["user_id", "item_id", "label", "history"])


def fitted(cls, frame=TRAIN, seed=0):
    vocab = Vocab.build(list(frame["item_id"]) + [h for hist in frame["history"] for h in hist] + ["x"])
    model = cls(BaselineConfig())
    pairs = pairs_from_frame(frame, vocab, 10)
    model.fit(FitData(vocab=vocab, train=pairs, valid=pairs.take(np.arange(0)), history_width=10,
                      train_frame=frame, seed=seed))
    return model, vocab


def pairs(vocab, rows):
    users, hists, items = zip(*rows)
    return encode_rows(users, hists, items, None, vocab, 10)


def test_popularity_counts_the_users_who_liked_each_item():
    model, vocab = fitted(PopularityRecommender)
    got = model.score(pairs(vocab, [("u", ("a",), i) for i in ("a", "b", "c", "d", "e", "x", "never-seen")]))
    assert got.tolist() == [2, 2, 2, 0, 1, 0, 0]  # d only a negative; x and never-seen liked by nobody


def test_itemknn_matches_the_hand_worked_cosines():
    # n: a 2, b 2, c 2, e 1. co(a,b) 1, co(a,c) 1, co(b,c) 2, co(a,e) 1, co(c,e) 0.
    model, vocab = fitted(ItemKNNRecommender)
    got = model.score(pairs(vocab, [
        ("u", ("a", "b"), "c"),  # (1/2 + 2/2) / 2
        ("u", ("a", "b"), "e"),  # (1/sqrt(2) + 0) / 2
        ("u", ("a", "b", "a"), "e"),  # a repeated history item counts once
        ("u", ("b", "x"), "c"),  # x: liked by no train user, similarity 0, still in the mean
        ("u", ("b", "y", "z"), "c"),  # two different unknown items are two items
        ("u", ("a",), "d"),  # d: liked by nobody
        ("u", (), "c"),  # no history
    ]))
    want = [0.75, 0.5 / math.sqrt(2), 0.5 / math.sqrt(2), 0.5, 1 / 3, 0.0, 0.0]
    assert got == pytest.approx(want, abs=1e-12)


def test_random_is_seeded_uniform_and_order_free():
    model, vocab = fitted(RandomRecommender, seed=7)
    rows = [(f"u{k % 5}", ("a",), i) for k, i in enumerate("abcdex" * 20)]
    first = model.score(pairs(vocab, rows))
    again = model.score(pairs(vocab, rows[::-1]))[::-1]
    assert np.array_equal(first, again) and ((first >= 0) & (first < 1)).all() and len(set(first)) > 20
    other, _ = fitted(RandomRecommender, seed=8)
    assert not np.array_equal(first, other.score(pairs(vocab, rows)))


def _write_ml100k(folder: Path, users=60, items=30, seed=0):
    """A larger file in the ml-100k layout (tab-separated u.data, |-separated latin-1 u.item)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    (folder / "u.item").write_bytes("".join(
        f"{i}|Film {i} (1990)|01-Jan-1990||http://x|" + "|".join("0" * 19) + "\n"
        for i in range(1, items + 1)).encode("latin-1"))
    lines = []
    for u in range(1, users + 1):
        taste = rng.integers(0, 3)  # three taste blocks, so co-occurrence means something
        for t, i in enumerate(rng.choice(items, size=12, replace=False) + 1):
            liked = (i - 1) % 3 == taste
            lines.append(f"{u}\t{i}\t{5 if liked or rng.random() < 0.2 else 1}\t{880000000 + t}\n")
    (folder / "u.data").write_text("".join(lines))
    return folder


def _recompute_itemknn(train: pd.DataFrame, history, candidate) -> float:
    """item-kNN from its definition, with plain sets (independent of the numpy code)."""
    liked = {}
    for u, i, y, h in train.itertuples(index=False):
        liked.setdefault(u, set()).update(h)
        if y == 1:
            liked[u].add(i)
    users_of = {}
    for u, items in liked.items():
        for i in items:
            users_of.setdefault(i, set()).add(u)

    def sim(i, j):
        if i not in users_of or j not in users_of:
            return 0.0
        return len(users_of[i] & users_of[j]) / math.sqrt(len(users_of[i]) * len(users_of[j]))

    hist = list(dict.fromkeys(history))
    return sum(sim(candidate, h) for h in hist) / len(hist) if hist else 0.0


@pytest.mark.parametrize("layout", ["fixture", "generated"])
def test_itemknn_scores_equal_an_independent_recomputation_on_ml100k(layout, tmp_path):
    import recbench

    raw = FIX / "ml-100k" if layout == "fixture" else _write_ml100k(tmp_path / "ml-100k")
    sizes = {"num_test": 6, "num_finetune": 40} if layout == "fixture" else {"num_test": 60, "num_finetune": 400}
    out = tmp_path / "res"
    bench = RecBench(model="itemknn", scenarios="movielens", raw_dir=str(raw), num_test=sizes["num_test"],
                     output_dir=str(out), log_samples=True, progress=False,
                     baseline={"num_finetune": sizes["num_finetune"]})
    bench.evaluate()
    log = [json.loads(x) for x in (out / "itemknn" / "conventional" / "movielens.samples.jsonl").read_text().splitlines()]
    sc = recbench.load_scenario("movielens", raw_dir=raw, **sizes)
    train = sc.finetune_split("train")
    test = sc.test.reset_index(drop=True)
    assert [(r["user_id"], r["item_id"]) for r in log] == list(zip(test["user_id"], test["item_id"]))
    want = [_recompute_itemknn(train, h, i) for i, h in zip(test["item_id"], test["history"])]
    assert [r["score"] for r in log] == pytest.approx(want, abs=1e-12)
    if layout == "generated":
        assert sum(w > 0 for w in want) > len(want) // 2  # the comparison is not all zeros
        assert bench.runs[0].metrics["gauc"] > 0.7  # taste blocks are learnable from co-occurrence


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_baseline_command_writes_baseline_results_on_the_llm_samples_and_reuses_the_model(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["zero-shot", "--model", "dummy", "--output", str(out), "--quiet"]) == 0
    assert main(["baseline", "--model", "popularity", "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "trained in" in printed or "fitted" in printed
    llm = json.loads((out / "dummy" / "generative" / "demo.json").read_text())
    doc = json.loads((out / "popularity" / "conventional" / "demo.json").read_text())
    assert doc["pipeline"] == "baseline" and doc["scheme"] == "conventional" and doc["model"] == "popularity"
    assert doc["meta"]["data_fingerprint"] == llm["meta"]["data_fingerprint"]  # the same samples
    assert doc["metrics"]["n"] == llm["metrics"]["n"] == 500
    base = doc["meta"]["baseline"]
    assert base["reused"] is False and base["seed"] == 2024 and base["num_finetune"] == 5000
    assert base["train_users"] + base["valid_users"] == 500 and base["settings"]["epochs"] == 20
    assert isinstance(base["train_s"], float) and doc["meta"]["settings"]["baseline"]["lr"] == 1e-3
    folder = Path(base["trained_model"])
    assert folder.parent == out / "baselines" and folder.name.startswith("popularity-demo-")
    assert json.loads((folder / "recommender.json").read_text())["config_hash"] in folder.name
    # rerun: the trained model is reported and reused, the scores are the same
    assert main(["baseline", "--model", "popularity", "--output", str(out), "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out
    again = json.loads((out / "popularity" / "conventional" / "demo.json").read_text())
    assert again["meta"]["baseline"]["reused"] is True and again["metrics"] == doc["metrics"]
    # another setting that matters -> another folder; --retrain -> trained again in place
    assert main(["baseline", "--model", "popularity", "--output", str(out), "--quiet", "--num-finetune",
                 "2000"]) == 0
    assert len(list((out / "baselines").glob("popularity-demo-*"))) == 2
    assert main(["baseline", "--model", "popularity", "--output", str(out), "--quiet", "--retrain"]) == 0
    assert json.loads((out / "popularity" / "conventional" / "demo.json").read_text())["meta"]["baseline"][
        "reused"] is False


def test_zero_shot_and_python_api_accept_baseline_names(tmp_path):
    bench = RecBench(model="itemknn", scenarios="demo", output_dir=str(tmp_path), progress=False, limit=100)
    table = bench.evaluate()
    assert table.loc[0, "scheme"] == "conventional" and table.loc[0, "gauc"] > 0.9  # demo tastes co-occur
    assert main(["zero-shot", "--model", "random", "--output", str(tmp_path), "--quiet", "--limit", "100"]) == 0
    doc = json.loads((tmp_path / "random" / "conventional" / "demo.json").read_text())
    assert doc["pipeline"] == "baseline" and 0.3 < doc["metrics"]["gauc"] < 0.7


@pytest.mark.parametrize("argv, fragment", [
    (["--model", "din", "--epochs", "0"], "epochs"),
    (["--model", "din", "--mlp-dims", "64,x"], "mlp-dims"),
    (["--model", "itemknn", "--item-embeddings", "minilm"], "deep models"),
    (["--model", "din", "--item-embeddings", "gpt-3.5"], "offers no embeddings"),
    (["--model", "dummy"], "not a conventional model"),
])
def test_bad_baseline_settings_fail_before_any_work(argv, fragment, monkeypatch, capsys):
    def boom(*a, **k):
        raise AssertionError("data work started before validation")

    monkeypatch.setattr("recbench.tasks.ctr.CTRTask.load", boom)
    assert main(["baseline", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recbench: error:") and fragment in err and "Traceback" not in err


def test_baseline_names_and_llm_for_rs_variants_resolve():
    spec = resolve_model("din+minilm")
    assert spec.backend == "baseline" and spec.model_id == "din" and spec.item_embeddings == "minilm"
    assert spec.abilities == ("recommender",) and spec.slug == "din+minilm"
    assert resolve_model("popularity").item_embeddings is None
    with pytest.raises(ConfigError, match="did you mean"):
        RecBench(model="popularity", baseline={"epochz": 3})
    with pytest.raises(ConfigError, match="--template"):
        RecBench(model="popularity", template="domain")
    with pytest.raises(ConfigError, match="cannot serve"):
        RecBench(model="dummy", scheme="conventional")


def test_llm_for_rs_item_vectors_share_the_discriminative_cache_keys(tmp_path):
    """Item vectors of `din+dummy` come from the cache a discriminative dummy run filled."""
    from recbench.cache import ScoreCache
    from recbench.config import RunConfig
    from recbench.prompts import PromptBuilder
    from recbench.scenarios import load_scenario
    from recbench.schemes import SchemeContext
    from recbench.schemes.conventional import NO_PROMPT, ConventionalScheme

    cache_dir = tmp_path / "cache"
    RecBench(model="dummy", scheme="discriminative", scenarios="demo", output_dir=str(tmp_path / "res"),
             cache_dir=str(cache_dir), progress=False).evaluate()
    sc = load_scenario("demo")
    test_items = set(sc.test["item_id"])
    texts = {i: t for i, t in sc.item_text().items() if i in test_items}
    cfg = RunConfig(cache_dir=str(cache_dir), progress=False)
    cache = ScoreCache(cache_dir / "scores.sqlite")
    try:
        ctx = SchemeContext(scenario="demo", groups=[], num_scores=0, texts=texts, scorer=None, cache=cache,
                            namespace="", builder=PromptBuilder(NO_PROMPT, sc.item_noun, lambda t: 0, 1 << 30),
                            config=cfg, desc="demo")
        vectors, computed = ConventionalScheme().item_vectors(ctx, "dummy", texts)
    finally:
        cache.close()
    assert computed == 0 and set(vectors) == set(texts)  # every test item's vector was in the cache
    assert all(v.shape == vectors[next(iter(vectors))].shape for v in vectors.values())


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_report_has_a_baseline_table_and_the_llm_vs_conventional_comparison(tmp_path):
    from recbench.report import build_report, write_report
    from recbench.report.versus import build_versus

    out = tmp_path / "res"
    for argv in (["zero-shot", "--model", "dummy"], ["baseline", "--model", "popularity"],
                 ["baseline", "--model", "itemknn"]):
        assert main([*argv, "--output", str(out), "--quiet"]) == 0
    report = build_report(out, include_reference=False)
    tables = {t.key: t for t in report.headline}
    base = tables["baseline-conventional"]
    assert "baselines" in base.title and {r.label for r in base.rows if r.source == "run"} == {"popularity",
                                                                                                  "itemknn"}
    assert "popularity" not in {r.label for r in tables["zero-shot-generative"].rows}
    [versus] = build_versus(report)
    [row] = versus.rows
    llm, conv = row.picks["llm"], row.picks["baseline"]
    assert (llm.label, conv.label, row.picks["llm_for_rs"]) == ("dummy", "itemknn", None)
    assert row.gap == pytest.approx(llm.value - conv.value) and row.flags == []
    written = {p.name for p in write_report(out, tmp_path / "board", formats="md,csv,png")}
    assert {"versus.gauc.md", "versus.gauc.csv", "versus-ctr.gauc.png", "baseline-conventional.gauc.csv"} <= written
    md = (tmp_path / "board" / "leaderboard.gauc.md").read_text()
    assert "Conventional recommenders (baselines" in md and "LLMs vs conventional recommenders" in md
    frame = pd.read_csv(tmp_path / "board" / "versus.gauc.csv")
    assert frame.loc[0, "llm_model"] == "dummy" and frame.loc[0, "baseline_model"] == "itemknn"
    results = pd.read_csv(tmp_path / "board" / "results.csv")
    assert set(results.loc[results["pipeline"] == "baseline", "model"]) == {"popularity", "itemknn"}


def test_versus_flags_rows_that_did_not_see_the_same_samples(tmp_path):
    from recbench.report import build_report
    from recbench.report.versus import build_versus

    out = tmp_path / "res"
    assert main(["zero-shot", "--model", "dummy", "--output", str(out), "--quiet", "--limit", "100"]) == 0
    assert main(["baseline", "--model", "popularity", "--output", str(out), "--quiet"]) == 0
    [row] = build_versus(build_report(out, include_reference=False))[0].rows
    assert any("100 vs 500" in f for f in row.flags)


def test_co_occurrence_helper_agrees_with_pairs_counted_by_hand():
    """The numpy similarity row equals counting pairs of liked items per user."""
    model, vocab = fitted(ItemKNNRecommender)
    liked = {"A": {"a", "b", "c"}, "B": {"b", "c"}, "C": {"a", "e"}}
    co = {}
    for items in liked.values():
        for i, j in combinations(sorted(items), 2):
            co[(i, j)] = co.get((i, j), 0) + 1
    n = {i: sum(i in s for s in liked.values()) for i in "abce"}
    row = model.similarity_row(vocab.index["b"])
    for j in "ace":
        pair = tuple(sorted(("b", j)))
        assert row[vocab.index[j]] == pytest.approx(co.get(pair, 0) / math.sqrt(n["b"] * n[j]))
