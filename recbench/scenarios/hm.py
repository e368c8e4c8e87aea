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

from .base import Event, RawSource, SamplingPolicy
from .io import iter_delimited

ARTICLES = "articles.csv"
TRANSACTIONS = "transactions_train.csv"
ARTICLE_ID_DIGITS = 10


def article_key(raw: str) -> str:
    """The article id as published: a 10-digit string with its leading zero."""
    text = raw.strip()
    if text.isdigit() and len(text) < ARTICLE_ID_DIGITS:
        return text.zfill(ARTICLE_ID_DIGITS)
    return text


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

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, transactions = self._files()
        rows = iter_delimited(transactions, self.report, required=("t_dat", "customer_id", "article_id"))
        for lineno, r in rows:
            try:
                day = date.fromisoformat(r["t_dat"].strip()).toordinal()
            except ValueError:
                self.report.skip("bad t_dat", f"{transactions.name}:{lineno}", r["t_dat"][:40])
                continue
            customer, article = r["customer_id"].strip(), article_key(r["article_id"])
            if not customer or not article:
                self.report.skip("missing customer_id or article_id", f"{transactions.name}:{lineno}")
                continue
            yield Event(customer, article, float(day), 1)
