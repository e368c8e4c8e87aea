"""Greedy text from an OpenAI-compatible endpoint (the `generation` ability: list-wise ranking).

/chat/completions by default (the server applies the model's chat format), /completions
on the raw prompt with --no-chat-template; temperature 0 either way. Each distinct prompt is
sent once, up to `concurrency` in flight, and every answer is handed to `on_result` the
moment it arrives so the runner commits it at once. The HTTP side (retries, key, usage,
Ctrl-C) is transport.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Optional, Sequence

from ... import pricing
from ...errors import ConfigError, ModelError
from ...models import ModelSpec
from ..base import GenerationRequest, OnText, TextGenerator
from .replies import Unsupported, answer_text
from .transport import BUDGET_SLACK, OpenAITransport

CHAT_OVERHEAD_TOKENS = 8  # role markers around one user message


class OpenAITextGenerator(OpenAITransport, TextGenerator):
    """Greedy answers from /chat/completions (or /completions with --no-chat-template)."""

    def __init__(self, spec: ModelSpec, *, chat_template: Optional[bool] = None, **kwargs):
        self.endpoint_kind = "completions" if chat_template is False else "chat"
        self._counts: Counter = Counter()
        super().__init__(spec, **kwargs)

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "OpenAITextGenerator":
        return cls(spec, chat_template=run.chat_template, **cls._run_kwargs(run))

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {**self._base_identity(), "kind": "generation", "endpoint_kind": self.endpoint_kind,
                "decoding": "greedy (temperature 0)"}

    @property
    def chat_applied(self) -> Optional[bool]:
        return self.endpoint_kind == "chat"

    @property
    def context_budget(self) -> int:
        overhead = CHAT_OVERHEAD_TOKENS if self.endpoint_kind == "chat" else 0
        return max(64, int(self._context() * BUDGET_SLACK) - overhead)

    def begin_scenario(self) -> None:
        super().begin_scenario()
        with self._lock:
            self._counts = Counter()

    def diagnostics(self) -> Dict:
        with self._lock:
            c = Counter(self._counts)
        return {"api": self._usage_diag(), "endpoint_kind": self.endpoint_kind, "generated": c["generated"],
                "empty_answers": c["empty"]}

    # -- generating -----------------------------------------------------------------------
    def _payload(self, text: str, max_new_tokens: int) -> Dict:
        if self.endpoint_kind == "chat":
            return {"messages": [{"role": "user", "content": text}], "max_tokens": int(max_new_tokens),
                    "temperature": 0}
        return {"prompt": text, "max_tokens": int(max_new_tokens), "temperature": 0}

    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 on_result: Optional[OnText] = None) -> List[str]:
        if self.dry_run:
            raise ConfigError("a --dry-run scorer sends nothing and cannot generate")
        where: Dict[str, List[int]] = {}
        for i, t in enumerate(prompts):
            where.setdefault(t, []).append(i)
        out: List[Optional[str]] = [None] * len(prompts)
        kind = self.endpoint_kind

        def work(text: str) -> None:
            answer = self._request(f"{kind} (generation)", kind, self._payload(text, max_new_tokens),
                                   lambda d: answer_text(d, kind))
            with self._lock:
                self._counts["generated"] += 1
                self._counts["empty"] += int(not answer.strip())
            for i in where[text]:
                out[i] = answer
                if on_result is not None and self._delivering():
                    on_result(i, answer)

        try:
            self._parallel(list(where), work)
        except Unsupported as exc:
            other = "--no-chat-template (the /completions endpoint)" if kind == "chat" else \
                "the default chat endpoint (drop --no-chat-template)"
            raise ModelError(f"the server at {self.endpoint} refused a {kind} request for model '{self.model}' "
                             f"({exc}); if it lacks this endpoint, try {other}") from None
        return out  # type: ignore[return-value]

    def dry_run_estimate(self, requests: Sequence) -> Dict:
        """Requests, estimated tokens and cost; the answer is counted at its full token allowance
        (an upper bound: answers usually stop earlier)."""
        overhead = CHAT_OVERHEAD_TOKENS if self.endpoint_kind == "chat" else 0
        plans: Dict[str, int] = {}
        for r in requests:
            prompt, most = (r.prompt, r.max_new_tokens) if isinstance(r, GenerationRequest) else (str(r), 0)
            plans[prompt] = max(plans.get(prompt, 0), most)
        prompt_tokens = sum(pricing.estimate_tokens(t) + overhead for t in plans)
        completion_tokens = sum(plans.values())
        cost = pricing.cost_usd(self._price, prompt_tokens, completion_tokens)
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "endpoint_kind": self.endpoint_kind,
            "requests": len(plans),
            "prompt_tokens": prompt_tokens,
            "completion_tokens_at_most": completion_tokens,
            "estimated_cost_usd_at_most": round(cost, 6) if cost is not None else None,
            "price_source": self._price_source,
            "token_count": "estimate (about 4 characters per token; no tokenizer)",
        }
