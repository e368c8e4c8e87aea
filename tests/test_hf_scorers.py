"""Local HF scorers on tiny random models: label tokens, batching, prefix reuse, pooling."""

import time
import warnings

import numpy as np
import pytest

from recbench.errors import ConfigError, ModelError
from recbench.models import resolve_model
from recbench.prompts import PromptBuilder, PromptRequest, Template
from recbench.scorers.hf_common import LoadOptions
from recbench.scorers.hf_embedding import HFEmbeddingScorer
from recbench.scorers.hf_generative import HFGenerativeScorer, derive_label_tokens

HISTORIES = [
    ["The Shining (1980) horror movie", "Master of Puppets (Metallica) heavy metal album", "Civilization strategy game"],
    ["The Hobbit (J. R. R. Tolkien) fantasy book"],
]
CANDIDATES = [["Heat (1995)", "The Hobbit", "a much longer candidate title about news", "x"], ["Alien (1979)", "Yes"]]


def requests_for(scorer):
    b = PromptBuilder(Template.load("generative"), "item", scorer.count_tokens, scorer.context_budget)
    reqs = []
    for h, c in zip(HISTORIES, CANDIDATES):
        reqs += b.user_prompts(h, c)
    return reqs


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_prefix_reuse_and_batching_equal_the_plain_single_path(tiny_models, arch):
    spec = resolve_model(str(tiny_models[arch]))
    scorer = HFGenerativeScorer(spec, batch_size=3)
    reqs = requests_for(scorer)
    reused = np.array(scorer.score(reqs))
    scorer.prefix_reuse = False
    batched = np.array(scorer.score(reqs))
    scorer.batch_size = 1
    single = np.array(scorer.score(reqs))
    assert np.all((reused > 0) & (reused < 1))
    assert np.abs(reused - single).max() < 1e-4
    assert np.abs(batched - single).max() < 1e-4
    assert len(set(np.round(single, 6))) > 1  # not a constant


def test_p_yes_is_softmax_of_the_two_label_logits(tiny_models):
    import torch

    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), batch_size=1)
    req = requests_for(scorer)[0]
    ids = torch.tensor([scorer._encode(req.text)])
    with torch.no_grad():
        logits = scorer.model(input_ids=ids).logits[0, -1]
    y, n = logits[scorer.labels.yes_id].item(), logits[scorer.labels.no_id].item()
    expected = np.exp(y) / (np.exp(y) + np.exp(n))
    scores, extras = scorer.score_detailed([req])
    assert scores[0] == pytest.approx(expected, abs=1e-6)
    full = torch.softmax(logits, dim=0)
    assert extras[0]["mass"] == pytest.approx((full[scorer.labels.yes_id] + full[scorer.labels.no_id]).item(), rel=1e-4)


def test_label_tokens_follow_the_prompt_text(tiny_models):
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])))
    tok = scorer.tokenizer
    labels = derive_label_tokens(tok, "Answer (Yes/No):")
    assert labels.yes_text == " Yes" and labels.no_text == " No"
    assert tok.decode([labels.yes_id]).strip() == "Yes" and tok.decode([labels.no_id]).strip() == "No"
    after_newline = derive_label_tokens(tok, "assistant\n")
    assert not after_newline.yes_text.startswith(" ")
    assert scorer.identity()["labels"]["yes"] == scorer.labels.yes_id


def test_label_tokens_refused_when_unknown():
    class UnkTokenizer:
        unk_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * max(1, len(text.split()))}

    with pytest.raises(ModelError, match="Yes/No"):
        derive_label_tokens(UnkTokenizer(), "Answer:")


def test_chat_template_wraps_prompt_and_keeps_the_split(tiny_models):
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), chat_template=True, batch_size=4)
    reqs = requests_for(scorer)
    rendered = scorer.render(reqs[0])
    assert rendered.text.startswith("<|endoftext|>user\n") and rendered.text.endswith("assistant\n")
    assert rendered.prefix.endswith(reqs[0].prefix)
    assert scorer.labels.yes_text == "Yes"  # no leading space after the assistant header
    a = np.array(scorer.score(reqs))
    scorer.prefix_reuse = False
    assert np.abs(a - np.array(scorer.score(reqs))).max() < 1e-4
    assert scorer.identity()["chat_template"] is True


