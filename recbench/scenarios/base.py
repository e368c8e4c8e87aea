"""What a scenario is, and the sampling protocol every scenario shares (PROTOCOL §3).

A dataset file (mind.py, movielens.py, ...) only knows how to read its raw files: it
subclasses :class:`RawSource` and yields :class:`Event` rows plus an item-text table.
Everything else (who is eligible, held-out positives, negatives, caps, the seeded user
order, disjoint fine-tuning users) happens here, once, so all ten domains follow the
same rules.

Two engines read the events (build_scenario(engine=...)): "duckdb" (engine.py) for sources
that describe themselves to it (RawSource.columnar), and "python", which streams
iter_events twice: a first pass keeps only per-user counters (plus 33 bytes per event to
find exact duplicates), a second pass keeps the events of the users that were selected.
Both hand the same :class:`Interactions` to the sampling below, so they build the same
samples.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import DataError
from .io import BuildReport

if TYPE_CHECKING:  # pragma: no cover
    from .engine import ColumnarPlan

PROTOCOL_VERSION = "1"
SAMPLE_COLUMNS = ["user_id", "item_id", "label", "history"]


@dataclass(frozen=True)
class Event:
    """One interaction read from a raw file.

    time orders a user's events (ties keep file order). history is given only by datasets
    that ship an explicit history with each event (MIND impressions, the demo).
    """

    user: str
    item: str
    time: float
    label: int
    history: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class SamplingPolicy:
    """How a dataset's events become samples (defaults: PROTOCOL §3)."""

    heldout_positives: Optional[int] = 2  # None: every positive event is a candidate (MIND)
    max_positives: int = 10
    max_negatives: int = 10
    sampled_negatives: int = 0  # > 0: draw this many negatives from unseen items
    min_positives: int = 3
    min_negatives: int = 0
    max_history: int = 100


@dataclass(frozen=True)
class RemoteFile:
    """A file with a public direct link, for `recbench data download`."""

    url: str
    filename: str
    sha256: Optional[str] = None
    unpack: bool = False  # unpack a .zip/.tar.gz into the scenario folder after download
    size: Optional[int] = None


class RawSource(ABC):
    """Reads one dataset's official raw files. Subclasses set the class attributes and
    implement the three methods; registering the subclass makes the scenario available."""

    name: ClassVar[str]
    domain: ClassVar[str]
    item_noun: ClassVar[str] = "item"
    description: ClassVar[str] = ""
    policy: ClassVar[SamplingPolicy] = SamplingPolicy()
    default_num_test: ClassVar[int] = 20000
    default_num_finetune: ClassVar[int] = 0
    needs_raw_dir: ClassVar[bool] = True
    # Human-readable list of the files expected in raw_dir, and where to get them.
    expected_files: ClassVar[str] = ""
    source_url: ClassVar[str] = ""
    downloads: ClassVar[Tuple[RemoteFile, ...]] = ()
    loader_version: ClassVar[str] = "1"
    # Exact duplicate events (same user, item, time, label and history) are usually an
    # accident, e.g. a file concatenated twice: they are counted once and reported as
    # skipped "duplicate". A dataset where a repeated row means something (H&M: one row
    # per unit bought) sets this to keep them.
    keep_duplicates: ClassVar[bool] = False

    def __init__(self, raw_dir: Optional[Path], report: BuildReport, **options):
        self.raw_dir = Path(raw_dir) if raw_dir is not None else None
        self.report = report
        self.options = options
        unknown = set(options) - set(self.option_names())
        if unknown:
            from ..errors import ConfigError

            raise ConfigError(
                f"scenario '{self.name}' takes no option(s) {', '.join(sorted(unknown))}; "
                f"it accepts: {', '.join(self.option_names()) or 'none'}"
            )

    @classmethod
    def option_names(cls) -> Tuple[str, ...]:
        """Loader-specific keyword options (e.g. custom's column names)."""
        return ()

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def raw_files(self) -> List[Path]:
        """The files this build reads (checked to exist; they form the data fingerprint).

        Raise DataError naming the expected files and how to obtain them when absent."""

    @abstractmethod
    def load_items(self) -> Dict[str, str]:
        """item id -> item text (blank texts are reported and left out)."""

    @abstractmethod
    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        """Yield events in file order. Called twice (two-pass build): must restart."""

    def columnar(self) -> Optional["ColumnarPlan"]:
        """How the columnar engine (engine.py) reads this source; None: the Python reader
        (iter_events) is used whatever the engine asked for."""
        return None

    # -- helpers for subclasses -----------------------------------------------------------
    def find_file(self, *candidates: str) -> Optional[Path]:
        """The first of the candidate names that exists in raw_dir (also gzipped)."""
        assert self.raw_dir is not None
        for name in candidates:
            for variant in (name, name + ".gz"):
                p = self.raw_dir / variant
                if p.is_file():
                    return p
        return None

    def missing(self, what: str) -> DataError:
        where = self.raw_dir if self.raw_dir is not None else "(no folder)"
        how = f" Get it from {self.source_url}" if self.source_url else ""
        dl = f" or run: recbench data download {self.name}" if self.downloads else ""
        return DataError(
            f"{self.name}: {what} not found in {where}; expected {self.expected_files}.{how}{dl}"
        )


