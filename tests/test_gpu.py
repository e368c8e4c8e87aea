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


@needs_cuda
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed")
def test_vllm_matches_hf(tiny_models):
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.scorers.vllm import VLLMGenerativeScorer
    from recbench.prompts import PromptRequest

    spec = resolve_model(str(tiny_models["llama"]))
    reqs = [PromptRequest("User behavior sequence:\n(1) The Hobbit\n", f"Candidate item: {c}\nAnswer (Yes/No):")
            for c in ("Heat", "Alien", "Yes")]
    hf = HFGenerativeScorer(spec, LoadOptions(device="cuda", dtype="float32")).score(reqs)
    vl = VLLMGenerativeScorer(spec, dtype="float32").score(reqs)
    assert np.abs(np.array(hf) - np.array(vl)).max() < 1e-3


def test_cuda_only_options_fail_clearly_without_gpu(tiny_models):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from recbench.errors import ConfigError
    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer

    with pytest.raises(ConfigError, match="CUDA"):
        HFGenerativeScorer(resolve_model(str(tiny_models["llama"])), LoadOptions(quantization="4bit"))
