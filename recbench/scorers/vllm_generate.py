"""Greedy text generation with vLLM (the `generation` ability of `--model vllm:<id or folder>`).

What the list-wise scheme needs from vLLM: every prompt of a call in one `generate` call
(vLLM batches them itself, and its prefix cache computes a shared head once), greedy decoding
(temperature 0) with an explicit token limit, and answers that end at the model's end-of-turn
tokens. Prompts are rendered and tokenised exactly as the HF generator does
(`hf_generate.render_generation`: the chat template where the model has one, item text kept
plain text), so both backends show a model the same token ids.

One engine per process: several replicas are several processes (torchrun ranks, see
docs/distributed.md); `--data-parallel-size` applies to the pairwise vLLM scorer only.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..errors import ConfigError, ModelError, require
from ..models import ModelSpec
from .base import OnText, TextGenerator
from .hf_common import local_revision
from .hf_generate import GenerationPrompts, token_ids
from .vllm import _count_parameters, _device_name, _Engine, check_devices, engine_kwargs, run_settings


def eos_ids(tokenizer, model_id: str, revision: Optional[str] = None) -> List[int]:
    """Every token that ends an answer: the tokenizer's EOS and the generation config's."""
    values: List[Any] = [getattr(tokenizer, "eos_token_id", None)]
    try:
        from transformers import GenerationConfig

        values.append(GenerationConfig.from_pretrained(model_id, revision=revision).eos_token_id)
    except (OSError, ValueError, TypeError):  # no generation_config.json: the tokenizer's EOS only
        pass
    return token_ids(*values)


class VLLMTextGenerator(GenerationPrompts, TextGenerator):
    backend = "vllm"
    concurrency = 64  # users per runner call: vLLM batches a call's prompts itself

    def __init__(self, spec: ModelSpec, *, dtype=None, max_length=None, trust_remote_code=False,
                 chat_template: Optional[bool] = None, quantization=None, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, gpu_memory_utilization: Optional[float] = None,
                 engine_args: Optional[Dict[str, Any]] = None):
        self.vllm = require("vllm", "vllm", "the vLLM backend")
        tp, dp = int(tensor_parallel_size or 1), int(data_parallel_size or 1)
        if dp > 1:
            raise ConfigError("--data-parallel-size applies to vLLM's pairwise scoring; for list-wise generation "
                              "on several GPUs launch one process per GPU (torchrun, docs/distributed.md)")
        self.cpu = check_devices(tp, dp)
        self.spec = spec
        self.tp = tp
        kwargs = engine_kwargs(spec, dtype=dtype, max_length=max_length, trust_remote_code=trust_remote_code,
                               quantization=quantization, tensor_parallel_size=tp,
                               gpu_memory_utilization=gpu_memory_utilization, extra=engine_args)
        self._engine: Optional[_Engine] = _Engine(self.vllm, kwargs)
        self.tokenizer = self._engine.llm.get_tokenizer()
        has_chat = bool(getattr(self.tokenizer, "chat_template", None))
        if chat_template and not has_chat:
            self.close()
            raise ModelError(f"--chat-template asked for, but model '{spec.name}' has no chat template")
        self.chat = has_chat if chat_template is None else bool(chat_template)
        self._limit = int(self._engine.info["max_model_len"])
        self._dtype = self._engine.info["dtype"]
        self._revision = local_revision(spec) or spec.revision or "main"
        self._parameters = _count_parameters(spec)
        self.eos_ids = eos_ids(self.tokenizer, spec.model_id, spec.revision)
        self.begin_scenario()

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "VLLMTextGenerator":
        return cls(spec, **run_settings(run))

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {"model": self.spec.name, "model_id": self.spec.public_id, "revision": self._revision,
                "backend": self.backend, "kind": "causal", "dtype": self._dtype, "chat_template": self.chat,
                "decoding": "greedy", "eos_ids": self.eos_ids}

    def begin_scenario(self) -> None:
        self._counts = {"generated": 0, "new_tokens": 0, "at_limit": 0, "prompt_tokens": 0, "cached_tokens": 0}

    def efficiency_counters(self) -> Dict:
        c = self._counts
        return {"device": "cpu" if self.cpu else "cuda", "device_name": _device_name(self.cpu), "dtype": self._dtype,
                "parameters": self._parameters, "tokens_in_prompts": c["prompt_tokens"],
                "tokens_processed": c["prompt_tokens"] - c["cached_tokens"] + c["new_tokens"]}

    def diagnostics(self) -> Dict:
        c = self._counts
        return {"device": "cpu" if self.cpu else "cuda", "tensor_parallel_size": self.tp,
                "generated": c["generated"], "new_tokens": c["new_tokens"], "answers_at_token_limit": c["at_limit"],
                "prefix_cache_hit_rate": c["cached_tokens"] / c["prompt_tokens"] if c["prompt_tokens"] else None}

    # -- generating -----------------------------------------------------------------------
    def sampling_params(self, max_new_tokens: int):
        """Greedy, at most max_new_tokens, stopping at the model's end-of-turn tokens."""
        return self.vllm.SamplingParams(max_tokens=int(max_new_tokens), temperature=0.0,
                                        stop_token_ids=list(self.eos_ids), skip_special_tokens=True)

    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 on_result: Optional[OnText] = None) -> List[str]:
        if self._engine is None:
            raise ModelError("the vLLM generator was closed")
        ids = self.prompt_ids(prompts, max_new_tokens)
        if not ids:
            return []
        from vllm.inputs import TokensPrompt

        outputs = self._engine.llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids],
                                            self.sampling_params(max_new_tokens), use_tqdm=False)
        texts: List[str] = []
        c = self._counts
        for i, out in enumerate(outputs):
            answer = out.outputs[0]
            text = (answer.text or "").strip()
            texts.append(text)
            c["generated"] += 1
            c["new_tokens"] += len(answer.token_ids)
            c["at_limit"] += int(answer.finish_reason == "length")
            c["prompt_tokens"] += len(out.prompt_token_ids or ())
            c["cached_tokens"] += int(getattr(out, "num_cached_tokens", 0) or 0)
            if on_result is not None:
                on_result(i, text)
        return texts

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


__all__ = ["VLLMTextGenerator", "eos_ids"]