# ----------------------------------------------------------------------------------------
# The built scenario
# ----------------------------------------------------------------------------------------


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same on every machine and Python run."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class Scenario:
    """A built scenario: items, test samples and fine-tuning samples as DataFrames."""

    name: str
    domain: str
    item_noun: str
    items: pd.DataFrame  # item_id, text
    test: pd.DataFrame  # user_id, item_id, label, history
    finetune: pd.DataFrame  # same columns
    seed: int
    info: dict = field(default_factory=dict)  # build report, fingerprints, sizes

    @property
    def fingerprint(self) -> str:
        return self.info.get("data_fingerprint", "")

    def item_text(self) -> Dict[str, str]:
        return dict(zip(self.items["item_id"], self.items["text"]))

    def finetune_split(self, part: str) -> pd.DataFrame:
        """The fine-tuning set split 90/10 by user into 'train' and 'valid' (seeded)."""
        if part not in ("train", "valid"):
            raise ValueError("part must be 'train' or 'valid'")
        if self.finetune.empty:
            return self.finetune
        valid = self.finetune["user_id"].map(lambda u: stable_hash(f"{self.seed}:valid:{u}") % 10 == 0)
        return self.finetune[valid if part == "valid" else ~valid].reset_index(drop=True)

    def summary(self) -> dict:
        def stats(df: pd.DataFrame) -> dict:
            if df.empty:
                return {"samples": 0, "users": 0, "positive_rate": None}
            return {
                "samples": int(len(df)),
                "users": int(df["user_id"].nunique()),
                "positive_rate": round(float(df["label"].mean()), 4),
            }

        return {
            "scenario": self.name,
            "domain": self.domain,
            "items": int(len(self.items)),
            "test": stats(self.test),
            "finetune": stats(self.finetune),
            "seed": self.seed,
            **{k: self.info[k] for k in ("rows_read", "skipped", "skipped_examples", "dropped_by_rule", "data_fingerprint") if k in self.info},
        }


