"""The SeqRec split (PROTOCOL §10): rank a user's next item among candidates.

Per user: the positives in time order, as the scenario defines them (MIND and the demo: the
explicit history followed by the clicked items). The last positive is the *target*; the
distinct positives before it (each at its latest position, the target's earlier copies left
out) are the history, at most `history_len` of them. Users need at least 3 distinct
positives. Candidates are the target first, then `candidates - 1` negatives drawn uniformly
without replacement, seeded per (seed, user), from the scenario's items the user never
interacted with; with `candidates="all"` no negatives are drawn and the whole catalogue is
ranked (the task reads the catalogue from `Scenario.items` and masks the user's other known
interactions, listed in the `exclude` column).

Users are visited in a seeded order that depends on each user alone (a hash of seed and user
id), so the order is the same whichever reader produced the users and however many of them
are eligible: the first `num_test` eligible users are the test users, the next
`num_finetune` the fine-tuning users (split 90/10 by user with `Scenario.finetune_split`).

The sampler is a pure function (`sample_seqrec`) over per-user ordered positives, per-user
interacted items and the item universe, so any reader can feed it; `build_seqrec` is a thin
adapter over the scenario readers' event stream (two passes, like scenarios/base.py: counts,
then the selected users' events) and `load_seqrec` caches the result as Parquet.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..errors import DataError
from ..settings import DEFAULT_SEED
from . import cache as _cache
from .base import RawSource, Scenario, stable_hash
from .io import BuildReport

SEQREC_PROTOCOL_VERSION = "seqrec-1"  # bump when the split's rules change (enters the cache key)
DEFAULT_HISTORY_LEN = 19
DEFAULT_CANDIDATES = 100
DEFAULT_NUM_TEST = 5000  # users
DEFAULT_NUM_FINETUNE = 40000  # users
MIN_POSITIVES = 3
ALL = "all"
COLUMNS = ["user_id", "history", "target", "candidates"]  # + "exclude" with candidates="all"
_RESERVE = 1.1  # pass two collects this many times the users needed (+ _RESERVE_MIN): some drop out
_RESERVE_MIN = 100

Candidates = Union[int, str]


@dataclass(frozen=True)
class UserSequence:
    """What the sampler needs of one user, from any reader."""

    positives: Tuple[str, ...]  # in time order, oldest first (repeats allowed)
    interacted: FrozenSet[str]  # every item the user touched: positives, negatives, histories


@dataclass(frozen=True)
class SeqRecSample:
    user_id: str
    history: Tuple[str, ...]  # oldest first, at most history_len
    target: str
    candidates: Tuple[str, ...]  # the target first, then the negatives in drawn order ("all": empty)
    exclude: Tuple[str, ...] = ()  # "all" only: the user's other interacted items (sorted), not ranked


def check_candidates(value: Candidates) -> Candidates:
    """A candidate count >= 2 or 'all'."""
    if isinstance(value, str) and value.strip().lower() == ALL:
        return ALL
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise DataError(f"candidates must be an integer >= 2 (the target and at least one negative) or 'all', "
                        f"got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------
# The pure sampler
# ----------------------------------------------------------------------------------------


def visit_key(seed: int, user: str) -> int:
    """The user's place in the seeded visiting order (depends on seed and user only)."""
    return stable_hash(f"{seed}:seqrec:{user}")


def visit_order(users: Iterable[str], seed: int) -> List[str]:
    return sorted(users, key=lambda u: (visit_key(seed, u), u))


def split_positives(positives: Sequence[str], history_len: int) -> Optional[Tuple[Tuple[str, ...], str]]:
    """(history, target), or None when the user has fewer than MIN_POSITIVES distinct positives."""
    if not positives:
        return None
    target = positives[-1]
    seen = {target}
    before: List[str] = []
    for item in reversed(positives[:-1]):  # latest occurrence of each item, target left out
        if item not in seen:
            seen.add(item)
            before.append(item)
    if len(before) + 1 < MIN_POSITIVES:
        return None
    before.reverse()
    return tuple(before[-history_len:]) if history_len > 0 else (), target


def user_rng(seed: int, user: str) -> np.random.Generator:
    return np.random.default_rng([seed, stable_hash(f"seqrec:{user}")])


