"""`seqrec`: sequential recommendation (PROTOCOL §10): rank a user's next item.

The split (recbench/scenarios/seqrec.py) gives per user a history (up to 19 positives, oldest
first), the target (the next positive) and the candidates. Metrics read the target's rank
among the user's candidates (ties pessimistic): NDCG@1/5/10/20, MRR, Recall@1/5/10/20 and the
mean rank; NDCG@10 is the headline.

How schemes see it (the same `UserGroup`s every scheme scores, so pointwise schemes need no
change):
- `--candidates N` (default 100): one group per user whose candidates are the target FIRST,
  then the N-1 sampled negatives in their drawn order; slots are consecutive. The position is
  the only place the label is implied: a scheme must not read meaning into the order
  (pointwise schemes score each candidate alone; a list-wise scheme shuffles, seeded, before
  it shows a list). The task never gives a scheme labels or targets.
- `--candidates all`: the whole catalogue (`Scenario.items`) minus the user's other known
  interactions. Schemes with `ranks_catalogue` get a `Catalogue` (items + the task's
  reduction to ranks) and score users x items in blocks; other schemes get one group per
  user whose candidates are the catalogue (slots u*I .. u*I+I-1) and are refused up front
  unless `--force`, with the number of forward passes it would take.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..metrics import ranking_metrics, ranks_in_matrix, target_ranks
from ..scenarios.seqrec import ALL, DEFAULT_CANDIDATES, DEFAULT_HISTORY_LEN, SEQREC_PROTOCOL_VERSION, load_seqrec
from ..types import Catalogue, UserGroup
from .base import Task

CATALOGUE_ATTR = "catalogue"  # samples.attrs key: the catalogue's item ids ("all" mode)


class SeqRecTask(Task):
    name = "seqrec"
    description = "sequential recommendation: rank the user's next item among candidates"
    headline = "ndcg@10"
    table_columns = ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "mrr", "recall@1", "recall@10", "mean_rank")
    protocol_version = SEQREC_PROTOCOL_VERSION

    # -- data ----------------------------------------------------------------------------
    def variant(self, cfg) -> str:
        """'+all', '+c50', '+h10': a non-default candidate count or history length."""
        out = ""
        if cfg.candidates != DEFAULT_CANDIDATES:
            out += "+all" if cfg.candidates == ALL else f"+c{cfg.candidates}"
        if cfg.history_len != DEFAULT_HISTORY_LEN:
            out += f"+h{cfg.history_len}"
        return out

    def load_scenario(self, name, raw_dir=None, **kwargs):
        return load_seqrec(name, raw_dir, **kwargs)

    def load(self, scenario, cfg, progress: Optional[Callable[[str], None]] = None):
        opts = dict(cfg.scenario_options.get(scenario, {}))
        # test users come first in the visiting order: the test set is the same without fine-tuning users
        sc = load_seqrec(scenario, cfg.raw_dir, seed=cfg.seed, num_test=cfg.num_test, num_finetune=0,
                         strict=cfg.strict, use_cache=cfg.use_cache, progress=progress,
                         history_len=cfg.history_len, candidates=cfg.candidates, **opts)
        self._check_cost(sc, cfg)
        return sc

    def load_finetune(self, scenario, cfg, num_finetune, progress=None):
        opts = dict(cfg.scenario_options.get(scenario, {}))
        return load_seqrec(scenario, cfg.raw_dir, seed=cfg.seed, num_test=cfg.num_test, num_finetune=num_finetune,
                           strict=cfg.strict, use_cache=cfg.use_cache, progress=progress,
                           history_len=cfg.history_len, candidates=cfg.candidates, **opts)

    def training_sequences(self, frame: pd.DataFrame) -> List[Tuple[str, Tuple[str, ...]]]:
        """The history, then the target."""
        return [(str(u), tuple(map(str, h)) + (str(t),)) for u, h, t in zip(frame["user_id"], frame["history"],
                                                                           frame["target"])]

    def _check_cost(self, sc, cfg) -> None:
        """Refuse full-catalogue ranking with a scheme that scores each pair, unless forced."""
        if sc.info.get("candidates") != ALL or cfg.force or not cfg.scheme:
            return
        from ..schemes import get_scheme

        scheme = get_scheme(cfg.scheme)
        if scheme.ranks_catalogue:
            return
        test = sc.test if cfg.limit is None else sc.test.iloc[: int(cfg.limit)]
        n_items = len(sc.items)
        pairs = len(test) * n_items  # every catalogue item of every user is scored (masked ones too)
        raise ConfigError(
            f"{sc.name}: seqrec with --candidates all and the {scheme.name} scheme scores every (user, item) "
            f"pair: {pairs:,} forward passes ({len(test):,} users x {n_items:,} catalogue items); use "
            "--candidates 100 (the default), an embedding model (--scheme discriminative ranks the catalogue "
            "with one matrix product per batch of users), or pass --force to run it anyway")

    def may_cut_groups(self, cfg) -> bool:
        """A list-wise scheme may show the first k candidates (the target and k-1 random
        negatives); not a whole catalogue in item order."""
        return cfg.candidates != ALL

    def samples(self, sc, cfg) -> pd.DataFrame:
        test = sc.test
        if cfg.limit is not None:
            test = test.iloc[: int(cfg.limit)]
        if test.empty:
            raise DataError(f"{sc.name}: the seqrec test set is empty; nothing to score")
        test = test.reset_index(drop=True)
        if sc.info.get("candidates") == ALL:
            test.attrs[CATALOGUE_ATTR] = tuple(sc.items["item_id"])
        return test

    @staticmethod
    def _catalogue_items(samples: pd.DataFrame) -> Optional[tuple]:
        return samples.attrs.get(CATALOGUE_ATTR)

    # -- what schemes score ---------------------------------------------------------------
    def groups(self, samples: pd.DataFrame) -> List[UserGroup]:
        items = self._catalogue_items(samples)
        out: List[UserGroup] = []
        if items is not None:  # one shared candidates tuple; slots as ranges: no per-pair memory
            n = len(items)
            for u, (user, hist) in enumerate(zip(samples["user_id"], samples["history"])):
                out.append(UserGroup(user, tuple(hist), items, range(u * n, (u + 1) * n)))  # type: ignore[arg-type]
            return out
        offset = 0
        for user, hist, cands in zip(samples["user_id"], samples["history"], samples["candidates"]):
            out.append(UserGroup(user, tuple(hist), tuple(cands), tuple(range(offset, offset + len(cands)))))
            offset += len(cands)
        return out

    def num_scores(self, samples: pd.DataFrame) -> int:
        items = self._catalogue_items(samples)
        if items is not None:
            return len(samples) * len(items)
        return int(sum(len(c) for c in samples["candidates"]))

    def item_ids(self, samples: pd.DataFrame) -> List[str]:
        ids: Dict[str, None] = {}
        for hist in samples["history"]:
            ids.update(dict.fromkeys(hist))
        ids.update(dict.fromkeys(samples["target"]))
        for cands in samples["candidates"]:
            ids.update(dict.fromkeys(cands))
        return list(ids)

    def catalogue(self, samples: pd.DataFrame) -> Optional[Catalogue]:
        items = self._catalogue_items(samples)
        if items is None:
            return None
        target_col, (indptr, indices) = self._catalogue_index(samples, items)
        counts = np.diff(indptr)

        def reduce(group_idx: Sequence[int], block: np.ndarray) -> np.ndarray:
            idx = np.asarray(group_idx, dtype=np.int64)
            if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
                cols = indices[indptr[idx[0]] : indptr[idx[-1] + 1]]
            else:
                cols = np.concatenate([indices[indptr[u] : indptr[u + 1]] for u in idx] or [np.zeros(0, np.int64)])
            rows = np.repeat(np.arange(idx.size), counts[idx])
            return ranks_in_matrix(block, target_col[idx], (rows, cols)).astype(np.float64)

        n_items = max(1, len(items))
        # catalogue groups' slots are u*I .. u*I+I-1 (see groups): the user index is the first // I
        return Catalogue(items=items, num_users=len(samples), user_of=lambda g: g.slots[0] // n_items, reduce=reduce)

    @staticmethod
    def _catalogue_index(samples: pd.DataFrame, items: Sequence[str]):
        """Each user's target column, and their other interactions' columns (CSR: indptr, indices)."""
        col = {item: j for j, item in enumerate(items)}
        missing = [t for t in samples["target"] if t not in col]
        if missing:
            raise DataError(f"seqrec: target item {missing[0]} is not in the catalogue; rebuild the split")
        target_col = np.fromiter((col[t] for t in samples["target"]), dtype=np.int64, count=len(samples))
        indptr = [0]
        indices: List[int] = []
        for excl in samples["exclude"]:
            indices.extend(col[i] for i in excl if i in col)
            indptr.append(len(indices))
        return target_col, (np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64))

    # -- measuring ------------------------------------------------------------------------
    def ranks(self, samples: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
        """The target's pessimistic rank per user, from per-slot scores or (full-catalogue
        schemes) the per-user values the catalogue's reduction produced."""
        scores = np.asarray(scores, dtype=np.float64)
        items = self._catalogue_items(samples)
        if items is None:
            sizes = np.fromiter((len(c) for c in samples["candidates"]), dtype=np.int64, count=len(samples))
            groups = np.repeat(np.arange(len(samples)), sizes)
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            is_target = np.zeros(groups.size, dtype=bool)
            is_target[starts] = True  # the target is each user's first candidate
            return target_ranks(scores, groups, is_target)
        if scores.size == len(samples):  # a Catalogue scheme returned ranks, one per user
            if np.isnan(scores).any():
                raise ValueError("ranks missing for some users; the scheme scored a subset")
            return scores.astype(np.int64)
        target_col, (indptr, indices) = self._catalogue_index(samples, items)
        rows = np.repeat(np.arange(len(samples)), np.diff(indptr))
        return ranks_in_matrix(scores.reshape(len(samples), len(items)), target_col, (rows, indices))

    def num_candidates(self, samples: pd.DataFrame) -> np.ndarray:
        items = self._catalogue_items(samples)
        if items is None:
            return np.fromiter((len(c) for c in samples["candidates"]), dtype=np.int64, count=len(samples))
        return np.fromiter((len(items) - len(x) for x in samples["exclude"]), dtype=np.int64, count=len(samples))

    def metrics(self, samples, scores, *, probabilities: bool, bootstrap: int, seed: int) -> Dict:
        return ranking_metrics(self.ranks(samples, scores), num_candidates=self.num_candidates(samples),
                               bootstrap=bootstrap, seed=seed)

    def sample_log(self, samples, scores) -> pd.DataFrame:
        scores = np.asarray(scores, dtype=np.float64)
        items = self._catalogue_items(samples)
        if items is not None and scores.size == len(samples):  # full-catalogue ranks: one row per user
            return pd.DataFrame({"user_id": samples["user_id"], "item_id": samples["target"], "label": 1,
                                 "rank": scores.astype(np.int64)})
        users: List[str] = []
        cands: List[str] = []
        labels: List[int] = []
        for user, target, cand in zip(samples["user_id"], samples["target"],
                                      samples["candidates"] if items is None else [items] * len(samples)):
            users.extend([user] * len(cand))
            cands.extend(cand)
            labels.extend(int(c == target) for c in cand)
        return pd.DataFrame({"user_id": users, "item_id": cands, "label": labels, "score": scores})
