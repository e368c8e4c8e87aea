"""Conventional models on the seqrec task: the training data a sequence task gives them
(hand-worked), every model scored on the LLMs' seqrec samples, the sequential models (SASRec,
GRU4Rec) trained, saved and reused, full-catalogue ranking equal to scoring every pair, and
(slow) both sequential models trained on the demo beat popularity on NDCG@10."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recbench.baselines.data import Vocab, encode_sequences, pairs_from_sequences
from recbench.cli import main
from recbench.evaluate import RecBench
from recbench.tasks import get_task

TINY = {"num_finetune": 300, "epochs": 1, "embedding_dim": 8, "mlp_dims": "16"}


def test_pairs_from_sequences_every_position_seeded_negatives_never_liked():
    seqs = [("u1", ("a", "b", "c")), ("u2", ("d",)), ("u3", ("e", "f"))]
    pool = list("abcdefghijklmnop")
    df = pairs_from_sequences(seqs, pool, negatives=2, seed=7)
    assert list(df.columns) == ["user_id", "item_id", "label", "history"]
    pos = df[df["label"] == 1]
    # u1: b after (a), c after (a, b); u2 has no next item; u3: f after (e)
    assert [(u, i, tuple(h)) for u, i, h in zip(pos["user_id"], pos["item_id"], pos["history"])] == [
        ("u1", "b", ("a",)), ("u1", "c", ("a", "b")), ("u3", "f", ("e",))]
    assert len(df) == 3 * (1 + 2)
    for user, liked in (("u1", set("abc")), ("u3", set("ef"))):
        negs = df[(df["user_id"] == user) & (df["label"] == 0)]["item_id"]
        assert len(negs) and not set(negs) & liked
    again = pairs_from_sequences(seqs, pool, negatives=2, seed=7)
    pd.testing.assert_frame_equal(df, again)
    assert not df.equals(pairs_from_sequences(seqs, pool, negatives=2, seed=8))
    last = pairs_from_sequences(seqs, pool, negatives=1, seed=7, last_only=True)
    assert [tuple(h) for h in last[last["label"] == 1]["history"]] == [("a", "b"), ("e",)]


def test_encode_sequences_keeps_the_most_recent_items_left_padded():
    vocab = Vocab.build(["a", "b", "c", "d"])  # rows a=2, b=3, c=4, d=5
    out = encode_sequences([("u", ("a", "b", "c", "d")), ("v", ("c",))], vocab, 3)
    assert out.tolist() == [[3, 4, 5], [0, 0, 4]]


def test_tasks_give_training_sequences_hand_worked():
    ctr = pd.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["x", "y", "z", "w"], "label": [1, 0, 1, 0],
                        "history": [["a", "b"]] * 3 + [["c"]]})
    assert get_task("ctr").training_sequences(ctr) == [("u", ("a", "b", "x", "z")), ("v", ("c",))]
    assert get_task("ctr").training_pairs(ctr) is ctr
    seq = pd.DataFrame({"user_id": ["u"], "history": [["a", "b"]], "target": ["c"], "candidates": [["c", "q"]]})
    assert get_task("seqrec").training_sequences(seq) == [("u", ("a", "b", "c"))]
    assert get_task("seqrec").training_pairs(seq) is None


def _bench(model, out, **kw):
    baseline = {**TINY, **kw.pop("baseline", {})}
    return RecBench(model=model, scenarios="demo", task="seqrec", output_dir=str(out), progress=False,
                    baseline=baseline, **kw)


@pytest.mark.parametrize("model", ["random", "popularity", "itemknn"])
def test_built_in_models_rank_the_llms_seqrec_candidates(model, tmp_path):
    bench = _bench(model, tmp_path, limit=20, log_samples=True)
    table = bench.evaluate()
    run = bench.runs[0]
    assert table.loc[0, "n"] == 20 and 0.0 <= table.loc[0, "ndcg@10"] <= 1.0
    assert run.meta["task"] == "seqrec" and run.path.parent.name == "seqrec"
    rows = [json.loads(x) for x in run.path.with_name("demo.samples.jsonl").read_text().splitlines()]
    assert len(rows) == 20 * 100 and sum(r["label"] for r in rows) == 20
    # exactly the LLMs' samples: the dummy LLM's run sees the same fingerprint
    llm = RecBench(model="dummy", scenarios="demo", task="seqrec", limit=20, output_dir=str(tmp_path / "llm"),
                   progress=False)
    llm.evaluate()
    assert llm.runs[0].meta["data_fingerprint"] == run.meta["data_fingerprint"]
    if model != "random":  # the pairwise and counting models learn from the labelled pairs
        assert run.meta["baseline"]["train_pairs"] > 0


try:
    import torch_rechub  # noqa: F401

    HAVE_RECHUB = True
except ImportError:
    HAVE_RECHUB = False
needs_rechub = pytest.mark.skipif(not HAVE_RECHUB, reason="the deep baselines need pip install 'recbench[baselines]'")


@needs_rechub
@pytest.mark.parametrize("arch", ["sasrec", "gru4rec"])
def test_sequential_model_trains_saves_and_is_reused_with_the_same_scores(arch, tmp_path):
    bench = _bench(arch, tmp_path, limit=15, log_samples=True)
    bench.evaluate()
    run = bench.runs[0]
    base = run.meta["baseline"]
    assert base["reused"] is False and base["fit"]["epochs"] == 1 and base["fit"]["parameters"] > 0
    assert base["train_sequences"] > 0 and base["library"] == "torch-rechub"
    # the labelled pairs (every position x (1 + negatives)) are not built for a sequential model
    assert base["train_pairs"] is None and base["train_users"] == base["train_sequences"]
    assert base["valid_pairs"] > 0
    assert 0.0 <= base["fit"]["valid_gauc"] <= 1.0
    scores = [json.loads(x)["score"] for x in run.path.with_name("demo.samples.jsonl").read_text().splitlines()]
    assert len(scores) == 15 * 100 and len(set(np.round(scores, 9))) > 100
    again = _bench(arch, tmp_path, limit=15, log_samples=True)
    again.evaluate()
    assert again.runs[0].meta["baseline"]["reused"] is True
    rescored = [json.loads(x)["score"] for x in
                again.runs[0].path.with_name("demo.samples.jsonl").read_text().splitlines()]
    assert rescored == pytest.approx(scores, abs=1e-9)


@needs_rechub
@pytest.mark.parametrize("arch", ["sasrec", "itemknn"])
def test_catalogue_ranking_equals_scoring_every_pair(arch, tmp_path):
    """--candidates all: ranks from score_matrix (a matrix product for SASRec, pairs for item-kNN)
    are those of scoring every (user, item) pair one by one."""
    bench = _bench(arch, tmp_path, limit=12, candidates="all", log_samples=True)
    table = bench.evaluate()
    run = bench.runs[0]
    scorer_rec = _trained(arch, run.meta["baseline"]["trained_model"])
    from recbench.baselines.data import encode_rows

    sc = bench.task.load("demo", bench.config)
    samples = bench.task.samples(sc, bench.config)
    items = list(sc.items["item_id"])
    width = run.meta["baseline"]["history_width"]
    ranks = []
    for user, hist, target, excl in zip(samples["user_id"], samples["history"], samples["target"],
                                        samples["exclude"]):
        pairs = encode_rows([user] * len(items), [tuple(hist)] * len(items), items, None, scorer_rec.vocab, width)
        s = scorer_rec.score(pairs)
        keep = np.array([i not in set(excl) for i in items])
        t = s[items.index(target)]
        ranks.append(1 + int(((s > t) | ((s == t) & (np.arange(len(items)) != items.index(target))))[keep].sum()))
    logged = [json.loads(x)["rank"] for x in run.path.with_name("demo.samples.jsonl").read_text().splitlines()]
    assert logged == ranks
    assert table.loc[0, "mean_rank"] == pytest.approx(np.mean(ranks))


def _trained(arch, folder):
    from pathlib import Path

    from recbench.baselines import BaselineConfig, recommender_class
    from recbench.baselines.store import read_meta, read_vocab

    rec = recommender_class(arch)(BaselineConfig(**TINY))
    rec.load(Path(folder), read_vocab(Path(folder)), read_meta(Path(folder)))
    return rec


@needs_rechub
@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_cli_baseline_and_zero_shot_run_seqrec(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["baseline", "--model", "popularity", "--task", "seqrec", "--limit", "10", "--output", str(out),
                 "--quiet", "--num-finetune", "200"]) == 0
    assert "ndcg@10" in capsys.readouterr().out
    assert main(["zero-shot", "--model", "itemknn", "--task", "seqrec", "--limit", "10", "--output", str(out),
                 "--quiet"]) == 0
    for model in ("popularity", "itemknn"):
        rec = json.loads((out / model / "conventional" / "seqrec" / "demo.json").read_text())
        assert rec["pipeline"] == "baseline" and rec["task"] == "seqrec" and rec["metrics"]["n"] == 10
    assert main(["baseline", "--model", "sasrec+dummy", "--task", "seqrec", "--output", str(out), "--quiet"]) != 0
    assert "apply to the deep models" in capsys.readouterr().err


@needs_rechub
@pytest.mark.slow
def test_sequential_models_trained_on_the_demo_beat_popularity(tmp_path):
    """Default settings (early stopping on the valid users); about a minute on CPU."""
    ndcg = {}
    for model in ("popularity", "sasrec", "gru4rec"):
        table = RecBench(model=model, scenarios="demo", task="seqrec", output_dir=str(tmp_path),
                         progress=False).evaluate()
        ndcg[model] = table.loc[0, "ndcg@10"]
    assert ndcg["sasrec"] > ndcg["popularity"] + 0.3, ndcg
    assert ndcg["gru4rec"] > ndcg["popularity"] + 0.3, ndcg
