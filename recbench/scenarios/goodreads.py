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
from . import engine as E
from .base import Event, RawSource, RemoteFile, SamplingPolicy
from .io import BuildReport, check_json_format, decode_line, iter_jsonl, iter_raw_lines, parse_json_line

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


# -- columnar engine: the canonical lines ------------------------------------------------

_DATE = (r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{2} "
         r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] [+-][0-9]{4} [0-9]{4}")


def date_sql(expr: str, quoted: bool = False) -> str:
    """SQL: what parse_date gives for a canonical date_added ("Thu Dec 17 11:10:42 -0800 2015");
    a date DuckDB does not read (no such day, an odd offset) goes to Python. quoted: expr is
    the JSON string itself, quotes included (no unquoting needed)."""
    q = '"' if quoted else ""
    return (f"(CASE WHEN regexp_full_match({expr}, '{q}{_DATE}{q}') AND NOT ends_with({expr}, ' 0000{q}') "
            f"THEN epoch(try_strptime({expr}, '{q}%a %b %d %H:%M:%S %z %Y{q}')) END)")


_WORK_KEYS = ("best_book_id", "original_title")
WORKS_SQL = f"""
SELECT ln, 0 AS k,
  CASE WHEN key IS NULL THEN '?' WHEN NOT starts_with(ti, '"') OR ti = '""' THEN 'blank title'
       WHEN text IS NULL THEN '?' END AS st,
  key, text, NULL::VARCHAR AS skip, NULL::VARCHAR AS detail
FROM (
  SELECT ln, CASE WHEN {E.canon('b')} THEN b END AS key, ti, CASE WHEN {E.canon('tt')} THEN tt END AS text
  FROM (SELECT ln, {E.json_text("s['best_book_id']")} AS b, s['original_title'] AS ti,
          {E.json_text("s['original_title']")} AS tt
        FROM (SELECT ln, {E.json_fields('t', _WORK_KEYS)} AS s FROM lines))
)"""
_EVENT_KEYS = ("user_id", "book_id", "is_read", "date_added")
# The Python reading (GoodreadsSource._line_events) in its order: user and book (null or ""),
# then is_read, then date_added; what the SQL cannot tell exactly goes to Python ('?').
EVENTS_SQL = f"""
SELECT ln, 0 AS k,
  CASE WHEN s IS NULL THEN '?'
       WHEN s['user_id'] IN ('null', '""') OR s['book_id'] IN ('null', '""') THEN 'missing user_id or book_id'
       WHEN lab IS NULL THEN CASE WHEN s['is_read'] IN ('null', '""') OR {E.json_is("s['is_read']", "object", "array")}
                                  THEN 'bad is_read' ELSE '?' END
       WHEN tm IS NULL THEN CASE WHEN s['date_added'] = '""' OR NOT {E.json_is("s['date_added']", "string")}
                                 THEN 'bad date_added' ELSE '?' END
       WHEN u IS NULL OR b IS NULL THEN '?' END AS st,
  u AS "user", b AS item, tm AS time, lab AS label
FROM (
  SELECT ln, s, CASE WHEN {E.canon('us')} THEN us END AS u, CASE WHEN {E.canon('bs')} THEN bs END AS b,
    CASE s['is_read'] WHEN 'true' THEN 1 WHEN 'false' THEN 0 END AS lab, {date_sql("s['date_added']", quoted=True)} AS tm
  FROM (SELECT ln, s, {E.json_text("s['user_id']")} AS us, {E.json_text("s['book_id']")} AS bs
        FROM (SELECT ln, {E.json_fields('t', _EVENT_KEYS)} AS s FROM lines))
)"""
EVENT_SKIPS = ("missing user_id or book_id", "bad is_read", "bad date_added")


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

    def _work_line(self, name: str):
        def read(lineno: int, raw: bytes, report: BuildReport) -> Optional[Tuple[str, str]]:
            text = decode_line(lineno, raw, report, name)
            obj = None if text is None else parse_json_line(lineno, text, report, name)
            if obj is None:
                return None
            book = str(obj.get("best_book_id") or "").strip()
            if not book:
                report.skip("missing best_book_id", f"{name}:{lineno}")
                return None
            title = obj.get("original_title")
            title = title.strip() if isinstance(title, str) else ""
            if not title:
                self.report.drop("blank title")
                return None
            return book, title

        return E.item_line(read)

    def _check_works(self) -> None:
        works, _ = self._files()
        check_keys(works, self.report, ("best_book_id", "original_title"),
                   "JSON lines of book works with best_book_id and original_title")

    def _check_interactions(self) -> None:
        _, interactions = self._files()
        check_keys(interactions, self.report, ("user_id", "book_id", "is_read", "date_added"),
                   "JSON lines of interactions with user_id, book_id, is_read and date_added")

    def load_items(self) -> Dict[str, str]:
        works, _ = self._files()
        self._check_works()
        return E.collect_items(works, self._work_line(works.name), self.report)

    def _line_events(self, name: str):
        report = self.report

        def events(lineno: int, raw: bytes) -> Iterator[Event]:
            text = decode_line(lineno, raw, report, name)
            obj = None if text is None else parse_json_line(lineno, text, report, name)
            if obj is None:
                return
            user, book = obj.get("user_id"), obj.get("book_id")
            if user in (None, "") or book in (None, ""):
                report.skip("missing user_id or book_id", f"{name}:{lineno}")
                return
            label = read_label(obj.get("is_read"))
            if label is None:
                report.skip("bad is_read", f"{name}:{lineno}", repr(obj.get("is_read"))[:40])
                return
            time = parse_date(obj.get("date_added"))
            if time is None:
                report.skip("bad date_added", f"{name}:{lineno}", repr(obj.get("date_added"))[:40])
                return
            yield Event(str(user).strip(), str(book).strip(), time, label)

        return events

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, interactions = self._files()
        self._check_interactions()
        line_events = self._line_events(interactions.name)
        for lineno, raw in iter_raw_lines(interactions):
            yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        works, interactions = self._files()

        def items() -> E.LineSpec:
            self._check_works()
            return E.LineSpec(E.ITEM_COLUMNS, WORKS_SQL, self._work_line(works.name), required=E.ITEM_REQUIRED,
                              drops=("blank title",), json_lines=True)

        def events() -> E.LineSpec:
            self._check_interactions()
            return E.LineSpec(E.EVENT_COLUMNS, EVENTS_SQL, E.event_rows(self._line_events(interactions.name)),
                              skips=EVENT_SKIPS, json_lines=True)

        return E.ColumnarPlan(interactions, events, E.ItemPlan(works, items))
