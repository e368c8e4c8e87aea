"""Conventional recommenders, scored on exactly the samples the LLMs see (PROTOCOL §11).

Registry: name -> (module:Class, what it needs). The built-in models (random, popularity,
itemknn) need numpy only; the deep CTR and sequential models come from torch-rechub
(`pip install 'recbench[baselines]'`). A model name may carry an item-embedding model after a
`+` (`din+minilm`): the LLM-for-RS variant, the same architecture fed frozen item-text vectors.
Importing this package imports neither torch nor the library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Type

from ..errors import ConfigError, suggest
from .config import BaselineConfig


@dataclass(frozen=True)
class BaselineInfo:
    target: str  # "module:Class"
    description: str
    extra: Optional[str] = None  # the pip extra it needs beyond the core
    text: bool = False  # may take frozen item-text vectors (LLM-for-RS)


BASELINES: Dict[str, BaselineInfo] = {
    "random": BaselineInfo("recbench.baselines.simple:RandomRecommender", "uniform random scores (seeded)"),
    "popularity": BaselineInfo("recbench.baselines.simple:PopularityRecommender",
                               "how many fine-tuning users liked the candidate"),
    "itemknn": BaselineInfo("recbench.baselines.simple:ItemKNNRecommender",
                            "item-item co-occurrence similarity to the user's history"),
    "din": BaselineInfo("recbench.baselines.deep:DIN", "Deep Interest Network (torch-rechub)", "baselines", True),
    "dcnv2": BaselineInfo("recbench.baselines.deep:DCNv2", "Deep & Cross Network v2 (torch-rechub)", "baselines",
                          True),
    "deepfm": BaselineInfo("recbench.baselines.deep:DeepFM", "DeepFM (torch-rechub)", "baselines", True),
    "bst": BaselineInfo("recbench.baselines.deep:BST", "Behavior Sequence Transformer (torch-rechub)", "baselines",
                        True),
    "sasrec": BaselineInfo("recbench.baselines.sequential:SASRec",
                           "Self-Attentive Sequential Recommendation (torch-rechub)", "baselines"),
    "gru4rec": BaselineInfo("recbench.baselines.sequential:GRU4Rec", "GRU4Rec: recurrent next-item model (torch-rechub)",
                            "baselines"),
}


def baseline_names() -> List[str]:
    return list(BASELINES)


def baseline_info(name: str) -> BaselineInfo:
    info = BASELINES.get(name)
    if info is None:
        raise ConfigError(f"unknown conventional model '{name}'" + suggest(str(name), BASELINES))
    return info


def recommender_class(name: str) -> Type:
    module, _, cls = baseline_info(name).target.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["BASELINES", "BaselineConfig", "BaselineInfo", "baseline_info", "baseline_names", "recommender_class"]
