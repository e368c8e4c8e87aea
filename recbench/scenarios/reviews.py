"""Rated reviews in JSON lines (Amazon, Yelp, HotelRec): one reading of user, item, rating
and time, so the three loaders count bad rows and apply the rating rule the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

from .base import Event
from .io import BuildReport


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=timezone.utc)


def parse_time(value) -> Optional[float]:
    """Seconds since the epoch (UTC) of an ISO date such as "2016-03-09 00:00:00"."""
    if not isinstance(value, str):
        return None
    try:
        d = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (d - (_EPOCH if d.tzinfo is None else _EPOCH_UTC)).total_seconds()  # naive = UTC


def rating_label(rating: float) -> Optional[int]:
    """1 above 3, 0 below 3, None for exactly 3 (dropped by the protocol)."""
    if rating > 3:
        return 1
    if rating < 3:
        return 0
    return None


@dataclass(frozen=True)
class ReviewFields:
    """Where a dataset keeps the parts of a review. `item` lists keys tried in order."""

    user: str
    item: Sequence[str]
    rating: str
    time: str


def review_events(
    rows: Iterable[Tuple[int, dict]],
    report: BuildReport,
    file_name: str,
    fields: ReviewFields,
    parse_time: Callable[[object], Optional[float]],
    label_of: Callable[[float], Optional[int]] = rating_label,
) -> Iterator[Event]:
    """Events from (line number, review) rows; malformed rows are reported, 3s dropped."""
    for lineno, r in rows:
        where = f"{file_name}:{lineno}"
        user = r.get(fields.user)
        item = next((r[k] for k in fields.item if isinstance(r.get(k), str) and r[k].strip()), None)
        if not isinstance(user, str) or not user.strip() or item is None:
            report.skip("missing user or item id", where)
            continue
        try:
            rating = float(r[fields.rating])
        except (KeyError, TypeError, ValueError):
            report.skip("missing or non-numeric rating", where)
            continue
        ts = parse_time(r.get(fields.time))
        if ts is None:
            report.skip("missing or bad time", where, repr(r.get(fields.time))[:40])
            continue
        label = label_of(rating)
        if label is None:
            report.drop("rating of exactly 3")
            continue
        yield Event(user.strip(), item.strip(), ts, label)
