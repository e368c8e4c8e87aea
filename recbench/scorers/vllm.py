"""Generative scoring on GPUs with vLLM (`--model vllm:<hf id>`).

P(Yes) is read exactly, not from a top-k list: each request is sent twice as token ids,
prompt + Yes and prompt + No, with `prompt_logprobs=0`, which returns log P(label | prompt)
for the last prompt token. vLLM's automatic prefix caching runs the shared prompt once, so
the second copy (and the shared prefix of a user's candidates) costs almost nothing.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

from ..errors import ConfigError, require
from ..models import ModelSpec
from ..prompts import PromptRequest
from .base import GenerativeScorer
from .hf_generative import derive_label_tokens


class VLLMGenerativeScorer(GenerativeScorer):
    backend = "vllm"

    def __init__(self, spec: ModelSpec, *, dtype=None, max_length=None, trust_remote_code=False,
                 chat_template=False, quantization=None, tensor_parallel_size=None):
        vllm = require("vllm", "vllm", "the vLLM backend")
        torch = require("torch", "hf", "the vLLM backend")
        if not torch.cuda.is_available():
            raise ConfigError("the vLLM backend needs a CUDA GPU; use the local HF backend (drop the vllm: prefix) on CPU")
        self.vllm = vllm
        self.spec = spec
        kwargs = dict(model=spec.model_id, trust_remote_code=trust_remote_code, enable_prefix_caching=True,
                      tensor_parallel_size=tensor_parallel_size or torch.cuda.device_count())
        if spec.revision:
            kwargs["revision"] = spec.revision
        if dtype:
            kwargs["dtype"] = dtype
        if max_length:
            kwargs["max_model_len"] = int(max_length)
        if quantization:
            kwargs["quantization"] = "bitsandbytes"
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.chat = chat_template
        self._limit = int(self.llm.llm_engine.model_config.max_model_len)
        self.labels = derive_label_tokens(self.tokenizer, self.render(
            PromptRequest("User behavior sequence:\n(1) A\n", "Candidate item: B\nAnswer (Yes/No):")).text)

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "VLLMGenerativeScorer":
        return cls(spec, dtype=run.dtype, max_length=run.max_length, trust_remote_code=run.trust_remote_code,
                   chat_template=run.chat_template, quantization=run.quantization)

    def identity(self) -> Dict:
        return {"model": self.spec.name, "model_id": self.spec.model_id, "revision": self.spec.revision or "main",
                "backend": self.backend, "chat_template": self.chat, "labels": self.labels.as_dict(),
                "dtype": str(self.llm.llm_engine.model_config.dtype).replace("torch.", "")}

    def label_info(self) -> Dict:
        return self.labels.as_dict()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    @property
    def context_budget(self) -> int:
        return self._limit - 8 - (64 if self.chat else 0)

    def render(self, request: PromptRequest) -> PromptRequest:
        if not self.chat:
            return request
        full = self.tokenizer.apply_chat_template([{"role": "user", "content": request.text}], tokenize=False,
                                                  add_generation_prompt=True)
        cut = full.find(request.prefix) + len(request.prefix)
        return PromptRequest(full[:cut], full[cut:])

    def score_detailed(self, requests: Sequence[PromptRequest]) -> Tuple[List[float], List[Dict]]:
        from vllm.inputs import TokensPrompt

        prompts = []
        for r in requests:
            ids = self.tokenizer(self.render(r).text, add_special_tokens=not self.chat)["input_ids"]
            prompts.append(TokensPrompt(prompt_token_ids=ids + [self.labels.yes_id]))
            prompts.append(TokensPrompt(prompt_token_ids=ids + [self.labels.no_id]))
        params = self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        scores, extras = [], []
        for k in range(0, len(outputs), 2):
            lp_yes = _last_logprob(outputs[k], self.labels.yes_id)
            lp_no = _last_logprob(outputs[k + 1], self.labels.no_id)
            top = max(lp_yes, lp_no)
            p_yes = math.exp(lp_yes - top) / (math.exp(lp_yes - top) + math.exp(lp_no - top))
            scores.append(p_yes)
            extras.append({"mass": math.exp(lp_yes) + math.exp(lp_no)})
        return scores, extras

    def close(self) -> None:
        self.llm = None


def _last_logprob(output, token_id: int) -> float:
    """log P(last prompt token | everything before it) from vLLM's prompt_logprobs."""
    last = output.prompt_logprobs[-1]
    entry = last[token_id]
    return float(getattr(entry, "logprob", entry))
