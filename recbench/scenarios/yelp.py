"""Yelp Open Dataset (restaurants and other local businesses).

Files: `yelp_academic_dataset_review.json` (JSON lines: review_id, user_id, business_id,
stars, date "2016-03-09 00:00:00", text, ...; about 5 GB, streamed) and
`yelp_academic_dataset_business.json` (business_id, name, city, state, categories, ...).
Label: stars > 3 positive, < 3 negative, exactly 3 dropped (PROTOCOL §2).
Item text: the business name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List

from .base import Event, RawSource, SamplingPolicy
from .io import check_json_format, iter_jsonl
from .reviews import ReviewFields, parse_time, review_events

REVIEWS = "yelp_academic_dataset_review.json"
BUSINESSES = "yelp_academic_dataset_business.json"
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

    def load_items(self) -> Dict[str, str]:
        business, reviews = self._files()
        check_json_format(business, self.report, "JSON lines with business_id and name")
        check_json_format(reviews, self.report, "JSON lines with user_id, business_id, stars and date")
        items: Dict[str, str] = {}
        for lineno, obj in iter_jsonl(business, self.report):
            bid = obj.get("business_id")
            if not isinstance(bid, str) or not bid.strip():
                self.report.skip("missing business_id", f"{business.name}:{lineno}")
                continue
            name = " ".join(str(obj.get("name") or "").split())
            if not name:
                self.report.skip("empty name", f"{business.name}:{lineno}")
                continue
            items.setdefault(bid.strip(), name)
        return items

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, reviews = self._files()
        fields = ReviewFields(user="user_id", item=("business_id",), rating="stars", time="date")
        yield from review_events(iter_jsonl(reviews, self.report), self.report, reviews.name, fields, parse_time)
