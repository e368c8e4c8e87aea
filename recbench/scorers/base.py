"""The scorer interface: what every backend (local HF, OpenAI-compatible API, vLLM) offers.

Two small abstract classes over plain requests, in the spirit of lm-evaluation-harness:
a generative scorer turns PromptRequests into P(Yes); an embedding scorer turns texts into
vectors. Everything else (prompts, caching, metrics, results) is shared and lives outside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Dict, List, Sequence, Tuple

import numpy as np

from ..prompts import PromptRequest


class Scorer(ABC):
    scheme: ClassVar[str]
    backend: ClassVar[str]

    @abstractmethod
    def identity(self) -> Dict:
        """Everything that changes the scores (model id, revision, dtype, label ids, adapter...).

        It keys the score cache and goes into the results' meta. Never holds secrets."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` (prompt truncation works on these)."""

    @property
    @abstractmethod
    def context_budget(self) -> int:
        """The longest input, in tokens, that may be sent."""

    def diagnostics(self) -> Dict:
        """Extra run-level numbers for the results (e.g. label mass, token usage)."""
        return {}

    def close(self) -> None:
        """Release models, sessions or servers."""


class GenerativeScorer(Scorer):
    scheme = "generative"

    @abstractmethod
    def score_detailed(self, requests: Sequence[PromptRequest]) -> Tuple[List[float], List[Dict]]:
        """P(Yes) for each request, unrounded, in order, plus a small dict per request
        (diagnostics such as the label-token probability mass) stored beside the score.

        Requests sharing a prefix string (a user's candidates) may be scored together with
        the prefix computed once."""

    def score(self, requests: Sequence[PromptRequest]) -> List[float]:
        return self.score_detailed(requests)[0]

    def render(self, request: PromptRequest) -> PromptRequest:
        """The exact text the model sees (e.g. wrapped in a chat template), still split."""
        return request

    def label_info(self) -> Dict:
        """The label tokens used (ids and texts), for the results."""
        return {}


class EmbeddingScorer(Scorer):
    scheme = "discriminative"

    @abstractmethod
    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        """(len(texts), dim) float32 vectors; role is 'user' or 'item' (E5-style prefixes)."""