@dataclass(frozen=True)
class Universe:
    """The items negatives are drawn from, in a canonical (sorted) order so that draws are
    reproducible whichever reader listed them."""

    items: Tuple[str, ...]
    members: FrozenSet[str]

    @classmethod
    def of(cls, items: Iterable[str]) -> "Universe":
        ordered = tuple(sorted(set(items)))
        return cls(ordered, frozenset(ordered))


def draw_negatives(user: str, interacted: FrozenSet[str], universe: Universe, n: int, seed: int) -> List[str]:
    """n universe items the user never interacted with, uniform without replacement, in drawn
    order (fewer when fewer exist)."""
    if n <= 0:
        return []
    rng = user_rng(seed, user)
    items = universe.items
    free = len(items) - sum(1 for i in interacted if i in universe.members)
    if free <= 0:
        return []
    if free <= 4 * n:  # dense: draw from the explicit pool
        pool = [i for i in items if i not in interacted]
        return [pool[k] for k in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]
    out: List[str] = []
    chosen = set()
    while len(out) < n:  # sparse: rejection sampling in batches (free > 4n: ends quickly)
        for k in rng.integers(0, len(items), size=2 * n):
            item = items[int(k)]
            if item in interacted or item in chosen:
                continue
            chosen.add(item)
            out.append(item)
            if len(out) == n:
                break
    return out


def user_sample(user: str, seq: UserSequence, universe: Universe, *, seed: int, history_len: int,
                candidates: Candidates) -> Optional[SeqRecSample]:
    """One user's sample, or None when the user is not eligible."""
    split = split_positives(seq.positives, history_len)
    if split is None:
        return None
    history, target = split
    if candidates == ALL:
        exclude = tuple(sorted(i for i in seq.interacted if i != target and i in universe.members))
        return SeqRecSample(user, history, target, (), exclude)
    negatives = draw_negatives(user, seq.interacted | {target}, universe, int(candidates) - 1, seed)
    return SeqRecSample(user, history, target, (target, *negatives))


def sample_seqrec(sequences: Mapping[str, UserSequence], universe: Iterable[str], *, seed: int = DEFAULT_SEED,
                  num_test: int = DEFAULT_NUM_TEST, num_finetune: int = 0,
                  history_len: int = DEFAULT_HISTORY_LEN,
                  candidates: Candidates = DEFAULT_CANDIDATES) -> Tuple[List[SeqRecSample], List[SeqRecSample]]:
    """(test, fine-tuning) samples: eligible users in the seeded order, test users first."""
    ordered_universe = Universe.of(universe)
    candidates = check_candidates(candidates)
    test: List[SeqRecSample] = []
    finetune: List[SeqRecSample] = []
    for user in visit_order(sequences, seed):
        if len(test) >= num_test and len(finetune) >= num_finetune:
            break
        s = user_sample(user, sequences[user], ordered_universe, seed=seed, history_len=history_len,
                        candidates=candidates)
        if s is None:
            continue
        (test if len(test) < num_test else finetune).append(s)
    return test, finetune