def samples_fingerprint(*frames: pd.DataFrame) -> str:
    """sha256 over the sample rows: two runs on equal fingerprints scored the same data."""
    h = hashlib.sha256()
    for df in frames:
        for u, i, y, hist in zip(df["user_id"], df["item_id"], df["label"], df["history"]):
            h.update(f"{u}\t{i}\t{int(y)}\t{' '.join(hist)}\n".encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------
# Sampling (PROTOCOL §3)
# ----------------------------------------------------------------------------------------


class _Counts:
    """Per-user positive/negative counters in compact arrays (pass one)."""

    def __init__(self) -> None:
        self.index: Dict[str, int] = {}
        self.pos = array("l")
        self.neg = array("l")

    def add(self, user: str, label: int) -> int:
        uid = self.index.get(user)
        if uid is None:
            uid = self.index[user] = len(self.pos)
            self.pos.append(0)
            self.neg.append(0)
        if label:
            self.pos[uid] += 1
        else:
            self.neg[uid] += 1
        return uid


class _EventKeys:
    """Two independent 64-bit hashes of every counted event (pass one), to find exact
    duplicates without keeping the events: 33 bytes per event."""

    def __init__(self) -> None:
        self.h1 = array("q")
        self.h2 = array("q")
        self.uid = array("q")
        self.seq = array("q")
        self.label = bytearray()

    def add(self, ev: Event, uid: int, seq: int) -> None:
        self.h1.append(hash((ev.user, ev.item, ev.time, ev.label, ev.history)))
        self.h2.append(hash((ev.history, ev.label, ev.time, ev.item, ev.user, 1)))
        self.uid.append(uid)
        self.seq.append(seq)
        self.label.append(1 if ev.label else 0)

    def duplicates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seq, uid, label) of the events equal to an earlier one, in file order."""
        n = len(self.seq)
        if n == 0:
            return (np.zeros(0, np.int64),) * 3
        h1 = np.frombuffer(self.h1, dtype=np.int64)
        h2 = np.frombuffer(self.h2, dtype=np.int64)
        order = np.lexsort((np.arange(n), h2, h1))  # equal events together, earliest first
        same = (h1[order][1:] == h1[order][:-1]) & (h2[order][1:] == h2[order][:-1])
        dup = np.sort(order[1:][same])
        return (np.frombuffer(self.seq, dtype=np.int64)[dup], np.frombuffer(self.uid, dtype=np.int64)[dup],
                np.frombuffer(bytes(self.label), dtype=np.uint8)[dup])


def _contribution(policy: SamplingPolicy, n_pos: int, n_neg: int) -> int:
    if policy.heldout_positives is None:
        pos = min(n_pos, policy.max_positives)
    else:
        pos = min(policy.heldout_positives, policy.max_positives)
    neg = policy.sampled_negatives if policy.sampled_negatives else min(n_neg, policy.max_negatives)
    return pos + neg


def _select_users(
    users: Sequence[str], n_pos: Sequence[int], n_neg: Sequence[int], policy: SamplingPolicy, seed: int,
    num_test: int, num_finetune: int,
) -> Tuple[List[str], List[str]]:
    """Eligible users (sorted, with their counts) visited in a seeded shuffled order, cut
    into test and fine-tuning users."""
    order = np.random.default_rng(seed).permutation(len(users))
    test_users: List[str] = []
    ft_users: List[str] = []
    filled_test = filled_ft = 0
    for k in order:
        c = _contribution(policy, n_pos[k], n_neg[k])
        if filled_test < num_test:
            test_users.append(users[k])
            filled_test += c
        elif filled_ft < num_finetune:
            ft_users.append(users[k])
            filled_ft += c
        else:
            break
    return test_users, ft_users


# (time, order in the file, item, label, history as read) of one event of one user
UserEvent = Tuple[float, int, str, int, Optional[Tuple[str, ...]]]


@dataclass
class Interactions:
    """What the sampling needs from the events, whichever engine read them.

    Counts are over events with a known item, exact duplicates counted once (unless the
    source keeps them); `events_of` gives the selected users' such events, each user's in
    file order.
    """

    users: List[str]  # eligible users, sorted
    n_pos: List[int]
    n_neg: List[int]
    n_users: int  # users with at least one counted event
    universe: Callable[[], List[str]]  # items of the counted events, by first appearance
    events_of: Callable[[List[str]], Dict[str, List[UserEvent]]]


def _python_interactions(
    source: RawSource, items: Dict[str, str], policy: SamplingPolicy, say: Callable[[str], None]
) -> Interactions:
    """Two streaming passes over iter_events (the reference reader)."""
    report = source.report
    say(f"{source.name}: pass 1/2 over interactions")
    counts = _Counts()
    keys = None if source.keep_duplicates else _EventKeys()
    seen_items: Dict[str, None] = {}
    seq = 0
    for ev in source.iter_events(items):
        seq += 1
        report.rows_read += 1
        if ev.item not in items:
            report.skip("unknown item id", "", ev.item)
            continue
        uid = counts.add(ev.user, ev.label)
        if keys is not None:
            keys.add(ev, uid, seq)
        if ev.item not in seen_items:
            seen_items[ev.item] = None
    dup_seqs: set = set()
    if keys is not None:
        seqs, uids, labels = keys.duplicates()
        del keys
        for uid, label in zip(uids.tolist(), labels.tolist()):
            if label:
                counts.pos[uid] -= 1
            else:
                counts.neg[uid] -= 1
        dup_seqs = set(seqs.tolist())
    first_dup = min(dup_seqs) if dup_seqs else 0
    universe = list(seen_items)
    del seen_items
    eligible = sorted(
        u for u, uid in counts.index.items()
        if counts.pos[uid] >= policy.min_positives and counts.neg[uid] >= policy.min_negatives
    )
    n_pos = [counts.pos[counts.index[u]] for u in eligible]
    n_neg = [counts.neg[counts.index[u]] for u in eligible]
    n_users = len(counts.index)
    del counts

    def events_of(users: List[str]) -> Dict[str, List[UserEvent]]:
        say(f"{source.name}: pass 2/2 collecting {len(users)} selected users")
        selected: Dict[str, List[UserEvent]] = {u: [] for u in users}
        quiet = BuildReport(strict=False)  # pass two re-reads the same rows: count once
        source.report = quiet
        try:
            seq = 0
            for ev in source.iter_events(items):
                seq += 1
                if seq in dup_seqs:
                    if seq == first_dup:
                        report.add_skipped("duplicate", len(dup_seqs), f"user {ev.user}, item {ev.item}")
                    continue
                bucket = selected.get(ev.user)
                if bucket is None or ev.item not in items:
                    continue
                bucket.append((ev.time, seq, ev.item, int(ev.label), ev.history))
        finally:
            source.report = report
        return selected

    return Interactions(eligible, n_pos, n_neg, n_users, lambda: universe, events_of)


def _user_rng(seed: int, user: str) -> np.random.Generator:
    return np.random.default_rng([seed, stable_hash(user)])


def _user_samples(
    user: str,
    events: List[UserEvent],
    policy: SamplingPolicy,
    seed: int,
    universe: Sequence[str],
) -> List[Tuple[str, str, int, List[str]]]:
    """Samples of one user: (user, item, label, history)."""
    events.sort(key=lambda e: (e[0], e[1]))
    rng = _user_rng(seed, user)
    positives = [e[2] for e in events if e[3] == 1]
    negatives = [e[2] for e in events if e[3] == 0]

    if policy.heldout_positives is None:
        # Explicit history (MIND): the history shipped with the user's latest event.
        hist_event = next(e for e in reversed(events) if e[4] is not None)
        history = list(hist_event[4])[-policy.max_history :]
        cand_pos = list(dict.fromkeys(positives))
        cand_neg = [i for i in dict.fromkeys(negatives) if i not in set(cand_pos)]
        if len(cand_pos) > policy.max_positives:
            cand_pos = [cand_pos[k] for k in sorted(rng.choice(len(cand_pos), policy.max_positives, replace=False))]
    else:
        k = policy.heldout_positives
        # The last k *distinct* items: repeat interactions (H&M buys 2 units = 2 rows) must not
        # yield the same candidate twice. Same result as positives[-k:] when those are distinct.
        cand_pos = list(dict.fromkeys(reversed(positives)))[:k][::-1]
        held = set(cand_pos)
        history = [i for i in positives if i not in held][-policy.max_history :]
        pos_set = set(positives)
        cand_neg = [i for i in dict.fromkeys(negatives) if i not in pos_set]

    if policy.sampled_negatives:
        seen = set(positives) | set(negatives) | set(history)
        cand_neg = []
        tries = 0
        while len(cand_neg) < policy.sampled_negatives and tries < 1000 and len(universe) > len(seen):
            item = universe[int(rng.integers(len(universe)))]
            tries += 1
            if item not in seen:
                seen.add(item)
                cand_neg.append(item)
    elif len(cand_neg) > policy.max_negatives:
        cand_neg = [cand_neg[k] for k in sorted(rng.choice(len(cand_neg), policy.max_negatives, replace=False))]

    return [(user, i, 1, history) for i in cand_pos] + [(user, i, 0, history) for i in cand_neg]


def _frame(rows: List[Tuple[str, str, int, List[str]]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    df["label"] = df["label"].astype("int64")
    return df


def build_scenario(
    source: RawSource,
    *,
    seed: int,
    num_test: int,
    num_finetune: int,
    progress: Optional[Callable[[str], None]] = None,
    engine: str = "python",
) -> Scenario:
    """Run the two-pass build of PROTOCOL §3 over a raw source.

    engine: "duckdb" reads the sources that have a columnar plan with the columnar engine
    (engine.py), "python" streams iter_events; both build the same samples.
    """
    policy = source.policy
    say = progress or (lambda _msg: None)
    plan = source.columnar() if engine == "duckdb" else None

    if plan is None:
        say(f"{source.name}: reading items")
        items = source.load_items()
        if not items:
            raise DataError(f"{source.name}: no items with text were read; check {source.expected_files}")
        return _build(source, items, _python_interactions(source, items, policy, say), seed, num_test,
                      num_finetune)
    from .engine import columnar_build

    return columnar_build(source, plan, seed=seed, num_test=num_test, num_finetune=num_finetune, say=say)


def _build(
    source: RawSource, items: Dict[str, str], inter: Interactions, seed: int, num_test: int, num_finetune: int
) -> Scenario:
    """Selection and samples (PROTOCOL §3) from the counted interactions."""
    report = source.report
    policy = source.policy
    if inter.n_users == 0:
        raise DataError(f"{source.name}: no usable interactions were read from {source.raw_dir}")
    test_users, ft_users = _select_users(inter.users, inter.n_pos, inter.n_neg, policy, seed, num_test,
                                         num_finetune)
    if not test_users and num_test > 0:
        raise DataError(
            f"{source.name}: no user has enough interactions (needs >= {policy.min_positives} positives"
            + (f" and >= {policy.min_negatives} negatives" if policy.min_negatives else "")
            + ")"
        )
    universe = inter.universe() if policy.sampled_negatives else []
    selected = inter.events_of(test_users + ft_users)
    for events in selected.values():
        for k, (time, seq, item, label, hist) in enumerate(events):
            if hist is not None:
                kept = tuple(h for h in hist if h in items)
                dropped = len(hist) - len(kept)
                if dropped:
                    report.skipped["unknown history item id"] += dropped
                events[k] = (time, seq, item, label, kept)

    def collect(users: List[str], target: int) -> pd.DataFrame:
        rows: List[Tuple[str, str, int, List[str]]] = []
        for u in users:
            rows.extend(_user_samples(u, selected[u], policy, seed, universe))
        return _frame(rows[:target])

    test = collect(test_users, num_test)
    finetune = collect(ft_users, num_finetune)

    used = set(test["item_id"]) | set(finetune["item_id"])
    for df in (test, finetune):
        for hist in df["history"]:
            used.update(hist)
    items_df = pd.DataFrame(
        sorted((i, items[i]) for i in used if i in items), columns=["item_id", "text"]
    )
    info = {
        **report.as_dict(),
        "users_total": inter.n_users,
        "items_total": len(items),
        "data_fingerprint": samples_fingerprint(test),  # what results are computed on
        "finetune_fingerprint": samples_fingerprint(finetune),
        "protocol_version": PROTOCOL_VERSION,
    }
    return Scenario(
        name=source.name,
        domain=source.domain,
        item_noun=source.item_noun,
        items=items_df,
        test=test,
        finetune=finetune,
        seed=seed,
        info=info,
    )
