"""HotelRec (hotels): TripAdvisor reviews, one JSON object per line in `HotelRec.txt`.

Fields: hotel_url ("Hotel_Review-g194775-d1121769-Reviews-Hotel_Baltic-Giulianova_Province_of_
Teramo_Abruzzo.html"), author, date ("2010-01-31T00:00:00"), rating, title, text, property_dict.
Item id: the hotel URL. Item text: "name, location" parsed from the URL ("Hotel Baltic,
Giulianova Province of Teramo Abruzzo"). There is no separate item file, so load_items
streams HotelRec.txt once and keeps only the hotel URLs (memory grows with the number of
hotels, not with the ~50 GB file).
Label: rating > 3 positive, < 3 negative, exactly 3 dropped; up to 25 real negatives per user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional
from urllib.parse import unquote

from . import engine as E
from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, check_json_format, decode_line, iter_raw_lines
from .reviews import (RATING_LABEL_SQL, REVIEW_SKIPS, ReviewFields, iso_bad_time, iso_time_sql, parse_time,
                      review_line, review_sql)

FILE = "HotelRec.txt"
# hotel_url is the first key of every line: read it without parsing the review text.
_URL_FIRST = re.compile(r'\{\s*"hotel_url"\s*:\s*"([^"\\]*)"')
FIELDS = ReviewFields(user="author", item=("hotel_url",), rating="rating", time="date")
# The same fast path in SQL (\s of a str pattern is Python's whitespace), for lines ending in "}".
_URL_FIRST_SQL = f'^\\{{{E.WS}*"hotel_url"{E.WS}*:{E.WS}*"([^"\\\\]*)"'
URLS_SQL = f"""
SELECT ln, 0 AS k, CASE WHEN t IS NULL OR NOT ends_with(t, '}}') OR NOT regexp_matches(t, '{_URL_FIRST_SQL}')
  THEN '?' END AS st, regexp_extract(t, '{_URL_FIRST_SQL}', 1) AS key, NULL::VARCHAR AS text,
  NULL::VARCHAR AS skip, NULL::VARCHAR AS detail
FROM lines"""


def url_of(lineno: int, raw: bytes, name: str) -> Optional[str]:
    """The hotel_url of one raw line as load_items reads it (malformed lines are counted by
    the events' reading, not here)."""
    text = decode_line(lineno, raw, BuildReport(), name)
    if text is None:
        return None
    m = _URL_FIRST.match(text)
    if m and text.rstrip().endswith("}"):  # a cut-off line goes to the slow path
        return m.group(1)
    try:
        url = json.loads(text).get("hotel_url")
    except (ValueError, AttributeError):
        return None
    return url if isinstance(url, str) else None


def hotel_text(url: str) -> Optional[str]:
    """"name, location" from a TripAdvisor hotel URL, or None when it has no such parts."""
    tail = url.strip().rsplit("/", 1)[-1]
    k = tail.find("-Reviews-")
    if k < 0:
        return None
    slug = tail[k + len("-Reviews-"):]
    if slug.endswith(".html"):
        slug = slug[: -len(".html")]
    name, _, location = slug.partition("-")
    name = " ".join(unquote(name).replace("_", " ").split())
    location = " ".join(unquote(location).replace("_", " ").split())
    if not name:
        return None
    return f"{name}, {location}" if location else name


class HotelRecSource(RawSource):
    name = "hotelrec"
    domain = "hotels"
    item_noun = "hotel"
    description = "HotelRec TripAdvisor reviews; rating > 3 liked, < 3 disliked."
    policy = SamplingPolicy(min_negatives=1, max_negatives=25)
    expected_files = f"{FILE} (HotelRec, JSON lines with hotel_url, author, date, rating)"
    source_url = "https://github.com/Diego999/HotelRec"
    downloads = ()  # distributed through a download form linked from the repository

    def _file(self) -> Path:
        path = self.find_file(FILE)
        if path is None:
            raise self.missing(FILE)
        return path

    def raw_files(self) -> List[Path]:
        return [self._file()]

    def _check(self) -> None:
        check_json_format(self._file(), self.report, "JSON lines with hotel_url, author, date and rating")

    def _hotels(self, path: Path, urls) -> Dict[str, str]:
        """Items from the hotel URLs in order of first appearance, (url, line)."""
        items: Dict[str, str] = {}
        for url, lineno in urls:
            hotel = hotel_text(url)
            if hotel is None:
                self.report.skip("hotel_url without name", f"{path.name}:{lineno}", url[:80])
                continue
            items[url] = hotel
        return items

    def load_items(self) -> Dict[str, str]:
        path = self._file()
        self._check()
        first: Dict[str, int] = {}
        for lineno, raw in iter_raw_lines(path):
            url = url_of(lineno, raw, path.name)
            if url is not None and url not in first:
                first[url] = lineno
        return self._hotels(path, first.items())

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        path = self._file()
        line_events = review_line(path.name, self.report, FIELDS, parse_time)
        for lineno, raw in iter_raw_lines(path):
            yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        path = self._file()

        def urls() -> E.LineSpec:
            self._check()
            return E.LineSpec(E.ITEM_COLUMNS, URLS_SQL, lambda ln, raw: [
                (url, None, None, None) for url in [url_of(ln, raw, path.name)] if url is not None],
                required=("key",))

        def events() -> E.LineSpec:
            return E.LineSpec(E.EVENT_COLUMNS, review_sql(FIELDS, iso_time_sql, RATING_LABEL_SQL, iso_bad_time),
                              E.event_rows(review_line(path.name, self.report, FIELDS, parse_time)),
                              drops=("rating of exactly 3",), skips=REVIEW_SKIPS)

        items = E.ItemPlan(path, urls, finish=lambda firsts: self._hotels(path, firsts))
        return E.ColumnarPlan(path, events, items)
