"""Scorer backends. Adding a backend = one new file + its lines in BACKENDS.

make_scorer() picks the class by (backend, ability): the model spec names the backend, the
scheme names the ability it needs ("logits", "embedding", "generation").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Type

from ..errors import ConfigError
from .base import EmbeddingScorer, GenerativeScorer, Scorer, TextGenerator

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RunConfig
    from ..models import ModelSpec

# (backend, ability) -> "module:Class"
BACKENDS: Dict[Tuple[str, str], str] = {
    ("hf", "logits"): "recbench.scorers.hf_generative:HFGenerativeScorer",
    ("hf", "embedding"): "recbench.scorers.hf_embedding:HFEmbeddingScorer",
    ("openai", "logits"): "recbench.scorers.api.generative:OpenAIGenerativeScorer",
    ("openai", "embedding"): "recbench.scorers.api.embedding:OpenAIEmbeddingScorer",
    ("vllm", "logits"): "recbench.scorers.vllm:VLLMGenerativeScorer",
    ("vllm", "generation"): "recbench.scorers.vllm_generate:VLLMTextGenerator",
    ("dummy", "logits"): "recbench.scorers.dummy:DummyGenerativeScorer",
    ("dummy", "embedding"): "recbench.scorers.dummy:DummyEmbeddingScorer",
    ("hf", "generation"): "recbench.scorers.hf_generate:HFTextGenerator",
    ("openai", "generation"): "recbench.scorers.api.generation:OpenAITextGenerator",
    ("dummy", "generation"): "recbench.scorers.dummy:DummyTextGenerator",
    ("baseline", "recommender"): "recbench.scorers.baseline:BaselineScorer",
}


def scorer_class(backend: str, ability: str) -> Type[Scorer]:
    target = BACKENDS.get((backend, ability))
    if target is None:
        raise ConfigError(f"the {backend} backend offers no '{ability}' scorer")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_scorer(spec: "ModelSpec", run: "RunConfig", ability: Optional[str] = None) -> Scorer:
    """Instantiate the scorer of a model (via the class's from_run) for one ability; by
    default the ability the run's scheme needs."""
    if ability is None:
        from ..schemes import resolve_scheme

        ability = resolve_scheme(run.scheme, spec).scorer_kind
    return scorer_class(spec.backend, ability).from_run(spec, run)


__all__ = ["BACKENDS", "EmbeddingScorer", "GenerativeScorer", "Scorer", "TextGenerator", "make_scorer",
           "scorer_class"]
