"""MIND (news): MINDsmall / MINDlarge `news.tsv` + `behaviors.tsv` (Microsoft News Dataset).

Label: an impression entry `N123-1` (clicked) is positive, `N456-0` (shown, not clicked) is a
real negative. Item text: the news title.
History: the explicit history column of behaviors.tsv (PROTOCOL §3, MIND rule): the history of
the user's latest impression, minus ids missing from news.tsv; candidates are the items of
the user's impressions (up to 10 positives and 10 negatives).

Quirks: impressions whose history field is empty (cold-start users) are left out by rule and
counted under dropped_by_rule; tokens without a -0/-1 suffix (e.g. the unlabeled MIND test
split) are skipped and counted. raw_dir may also be the folder that holds the unpacked
splits (MINDsmall_train/, MINDsmall_dev/): the only split folder, else the *_train one, is used.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import DataError
from . import engine as E
from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, Delimited, iter_delimited, iter_lines, iter_raw_lines, read_header

NEWS_COLUMNS = (
    "news_id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities",
)
BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # 11/11/2019 9:05:58 AM


def parse_time(text: str) -> Optional[float]:
    """Seconds since the epoch for a behaviors.tsv time (read as UTC), None if unparsable."""
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


_TIME = (r"(1[0-2]|0[1-9]|[1-9])/(3[01]|[12][0-9]|0[1-9]|[1-9])/([0-9]{4}) "
         r"(1[0-2]|0[1-9]|[1-9]):([0-5][0-9]):([0-5][0-9]) (AM|PM)")


def time_sql(expr: str) -> str:
    """SQL: what parse_time gives for a canonical time ("11/11/2019 9:05:58 AM"); a time
    DuckDB does not read goes to Python."""
    return (f"(CASE WHEN regexp_full_match({expr}, '{_TIME}') AND NOT regexp_matches({expr}, '^[0-9]+/[0-9]+/0000 ') "
            f"THEN epoch(try_strptime({expr}, '%m/%d/%Y %I:%M:%S %p')) END)")


def behaviors_sql(layout: Delimited) -> str:
    """Columnar-engine SQL for the canonical behaviors lines: one row per impression token."""
    return f"""
SELECT ln, k, st, "user", substr(tok, 1, length(tok) - 2) AS item, time,
  CAST(right(tok, 1) AS TINYINT) AS label, hist
