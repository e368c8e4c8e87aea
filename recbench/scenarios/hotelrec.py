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
from typing import Dict, Iterator, List, Optional, Set
from urllib.parse import unquote

from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, check_json_format, iter_jsonl, iter_lines
from .reviews import ReviewFields, parse_time, review_events

FILE = "HotelRec.txt"
# hotel_url is the first key of every line: read it without parsing the review text.
_URL_FIRST = re.compile(r'\{\s*"hotel_url"\s*:\s*"([^"\\]*)"')


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

    def load_items(self) -> Dict[str, str]:
        path = self._file()
        check_json_format(path, self.report, "JSON lines with hotel_url, author, date and rating")
        items: Dict[str, str] = {}
        bad: Set[str] = set()
        # Malformed lines are counted once, by iter_events' first pass, not here.
        for lineno, text in iter_lines(path, BuildReport()):
            m = _URL_FIRST.match(text)
            if m and text.rstrip().endswith("}"):  # a cut-off line goes to the slow path
                url = m.group(1)
            else:
                try:
                    url = json.loads(text).get("hotel_url")
                except (ValueError, AttributeError):
                    continue
                if not isinstance(url, str):
                    continue
            if url in items or url in bad:
                continue
            hotel = hotel_text(url)
            if hotel is None:
                bad.add(url)
                self.report.skip("hotel_url without name", f"{path.name}:{lineno}", url[:80])
                continue
            items[url] = hotel
        return items

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        path = self._file()
        fields = ReviewFields(user="author", item=("hotel_url",), rating="rating", time="date")
        yield from review_events(iter_jsonl(path, self.report), self.report, path.name, fields, parse_time)
