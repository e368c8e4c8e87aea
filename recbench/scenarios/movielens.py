"""MovieLens (movies): ml-latest / ml-25m / ml-20m CSVs, ml-1m `.dat`, ml-100k `u.data`.

Label: rating > 3 positive, < 3 negative, exactly 3 dropped (PROTOCOL §2).
Item text: the title as published, which carries the year ("Heat (1995)").
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List

from .base import Event, RawSource, RemoteFile
from .io import iter_delimited
from .reviews import rating_label

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"


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

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        _, ratings = self._files()
        layout = self.layout()
        cols = ("userId", "movieId", "rating", "timestamp")
        if layout == "csv":
            rows = iter_delimited(ratings, self.report, required=cols)
        elif layout == "dat":
            rows = iter_delimited(ratings, self.report, header=False, columns=cols, multichar="::")
        else:
            rows = iter_delimited(ratings, self.report, header=False, columns=cols, delimiter="\t")
        for lineno, r in rows:
            try:
                rating = float(r["rating"])
                ts = float(r["timestamp"])
            except ValueError:
                self.report.skip("non-numeric rating or timestamp", f"{ratings.name}:{lineno}")
                continue
            label = rating_label(rating)
            if label is None:
                self.report.drop("rating of exactly 3")
                continue
            yield Event(r["userId"].strip(), r["movieId"].strip(), ts, label)
