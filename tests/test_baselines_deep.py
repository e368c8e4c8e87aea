"""Deep conventional baselines (torch-rechub): every architecture trains, is saved, is reused
with identical scores; the LLM-for-RS variant reads frozen item-text vectors; and (slow) DIN
trained on the demo fine-tuning set beats popularity on the test samples."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch_rechub")

from recbench.evaluate import RecBench  # noqa: E402

TINY = {"num_finetune": 400, "epochs": 1, "embedding_dim": 8, "mlp_dims": "16"}


def _run(model, out, **baseline):
    bench = RecBench(model=model, scenarios="demo", limit=60, output_dir=str(out), log_samples=True,
                     progress=False, baseline={**TINY, **baseline})
    bench.evaluate()
    run = bench.runs[0]
    scores = [json.loads(x)["score"] for x in run.path.with_name("demo.samples.jsonl").read_text().splitlines()]
    return bench, run, scores


@pytest.mark.parametrize("arch", ["din", "dcnv2", "deepfm", "bst"])
def test_deep_model_trains_saves_and_is_reused_with_the_same_scores(arch, tmp_path):
    bench, run, scores = _run(arch, tmp_path)
    base = run.meta["baseline"]
    assert base["reused"] is False and base["fit"]["epochs"] == 1 and base["fit"]["parameters"] > 0
    assert base["library"] == "torch-rechub" and base["library_version"]
    assert base["valid_pairs"] > 0 and base["fit"]["valid_curve"] and 0.0 <= base["fit"]["valid_gauc"] <= 1.0
    assert (tmp_path / "baselines").is_dir() and (bench.runs[0].meta["baseline"]["trained_model"])
    assert len(scores) == 60 and all(0.0 < s < 1.0 for s in scores) and len(set(scores)) > 10
    _, again, rescored = _run(arch, tmp_path)
    assert again.meta["baseline"]["reused"] is True and rescored == pytest.approx(scores, abs=1e-9)
    _, other, _ = _run(arch, tmp_path, embedding_dim=12)  # another setting: trained anew
    assert other.meta["baseline"]["reused"] is False
    assert other.meta["baseline"]["trained_model"] != base["trained_model"]


def test_llm_for_rs_reads_frozen_item_text_vectors_through_the_vector_cache(tmp_path):
    bench, run, scores = _run("din+dummy", tmp_path)
    assert bench.model_slug == "din+dummy" and run.path.parent.parent.name == "din+dummy"
    assert run.meta["item_embeddings"] == "dummy" and run.meta["baseline"]["text_dim"] == TINY["embedding_dim"]
    assert run.meta["timings"]["computed_embeddings"] > 0
    import torch

    state = torch.load(f"{run.meta['baseline']['trained_model']}/weights.pt", weights_only=True)
    table = state["embedding.embed_dict.item_text.weight"]
    assert table.shape[1] == TINY["embedding_dim"] and float(table[2:].abs().sum()) > 0
    assert float(table[:2].abs().sum()) == 0.0  # padding and unknown rows stay zero
    # retrain: the item vectors now come from the cache, the text table is the same (frozen)
    _, again, _ = _run("din+dummy", tmp_path, retrain=True)
    assert again.meta["timings"]["computed_embeddings"] == 0
    state2 = torch.load(f"{again.meta['baseline']['trained_model']}/weights.pt", weights_only=True)
    assert torch.equal(state2["embedding.embed_dict.item_text.weight"], table)
    assert bench.spec.item_embeddings == "dummy"


@pytest.mark.slow
def test_din_trained_on_the_demo_beats_popularity_on_test_gauc(tmp_path):
    """Default settings (up to 20 epochs, early stopping on valid gauc); a few minutes on CPU."""
    din = RecBench(model="din", scenarios="demo", output_dir=str(tmp_path), progress=False).evaluate()
    pop = RecBench(model="popularity", scenarios="demo", output_dir=str(tmp_path), progress=False).evaluate()
    assert din.loc[0, "n"] == pop.loc[0, "n"] == 500
    assert din.loc[0, "gauc"] > pop.loc[0, "gauc"] + 0.2, (din.loc[0, "gauc"], pop.loc[0, "gauc"])
