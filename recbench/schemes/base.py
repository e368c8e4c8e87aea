"""What a scheme is: how a model turns a user's candidates into scores.

A scheme owns everything that differs between generative, discriminative and list-wise
scoring: which scorer ability it needs from a backend, its prompt template layout, how a
task's user groups become requests, how scorer outputs become scores (through the runner's
score cache), whether scores are probabilities, its dry-run estimate and its SFT objective.
Adding a scheme is one module here, a line in `recbench/schemes/__init__.py` and a
template folder under prompts/.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from ..prompts import Template

if TYPE_CHECKING:  # pragma: no cover
    from ..cache import ScoreCache
    from ..config import RunConfig
    from ..distributed import Shard
    from ..models import ModelSpec
    from ..prompts import PromptBuilder
    from ..scorers.base import Scorer
    from ..types import Catalogue, UserGroup


@dataclass
class SchemeContext:
    """Everything a scheme needs to score one scenario."""

    scenario: str
    groups: List["UserGroup"]
    num_scores: int
    texts: Dict[str, str]  # item id -> item text
    scorer: "Scorer"
    cache: "ScoreCache"
    namespace: str  # cache namespace: model identity + scheme + template
    builder: "PromptBuilder"
    config: "RunConfig"
    desc: str  # progress-bar label
    catalogue: Optional["Catalogue"] = None  # full-catalogue ranking, for schemes with ranks_catalogue
    fingerprint: str = ""  # the scenario's data fingerprint (schemes that rebuild the scenario check it)


@dataclass
class SchemeOutput:
    """Scores in the task's slot order plus what the results file should say about them."""

    scores: np.ndarray
    requests: int
    cached: int
    computed: int
    meta: Dict[str, Any] = field(default_factory=dict)  # scheme-specific results meta
    counts: Dict[str, int] = field(default_factory=dict)  # scheme-specific counts (go beside the timings)
    shown: Dict[str, List[Any]] = field(default_factory=dict)  # per-slot columns for --log-samples
    metrics: Dict[str, Any] = field(default_factory=dict)  # scheme-specific metric columns (beside the task's)


class Scheme(ABC):
    name: ClassVar[str]
    help: ClassVar[str]
    scorer_kind: ClassVar[str]  # the backend ability it needs: "logits" | "embedding" | ...
    probabilities: ClassVar[bool]  # scores are P(positive) (logloss applies)
    template_layout: ClassVar[str]  # "prompt" (split before the candidate) | "pair" (user / item text)
    uses_chat_template: ClassVar[bool] = False
    ranks_catalogue: ClassVar[bool] = False  # can rank a whole catalogue per user (SchemeContext.catalogue)
    sft_losses: ClassVar[Tuple[str, ...]] = ()  # objectives `recbench sft` offers for it
    sft_trainer: ClassVar[Optional[str]] = None  # "module:Class" of its trainer
    sft_settings: ClassVar[Tuple[str, ...]] = ()  # SFTConfig fields its objective reads (enter the hash)
    sft_recipe_version: ClassVar[str] = "1"  # bump when its training recipe changes what a config produces
    pipeline: ClassVar[Optional[str]] = None  # the results' pipeline when not zero-shot/sft (e.g. baseline)

    def template(self, name_or_path: Optional[str]) -> Template:
        return Template.load(self.name, name_or_path, layout=self.template_layout)

    def supports(self, spec: "ModelSpec") -> bool:
        return self.scorer_kind in spec.abilities

    def check(self, cfg: "RunConfig") -> None:
        """Scheme-specific checks of the settings, before any data or model work."""
        if cfg.chat_template and not self.uses_chat_template:
            raise ConfigError(f"--chat-template applies to prompt-based schemes, not {self.name}")

    def chat_default(self, spec: "ModelSpec") -> Optional[bool]:
        """The chat-template setting when none is given (None: the backend decides)."""
        return bool(spec.chat_default) and self.uses_chat_template

    def variant(self, cfg: "RunConfig", spec: "ModelSpec") -> str:
        """Results-folder suffix for settings that make this run a variant of the default."""
        if self.uses_chat_template and cfg.chat_template != spec.chat_default:
            return "+chat" if cfg.chat_template else "+nochat"
        return ""

    def prepare(self, scorer: "Scorer", builder: "PromptBuilder") -> None:
        """Set up the scorer for this scenario's template before its identity is taken."""

    @abstractmethod
    def score(self, ctx: SchemeContext) -> SchemeOutput:
        """Scores for every slot, taking what the cache holds and committing what is computed."""

    def score_share(self, ctx: SchemeContext, shard: "Shard") -> SchemeOutput:
        """This process's part of a data-parallel run, committed to the cache (rank 0 then reads
        every score back with `score`). By default its share of the users: a user's requests
        never split, and no request belongs to two users."""
        return self.score(replace(ctx, groups=shard.take(ctx.groups)))

    @abstractmethod
    def dry_run_requests(self, ctx: SchemeContext) -> Tuple[List[Any], List[str]]:
        """(requests, cache keys) this scheme would send: for cost estimates without sending."""