def frame(samples: Sequence[SeqRecSample], with_exclude: bool) -> pd.DataFrame:
    cols = COLUMNS + (["exclude"] if with_exclude else [])
    rows = [[s.user_id, list(s.history), s.target, list(s.candidates)] + ([list(s.exclude)] if with_exclude else [])
            for s in samples]
    return pd.DataFrame(rows, columns=cols)


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 over the rows: equal fingerprints mean the same users, histories and candidates."""
    h = hashlib.sha256()
    for row in df.itertuples(index=False):
        h.update(f"{row.user_id}\t{' '.join(row.history)}\t{row.target}\t{' '.join(row.candidates)}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------
# The adapter over a scenario reader's event stream
# ----------------------------------------------------------------------------------------


def _count_pass(source: RawSource, items: Mapping[str, str]) -> Tuple[Dict[str, List[int]], List[str]]:
    """Pass one: per user [positive events, longest explicit history] and the item universe
    (items with text seen in any event or history)."""
    report = source.report
    counts: Dict[str, List[int]] = {}
    seen: Dict[str, None] = {}
    for ev in source.iter_events(items):  # type: ignore[arg-type]
        report.rows_read += 1
        if ev.item not in items:
            report.skip("unknown item id", "", ev.item)
            continue
        c = counts.get(ev.user)
        if c is None:
            c = counts[ev.user] = [0, 0]
        if ev.label:
            c[0] += 1
        seen[ev.item] = None
        if ev.history is not None:
            known = [h for h in ev.history if h in items]
            c[1] = max(c[1], len(known))
            seen.update(dict.fromkeys(known))
    return counts, list(seen)


def _collect_pass(source: RawSource, items: Mapping[str, str], wanted: set) -> Dict[str, UserSequence]:
    """Pass two: the wanted users' events -> ordered positives and interacted items."""
    report = source.report
    source.report = BuildReport(strict=False)  # the same rows again: count them once
    events: Dict[str, list] = {u: [] for u in wanted}
    try:
        seq = 0
        for ev in source.iter_events(items):  # type: ignore[arg-type]
            seq += 1
            bucket = events.get(ev.user)
            if bucket is None or ev.item not in items:
                continue
            hist = tuple(h for h in ev.history if h in items) if ev.history is not None else None
            bucket.append((ev.time, seq, ev.item, int(ev.label), hist))
    finally:
        source.report = report
    out: Dict[str, UserSequence] = {}
    for user, evs in events.items():
        evs.sort(key=lambda e: (e[0], e[1]))
        histories = [e[4] for e in evs if e[4] is not None]
        explicit = list(histories[-1]) if histories else []  # the history shipped with the latest event
        positives = tuple(explicit + [e[2] for e in evs if e[3] == 1])
        interacted = {e[2] for e in evs}
        for h in histories:
            interacted.update(h)
        out[user] = UserSequence(positives, frozenset(interacted))
    return out


def build_seqrec(source: RawSource, *, seed: int, num_test: int, num_finetune: int, history_len: int,
                 candidates: Candidates, progress: Optional[Callable[[str], None]] = None) -> Scenario:
    """Run the SeqRec sampler over a raw source's events (two passes; memory flat in file size)."""
    say = progress or (lambda _msg: None)
    candidates = check_candidates(candidates)
    say(f"{source.name}: reading items")
    items = source.load_items()
    if not items:
        raise DataError(f"{source.name}: no items with text were read; check {source.expected_files}")
    say(f"{source.name}: seqrec pass 1/2 over interactions")
    counts, universe_list = _count_pass(source, items)
    if not counts:
        raise DataError(f"{source.name}: no usable interactions were read from {source.raw_dir}")
    universe = Universe.of(universe_list)
    # at least MIN_POSITIVES positive events (or history items) are needed for as many distinct ones
    order = visit_order((u for u, (pos, hist) in counts.items() if pos + hist >= MIN_POSITIVES), seed)
    n_users = len(counts)
    del counts
    need = num_test + num_finetune
    test: List[SeqRecSample] = []
    finetune: List[SeqRecSample] = []
    start = 0
    while (len(test) < num_test or len(finetune) < num_finetune) and start < len(order):
        missing = need - len(test) - len(finetune)
        chunk = order[start : start + int(missing * _RESERVE) + _RESERVE_MIN]
        start += len(chunk)
        say(f"{source.name}: seqrec pass 2/2 collecting {len(chunk)} users")
        sequences = _collect_pass(source, items, set(chunk))
        for user in chunk:
            if len(test) >= num_test and len(finetune) >= num_finetune:
                break
            s = user_sample(user, sequences[user], universe, seed=seed, history_len=history_len,
                            candidates=candidates)
            if s is not None:
                (test if len(test) < num_test else finetune).append(s)
    if not test and num_test > 0:
        raise DataError(f"{source.name}: no user has enough interactions for seqrec "
                        f"(needs >= {MIN_POSITIVES} distinct positives)")
    full = candidates == ALL
    test_df, ft_df = frame(test, full), frame(finetune, full)
    if full:
        used = set(universe.items)
    else:
        used = set()
        for df in (test_df, ft_df):
            for col in ("history", "candidates"):
                for values in df[col]:
                    used.update(values)
    items_df = pd.DataFrame(sorted((i, items[i]) for i in used if i in items), columns=["item_id", "text"])
    info = {
        **source.report.as_dict(),
        "task": "seqrec",
        "users_total": n_users,
        "items_total": len(items),
        "catalogue": len(universe.items),
        "history_len": history_len,
        "candidates": candidates,
        "data_fingerprint": fingerprint(test_df),
        "finetune_fingerprint": fingerprint(ft_df),
        "seqrec_protocol_version": SEQREC_PROTOCOL_VERSION,
    }
    return Scenario(name=source.name, domain=source.domain, item_noun=source.item_noun, items=items_df,
                    test=test_df, finetune=ft_df, seed=seed, info=info)


