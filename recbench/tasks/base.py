"""What a task is: how samples are drawn from a scenario, grouped for scoring, and measured.

A task never knows how a model scores (that is the scheme's and the backend's business); a
scheme never knows how a task measures. Adding a task is one module here plus a line in
`recbench/tasks/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from ..scenarios.base import PROTOCOL_VERSION
from ..types import Catalogue, UserGroup

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RunConfig
    from ..scenarios import Scenario


class Task(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    headline: ClassVar[str]  # the leaderboard's default metric
    table_columns: ClassVar[Tuple[str, ...]]  # metrics shown first in tables
    protocol_version: ClassVar[str] = PROTOCOL_VERSION  # of the task's split and metrics (results record it)

    @abstractmethod
    def load(self, scenario: str, cfg: "RunConfig", progress: Optional[Callable[[str], None]] = None) -> "Scenario":
        """The scenario with this task's test split built (and cached)."""

    @abstractmethod
    def samples(self, sc: "Scenario", cfg: "RunConfig") -> pd.DataFrame:
        """The test samples scored in this run (after --limit)."""

    @abstractmethod
    def groups(self, samples: pd.DataFrame) -> List[UserGroup]:
        """Per user: history and the candidates to score, with their score slots."""

    @abstractmethod
    def num_scores(self, samples: pd.DataFrame) -> int:
        """Length of the flat score vector the groups' slots index."""

    @abstractmethod
    def metrics(self, samples: pd.DataFrame, scores: np.ndarray, *, probabilities: bool, bootstrap: int,
                seed: int) -> Dict:
        """The task's metrics from unrounded scores."""

    @abstractmethod
    def sample_log(self, samples: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
        """One row per scored pair (user_id, item_id, label, score) for --log-samples."""

    def results_dir(self, scheme_dir: Path) -> Path:
        """Where this task's results files go under <output>/<model>/<scheme>/."""
        return scheme_dir / self.name

    def variant(self, cfg: "RunConfig") -> str:
        """Results-folder suffix for task settings that make a run a variant of the default
        (so such a run never overwrites the default run's results)."""
        return ""

    def catalogue(self, samples: pd.DataFrame) -> Optional[Catalogue]:
        """The catalogue to rank whole, for schemes that can (None: score the groups' slots)."""
        return None

    @abstractmethod
    def load_finetune(self, scenario: str, cfg: "RunConfig", num_finetune: int,
                      progress: Optional[Callable[[str], None]] = None) -> "Scenario":
        """The scenario with `num_finetune` fine-tuning units beside the test split (what
        conventional models train on); the test split is the one `load` builds."""

    def training_pairs(self, frame: pd.DataFrame) -> Optional[pd.DataFrame]:
        """Fine-tuning rows as labelled (user_id, item_id, label, history) pairs, or None when
        the task's rows are sequences (pairs are then drawn from `training_sequences`)."""
        return None

    @abstractmethod
    def training_sequences(self, frame: pd.DataFrame) -> List[Tuple[str, Tuple[str, ...]]]:
        """Per fine-tuning user: (user id, the user's positives oldest first), what sequential
        models learn next-item prediction from."""

    def load_scenario(self, name: str, raw_dir=None, **kwargs) -> "Scenario":
        """`recbench.load_scenario(name, task=...)` for a task with a split of its own."""
        from ..errors import ConfigError

        raise ConfigError(f"task '{self.name}' builds no split of its own; use load_scenario(name)")

    def may_cut_groups(self, cfg: "RunConfig") -> bool:
        """Whether a scheme that shows only k candidates per prompt (listwise) may show a
        group's first k: true when the first ones are what must be shown and the rest are
        exchangeable (target first, then random negatives); false when the order follows the
        labels or means nothing (a whole catalogue in item order)."""
        return True

    def item_ids(self, samples: pd.DataFrame) -> List[str]:
        """Every item a prompt may show (for the missing-text check)."""
        ids: Dict[str, None] = {}
        for g in self.groups(samples):
            ids.update(dict.fromkeys(g.candidates))
        return list(ids)
