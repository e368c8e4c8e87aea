"""The built-in conventional models: random, popularity and item-kNN (numpy only).

Small and exact, so their scores can be checked by hand:

- random: a uniform number per (seed, user, candidate), independent of order and batching.
- popularity: how many fine-tuning (train) users liked the candidate (history or a positive
  candidate), the same count for every user.
- itemknn: item-item cosine similarity of co-occurrence over the fine-tuning users' liked
  items, sim(i, j) = |U(i) ∩ U(j)| / sqrt(|U(i)| |U(j)|); a candidate's score is its mean
  similarity to the distinct items of the user's (whole) history. Items no train user liked
  have similarity 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from ..scenarios.base import stable_hash
from .base import FitData, FitReport, Recommender
from .data import FIRST, Pairs, Vocab, positive_sets


class RandomRecommender(Recommender):
    name = "random"
    description = "uniform random scores, seeded per (user, candidate)"

    def __init__(self, config):
        super().__init__(config)
        self.seed = 0

    def fit(self, data: FitData) -> FitReport:
        self.vocab, self.seed = data.vocab, int(data.seed)
        return _watch(self, data)

    def score(self, pairs: Pairs) -> np.ndarray:
        return np.array([stable_hash(f"{self.seed}\x00{u}\x00{i}") / 2.0**64
                         for u, i in zip(pairs.users, pairs.raw_items)], dtype=np.float64)

    def save(self, folder: Path) -> None:
        (folder / "random.json").write_text(json.dumps({"seed": self.seed}))

    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        self.vocab = vocab
        self.seed = int(json.loads((folder / "random.json").read_text())["seed"])


class PopularityRecommender(Recommender):
    name = "popularity"
    description = "how many fine-tuning users liked the candidate"

    def __init__(self, config):
        super().__init__(config)
        self.counts = np.zeros(FIRST, dtype=np.float64)

    def fit(self, data: FitData) -> FitReport:
        self.vocab = data.vocab
        counts = np.zeros(data.vocab.size, dtype=np.float64)
        for items in positive_sets(data.train_rows()).values():
            np.add.at(counts, data.vocab.encode(items), 1.0)
        counts[:FIRST] = 0.0  # padding and unknown items were liked by no train user
        self.counts = counts
        return _watch(self, data)

    def score(self, pairs: Pairs) -> np.ndarray:
        return self.counts[pairs.candidate].astype(np.float64)

    def save(self, folder: Path) -> None:
        np.save(folder / "counts.npy", self.counts)

    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        self.vocab = vocab
        self.counts = np.load(folder / "counts.npy")


class ItemKNNRecommender(Recommender):
    name = "itemknn"
    description = "item-item co-occurrence cosine over fine-tuning histories, mean over the user's history"

    def __init__(self, config):
        super().__init__(config)
        self.user_items = np.zeros(0, dtype=np.int64)  # items of user u: user_items[user_ptr[u]:user_ptr[u+1]]
        self.user_ptr = np.zeros(1, dtype=np.int64)
        self.item_users = np.zeros(0, dtype=np.int64)  # users of item i: item_users[item_ptr[i]:item_ptr[i+1]]
        self.item_ptr = np.zeros(FIRST + 1, dtype=np.int64)

    def fit(self, data: FitData) -> FitReport:
        self.vocab = data.vocab
        users: List[int] = []
        items: List[np.ndarray] = []
        for u, liked in enumerate(positive_sets(data.train_rows()).values()):
            enc = np.unique(data.vocab.encode(liked))
            enc = enc[enc >= FIRST]
            items.append(enc)
            users.extend([u] * enc.size)
        n_users = len(items)
        user_of = np.asarray(users, dtype=np.int64)
        item_of = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
        self.user_items = item_of  # already grouped by user, in user order
        self.user_ptr = np.concatenate([[0], np.cumsum([a.size for a in items])]).astype(np.int64)
        order = np.argsort(item_of, kind="stable")
        self.item_users = user_of[order]
        self.item_ptr = np.concatenate([[0], np.cumsum(np.bincount(item_of, minlength=data.vocab.size))]).astype(
            np.int64)
        assert self.user_ptr.size == n_users + 1
        return _watch(self, data)

    @property
    def size(self) -> int:
        return int(self.item_ptr.size - 1)

    def similarity_row(self, item: int) -> np.ndarray:
        """sim(item, j) for every row j of the vocabulary."""
        size = self.size
        n = np.diff(self.item_ptr).astype(np.float64)
        if item < FIRST or item >= size or n[item] == 0:
            return np.zeros(size, dtype=np.float64)
        us = self.item_users[self.item_ptr[item]:self.item_ptr[item + 1]]
        starts = self.user_ptr[us]
        lens = self.user_ptr[us + 1] - starts
        # positions of every item of every user in `us`, without a Python loop
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        co = np.bincount(self.user_items[offsets + np.arange(int(lens.sum()))], minlength=size).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(n > 0, co / np.sqrt(n[item] * n), 0.0)
        return sim

    def score(self, pairs: Pairs) -> np.ndarray:
        hist_rows = []
        for h in pairs.raw_histories:  # the whole history, each distinct item once
            hist_rows.append(self.vocab.encode(list(dict.fromkeys(h))))
        out = np.zeros(len(pairs), dtype=np.float64)
        order = np.argsort(pairs.candidate, kind="stable")
        cands = pairs.candidate[order]
        bounds = np.flatnonzero(np.diff(cands)) + 1
        for chunk in np.split(order, bounds):
            if chunk.size == 0:
                continue
            sim = self.similarity_row(int(pairs.candidate[chunk[0]]))
            for k in chunk:
                hist = hist_rows[pairs.history_of[k]]
                out[k] = float(sim[hist].mean()) if hist.size else 0.0
        return out

    def save(self, folder: Path) -> None:
        np.savez(folder / "itemknn.npz", user_items=self.user_items, user_ptr=self.user_ptr,
                 item_users=self.item_users, item_ptr=self.item_ptr)

    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        self.vocab = vocab
        with np.load(folder / "itemknn.npz") as z:
            self.user_items, self.user_ptr = z["user_items"], z["user_ptr"]
            self.item_users, self.item_ptr = z["item_users"], z["item_ptr"]


def _watch(model: Recommender, data: FitData) -> FitReport:
    """Nothing to train: record the valid gauc the fitted counts reach."""
    report = FitReport(epochs=0)
    if data.validate is not None and len(data.valid):
        report.valid_gauc = data.validate(data.valid, model.score(data.valid))
    return report