# ----------------------------------------------------------------------------------------
# Loading with the Parquet cache
# ----------------------------------------------------------------------------------------


def _lists(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("history", "candidates", "exclude"):
        if col in df:
            df[col] = [list(v) if v is not None else [] for v in df[col]]
    return df


def load_seqrec(name: str, raw_dir=None, *, seed: int = DEFAULT_SEED, num_test: Optional[int] = None,
                num_finetune: Optional[int] = None, strict: bool = False, cache_dir=None, use_cache: bool = True,
                progress: Optional[Callable[[str], None]] = None, history_len: int = DEFAULT_HISTORY_LEN,
                candidates: Candidates = DEFAULT_CANDIDATES, **options) -> Scenario:
    """Build (or load from the cache) a scenario's SeqRec split; see the module docstring.

    num_test / num_finetune count users (defaults: the source's `seqrec_num_test` /
    `seqrec_num_finetune`, else 5,000 and 40,000)."""
    from . import get_source, resolve_raw_dir

    source_cls = get_source(name)
    num_test = int(getattr(source_cls, "seqrec_num_test", DEFAULT_NUM_TEST) if num_test is None else num_test)
    num_finetune = int(getattr(source_cls, "seqrec_num_finetune", DEFAULT_NUM_FINETUNE)
                       if num_finetune is None else num_finetune)
    if num_test < 0 or num_finetune < 0:
        raise DataError("num_test and num_finetune must be >= 0")
    if isinstance(history_len, bool) or not isinstance(history_len, (int, np.integer)) or history_len < 1:
        raise DataError(f"history_len must be a positive integer, got {history_len!r}")
    candidates = check_candidates(candidates)
    folder = resolve_raw_dir(source_cls.name, raw_dir) if (source_cls.needs_raw_dir or raw_dir is not None) else None
    if source_cls.needs_raw_dir:
        if folder is None:
            raise DataError(
                f"{source_cls.name}: no raw data folder given; pass --raw-dir DIR (or raw_dir=...) "
                f"or set RECBENCH_DATA to a folder holding {source_cls.name}/ with {source_cls.expected_files}")
        if not folder.is_dir():
            raise DataError(f"{source_cls.name}: raw data folder {folder} does not exist")
    source = source_cls(folder, BuildReport(strict=strict), **options)
    files = source.raw_files()
    # the loader's and this sampler's own source enter the key: a changed rule never reuses a split
    raw_fp = _cache.raw_fingerprint(list(files) + [Path(inspect.getfile(source_cls)), Path(__file__)])
    keyed = {**options, "task": "seqrec", "seqrec_protocol": SEQREC_PROTOCOL_VERSION, "history_len": history_len,
             "candidates": candidates}
    key = _cache.cache_key(source_cls.name, source_cls.loader_version, seed, num_test, num_finetune, keyed, raw_fp)
    entry = Path(cache_dir or _cache.default_cache_dir()) / "scenarios" / source_cls.name / f"seqrec-{key}"
    if use_cache:
        cached = _cache.load(entry, progress, fingerprint=fingerprint)
        if cached is not None:
            cached.test, cached.finetune = _lists(cached.test), _lists(cached.finetune)
            return cached
    scenario = build_seqrec(source, seed=seed, num_test=num_test, num_finetune=num_finetune, history_len=history_len,
                            candidates=candidates, progress=progress)
    scenario.info["cache_key"] = key
    scenario.info["raw_files"] = [str(p) for p in files]
    if use_cache:
        _cache.save(scenario, entry)
    return scenario
