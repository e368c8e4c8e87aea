"""MicroLens (video): `MicroLens-50k_pairs.csv` + `MicroLens-50k_titles.csv` (Westlake University).

Label: every (user, item) pair is a positive; 2 negatives per user are sampled from videos the
user never interacted with. Item text: the video title.
Both files carry a header in the official release (user,item,timestamp / item,title); a file
whose first line starts with a numeric id is read as headerless with those columns.
Titles are quoted CSV (they may hold commas and quotes).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

from .base import Event, RawSource, SamplingPolicy
from .io import iter_delimited, sniff_first_line

PAIRS = "MicroLens-50k_pairs.csv"
TITLES = "MicroLens-50k_titles.csv"


def _rows(path: Path, report, columns: Sequence[str]) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Rows of a CSV with the given columns, with or without the official header line."""
    first = next(csv.reader([sniff_first_line(path)]), [""])
    if first and first[0].strip().isdigit():
        return iter_delimited(path, report, header=False, columns=columns)
    return iter_delimited(path, report, required=columns)


class MicroLensSource(RawSource):
    name = "microlens"
    domain = "video"
    item_noun = "video"
    description = "MicroLens-50k micro-video interactions; all pairs liked, negatives sampled."
    policy = SamplingPolicy(sampled_negatives=2)
    default_num_finetune = 100000
    expected_files = f"{PAIRS} (user,item,timestamp) + {TITLES} (item,title) of the MicroLens-50k dataset"
    source_url = "https://github.com/westlake-repl/MicroLens"
    downloads = ()

    def _files(self) -> Tuple[Path, Path]:
        titles, pairs = self.find_file(TITLES), self.find_file(PAIRS)
        if titles is None and pairs is None:
            raise self.missing(f"{PAIRS} and {TITLES}")
        if titles is None:
            raise self.missing(TITLES)
        if pairs is None:
            raise self.missing(PAIRS)
        return titles, pairs

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def load_items(self) -> Dict[str, str]:
        titles, _ = self._files()
        items: Dict[str, str] = {}
        for lineno, r in _rows(titles, self.report, ("item", "title")):
            title = r["title"].strip()
            if not title:
                self.report.skip("empty title", f"{titles.name}:{lineno}")
                continue
            items.setdefault(r["item"].strip(), title)
        return items

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, pairs = self._files()
        for lineno, r in _rows(pairs, self.report, ("user", "item", "timestamp")):
            try:
                ts = float(r["timestamp"])
                if not math.isfinite(ts):
                    raise ValueError
            except ValueError:
                self.report.skip("non-numeric timestamp", f"{pairs.name}:{lineno}", r["timestamp"][:40])
                continue
            user, item = r["user"].strip(), r["item"].strip()
            if not user or not item:
                self.report.skip("missing user or item", f"{pairs.name}:{lineno}")
                continue
            yield Event(user, item, ts, 1)
