"""What a conventional model reads: item ids, never text, as integer arrays.

A :class:`Vocab` maps item ids to rows of the models' embedding tables (0 is padding, 1 an
item the model never saw); a :class:`Pairs` table holds one (user, history, candidate,
label) row per pair, the same rows whether they come from a fine-tuning split (training) or
from the task's user groups (scoring). No user id is ever encoded: test users are disjoint
from fine-tuning users (PROTOCOL §3), so a model scores a user from the history alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import DataError
from ..types import UserGroup

PAD = 0
UNKNOWN = 1
FIRST = 2  # index of the first real item

TRAIN_COLUMNS = ("user_id", "item_id", "label", "history")


@dataclass
class Vocab:
    """Item id <-> embedding row."""

    items: List[str]  # items[k] has row FIRST + k

    def __post_init__(self) -> None:
        self.index: Dict[str, int] = {item: FIRST + k for k, item in enumerate(self.items)}

    @classmethod
    def build(cls, item_ids: Iterable[str]) -> "Vocab":
        return cls(sorted(set(map(str, item_ids))))

    @property
    def size(self) -> int:
        """Rows of an embedding table (padding and unknown included)."""
        return FIRST + len(self.items)

    def encode(self, ids: Sequence[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(i, UNKNOWN) for i in ids), dtype=np.int64, count=len(ids))


@dataclass
class Pairs:
    """Encoded pairs. history rows hold the most recent `max_history` items, left-padded with
    PAD (oldest first, the most recent item last)."""

    users: np.ndarray  # object: user ids (for per-user metrics and seeded random scores)
    history: np.ndarray  # (n, max_history) int64
    candidate: np.ndarray  # (n,) int64
    label: np.ndarray  # (n,) float32; zeros when unknown (scoring)
    raw_items: List[str]  # candidate item ids as given
    raw_histories: List[Tuple[str, ...]]  # the distinct histories ...
    history_of: np.ndarray  # ... and the index into raw_histories of each pair

    def __len__(self) -> int:
        return int(self.candidate.shape[0])

    def take(self, idx: np.ndarray) -> "Pairs":
        return Pairs(self.users[idx], self.history[idx], self.candidate[idx], self.label[idx],
                     [self.raw_items[i] for i in idx], self.raw_histories, self.history_of[idx])


def pad_history(vocab: Vocab, history: Sequence[str], width: int) -> np.ndarray:
    row = np.zeros(width, dtype=np.int64)
    ids = vocab.encode(list(history)[-width:])
    if ids.size:
        row[width - ids.size:] = ids
    return row


def encode_rows(users: Sequence[str], histories: Sequence[Sequence[str]], items: Sequence[str],
                labels: Optional[Sequence[float]], vocab: Vocab, max_history: int) -> Pairs:
    """Pairs from parallel lists; a history shared by consecutive rows is encoded once."""
    n = len(items)
    distinct: Dict[Tuple[str, ...], int] = {}
    raw: List[Tuple[str, ...]] = []
    rows: List[np.ndarray] = []
    of = np.zeros(n, dtype=np.int64)
    for k, hist in enumerate(histories):
        key = tuple(map(str, hist))
        pos = distinct.get(key)
        if pos is None:
            pos = distinct[key] = len(raw)
            raw.append(key)
            rows.append(pad_history(vocab, key, max_history))
        of[k] = pos
    table = np.stack(rows) if rows else np.zeros((0, max_history), dtype=np.int64)
    label = np.asarray(labels, dtype=np.float32) if labels is not None else np.zeros(n, dtype=np.float32)
    return Pairs(np.asarray(list(map(str, users)), dtype=object), table[of], vocab.encode(list(map(str, items))),
                 label, list(map(str, items)), raw, of)


def pairs_from_frame(df: pd.DataFrame, vocab: Vocab, max_history: int) -> Pairs:
    """A fine-tuning split (user_id, item_id, label, history) as pairs."""
    missing = [c for c in TRAIN_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"conventional baselines train on (user_id, item_id, label, history) rows; the "
                        f"fine-tuning split lacks {', '.join(missing)}")
    return encode_rows(df["user_id"].tolist(), df["history"].tolist(), df["item_id"].tolist(),
                       df["label"].to_numpy(), vocab, max_history)


def pairs_from_groups(groups: Sequence[UserGroup], vocab: Vocab, max_history: int) -> Tuple[Pairs, np.ndarray]:
    """The task's user groups as pairs, plus each pair's slot in the task's score vector."""
    users: List[str] = []
    histories: List[Tuple[str, ...]] = []
    items: List[str] = []
    slots: List[int] = []
    for g in groups:
        for slot, cand in zip(g.slots, g.candidates):
            users.append(g.user_id)
            histories.append(g.history)
            items.append(cand)
            slots.append(slot)
    return encode_rows(users, histories, items, None, vocab, max_history), np.asarray(slots, dtype=np.int64)