def test_masked_lm_scores_at_the_mask(tiny_models):
    spec = resolve_model(str(tiny_models["bert"]))
    assert spec.kind == "masked"
    scorer = HFGenerativeScorer(spec, batch_size=2)
    reqs = requests_for(scorer)
    assert scorer.render(reqs[0]).text.endswith("[MASK]")
    a = np.array(scorer.score(reqs))
    scorer.batch_size = 1
    assert np.abs(a - np.array(scorer.score(reqs))).max() < 1e-4
    assert scorer.labels.yes_text.strip().lower() == "yes"


def test_context_budget_respects_max_length(tiny_models):
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), LoadOptions(max_length=110))
    assert scorer.context_budget <= 110
    for r in requests_for(scorer):
        assert len(scorer._encode(r.text)) <= 110


def test_bad_batch_size_and_device(tiny_models):
    spec = resolve_model(str(tiny_models["llama"]))
    with pytest.raises(ConfigError, match="batch-size"):
        HFGenerativeScorer(spec, batch_size="lots")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            HFGenerativeScorer(spec, LoadOptions(device="cuda"))


def test_out_of_memory_halves_the_auto_batch(tiny_models, monkeypatch):
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), batch_size="auto")
    scorer.prefix_reuse = False
    real = scorer._score_full
    seen = []

    def flaky(prefix, batch):
        seen.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate")
        return real(prefix, batch)

    monkeypatch.setattr(scorer, "_score_full", flaky)
    scores = scorer.score(requests_for(scorer))
    assert len(scores) == 6 and scorer.batch_size <= 2 and seen[0] > 2


@pytest.mark.parametrize("arch,pooling", [("bert", "mean"), ("llama", "last")])
def test_embedding_pooling_is_padding_invariant(tiny_models, arch, pooling):
    spec = resolve_model(str(tiny_models[arch]))
    scorer = HFEmbeddingScorer(spec, batch_size=3)
    assert scorer.pooling == pooling
    texts = ["short", "a somewhat longer text about a movie", "Civilization strategy game", "x y"]
    together = scorer.embed(texts, "item")
    alone = np.concatenate([scorer.embed([t], "item") for t in texts])
    assert together.shape == (4, 32)
    assert np.abs(together - alone).max() < 1e-4


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_generative_scoring_is_silent(tiny_models, arch, capfd):
    """A scoring run (prefix reuse and the plain path) warns nothing and prints nothing: no
    deprecated cache argument, no length warnings."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scorer = HFGenerativeScorer(resolve_model(str(tiny_models[arch])), batch_size=3, chat_template=True)
        reqs = requests_for(scorer)
        scorer.score(reqs)
        scorer.prefix_reuse = False
        scorer.score(reqs)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_embedding_token_counts_of_long_texts_are_silent(tiny_models, capfd):
    scorer = HFEmbeddingScorer(resolve_model(str(tiny_models["bert"])), batch_size=2)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = scorer.count_tokens("movie book game " * 400)  # far beyond the 512-token maximum
    assert n > 512
    assert not caught and capfd.readouterr().err == ""


def test_uncached_hub_model_offline_fails_at_once_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    spec = resolve_model("org/not-cached")
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as err:
        HFGenerativeScorer(spec)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg and "org/not-cached" in msg and "not in the local Hugging Face cache" in msg
    assert "offline mode" in msg and "--model PATH" in msg


def test_unreachable_hub_is_detected_quickly(monkeypatch, tmp_path, tiny_models):
    """Not in offline mode, but no route to the Hub: one quick check, not a minute of retries."""
    from recbench.scorers import hf_common

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_common, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelError, match="cannot be reached"):
        hf_common.hub_copy_only(resolve_model("org/not-cached"))
    # a local folder never triggers the check
    monkeypatch.setattr(hf_common, "hub_reachable", lambda timeout=3.0: pytest.fail("checked the Hub"))
    assert hf_common.hub_copy_only(resolve_model(str(tiny_models["llama"]))) is False


def test_library_noise_is_filtered_and_nothing_else():
    """peft's failed Hub lookup for a base config is hidden; other warnings still show."""
    from recbench.scorers.hf_common import quiet_transformers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_transformers()
        warnings.warn("Unable to fetch remote file due to the following error [Errno -2] Name or service not "
                      "known - silently ignoring the lookup for the file config.json in smollm2-135m.", UserWarning)
        warnings.warn("Could not find a config file in smollm2-135m - will assume that the vocabulary was not "
                      "modified.", UserWarning)
        warnings.warn("something the user should see", UserWarning)
    assert [str(w.message) for w in caught] == ["something the user should see"]