FROM (
  SELECT ln, st, u AS "user", tm AS time, h AS hist,
    unnest(CASE WHEN st IS NULL THEN string_split(imp, ' ') ELSE ['?-0'] END) AS tok,
    generate_subscripts(CASE WHEN st IS NULL THEN string_split(imp, ' ') ELSE ['?-0'] END, 1) - 1 AS k
  FROM (
    SELECT ln, u, tm, h, imp,
      CASE WHEN u IS NULL OR tm IS NULL OR h IS NULL THEN '?' WHEN h = '' THEN 'impression with empty history'
           WHEN NOT regexp_full_match(imp, '[!-~]+-[01]( [!-~]+-[01])*') THEN '?' END AS st
    FROM (
      SELECT ln, CASE WHEN ok AND {E.canon('f[2]')} THEN f[2] END AS u,
        CASE WHEN ok THEN {time_sql('f[3]')} END AS tm,
        CASE WHEN ok AND (f[4] = '' OR regexp_full_match(f[4], '[!-~]+( [!-~]+)*')) THEN f[4] END AS h,
        CASE WHEN ok THEN f[5] END AS imp
      FROM (SELECT ln, f, t IS NOT NULL AND {E.csv_line_ok('t', chr(9), quotes=False)}
                   AND len(f) = {len(layout.columns)} AS ok
            FROM (SELECT ln, t, string_split(t, chr(9)) AS f FROM lines))
    )
  )
)"""


def _pair(folder: Path) -> Tuple[Optional[Path], Optional[Path]]:
    def find(name: str) -> Optional[Path]:
        for variant in (name, name + ".gz"):
            if (folder / variant).is_file():
                return folder / variant
        return None

    return find("news.tsv"), find("behaviors.tsv")


def check_columns(path: Path, n: int, expected: str) -> None:
    """Fail early with file/line when the first line does not have n tab-separated columns."""
    for lineno, text in iter_lines(path, BuildReport()):
        found = len(text.split("\t"))
        if found != n:
            raise DataError(
                f"{path} line {lineno}: expected {expected} ({n} tab-separated columns, no header), "
                f"got {found} column(s): {text[:60]!r}; is this the right file?"
            )
        return
    raise DataError(f"{path} is empty; expected {expected}")


class MindSource(RawSource):
    name = "mind"
    domain = "news"
    item_noun = "news article"
    description = "MIND news impressions (Microsoft); clicked = 1, shown but not clicked = 0."
    policy = SamplingPolicy(
        heldout_positives=None, max_positives=10, max_negatives=10, min_positives=1, min_negatives=1
    )
    default_num_finetune = 100000
    expected_files = (
        "news.tsv + behaviors.tsv from MINDsmall_train.zip or MINDlarge_train.zip, downloaded after "
        "accepting the license terms (or the folder holding the unpacked MINDsmall_train/)"
    )
    source_url = "https://msnews.github.io/"
    downloads = ()

    def _files(self) -> Tuple[Path, Path]:
        assert self.raw_dir is not None
        news, behaviors = _pair(self.raw_dir)
        if news is None and behaviors is None:
            splits = sorted(d for d in self.raw_dir.iterdir() if d.is_dir() and all(_pair(d)))
            train = [d for d in splits if d.name.lower().endswith("_train")]
            if len(splits) == 1 or len(train) == 1:
                news, behaviors = _pair(splits[0] if len(splits) == 1 else train[0])
            elif splits:
                raise DataError(
                    f"mind: {self.raw_dir} holds several MIND splits ({', '.join(d.name for d in splits)}); "
                    "pass the folder of the one to use as raw_dir"
                )
        if news is None and behaviors is None:
            raise self.missing("news.tsv and behaviors.tsv")
        if news is None:
            raise self.missing("news.tsv")
        if behaviors is None:
            raise self.missing("behaviors.tsv")
        return news, behaviors

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def load_items(self) -> Dict[str, str]:
        news, _ = self._files()
        check_columns(news, len(NEWS_COLUMNS), "MIND news.tsv: news id, category, subcategory, title, ...")
        items: Dict[str, str] = {}
        rows = iter_delimited(news, self.report, delimiter="\t", header=False, columns=NEWS_COLUMNS,
                              quoting=csv.QUOTE_NONE)
        for lineno, r in rows:
            title = r["title"].strip()
            if not title:
                self.report.skip("empty title", f"{news.name}:{lineno}")
                continue
            items.setdefault(r["news_id"].strip(), title)
        return items

    def _layout(self) -> Delimited:
        _, behaviors = self._files()
        check_columns(behaviors, len(BEHAVIOR_COLUMNS),
                      "MIND behaviors.tsv: impression id, user id, time, history, impressions")
        return read_header(behaviors, self.report, delimiter="\t", header=False, columns=BEHAVIOR_COLUMNS,
                           quoting=csv.QUOTE_NONE)

    def _line_events(self, layout: Delimited):
        report = self.report

        def events(lineno: int, raw: bytes) -> Iterator[Event]:
            r = layout.line(lineno, raw, report)
            if r is None:
                return
            where = f"{layout.name}:{lineno}"
            time = parse_time(r["time"])
            if time is None:
                report.skip("bad time", where, r["time"][:40])
                return
            history = tuple(r["history"].split())
            if not history:
                report.drop("impression with empty history")
                return
            tokens = r["impressions"].split()
            if not tokens:
                report.skip("empty impressions", where)
                return
            user = r["user_id"].strip()
            for token in tokens:
                news_id, sep, label = token.rpartition("-")
                if not sep or not news_id or label not in ("0", "1"):
                    report.skip("malformed impression token", where, f"{token[:40]!r}, expected like N123-1")
                    continue
                yield Event(user, news_id, time, int(label), history)

        return events

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, behaviors = self._files()
        line_events = self._line_events(self._layout())
        for lineno, raw in iter_raw_lines(behaviors):
            yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        _, behaviors = self._files()

        def events() -> E.LineSpec:
            layout = self._layout()
            return E.LineSpec(E.EVENT_COLUMNS + (("hist", "VARCHAR"),), behaviors_sql(layout),
                              E.event_rows(self._line_events(layout), history=True),
                              drops=("impression with empty history",))

        return E.ColumnarPlan(behaviors, events, history=True)
