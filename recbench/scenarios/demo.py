"""demo: synthetic users over a catalog of real, well-known titles (bundled, offline).

For smoke tests, tutorials and CI, never a benchmark domain. The catalog
(recbench/data/demo_catalog.csv: item_id, kind, title, year, genre) holds 442 real
movies, books, games and albums in 26 (kind, genre) groups of 17; the (kind, genre) pair
is the unit of taste ("science fiction" exists for movies and for books).

The user population is fixed: it is synthesized from a constant generator seed
(POPULATION_SEED), independent of the sampling seed, so the data fingerprint is simply
the catalog file. The sampling seed of the build picks which users go to test and which
to fine-tuning, like for every other scenario. Each user:

- likes one or two tastes (the second one of any kind);
- has a history of 8-20 titles, about 85% from the liked tastes and the rest noise from
  other tastes, in (synthetic) time order;
- has 10 candidates: 5 positives from the liked tastes (not in the history; 10% of them
  come instead from a taste *related* to a liked one, e.g. fantasy books -> role-playing
  games), and 5 negatives from tastes the user does not like (30% of them share the kind
  of a liked taste, so "it is a movie too" is not a giveaway).

Item text names the genre the way real datasets carry categories:
"The Shining (1980) — horror movie", "Master of Puppets (Metallica) — heavy metal album".
See docs/scenarios/demo.md for the design and the scores simple baselines reach.
"""

from __future__ import annotations

import csv
import io
import os
from importlib import resources
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import DataError
from .base import Event, RawSource, SamplingPolicy

CATALOG = "demo_catalog.csv"
POPULATION_SEED = 0  # fixed: the population never depends on the sampling seed
POPULATION = 2000  # users; enough for the default 500 test + 5000 fine-tuning samples
HISTORY_MIN, HISTORY_MAX = 8, 20
HISTORY_TASTE_SHARE = 0.85  # share of history slots drawn from the liked tastes
N_POSITIVES = 5
N_NEGATIVES = 5
RELATED_POSITIVE_RATE = 0.10  # positives taken from a related (not liked) taste
SAME_KIND_NEGATIVE_RATE = 0.30  # negatives taken from an unliked taste of a liked kind

Taste = Tuple[str, str]  # (kind, genre)

# A taste -> a related taste that fans plausibly like too (world knowledge, not text overlap).
RELATED: Dict[Taste, Taste] = {
    ("movie", "animation"): ("game", "platformer"),
    ("movie", "crime thriller"): ("book", "mystery"),
    ("movie", "horror"): ("movie", "crime thriller"),
    ("movie", "romantic comedy"): ("book", "romance"),
    ("movie", "science fiction"): ("book", "science fiction"),
    ("movie", "superhero"): ("movie", "science fiction"),
    ("movie", "war"): ("game", "first-person shooter"),
    ("movie", "western"): ("movie", "war"),
    ("book", "business and self-help"): ("game", "strategy"),
    ("book", "classic literature"): ("album", "classical"),
    ("book", "fantasy"): ("game", "role-playing"),
    ("book", "mystery"): ("movie", "crime thriller"),
    ("book", "romance"): ("movie", "romantic comedy"),
    ("book", "science fiction"): ("movie", "science fiction"),
    ("game", "first-person shooter"): ("movie", "war"),
    ("game", "platformer"): ("movie", "animation"),
    ("game", "puzzle"): ("game", "strategy"),
    ("game", "role-playing"): ("book", "fantasy"),
    ("game", "sports"): ("game", "first-person shooter"),
    ("game", "strategy"): ("game", "puzzle"),
    ("album", "classical"): ("album", "jazz"),
    ("album", "country"): ("movie", "western"),
    ("album", "heavy metal"): ("game", "first-person shooter"),
    ("album", "hip hop"): ("album", "pop"),
    ("album", "jazz"): ("album", "classical"),
    ("album", "pop"): ("album", "hip hop"),
}


def catalog_resource():
    """The bundled catalog as an importlib.resources Traversable."""
    return resources.files("recbench") / "data" / CATALOG


def read_catalog() -> List[Dict[str, str]]:
    """The catalog rows (item_id, kind, title, year, genre), in file order."""
    res = catalog_resource()
    try:
        text = res.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"demo: the bundled catalog {CATALOG} is missing; reinstall recbench") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"item_id", "kind", "title", "year", "genre"} <= set(rows[0]):
        raise DataError(f"demo: the bundled catalog {CATALOG} is malformed; reinstall recbench")
    return rows


def item_text(row: Dict[str, str]) -> str:
    """"Title (year) — genre kind"; books and albums name their author instead of a year."""
    title, kind, genre = row["title"].strip(), row["kind"].strip(), row["genre"].strip()
    if kind in ("movie", "game") and row.get("year", "").strip():
        title = f"{title} ({row['year'].strip()})"
    return f"{title} — {genre} {kind}"


