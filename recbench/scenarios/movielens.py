"""MovieLens (movies): ml-latest / ml-25m / ml-20m CSVs, ml-1m `.dat`, ml-100k `u.data`.

Label: rating > 3 positive, < 3 negative, exactly 3 dropped (PROTOCOL §2).
Item text: the title as published, which carries the year ("Heat (1995)").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterator, List

from . import engine as E
from .base import Event, RawSource, RemoteFile
from .io import Delimited, iter_delimited, iter_raw_lines, read_header
from .reviews import RATING_LABEL_SQL, rating_label

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"


def ratings_sql(layout: Delimited) -> str:
    """Columnar-engine SQL for the canonical rating lines (see engine.LineSpec)."""
    user, movie, rating, ts = (f"f[{layout.index(c) + 1}]" for c in ("userId", "movieId", "rating", "timestamp"))
    sep = layout.multichar or layout.delimiter
    ok = "true" if layout.multichar else E.csv_line_ok("t", sep)  # '::' is split with str.split
    return f"""
SELECT ln, 0 AS k, CASE WHEN u IS NULL OR m IS NULL OR r IS NULL OR tm IS NULL THEN '?'
  WHEN lab IS NULL THEN 'rating of exactly 3' END AS st, u AS "user", m AS item, tm AS time, lab AS label
FROM (
  SELECT ln, u, m, r, tm, {RATING_LABEL_SQL.format(r='r')} AS lab
  FROM (
    SELECT ln, CASE WHEN ok AND {E.canon(user)} THEN {user} END AS u,
      CASE WHEN ok AND {E.canon(movie)} THEN {movie} END AS m,
      CASE WHEN ok THEN {E.text_number(rating, signed=False)} END AS r,
      CASE WHEN ok THEN {E.text_number(ts, integer=True)} END AS tm
    FROM (SELECT ln, f, t IS NOT NULL AND {ok} AND len(f) = {len(layout.columns)} AS ok
          FROM (SELECT ln, t, string_split(t, '{sep}') AS f FROM lines))
  )
)"""


class MovieLensSource(RawSource):
    name = "movielens"
    domain = "movies"
    item_noun = "movie"
    description = "MovieLens ratings (GroupLens); rating > 3 liked, < 3 disliked."
    expected_files = (
        "ratings.csv + movies.csv (ml-latest, ml-25m, ml-20m), or ratings.dat + movies.dat (ml-1m), "
        "or u.data + u.item (ml-100k)"
    )
    source_url = "https://grouplens.org/datasets/movielens/"
    downloads = (RemoteFile(GROUPLENS + "ml-latest-small.zip", "ml-latest-small.zip", unpack=True),)

    def layout(self) -> str:
        if self.find_file("ratings.csv") and self.find_file("movies.csv"):
            return "csv"
        if self.find_file("ratings.dat") and self.find_file("movies.dat"):
            return "dat"
        if self.find_file("u.data") and self.find_file("u.item"):
            return "100k"
        raise self.missing("MovieLens rating and movie files")

    def _files(self):
        names = {"csv": ("movies.csv", "ratings.csv"), "dat": ("movies.dat", "ratings.dat"), "100k": ("u.item", "u.data")}[self.layout()]
        return self.find_file(names[0]), self.find_file(names[1])

    def raw_files(self) -> List[Path]:
        return list(self._files())

    def load_items(self) -> Dict[str, str]:
        movies, _ = self._files()
        layout = self.layout()
        items: Dict[str, str] = {}
        if layout == "csv":
            rows = iter_delimited(movies, self.report, required=("movieId", "title"))
            pairs = ((ln, r["movieId"], r["title"]) for ln, r in rows)
        elif layout == "dat":
            rows = iter_delimited(movies, self.report, header=False, columns=("movieId", "title", "genres"),
                                  multichar="::", encoding="latin-1")
            pairs = ((ln, r["movieId"], r["title"]) for ln, r in rows)
        else:
            rows = iter_delimited(movies, self.report, header=False, delimiter="|", min_fields=2,
                                  columns=("movieId", "title"), encoding="latin-1", quoting=3)
            pairs = ((ln, r["movieId"], r["title"]) for ln, r in rows)
        for lineno, movie_id, title in pairs:
            title = title.strip()
            if not title:
                self.report.skip("empty title", f"{movies.name}:{lineno}")
                continue
            items[movie_id.strip()] = title
        return items

    def _ratings_layout(self) -> Delimited:
        _, ratings = self._files()
        layout = self.layout()
        cols = ("userId", "movieId", "rating", "timestamp")
        if layout == "csv":
            return read_header(ratings, self.report, required=cols)
        if layout == "dat":
            return read_header(ratings, self.report, header=False, columns=cols, multichar="::")
        return read_header(ratings, self.report, header=False, columns=cols, delimiter="\t")

    def _line_events(self, layout: Delimited):
        report = self.report

        def events(lineno: int, raw: bytes) -> Iterator[Event]:
            r = layout.line(lineno, raw, report)
            if r is None:
                return
            try:
                rating = float(r["rating"])
                ts = float(r["timestamp"])
            except ValueError:
                report.skip("non-numeric rating or timestamp", f"{layout.name}:{lineno}")
                return
            if not math.isfinite(rating):
                report.skip("rating is nan or inf", f"{layout.name}:{lineno}",
                            repr(r["rating"])[:40])
                return
            if not math.isfinite(ts):
                report.skip("non-numeric rating or timestamp", f"{layout.name}:{lineno}")
                return
            label = rating_label(rating)
            if label is None:
                report.drop("rating of exactly 3")
                return
            yield Event(r["userId"].strip(), r["movieId"].strip(), ts, label)

        return events

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, ratings = self._files()
        layout = self._ratings_layout()
        line_events = self._line_events(layout)
        for lineno, raw in iter_raw_lines(ratings):
            if lineno >= layout.first_line:
                yield from line_events(lineno, raw)

    def columnar(self) -> E.ColumnarPlan:
        _, ratings = self._files()

        def events() -> E.LineSpec:
            layout = self._ratings_layout()
            return E.LineSpec(E.EVENT_COLUMNS, ratings_sql(layout), E.event_rows(self._line_events(layout)),
                              start_line=layout.first_line, drops=("rating of exactly 3",))

        return E.ColumnarPlan(ratings, events)