def positive_sets(df: pd.DataFrame) -> Dict[str, List[str]]:
    """Per fine-tuning user: the items the user liked (history and positive candidates),
    each once, in first-seen order. What popularity and item-kNN count."""
    out: Dict[str, Dict[str, None]] = {}
    last: Optional[Tuple[str, Tuple[str, ...]]] = None
    for user, item, label, hist in zip(df["user_id"], df["item_id"], df["label"], df["history"]):
        user = str(user)
        seen = out.setdefault(user, {})
        key = (user, tuple(map(str, hist)))
        if key != last:  # consecutive rows of a user share one history
            seen.update(dict.fromkeys(key[1]))
            last = key
        if int(label) == 1:
            seen[str(item)] = None
    return {u: list(s) for u, s in out.items()}


# ----------------------------------------------------------------------------------------
# Tasks whose fine-tuning rows are sequences (seqrec): labelled pairs and id sequences
# ----------------------------------------------------------------------------------------

Sequence_ = Tuple[str, Tuple[str, ...]]  # (user id, the user's positives, oldest first)


def sample_negative(rng: np.random.Generator, pool: Sequence[str], avoid: set) -> str:
    """A uniform item of the pool the user never liked (the pool is far larger than a history)."""
    for _ in range(64):
        item = pool[int(rng.integers(len(pool)))]
        if item not in avoid:
            return item
    return pool[int(rng.integers(len(pool)))]  # a pool made almost only of the user's items


def pairs_from_sequences(sequences: Sequence[Sequence_], pool: Sequence[str], *, negatives: int, seed: int,
                         last_only: bool = False) -> pd.DataFrame:
    """Labelled (user_id, item_id, label, history) rows from positive sequences: at every
    position t >= 1 (or only the last), the next item is a positive after history seq[:t], and
    `negatives` items drawn uniformly (seeded per user) from the pool, none the user liked, are
    negatives after the same history. What the pairwise models (and popularity, item-kNN)
    train on when a task's fine-tuning rows are sequences."""
    from ..scenarios.base import stable_hash

    rows: List[Tuple[str, str, int, List[str]]] = []
    for user, seq in sequences:
        if len(seq) < 2:
            continue
        rng = np.random.default_rng(stable_hash(f"{seed}:train-negatives:{user}") % 2**63)
        liked = set(seq)
        for t in ([len(seq) - 1] if last_only else range(1, len(seq))):
            history = list(seq[:t])
            rows.append((user, seq[t], 1, history))
            for _ in range(negatives):
                rows.append((user, sample_negative(rng, pool, liked), 0, history))
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


def encode_sequences(sequences: Sequence[Sequence_], vocab: Vocab, length: int) -> np.ndarray:
    """(n, length) id rows, the most recent `length` items of each sequence, left-padded."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for k, (_, seq) in enumerate(sequences):
        ids = vocab.encode(list(seq)[-length:])
        if ids.size:
            out[k, length - ids.size:] = ids
    return out
