"""Goodreads (books): `goodreads_interactions_dedup.json` + `goodreads_book_works.json` (UCSD).

Label: is_read true/1 positive, false/0 negative (real negatives: shelved but not read).
Item text: the work's original_title, keyed by the work's best_book_id; works with a blank
original_title are left out by rule (dropped_by_rule "blank title"), so interactions on books
that are not a work's best book count as "unknown item id".
Time: date_added ("Thu Dec 17 11:10:42 -0800 2015"). Both files may stay gzipped (.json.gz).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import DataError
from .base import Event, RawSource, RemoteFile, SamplingPolicy
from .io import BuildReport, check_json_format, iter_jsonl

INTERACTIONS = "goodreads_interactions_dedup.json"
WORKS = "goodreads_book_works.json"
UCSD = "https://datarepo.eng.ucsd.edu/mcauley_group/gdrive/goodreads/"
DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


_EPOCH = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=1 << 16)
def _day_start(year: str, mon: str, day: str) -> int:
    """Seconds from the epoch to midnight UTC of a date (validated by date())."""
    return (date(int(year), _MONTHS[mon], int(day)).toordinal() - _EPOCH) * 86400


@lru_cache(maxsize=256)
def _utc_offset(offset: str) -> int:
    if len(offset) != 5 or offset[0] not in "+-" or not offset[1:].isdigit():
        raise ValueError(offset)
    seconds = int(offset[1:3]) * 3600 + int(offset[3:5]) * 60
    return -seconds if offset[0] == "-" else seconds


def parse_date(text) -> Optional[float]:
    """Seconds since the epoch for a date_added value, None if unparsable.

    Same result as datetime.strptime(text, DATE_FORMAT).timestamp(), several times faster on
    the canonical form (the interactions file has ~228M rows, read twice).
    """
    if not isinstance(text, str):
        return None
    try:
        _, mon, day, clock, offset, year = text.split()
        h, m, s = map(int, clock.split(":"))
        if 0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60:
            return float(_day_start(year, mon, day) + h * 3600 + m * 60 + s - _utc_offset(offset))
    except (ValueError, KeyError):
        pass
    try:
        return datetime.strptime(text.strip(), DATE_FORMAT).timestamp()
    except ValueError:
        return None


def read_label(value) -> Optional[int]:
    """is_read as 1/0 (JSON true/false, 1/0 or their strings); None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        return {"true": 1, "1": 1, "false": 0, "0": 0}.get(value.strip().lower())
    return None


def check_keys(path: Path, report: BuildReport, keys: Sequence[str], expected: str) -> None:
    """Fail early with file/line when the first JSON object lacks the keys this loader reads."""
    check_json_format(path, report, expected)
    for lineno, obj in iter_jsonl(path, BuildReport()):
        missing = [k for k in keys if k not in obj]
        if missing:
            raise DataError(
                f"{path} line {lineno}: expected {expected}; missing key(s) {', '.join(missing)} "
                f"(found {', '.join(list(obj)[:10])}); is this the right file?"
            )
        return


class GoodreadsSource(RawSource):
    name = "goodreads"
    domain = "books"
    item_noun = "book"
    description = "Goodreads shelves (UCSD); read = 1, shelved but not read = 0."
    policy = SamplingPolicy(min_negatives=1)
    default_num_finetune = 100000
    expected_files = f"{INTERACTIONS} + {WORKS} (either may be .json.gz)"
    source_url = "https://mengtingwan.github.io/data/goodreads.html"
    downloads = (
        RemoteFile(UCSD + INTERACTIONS + ".gz", INTERACTIONS + ".gz"),
        RemoteFile(UCSD + WORKS + ".gz", WORKS + ".gz"),
    )

    def _files(self) -> Tuple[Path, Path]:
        works, interactions = self.find_file(WORKS), self.find_file(INTERACTIONS)
        if works is None and interactions is None:
            raise self.missing(f"{INTERACTIONS} and {WORKS}")
        if works is None:
            raise self.missing(WORKS)
        if interactions is None:
            raise self.missing(INTERACTIONS)
        return works, interactions

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def load_items(self) -> Dict[str, str]:
        works, _ = self._files()
        check_keys(works, self.report, ("best_book_id", "original_title"),
                   "JSON lines of book works with best_book_id and original_title")
        items: Dict[str, str] = {}
        for lineno, obj in iter_jsonl(works, self.report):
            book = str(obj.get("best_book_id") or "").strip()
            if not book:
                self.report.skip("missing best_book_id", f"{works.name}:{lineno}")
                continue
            title = obj.get("original_title")
            title = title.strip() if isinstance(title, str) else ""
            if not title:
                self.report.drop("blank title")
                continue
            items.setdefault(book, title)
        return items

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, interactions = self._files()
        check_keys(interactions, self.report, ("user_id", "book_id", "is_read", "date_added"),
                   "JSON lines of interactions with user_id, book_id, is_read and date_added")
        name = interactions.name
        for lineno, obj in iter_jsonl(interactions, self.report):
            user, book = obj.get("user_id"), obj.get("book_id")
            if user in (None, "") or book in (None, ""):
                self.report.skip("missing user_id or book_id", f"{name}:{lineno}")
                continue
            label = read_label(obj.get("is_read"))
            if label is None:
                self.report.skip("bad is_read", f"{name}:{lineno}", repr(obj.get("is_read"))[:40])
                continue
            time = parse_date(obj.get("date_added"))
            if time is None:
                self.report.skip("bad date_added", f"{name}:{lineno}", repr(obj.get("date_added"))[:40])
                continue
            yield Event(str(user).strip(), str(book).strip(), time, label)
