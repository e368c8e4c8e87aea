"""CUDA paths (bf16, 4-bit loading, vLLM). Skipped cleanly on machines without a GPU (CI)."""

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_bf16_on_cuda_matches_fp32_on_cpu(tiny_models):
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.prompts import PromptRequest

    spec = resolve_model(str(tiny_models["llama"]))
    reqs = [PromptRequest("User behavior sequence:\n(1) The Hobbit\n", f"Candidate item: {c}\nAnswer (Yes/No):")
            for c in ("Heat", "Alien", "Yes")]
    gpu = HFGenerativeScorer(spec, LoadOptions(device="cuda"))
    assert gpu.identity()["dtype"] in ("bfloat16", "float16")
    cpu = HFGenerativeScorer(spec, LoadOptions(device="cpu"))
    assert np.abs(np.array(gpu.score(reqs)) - np.array(cpu.score(reqs))).max() < 2e-2


@needs_cuda
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_4bit_loading(tiny_models):
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.prompts import PromptRequest

    scorer = HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), LoadOptions(quantization="4bit"))
    [p] = scorer.score([PromptRequest("User behavior sequence:\n(1) A\n", "Candidate item: B\nAnswer (Yes/No):")])
    assert 0 < p < 1


needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed")


@pytest.fixture(scope="module")
def vllm_llama(tmp_path_factory):
    """A tiny random llama with head size 64, which every vLLM attention backend supports."""
    import transformers as tf

    from recbench.testing import build_tokenizer

    folder = tmp_path_factory.mktemp("vllm-llama")
    tok = build_tokenizer(folder)
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    tf.LlamaForCausalLM(cfg).save_pretrained(str(folder), safe_serialization=True)
    return folder


@needs_cuda
@needs_vllm
def test_vllm_matches_hf_and_hits_the_prefix_cache(vllm_llama):
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.scorers.vllm import VLLMGenerativeScorer
    from recbench.prompts import PromptRequest

    history = "User behavior sequence:\n" + "".join(f"({i}) The Hobbit (J. R. R. Tolkien) fantasy book\n" for i in range(1, 21))
    reqs = [PromptRequest(history, f"Candidate item: {c}\nAnswer (Yes/No):") for c in ("Heat", "Alien", "Yes", "Civilization")]
    vl_scorer = VLLMGenerativeScorer(resolve_model(f"vllm:{vllm_llama}"), dtype="float32", gpu_memory_utilization=0.3)
    try:
        vl = vl_scorer.score(reqs)
        first = vl_scorer.diagnostics()
        again = vl_scorer.score(reqs)
        second = vl_scorer.diagnostics()
        labels = vl_scorer.labels
    finally:
        vl_scorer.close()
    assert first["label_floors"] == 0 and first["data_parallel_size"] == 1
    assert second["cached_tokens"] > first["cached_tokens"]  # the repeat pass reads the prefix cache
    assert np.abs(np.array(vl) - np.array(again)).max() < 1e-4
    hf_scorer = HFGenerativeScorer(resolve_model(str(vllm_llama)), LoadOptions(device="cuda", dtype="float32"))
    assert hf_scorer.labels == labels
    hf = hf_scorer.score(reqs)
    assert np.abs(np.array(hf) - np.array(vl)).max() < 1e-3


@needs_cuda
@needs_vllm
def test_vllm_refuses_more_gpus_than_present(vllm_llama):
    from recbench.errors import ConfigError
    from recbench.models import resolve_model
    from recbench.scorers.vllm import VLLMGenerativeScorer

    with pytest.raises(ConfigError, match="GPUs"):
        VLLMGenerativeScorer(resolve_model(f"vllm:{vllm_llama}"), tensor_parallel_size=torch.cuda.device_count() + 1)


def test_cuda_only_options_fail_clearly_without_gpu(tiny_models):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from recbench.errors import ConfigError
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer

    with pytest.raises(ConfigError, match="CUDA"):
        HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), LoadOptions(quantization="4bit"))
