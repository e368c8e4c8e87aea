"""Yelp Open Dataset (restaurants and other local businesses).

Files: `yelp_academic_dataset_review.json` (JSON lines: review_id, user_id, business_id,
stars, date "2016-03-09 00:00:00", text, ...; about 5 GB, streamed) and
`yelp_academic_dataset_business.json` (business_id, name, city, state, categories, ...).
Label: stars > 3 positive, < 3 negative, exactly 3 dropped (PROTOCOL §2).
Item text: the business name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from . import engine as E
from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, check_json_format, decode_line, iter_raw_lines, parse_json_line
from .reviews import (RATING_LABEL_SQL, REVIEW_SKIPS, ReviewFields, iso_bad_time, iso_time_sql, parse_time,
                      review_line, review_sql)

REVIEWS = "yelp_academic_dataset_review.json"
BUSINESSES = "yelp_academic_dataset_business.json"
FIELDS = ReviewFields(user="user_id", item=("business_id",), rating="stars", time="date")
_BUSINESS_KEYS = ("business_id", "name")
BUSINESS_SQL = f"""
SELECT ln, 0 AS k, CASE WHEN key IS NULL OR text IS NULL THEN '?' END AS st, key, text,
  NULL::VARCHAR AS skip, NULL::VARCHAR AS detail
FROM (
  SELECT ln, CASE WHEN {E.canon('b')} THEN b END AS key, CASE WHEN {E.canon_words('nm')} THEN nm END AS text
  FROM (
    SELECT ln, {E.json_text("s['business_id']")} AS b, {E.json_text("s['name']")} AS nm
    FROM (SELECT ln, {E.json_fields('t', _BUSINESS_KEYS)} AS s FROM lines)
  )
)"""


def business_line(name: str):
    """(business id, name) of one raw line of the business file, or None (reported)."""

    def read(lineno: int, raw: bytes, report: BuildReport) -> Optional[Tuple[str, str]]:
        text = decode_line(lineno, raw, report, name)
        obj = None if text is None else parse_json_line(lineno, text, report, name)
        if obj is None:
            return None
        bid = obj.get("business_id")
        if not isinstance(bid, str) or not bid.strip():
            report.skip("missing business_id", f"{name}:{lineno}")
            return None
        title = " ".join(str(obj.get("name") or "").split())
        if not title:
            report.skip("empty name", f"{name}:{lineno}")
            return None
        return bid.strip(), title

    return read


class YelpSource(RawSource):
    name = "yelp"
    domain = "restaurants"
    item_noun = "restaurant"
    description = "Yelp reviews of local businesses; stars > 3 liked, < 3 disliked."
    policy = SamplingPolicy(min_negatives=1)
    expected_files = f"{REVIEWS} + {BUSINESSES} (Yelp Open Dataset, unpacked from the archive)"
    source_url = "https://www.yelp.com/dataset"
    downloads = ()  # the licence requires a manual download

    def _files(self):
        business, reviews = self.find_file(BUSINESSES), self.find_file(REVIEWS)
        if business is None:
            raise self.missing(BUSINESSES)
        if reviews is None:
            raise self.missing(REVIEWS)
        return business, reviews

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def _check(self) -> None:
        business, reviews = self._files()
        check_json_format(business, self.report, "JSON lines with business_id and name")
        check_json_format(reviews, self.report, "JSON lines with user_id, business_id, stars and date")

    def load_items(self) -> Dict[str, str]:
        business, _ = self._files()
        self._check()
        return E.collect_items(business, E.item_line(business_line(business.name)), self.report)

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, reviews = self._files()
        line_events = review_line(reviews.name, self.report, FIELDS, parse_time)
        for lineno, raw in iter_raw_lines(reviews):
            yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        business, reviews = self._files()

        def items() -> E.LineSpec:
            self._check()
            return E.LineSpec(E.ITEM_COLUMNS, BUSINESS_SQL, E.item_line(business_line(business.name)),
                              required=E.ITEM_REQUIRED, json_lines=True)

        def events() -> E.LineSpec:
            return E.LineSpec(E.EVENT_COLUMNS, review_sql(FIELDS, iso_time_sql, RATING_LABEL_SQL, iso_bad_time),
                              E.event_rows(review_line(reviews.name, self.report, FIELDS, parse_time)),
                              drops=("rating of exactly 3",), skips=REVIEW_SKIPS, json_lines=True)

        return E.ColumnarPlan(reviews, events, E.ItemPlan(business, items))
