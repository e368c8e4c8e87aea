"""`ctr`: pairwise click prediction (PROTOCOL §3, §6), the benchmark's original task.

A sample is (user history, candidate, label 0/1); the scenario's sampler (scenarios/base.py)
draws them; consecutive rows of one user share a history and form one group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd

from ..errors import DataError
from ..metrics import compute_metrics
from ..types import UserGroup
from .base import Task


class CTRTask(Task):
    name = "ctr"
    description = "click prediction: score (history, candidate) pairs against click labels"
    headline = "gauc"
    table_columns = ("auc", "gauc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10", "logloss")

    def load(self, scenario, cfg, progress: Optional[Callable[[str], None]] = None):
        from ..scenarios import load_scenario

        opts = dict(cfg.scenario_options.get(scenario, {}))
        # evaluation needs no fine-tuning set (test users are drawn first, so the test set
        # is the same either way)
        return load_scenario(scenario, cfg.raw_dir, seed=cfg.seed, num_test=cfg.num_test, num_finetune=0,
                             strict=cfg.strict, use_cache=cfg.use_cache, progress=progress, **opts)

    def load_finetune(self, scenario, cfg, num_finetune, progress=None):
        from ..scenarios import load_scenario

        opts = dict(cfg.scenario_options.get(scenario, {}))
        return load_scenario(scenario, cfg.raw_dir, seed=cfg.seed, num_test=cfg.num_test, num_finetune=num_finetune,
                             strict=cfg.strict, use_cache=cfg.use_cache, progress=progress, **opts)

    def training_pairs(self, frame: pd.DataFrame) -> Optional[pd.DataFrame]:
        return frame

    def training_sequences(self, frame: pd.DataFrame) -> List[Tuple[str, Tuple[str, ...]]]:
        """A user's history, then the candidates the user clicked (in the split's order)."""
        out: List[Tuple[str, Tuple[str, ...]]] = []
        last = None
        for user, item, label, hist in zip(frame["user_id"], frame["item_id"], frame["label"], frame["history"]):
            key = (str(user), tuple(map(str, hist)))
            if key != last:
                out.append((key[0], key[1]))
                last = key
            if int(label) == 1:
                out[-1] = (out[-1][0], out[-1][1] + (str(item),))
        return out

    def samples(self, sc, cfg) -> pd.DataFrame:
        test = sc.test
        if cfg.limit is not None:
            test = test.iloc[: int(cfg.limit)]
        if test.empty:
            raise DataError(f"{sc.name}: the test set is empty; nothing to score")
        return test.reset_index(drop=True)

    def groups(self, samples: pd.DataFrame) -> List[UserGroup]:
        groups: List[UserGroup] = []
        last = None
        cands: List[str] = []
        slots: List[int] = []
        items = samples["item_id"].tolist()
        for i, (u, hist) in enumerate(zip(samples["user_id"], samples["history"])):
            key = (u, tuple(hist))
            if key != last:
                if last is not None:
                    groups.append(UserGroup(last[0], last[1], tuple(cands), tuple(slots)))
                last, cands, slots = key, [], []
            cands.append(items[i])
            slots.append(i)
        if last is not None:
            groups.append(UserGroup(last[0], last[1], tuple(cands), tuple(slots)))
        return groups

    def num_scores(self, samples: pd.DataFrame) -> int:
        return len(samples)

    def metrics(self, samples, scores, *, probabilities: bool, bootstrap: int, seed: int) -> Dict:
        return compute_metrics(samples["user_id"].to_numpy(), samples["label"].to_numpy(), scores,
                               probabilities=probabilities, bootstrap=bootstrap, seed=seed)

    def sample_log(self, samples, scores) -> pd.DataFrame:
        out = samples[["user_id", "item_id", "label"]].copy()
        out["score"] = scores
        return out

    def may_cut_groups(self, cfg) -> bool:
        return False  # a user's positives come first: showing only the first k would favour them

    def results_dir(self, scheme_dir: Path) -> Path:
        return scheme_dir  # the original layout: <model>/<scheme>/<scenario>.json