def cached_rerun(module, tmp_path, monkeypatch, **kw):
    """One command run twice, counting `module.load_pretrained` calls: the cold run loads the
    weights once; the rerun is served from the score cache, loads none and reports the same
    metrics and identity. Returns both runs and the load log."""
    from recbench.evaluate import RecBench

    loads: list = []
    real = module.load_pretrained
    monkeypatch.setattr(module, "load_pretrained", lambda *a, **k: loads.append(1) or real(*a, **k))
    common = dict(scenarios="demo", limit=30, output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"),
                  progress=False, **kw)
    first = RecBench(**common)
    table = first.evaluate()
    assert len(loads) == 1 and first.runs[0].meta["timings"]["weights_loaded"] is True
    again = RecBench(**common)
    rerun = again.evaluate()
    assert len(loads) == 1  # not loaded again
    timings = again.runs[0].meta["timings"]
    assert (timings["computed"], timings["weights_loaded"]) == (0, False)
    assert rerun.loc[0, "gauc"] == table.loc[0, "gauc"]
    assert again.runs[0].meta["identity"] == first.runs[0].meta["identity"]
    return first, again, loads


def test_fully_cached_rerun_loads_no_weights(tiny_models, tmp_path, monkeypatch):
    """The weights load when a request first needs them: a rerun served from the score cache
    never loads them, and reports the same metrics; a cold run loads them once."""
    import recbench.scorers.hf_generative as hfg

    first, _, loads = cached_rerun(hfg, tmp_path, monkeypatch, model=str(tiny_models["llama"]))
    assert first.runs[0].meta["timings"]["computed"] == 30
    # the identity (the cache key) is the same with or without the weights in memory
    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), LoadOptions(device="cpu"))
    lazy = scorer.identity()
    assert not scorer.weights_loaded and len(loads) == 1
    scorer.score([PromptRequest("User behavior sequence:\n(1) A\n", "Candidate item: B\nAnswer (Yes/No):")])
    assert scorer.weights_loaded and len(loads) == 2 and scorer.identity() == lazy
    assert scorer.efficiency_counters()["parameters"] > 0


# -- embedding models: weights loaded when a text is first embedded ----------------------------------
LONG_TEXT = "The Shining (1980) [SEP] </s> café 😀 horror movie " * 40


def _described(scorer):
    return scorer.identity(), scorer.context_budget, scorer.count_tokens(LONG_TEXT), scorer._limit


@pytest.mark.parametrize("model,limit,pooling", [("bert", 512, "mean"), ("llama", 512, "last")])
def test_embedding_weights_load_when_a_text_is_first_embedded(model, limit, pooling, tiny_models):
    """Identity (the cache key), token counts and the context of a plain transformers model are
    read without the weights and are the same once they are loaded; only embedding loads them.
    (A sentence-transformers folder loads at start.)"""
    scorer = HFEmbeddingScorer(resolve_model(str(tiny_models[model])), LoadOptions(device="cpu"))
    lazy = _described(scorer)
    assert not scorer.weights_loaded and scorer.efficiency_counters()["parameters"] is None
    assert (scorer._limit, scorer.pooling, lazy[0]["dtype"]) == (limit, pooling, "float32")
    assert scorer.embed(["a movie", LONG_TEXT], "item").shape == (2, 32)
    assert scorer.weights_loaded and _described(scorer) == lazy
    assert scorer.efficiency_counters()["parameters"] > 0


def test_fully_cached_discriminative_rerun_loads_no_weights(tiny_models, tmp_path, monkeypatch):
    import recbench.scorers.hf_embedding as hfe

    _, again, _ = cached_rerun(hfe, tmp_path, monkeypatch, model=str(tiny_models["bert"]), scheme="discriminative")
    assert again.runs[0].meta["efficiency"]["parameters"] is None
