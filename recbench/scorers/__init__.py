"""Scorer backends. Adding a backend = one new file + one line in BACKENDS.

make_scorer() picks the backend from the ModelSpec (hf | openai | vllm) and the scheme.
"""

from __future__ import annotations

import importlib
from typing import Dict, Tuple

from ..config import RunConfig
from ..errors import ConfigError
from ..models import ModelSpec, check_scheme
from .base import EmbeddingScorer, GenerativeScorer, Scorer

# (backend, scheme) -> "module:Class"
BACKENDS: Dict[Tuple[str, str], str] = {
    ("hf", "generative"): "recbench.scorers.hf_generative:HFGenerativeScorer",
    ("hf", "discriminative"): "recbench.scorers.hf_embedding:HFEmbeddingScorer",
    ("openai", "generative"): "recbench.scorers.api.generative:OpenAIGenerativeScorer",
    ("openai", "discriminative"): "recbench.scorers.api.embedding:OpenAIEmbeddingScorer",
    ("vllm", "generative"): "recbench.scorers.vllm:VLLMGenerativeScorer",
}


def make_scorer(spec: ModelSpec, run: RunConfig) -> Scorer:
    """Instantiate the scorer for a model and the run's scheme (via the class's from_run)."""
    scheme = run.scheme
    check_scheme(spec, scheme)
    target = BACKENDS.get((spec.backend, scheme))
    if target is None:
        raise ConfigError(f"the {spec.backend} backend does not support the {scheme} scheme")
    module, _, cls = target.partition(":")
    scorer_cls = getattr(importlib.import_module(module), cls)
    return scorer_cls.from_run(spec, run)


__all__ = ["BACKENDS", "EmbeddingScorer", "GenerativeScorer", "Scorer", "make_scorer"]
