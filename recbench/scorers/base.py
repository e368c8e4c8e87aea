"""The scorer contract: everything the runner calls on a backend, declared once.

A backend is a Scorer subclass of one *kind* (the ability a scheme asks for): a "logits"
scorer turns PromptRequests into P(Yes); an "embedding" scorer turns texts into vectors; a
"generation" scorer turns prompts into greedy text (list-wise ranking).
Prompts, the score cache, metrics and results live outside (lm-evaluation-harness style):
a scorer only computes. Optional abilities are explicit attributes with defaults, so the
runner never probes with hasattr.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError
from ..prompts import PromptRequest

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RunConfig
    from ..models import ModelSpec

OnResult = Callable[[int, float, Dict], None]
OnText = Callable[[int, str], None]  # (index in the prompts, generated text)


class Scorer(ABC):
    backend: ClassVar[str]
    kind: ClassVar[str]  # "logits" | "embedding" | "generation"
    supports_dry_run: ClassVar[bool] = False  # cost estimates without sending (API backends)
    concurrency: int = 1  # requests the backend works on at once (the runner sizes its chunks by it)
    adapter_info: Optional[Dict] = None  # the LoRA adapter applied, for the results
    # backends that load weights only when a request first needs them (a rerun served from the
    # score cache loads none) count the seconds that took here, and say whether they did
    weights_load_s: float = 0.0

    @property
    def weights_loaded(self) -> bool:
        """Whether the model's weights are in memory (False on a run served from the cache by a
        backend that loads them lazily)."""
        return True

    @classmethod
    @abstractmethod
    def from_run(cls, spec: "ModelSpec", run: "RunConfig") -> "Scorer":
        """The scorer for a model under the run's settings."""

    @abstractmethod
    def identity(self) -> Dict:
        """Everything that changes the scores (model id, revision or weights fingerprint, dtype,
        label ids, adapter...). It keys the score cache and goes into the results. No secrets."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` (prompt truncation works on these)."""

    @property
    @abstractmethod
    def context_budget(self) -> int:
        """The longest input, in tokens, that may be sent."""

    def begin_scenario(self) -> None:
        """Called before each scenario: per-scenario diagnostics count from here."""

    def diagnostics(self) -> Dict:
        """Extra run-level numbers for the results (e.g. device, batch size, token usage)."""
        return {}

    def efficiency_counters(self) -> Dict:
        """Counters for the results' efficiency record, since begin_scenario: device, dtype,
        parameters, tokens_in_prompts, tokens_processed (what ran through the model), and for
        API backends api={requests, prompt_tokens, completion_tokens, cost_usd}."""
        return {}

    def dry_run_estimate(self, requests: Sequence) -> Dict:
        """Requests, tokens and cost these requests would take; sends nothing."""
        raise ConfigError("--dry-run estimates API cost; it applies to openai:<model> models only")

    def close(self) -> None:
        """Release models, sessions or servers."""


class GenerativeScorer(Scorer):
    """P(Yes) over prompts (the `logits` ability)."""

    kind = "logits"

    @abstractmethod
    def score_detailed(self, requests: Sequence[PromptRequest],
                       on_result: Optional[OnResult] = None) -> Tuple[List[float], List[Dict]]:
        """P(Yes) for each request, unrounded, in order, plus a small dict per request
        (e.g. the label-token probability mass) stored beside the score.

        Backends that answer one request at a time (APIs) call on_result(index, score, extra)
        the moment each answer arrives, from any thread, so the runner commits it at once.
        Requests sharing a prefix (a user's candidates) may be scored with the prefix once."""

    def score(self, requests: Sequence[PromptRequest]) -> List[float]:
        return self.score_detailed(requests)[0]

    def render(self, request: PromptRequest) -> PromptRequest:
        """The exact text the model sees (e.g. wrapped in a chat template), still split."""
        return request

    def set_answer_cue(self, probe: PromptRequest) -> None:
        """Derive the label tokens from a prompt rendered with the template in use (the text
        that follows it is what the labels must continue)."""

    def label_info(self) -> Dict:
        """The label tokens used (ids and texts), for the results."""
        return {}


class EmbeddingScorer(Scorer):
    """Vectors for texts (the `embedding` ability)."""

    kind = "embedding"
    embed_batch_size: int = 64  # texts per embed() call the runner sends (and commits at most)

    @abstractmethod
    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        """(len(texts), dim) float32 vectors; role is 'user' or 'item' (E5-style prefixes)."""


@dataclass(frozen=True)
class GenerationRequest:
    """One generation as a scheme plans it (dry-run estimates): the prompt before any chat
    wrapping and the most tokens the answer may take."""

    prompt: str
    max_new_tokens: int


class TextGenerator(Scorer):
    """Greedy text for prompts (the `generation` ability).

    Greedy (temperature 0, no sampling) so that a rerun gives the same answer and the cache
    may stand in for the model. A backend renders each prompt as its model expects (a chat
    template where it applies); `render` says what exactly the model sees (the cache key)."""

    kind = "generation"

    @abstractmethod
    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 on_result: Optional[OnText] = None) -> List[str]:
        """The generated text (the answer only, without the prompt) for each prompt, in order.

        Backends that finish answers one at a time or in batches call on_result(index, text)
        for each the moment it exists, from any thread, so the runner commits it at once."""

    def render(self, prompt: str) -> str:
        """The exact text the model is given for `prompt` (e.g. wrapped in a chat template)."""
        return prompt

    @property
    def chat_applied(self) -> Optional[bool]:
        """Whether prompts go through a chat format (a chat template or a chat endpoint)."""
        return None
