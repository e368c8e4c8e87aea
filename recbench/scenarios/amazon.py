"""Amazon Reviews (music: CDs and Vinyl; e-commerce: Electronics).

Reads the 2018 release (McAuley lab, `CDs_and_Vinyl.json.gz` + `meta_CDs_and_Vinyl.json.gz`),
and also the 2014 layout (`reviews_CDs_and_Vinyl.json.gz` + a meta file of Python-literal
lines) and the 2023 layout (`CDs_and_Vinyl.jsonl` + `meta_CDs_and_Vinyl.jsonl`, keyed by
parent_asin, timestamps in milliseconds). Each file's syntax (JSON or Python literal) is
detected from its first line.

Label: overall >= 4 positive, <= 2 negative, exactly 3 dropped (PROTOCOL §2).
Item text: the title with HTML entities decoded ("Simon &amp; Garfunkel" -> "Simon & Garfunkel");
blank titles and scraped HTML/JavaScript junk (a tag or `getTime` in the title) are counted
as bad rows and left out.
"""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path
from typing import Callable, ClassVar, Dict, Iterator, List, Optional, Tuple

from . import engine as E
from .base import Event, RawSource, RemoteFile, SamplingPolicy
from .io import BuildReport, check_json_format, decode_line, iter_lines, iter_raw_lines, parse_json_line
from .reviews import REVIEW_SKIPS, ReviewFields, review_event, review_sql

AMAZON_2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/"
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>")

# (review file, meta file, field names) per release; the first layout found wins.
_LAYOUTS = (
    ("2018", "{c}.json", "meta_{c}.json"),
    ("2018", "{c}_5.json", "meta_{c}.json"),
    ("2023", "{c}.jsonl", "meta_{c}.jsonl"),
    ("2014", "reviews_{c}.json", "meta_{c}.json"),
    ("2014", "reviews_{c}_5.json", "meta_{c}.json"),
)
_FIELDS = {
    # user, item, rating, time, time scale (to seconds); meta item key
    "2014": ("reviewerID", "asin", "overall", "unixReviewTime", 1.0, "asin"),
    "2018": ("reviewerID", "asin", "overall", "unixReviewTime", 1.0, "asin"),
    "2023": ("user_id", "parent_asin", "rating", "timestamp", 0.001, "parent_asin"),
}


def amazon_label(rating: float) -> Optional[int]:
    """1 for 4-5 stars, 0 for 1-2 stars, None for 3 stars (dropped by the protocol)."""
    if rating >= 4:
        return 1
    if rating <= 2:
        return 0
    return None


def clean_title(title) -> Tuple[Optional[str], str]:
    """(text, "") for a usable title, else (None, reason)."""
    if not isinstance(title, str):
        return None, "empty title"
    text = " ".join(html.unescape(title).split())
    if not text:
        return None, "empty title"
    if _HTML_TAG.search(text) or "getTime" in text:
        return None, "HTML in title"
    return text, ""


AMAZON_LABEL_SQL = "CASE WHEN {r} >= 4 THEN 1 WHEN {r} <= 2 THEN 0 END"


def meta_sql(key: str) -> str:
    """Columnar-engine SQL for the canonical meta lines: a plain title (no entity, tag,
    getTime or odd blanks) is its own clean_title."""
    keys = (key, "title")
    return f"""
SELECT ln, 0 AS k, CASE WHEN key IS NULL OR text IS NULL THEN '?' END AS st, key, text,
  NULL::VARCHAR AS skip, NULL::VARCHAR AS detail
FROM (
  SELECT ln, CASE WHEN {E.canon('a')} THEN a END AS key,
    CASE WHEN {E.canon_words('ti')} AND NOT regexp_matches(ti, '[&<]|getTime') THEN ti END AS text
  FROM (SELECT ln, {E.json_text(f"s['{key}']")} AS a, {E.json_text("s['title']")} AS ti
        FROM (SELECT ln, {E.json_fields('t', keys)} AS s FROM lines))
)"""


def _expected(c: str) -> str:
    return (
        f"{c}.json.gz + meta_{c}.json.gz (Amazon Reviews 2018); also reviews_{c}.json.gz + "
        f"meta_{c}.json.gz (2014) or {c}.jsonl + meta_{c}.jsonl (2023), gzipped or not"
    )


def _downloads(c: str) -> Tuple[RemoteFile, ...]:
    return (
        RemoteFile(f"{AMAZON_2018}categoryFiles/{c}.json.gz", f"{c}.json.gz"),
        RemoteFile(f"{AMAZON_2018}metaFiles2/meta_{c}.json.gz", f"meta_{c}.json.gz"),
    )


