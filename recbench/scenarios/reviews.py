"""Rated reviews in JSON lines (Amazon, Yelp, HotelRec): one reading of user, item, rating
and time, so the three loaders count bad rows and apply the rating rule the same way, in
both engines (review_line for one line in Python, review_sql for the columnar engine)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

from . import engine as E
from .base import Event
from .io import BuildReport, decode_line, parse_json_line


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


def review_event(
    r: dict,
    report: BuildReport,
    where: str,
    fields: ReviewFields,
    parse_time: Callable[[object], Optional[float]],
    label_of: Callable[[float], Optional[int]] = rating_label,
) -> Optional[Event]:
    """The event of one review, or None (a bad row reported, or a 3 dropped by rule)."""
    user = r.get(fields.user)
    item = next((r[k] for k in fields.item if isinstance(r.get(k), str) and r[k].strip()), None)
    if not isinstance(user, str) or not user.strip() or item is None:
        report.skip("missing user or item id", where)
        return None
    try:
        rating = float(r[fields.rating])
    except (KeyError, TypeError, ValueError):
        report.skip("missing or non-numeric rating", where)
        return None
    if not math.isfinite(rating):
        report.skip("rating is nan or inf", where, repr(r[fields.rating])[:40])
        return None
    ts = parse_time(r.get(fields.time))
    if ts is None or not math.isfinite(ts):
        report.skip("missing or bad time", where, repr(r.get(fields.time))[:40])
        return None
    label = label_of(rating)
    if label is None:
        report.drop("rating of exactly 3")
        return None
    return Event(user.strip(), item.strip(), ts, label)


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
        ev = review_event(r, report, f"{file_name}:{lineno}", fields, parse_time, label_of)
        if ev is not None:
            yield ev


def review_line(
    file_name: str,
    report: BuildReport,
    fields: ReviewFields,
    parse_time: Callable[[object], Optional[float]],
    label_of: Callable[[float], Optional[int]] = rating_label,
) -> Callable[[int, bytes], Iterator[Event]]:
    """The event of one raw JSON line (the whole Python reading of a line)."""

    def events(lineno: int, raw: bytes) -> Iterator[Event]:
        text = decode_line(lineno, raw, report, file_name)
        if text is None:
            return
        obj = parse_json_line(lineno, text, report, file_name)
        if obj is None:
            return
        ev = review_event(obj, report, f"{file_name}:{lineno}", fields, parse_time, label_of)
        if ev is not None:
            yield ev

    return events


def review_sql(fields: ReviewFields, time_sql: Callable[[str], str], label_sql: str,
               bad_time: Callable[[str], str]) -> str:
    """Columnar-engine SQL for review lines (see engine.LineSpec), review_event's reading in
    its order: user and item, rating, time, label.

    Read in SQL: user and the first item key as JSON strings without escapes or surrounding
    blanks, the rating a plain finite number, the time what time_sql reads; label_sql uses
    {r}. Bad rows told in SQL: a user or item id that is not a string or is "" (with one
    item key), a rating that is null, "", an object or an array, a time for which
    bad_time(raw JSON value) holds. Anything else goes to Python.
    """
    keys = [fields.user, fields.item[0], fields.rating, fields.time]
    u, i, r, t = (f"s['{k}']" for k in keys)
    missing_id = (f"NOT {E.json_is(u, 'string')} OR {u} = '\"\"'"
                  + (f" OR NOT {E.json_is(i, 'string')} OR {i} = '\"\"'" if len(fields.item) == 1 else ""))
    return f"""
SELECT ln, 0 AS k,
  CASE WHEN s IS NULL THEN '?'
       WHEN {missing_id} THEN 'missing user or item id'
       WHEN rv IS NULL THEN CASE WHEN {r} IN ('null', '""') OR {E.json_is(r, 'object', 'array')}
                                 THEN 'missing or non-numeric rating' ELSE '?' END
       WHEN tm IS NULL THEN CASE WHEN {bad_time(t)} THEN 'missing or bad time' ELSE '?' END
       WHEN uu IS NULL OR ii IS NULL THEN '?'
       WHEN lab IS NULL THEN 'rating of exactly 3' END AS st,
  uu AS "user", ii AS item, tm AS time, lab AS label
FROM (
  SELECT ln, s, rv, tm, CASE WHEN {E.canon('us')} THEN us END AS uu, CASE WHEN {E.canon('its')} THEN its END AS ii,
    {label_sql.format(r='rv')} AS lab
  FROM (
    SELECT ln, s, {E.json_text(u)} AS us, {E.json_text(i)} AS its, {E.json_number(r)} AS rv, {time_sql(t)} AS tm
    FROM (SELECT ln, {E.json_fields('t', keys)} AS s FROM lines)
  )
)"""


REVIEW_SKIPS = ("missing user or item id", "missing or non-numeric rating", "missing or bad time")
RATING_LABEL_SQL = "CASE WHEN {r} > 3 THEN 1 WHEN {r} < 3 THEN 0 END"


def iso_time_sql(value: str) -> str:
    """What parse_time reads from a canonical JSON string value ("2016-03-09 00:00:00")."""
    return E.iso_seconds(E.json_text(value))


def iso_bad_time(value: str) -> str:
    """SQL: parse_time(value) is None for sure: not a string, or ""."""
    return f"(NOT {E.json_is(value, 'string')} OR {value} = '\"\"')"
