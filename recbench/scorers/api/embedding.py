"""Vectors from an OpenAI-compatible /embeddings endpoint (payload and answer only; the HTTP
side is transport.py). Each distinct text is sent once, in batches, cut to the model's input
limit (counted); token-level answers (no pooling) are refused with a clear line."""

from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from ... import pricing
from ...errors import ConfigError, ModelError
from ...models import ModelSpec
from ...prompts import PromptRequest
from ..base import EmbeddingScorer
from .replies import Malformed, Unsupported, vectors
from .transport import BUDGET_SLACK, OpenAITransport


class OpenAIEmbeddingScorer(OpenAITransport, EmbeddingScorer):
    """Vectors from an OpenAI-compatible /embeddings endpoint; each distinct text sent once."""

    DEFAULT_BATCH = 64  # texts per request
    DEFAULT_LIMIT = 2048  # input tokens, when nothing else says (OpenAI's models: 8191, from the table)

    def __init__(self, spec: ModelSpec, *, batch_size="auto", **kwargs):
        if batch_size in (None, "auto"):
            self.batch = self.DEFAULT_BATCH
        else:
            try:
                self.batch = int(batch_size)
            except (TypeError, ValueError):
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}") from None
            if self.batch < 1:
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
        self.dim: Optional[int] = None
        self._truncated = 0
        self._embedded = 0
        super().__init__(spec, **kwargs)
        self.embed_batch_size = self.batch * self.concurrency  # texts per embed() call: fills the pool

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "OpenAIEmbeddingScorer":
        return cls(spec, batch_size=run.batch_size, **cls._run_kwargs(run))

    def identity(self) -> Dict:
        return {**self._base_identity(), "kind": "embeddings"}

    @property
    def context_budget(self) -> int:
        return max(32, int(self._context() * BUDGET_SLACK))

    def begin_scenario(self) -> None:
        super().begin_scenario()
        with self._lock:
            self._embedded = self._truncated = 0

    def diagnostics(self) -> Dict:
        api = self._usage_diag()
        with self._lock:
            embedded, truncated = self._embedded, self._truncated
        return {"api": api, "embedding_dim": self.dim, "texts_embedded": embedded, "inputs_truncated": truncated,
                "input_limit_tokens": self.context_budget}

    def _truncate(self, text: str) -> str:
        """Cut a text to the model's input limit (keeps the beginning); counted."""
        limit = self.context_budget
        n = pricing.estimate_tokens(text)
        if n <= limit:
            return text
        while n > limit and text:
            text = text[: max(1, int(len(text) * limit / n * 0.98))]
            n = pricing.estimate_tokens(text)
        with self._lock:
            self._truncated += 1
        return text

    def _array(self, rows) -> np.ndarray:
        if any(isinstance(v[0], list) for v in rows):
            raise ModelError(
                f"the server at {self.endpoint} returned one vector per token for model '{self.model}' (no "
                "pooling); start it with a pooling type (llama.cpp: pooling mean) or use another model"
            )
        try:
            arr = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise Malformed("embeddings of different sizes or not numbers") from None
        if arr.ndim != 2 or not np.isfinite(arr).all():
            raise Malformed("embeddings of different sizes or not finite")
        return arr

    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        texts = list(texts)
        distinct = list(dict.fromkeys(texts))
        chunks = [tuple(distinct[i : i + self.batch]) for i in range(0, len(distinct), self.batch)]

        def work(chunk: Tuple[str, ...]) -> np.ndarray:
            inputs = [self._truncate(t) for t in chunk]
            arr = self._request("embeddings", "embeddings", {"input": inputs, "encoding_format": "float"},
                                lambda d: self._array(vectors(d, len(inputs))))
            with self._lock:
                self._embedded += len(chunk)
            return arr

        try:
            results = self._parallel(chunks, work)
        except Unsupported as exc:
            raise ModelError(f"the server at {self.endpoint} cannot embed with model '{self.model}' ({exc}); "
                             "is it an embedding model, and does the server serve /embeddings?") from None
        found: Dict[str, np.ndarray] = {}
        for chunk, arr in results.items():
            found.update(zip(chunk, arr))
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        dims = {v.shape[-1] for v in found.values()}
        if len(dims) != 1:
            raise ModelError(f"the server at {self.endpoint} returned embeddings of different sizes {sorted(dims)}")
        out = np.stack([found[t] for t in texts])
        self.dim = out.shape[1]
        return out

    def dry_run_estimate(self, requests: Iterable) -> Dict:
        texts = [r.text if isinstance(r, PromptRequest) else str(r) for r in requests]
        distinct = list(dict.fromkeys(texts))
        tokens = sum(min(pricing.estimate_tokens(t), self.context_budget) for t in distinct)
        cost = pricing.cost_usd(self._price, tokens, 0)
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "requests": math.ceil(len(distinct) / self.batch),
            "texts": len(distinct),
            "prompt_tokens": tokens,
            "estimated_cost_usd": round(cost, 6) if cost is not None else None,
            "price_source": self._price_source,
            "token_count": "estimate (about 4 characters per token; no tokenizer)",
        }