class AmazonSource(RawSource):
    """One Amazon category; subclasses set `category` (the file-name stem)."""

    category: ClassVar[str] = ""
    policy = SamplingPolicy(min_negatives=1)
    source_url = "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/"

    def _layout(self) -> Tuple[str, Path, Path]:
        """(release, review file, meta file)."""
        c = self.category
        for release, reviews, meta in _LAYOUTS:
            r = self.find_file(reviews.format(c=c))
            if r is None:
                continue
            m = self.find_file(meta.format(c=c))
            if m is None:
                raise self.missing(f"{meta.format(c=c)}(.gz) (item titles, needed with {r.name})")
            return release, r, m
        raise self.missing(f"the review file {c}.json.gz")

    def raw_files(self) -> List[Path]:
        _, reviews, meta = self._layout()
        return [meta, reviews]

    @staticmethod
    def _is_literal(path: Path) -> bool:
        """Python-literal lines (2014 meta) rather than JSON lines? Decided on line one."""
        for _, text in iter_lines(path, BuildReport()):
            try:
                json.loads(text)
                return False
            except ValueError:
                pass
            try:
                ast.literal_eval(text)
                return True
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return False  # neither: check_json_format names the file and line
        return False

    def _check(self, path: Path, expected: str) -> bool:
        """Check the file's first line; True when its lines are Python literals."""
        literal = self._is_literal(path)
        check_json_format(path, self.report, expected, literal=literal)
        return literal

    def _meta_line(self, name: str, key: str, literal: bool):
        def read(lineno: int, raw: bytes, report: BuildReport) -> Optional[Tuple[str, Optional[str]]]:
            text = decode_line(lineno, raw, report, name)
            obj = None if text is None else parse_json_line(lineno, text, report, name, literal)
            if obj is None:
                return None
            asin = obj.get(key)
            if not isinstance(asin, str) or not asin.strip():
                report.skip(f"missing {key}", f"{name}:{lineno}")
                return None
            title, why = clean_title(obj.get("title"))
            if title is None:  # not counted when the item already has a title (the 2018 files repeat items)
                report.skip(why, f"{name}:{lineno}", repr(obj.get("title"))[:60])
                return asin.strip(), None
            return asin.strip(), title

        return E.item_line(read)

    def _meta_expected(self, key: str) -> str:
        return f"an item object with '{key}' and 'title'"

    def load_items(self) -> Dict[str, str]:
        release, _, meta = self._layout()
        key = _FIELDS[release][5]
        literal = self._check(meta, self._meta_expected(key))
        return E.collect_items(meta, self._meta_line(meta.name, key, literal), self.report, skips_after_valid=False)

    def _review_setup(self) -> Tuple[Path, ReviewFields, Callable[[object], Optional[float]], str, float]:
        release, reviews, _ = self._layout()
        ucol, icol, rcol, tcol, scale, _ = _FIELDS[release]
        expected = f"a review object with '{ucol}', '{icol}', '{rcol}', '{tcol}'"
        items_keys = (icol, "asin") if release == "2023" else (icol,)

        def seconds(value) -> Optional[float]:
            try:
                return float(value) * scale
            except (TypeError, ValueError):
                return None

        return reviews, ReviewFields(user=ucol, item=items_keys, rating=rcol, time=tcol), seconds, expected, scale

    def _line_events(self, name: str, fields: ReviewFields, seconds, literal: bool):
        report = self.report

        def events(lineno: int, raw: bytes) -> Iterator[Event]:
            text = decode_line(lineno, raw, report, name)
            obj = None if text is None else parse_json_line(lineno, text, report, name, literal)
            if obj is None:
                return
            ev = review_event(obj, report, f"{name}:{lineno}", fields, seconds, amazon_label)
            if ev is not None:
                yield ev

        return events

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        reviews, fields, seconds, expected, _ = self._review_setup()
        literal = self._check(reviews, expected)
        line_events = self._line_events(reviews.name, fields, seconds, literal)
        for lineno, raw in iter_raw_lines(reviews):
            yield from line_events(lineno, raw)

    def columnar(self) -> Optional[E.ColumnarPlan]:
        release, reviews, meta = self._layout()
        key = _FIELDS[release][5]
        if self._is_literal(reviews):
            return None  # Python-literal lines: the Python reader only (the 2014 meta files are, not reviews)

        def items() -> E.LineSpec:
            self._check(meta, self._meta_expected(key))
            return E.LineSpec(E.ITEM_COLUMNS, meta_sql(key), self._meta_line(meta.name, key, False),
                              required=E.ITEM_REQUIRED, json_lines=True)

        def events() -> E.LineSpec:
            path, fields, seconds, expected, scale = self._review_setup()
            literal = self._check(path, expected)
            assert not literal
            time_sql = lambda v: f"({E.json_number(v)} * CAST({scale!r} AS DOUBLE))"  # noqa: E731
            bad_time = lambda v: f"({v} IN ('null', '\"\"') OR {E.json_is(v, 'object', 'array')})"  # noqa: E731
            return E.LineSpec(E.EVENT_COLUMNS, review_sql(fields, time_sql, AMAZON_LABEL_SQL, bad_time),
                              E.event_rows(self._line_events(path.name, fields, seconds, literal)),
                              drops=("rating of exactly 3",), skips=REVIEW_SKIPS, json_lines=True)

        # Python-literal meta lines (2014) are read by the Python reader (load_items)
        plan_items = None if self._is_literal(meta) else E.ItemPlan(meta, items, skips_after_valid=False)
        return E.ColumnarPlan(reviews, events, plan_items)


class CdsSource(AmazonSource):
    name = "cds"
    domain = "music"
    item_noun = "music album"
    category = "CDs_and_Vinyl"
    description = "Amazon Reviews CDs and Vinyl; 4-5 stars liked, 1-2 stars disliked."
    default_num_finetune = 100000
    expected_files = _expected(category)
    downloads = _downloads(category)


class ElectronicsSource(AmazonSource):
    name = "electronics"
    domain = "e-commerce"
    item_noun = "product"
    category = "Electronics"
    description = "Amazon Reviews Electronics; 4-5 stars liked, 1-2 stars disliked."
    default_num_finetune = 0
    expected_files = _expected(category)
    downloads = _downloads(category)
