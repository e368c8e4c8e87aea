"""What a conventional recommender is: fitted on a fine-tuning split, then scoring pairs.

A recommender reads item ids only (data.Pairs); it is fitted once per scenario on the
fine-tuning split's train users, watched (or early-stopped) on its valid users, saved to a
folder and loaded back from it, so a trained model is reused across runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .config import BaselineConfig
from .data import Pairs, Vocab


@dataclass
class FitData:
    """Everything a recommender may learn from (one scenario's fine-tuning split).

    The labelled train pairs are built on first use (`train_pairs()`, `train_rows()`): on
    seqrec they are every position of every sequence times (1 + negatives), each with its
    history, which the sequential models, reading `sequences`, never need.
    """

    vocab: Vocab
    valid: Pairs
    history_width: int  # the width of every Pairs history, at training and at scoring
    train: Optional[Pairs] = None
    train_frame: Optional[pd.DataFrame] = None  # the raw rows (the counting models read positive sets from them)
    build_train: Optional[Callable[[], Tuple[pd.DataFrame, Pairs]]] = None  # (rows, pairs) when not given
    sequences: Optional[np.ndarray] = None  # (n, history width + 1) train users' positives, left-padded ids
    item_vectors: Optional[np.ndarray] = None  # (vocab.size, d) frozen item-text features, rows 0/1 zero
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    desc: str = ""
    validate: Optional[Callable[[Pairs, np.ndarray], float]] = None  # valid gauc of scores

    def _built(self) -> Tuple[pd.DataFrame, Pairs]:
        if self.train is None or self.train_frame is None:
            if self.build_train is None:
                raise ValueError("FitData has neither train pairs nor a way to build them")
            self.train_frame, self.train = self.build_train()
        return self.train_frame, self.train

    def train_pairs(self) -> Pairs:
        return self._built()[1]

    def train_rows(self) -> pd.DataFrame:
        return self._built()[0]


@dataclass
class FitReport:
    """How fitting went (written into the model folder and the results)."""

    epochs: int = 0
    best_epoch: Optional[int] = None
    valid_gauc: Optional[float] = None
    valid_curve: List[float] = field(default_factory=list)
    train_loss: List[float] = field(default_factory=list)
    parameters: Optional[int] = None
    stopped_early: bool = False


class Recommender(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    trained: ClassVar[bool] = False  # learns weights by gradient descent (epochs, early stopping)
    library: ClassVar[Optional[str]] = None  # the PyPI package of its architecture

    def __init__(self, config: BaselineConfig):
        self.config = config
        self.vocab: Optional[Vocab] = None

    @abstractmethod
    def fit(self, data: FitData) -> FitReport:
        """Learn from the fine-tuning split."""

    @abstractmethod
    def score(self, pairs: Pairs) -> np.ndarray:
        """One float per pair (higher: more likely interested)."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write what score() needs (the vocabulary is saved by the caller)."""

    @abstractmethod
    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        """Read back what save() wrote."""

    def score_matrix(self, users: Sequence[str], histories: Sequence[Tuple[str, ...]], items: Sequence[str],
                     width: int) -> np.ndarray:
        """(len(users), len(items)) scores of every item for each user (full-catalogue ranking).
        By default every (user, item) pair through `score`; models with a user vector override it."""
        from .data import encode_rows

        assert self.vocab is not None, "fit or load first"
        n, m = len(users), len(items)
        pairs = encode_rows([u for u in users for _ in range(m)], [h for h in histories for _ in range(m)],
                            list(items) * n, None, self.vocab, width)
        return self.score(pairs).reshape(n, m)

    def info(self) -> Dict[str, Any]:
        """Extra facts for the results (e.g. the library version)."""
        return {}
