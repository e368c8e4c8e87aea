"""H&M (fashion): `articles.csv` + `transactions_train.csv` (Kaggle H&M Personalized Fashion).

Label: every purchase is a positive; 2 negatives per user are sampled from articles the
customer never bought. Item text: the product description (detail_desc); articles without
one are skipped and counted. Time: the purchase date t_dat (YYYY-MM-DD); purchases on the
same day keep file order.
article_id stays a string with its leading zero ("0108775015"); ids that lost it (a file
re-saved by a spreadsheet or pandas) are padded back to 10 digits in both files.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from . import engine as E
from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, Delimited, iter_delimited, iter_raw_lines, read_header

ARTICLES = "articles.csv"
TRANSACTIONS = "transactions_train.csv"
ARTICLE_ID_DIGITS = 10


def article_key(raw: str) -> str:
    """The article id as published: a 10-digit string with its leading zero."""
    text = raw.strip()
    if text.isdigit() and len(text) < ARTICLE_ID_DIGITS:
        return text.zfill(ARTICLE_ID_DIGITS)
    return text


def transactions_sql(layout: Delimited) -> str:
    """Columnar-engine SQL for the canonical transaction lines (see engine.LineSpec)."""
    day, customer, article = (f"f[{layout.index(c) + 1}]" for c in ("t_dat", "customer_id", "article_id"))
    return f"""
SELECT ln, 0 AS k, CASE WHEN NOT ok OR d IS NULL OR NOT {E.canon('c')} OR a IS NULL THEN '?' END AS st,
  c AS "user", a AS item, d AS time, 1 AS label
FROM (
  SELECT ln, ok, CASE WHEN ok THEN {customer} END AS c,
    CASE WHEN ok AND regexp_full_match({article}, '[0-9]+')
      THEN lpad({article}, CAST(greatest(length({article}), {ARTICLE_ID_DIGITS}) AS INTEGER), '0') END AS a,
    CASE WHEN ok AND regexp_full_match({day}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND NOT starts_with({day}, '0000')
      THEN CAST(TRY_CAST({day} AS DATE) - DATE '0001-01-01' + 1 AS DOUBLE) END AS d
  FROM (SELECT ln, f, t IS NOT NULL AND {E.csv_line_ok('t', ',')} AND len(f) = {len(layout.columns)} AS ok
        FROM (SELECT ln, t, string_split(t, ',') AS f FROM lines))
)"""


class HMSource(RawSource):
    name = "hm"
    domain = "fashion"
    item_noun = "fashion product"
    description = "H&M purchases (Kaggle); all purchases liked, negatives sampled."
    policy = SamplingPolicy(sampled_negatives=2)
    keep_duplicates = True  # identical rows are units of one purchase (quantity), not an accident
    default_num_finetune = 100000
    expected_files = f"{ARTICLES} + {TRANSACTIONS} from the Kaggle competition data"
    source_url = "https://www.kaggle.com/competitions/h-and-m-personalized-fashion-recommendations/data"
    downloads = ()

    def _files(self) -> Tuple[Path, Path]:
        articles, transactions = self.find_file(ARTICLES), self.find_file(TRANSACTIONS)
        if articles is None and transactions is None:
            raise self.missing(f"{ARTICLES} and {TRANSACTIONS}")
        if articles is None:
            raise self.missing(ARTICLES)
        if transactions is None:
            raise self.missing(TRANSACTIONS)
        return articles, transactions

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def load_items(self) -> Dict[str, str]:
        articles, _ = self._files()
        items: Dict[str, str] = {}
        for lineno, r in iter_delimited(articles, self.report, required=("article_id", "detail_desc")):
            text = r["detail_desc"].strip()
            if not text:
                self.report.skip("empty detail_desc", f"{articles.name}:{lineno}")
                continue
            items.setdefault(article_key(r["article_id"]), text)
        return items

    def _layout(self, report: BuildReport) -> Delimited:
        _, transactions = self._files()
        return read_header(transactions, report, required=("t_dat", "customer_id", "article_id"))

    def _line_events(self, layout: Delimited):
        report = self.report

        def events(lineno: int, raw: bytes) -> Iterator[Event]:
            r = layout.line(lineno, raw, report)
            if r is None:
                return
            try:
                day = date.fromisoformat(r["t_dat"].strip()).toordinal()
            except ValueError:
                report.skip("bad t_dat", f"{layout.name}:{lineno}", r["t_dat"][:40])
                return
            customer, article = r["customer_id"].strip(), article_key(r["article_id"])
            if not customer or not article:
                report.skip("missing customer_id or article_id", f"{layout.name}:{lineno}")
                return
            yield Event(customer, article, float(day), 1)

        return events

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, transactions = self._files()
        layout = self._layout(self.report)
        line_events = self._line_events(layout)
        for lineno, raw in iter_raw_lines(transactions):
            if lineno >= layout.first_line:
                yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        _, transactions = self._files()

        def events() -> E.LineSpec:
            layout = self._layout(self.report)
            return E.LineSpec(E.EVENT_COLUMNS, transactions_sql(layout), E.event_rows(self._line_events(layout)),
                              start_line=layout.first_line)

        return E.ColumnarPlan(transactions, events)