class DemoSource(RawSource):
    name = "demo"
    domain = "mixed media"
    item_noun = "item"
    description = (
        "synthetic users over a catalog of real, well-known titles; for smoke tests, "
        "tutorials and CI — not a benchmark domain"
    )
    policy = SamplingPolicy(
        heldout_positives=None, max_positives=10, max_negatives=10, min_positives=1, min_negatives=1
    )
    default_num_test = 500  # 50 users x 10 candidates
    default_num_finetune = 5000  # 500 users
    # seqrec (users): the target is the last liked item, so taste makes it predictable
    seqrec_num_test = 200
    seqrec_num_finetune = 1000
    needs_raw_dir = False
    expected_files = "nothing: the catalog ships with recbench (recbench/data/demo_catalog.csv)"
    loader_version = "1"

    def __init__(self, raw_dir: Optional[Path], report, **options):
        super().__init__(raw_dir, report, **options)  # raw_dir is ignored
        self._users: Optional[List[Tuple[str, List[str], List[Tuple[str, int]]]]] = None

    def raw_files(self) -> List[Path]:
        res = catalog_resource()
        if isinstance(res, Path) or isinstance(res, os.PathLike):
            path = Path(res)
            if path.is_file():
                return [path]
            raise DataError(f"demo: the bundled catalog {path} is missing; reinstall recbench")
        # A zipped install: give the fingerprint a real copy in the cache folder.
        from .cache import default_cache_dir

        path = default_cache_dir() / "demo" / CATALOG
        data = res.read_bytes()
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return [path]

    def load_items(self) -> Dict[str, str]:
        return {row["item_id"].strip(): item_text(row) for row in read_catalog()}

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        if self._users is None:
            self._users = synthesize(read_catalog())
        time = 0
        for user, history, candidates in self._users:
            hist = tuple(history)
            for item, label in candidates:
                time += 1
                yield Event(user, item, float(time), label, hist)


def synthesize(catalog: List[Dict[str, str]], n_users: int = POPULATION, seed: int = POPULATION_SEED):
    """The fixed user population: [(user_id, history, [(item, label), ...])].

    Each user has its own generator (seed, index), so user k is the same whatever n_users.
    """
    by_taste: Dict[Taste, List[str]] = {}
    for row in catalog:
        by_taste.setdefault((row["kind"].strip(), row["genre"].strip()), []).append(row["item_id"].strip())
    tastes = sorted(by_taste)
    related = {t: RELATED.get(t) for t in tastes}
    for t in tastes:  # a catalog taste without a curated relative: the next one of its kind
        if related[t] not in by_taste:
            same = [u for u in tastes if u[0] == t[0] and u != t]
            related[t] = same[0] if same else None

    users = []
    width = max(4, len(str(n_users)))
    for index in range(n_users):
        rng = np.random.default_rng([seed, index])
        used: set = set()

        def take(taste: Taste) -> Optional[str]:
            free = [i for i in by_taste[taste] if i not in used]
            if not free:
                return None
            item = free[int(rng.integers(len(free)))]
            used.add(item)
            return item

        def take_from(pool: List[Taste]) -> Optional[str]:
            pool = [t for t in pool if any(i not in used for i in by_taste[t])]
            if not pool:
                return None
            return take(pool[int(rng.integers(len(pool)))])

        first = tastes[int(rng.integers(len(tastes)))]
        liked = [first]
        if rng.random() < 0.5:
            others = [t for t in tastes if t != first]
            liked.append(others[int(rng.integers(len(others)))])
        unliked = [t for t in tastes if t not in liked]
        relatives = [related[t] for t in liked if related[t] is not None and related[t] not in liked]
        liked_kinds = {t[0] for t in liked}

        positives: List[str] = []
        for _ in range(N_POSITIVES):
            item = None
            if relatives and rng.random() < RELATED_POSITIVE_RATE:
                item = take_from(relatives)
            if item is None:
                item = take_from(liked)
            if item is not None:
                positives.append(item)

        history: List[str] = []
        length = int(rng.integers(HISTORY_MIN, HISTORY_MAX + 1))
        for _ in range(length):
            if rng.random() < HISTORY_TASTE_SHARE:
                item = take_from(liked)  # None once a single liked taste is used up
            else:
                item = take_from(unliked)
            if item is not None:
                history.append(item)

        negatives: List[str] = []
        same_kind = [t for t in unliked if t[0] in liked_kinds]
        for _ in range(N_NEGATIVES):
            item = None
            if same_kind and rng.random() < SAME_KIND_NEGATIVE_RATE:
                item = take_from(same_kind)
            if item is None:
                item = take_from(unliked)
            if item is not None:
                negatives.append(item)

        candidates = [(i, 1) for i in positives] + [(i, 0) for i in negatives]
        order = rng.permutation(len(candidates))
        users.append((f"u{index + 1:0{width}d}", history, [candidates[k] for k in order]))
    return users
