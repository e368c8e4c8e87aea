"""custom: your own interactions file and items file (CSV, TSV, Parquet or JSON lines).

    recbench.load_scenario("custom", interactions="ratings.csv", items="items.csv",
                           rating_col="rating")

Options (column names default to user_id, item_id, timestamp, text):

- interactions, items: paths (required). Relative paths are looked up in raw_dir when one
  is given, then in the working directory. The format follows the extension: .csv, .tsv
  (.tab), .parquet (.pq), .jsonl / .ndjson / .json (JSON lines); .gz works for the text
  formats.
- user_col, item_col (item_col names the id column in both files), text_col (items file).
- time_col: orders each user's interactions. By default the column "timestamp" is used when
  present, else file order; an explicitly named column must exist; time_col="" forces
  file order. Numbers (e.g. unix seconds) and ISO dates are accepted.
- label_col (0/1, real negatives) or rating_col with positive_threshold (default 4) and
  negative_threshold (default 2): rating >= positive_threshold is positive, rating <=
  negative_threshold negative, in between dropped. With neither, every interaction is
  positive and 2 negatives per user are sampled from items the user never interacted with.

Memory stays flat: text files are streamed line by line, Parquet in record batches.
"""

from __future__ import annotations

import csv
import math
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DataError
from .base import Event, RawSource, SamplingPolicy
from .io import BuildReport, check_json_format, iter_delimited, iter_jsonl, iter_lines

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
PARQUET_BATCH = 65536
JSON_KEY_PROBE = 1000  # JSON lines: the columns are the keys seen in the first lines

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def file_format(path: Path) -> str:
    """'csv', 'tsv', 'parquet' or 'jsonl' from the file name (a .gz suffix is allowed)."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    fmt = FORMATS.get(Path(name).suffix)
    if fmt is None or (gz and fmt == "parquet"):
        raise DataError(
            f"custom: cannot tell the format of {path}; use one of the extensions "
            ".csv, .tsv, .parquet, .jsonl, .json (text formats may end in .gz)"
        )
    return fmt


def _parquet():
    import pyarrow.parquet as pq

    return pq


def _clean(value: Any) -> Optional[str]:
    """An id/text cell as a stripped string; None for missing or blank."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def parse_label(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if value in (0, 1) else None
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    return None


def parse_number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None  # nan/inf are malformed, not a rating


def parse_time(value: Any) -> Optional[float]:
    """Seconds (any monotone scale) from a number, a datetime or a date string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:
            return None
        return x if math.isfinite(x) else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # naive times: UTC, not the machine's zone
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    text = str(value).strip()
    if not text:
        return None
    try:
        x = float(text)
        return x if math.isfinite(x) else None
    except ValueError:
        pass
    try:
        return parse_time(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        import pandas as pd

        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return None
    if ts is pd.NaT:
        return None
    return parse_time(ts.to_pydatetime())


def _option(options: dict, name: str, default: Optional[str]) -> Optional[str]:
    value = options.get(name)
    if value is None:
        return default
    return str(value).strip()


class CustomSource(RawSource):
    name = "custom"
    domain = "custom"
    item_noun = "item"
    description = "your own interactions and items files (CSV, TSV, Parquet or JSON lines)"
    needs_raw_dir = False
    expected_files = (
        "an interactions file (user, item, optional time, optional label or rating) and an items "
        "file (item, text), as CSV, TSV, Parquet or JSON lines, given as interactions=PATH and items=PATH"
    )
    loader_version = "1"

    OPTIONS = (
        "interactions",
        "items",
        "user_col",
        "item_col",
        "time_col",
        "label_col",
        "rating_col",
        "positive_threshold",
        "negative_threshold",
        "text_col",
    )

    @classmethod
    def option_names(cls) -> Tuple[str, ...]:
        return cls.OPTIONS

    def __init__(self, raw_dir: Optional[Path], report: BuildReport, **options):
        super().__init__(raw_dir, report, **options)
        self.user_col = _option(options, "user_col", "user_id")
        self.item_col = _option(options, "item_col", "item_id")
        self.text_col = _option(options, "text_col", "text")
        # None: use "timestamp" if present; "": file order; a name: that column, required.
        self.time_col_given = _option(options, "time_col", None)
        self.label_col = _option(options, "label_col", None) or None
        self.rating_col = _option(options, "rating_col", None) or None
        for opt in ("user_col", "item_col", "text_col"):
            if not getattr(self, opt):
                raise ConfigError(f"custom: {opt} must name a column")
        if self.label_col and self.rating_col:
            raise ConfigError("custom: give label_col or rating_col, not both")
        self.positive_threshold = self._threshold(options, "positive_threshold", 4.0)
        self.negative_threshold = self._threshold(options, "negative_threshold", 2.0)
        if not self.rating_col and any(options.get(k) is not None for k in ("positive_threshold", "negative_threshold")):
            raise ConfigError("custom: positive_threshold/negative_threshold need rating_col")
        if self.negative_threshold >= self.positive_threshold:
            raise ConfigError(
                f"custom: negative_threshold ({self.negative_threshold:g}) must be below "
                f"positive_threshold ({self.positive_threshold:g})"
            )
        if self.label_col or self.rating_col:
            self.policy = SamplingPolicy(min_negatives=1)  # real negatives
        else:
            self.policy = SamplingPolicy(sampled_negatives=2)  # all positive: sample negatives
        self._time_col: Optional[str] = None
        self._checked = False

    @staticmethod
    def _threshold(options: dict, name: str, default: float) -> float:
        value = options.get(name)
        if value is None:
            return default
        x = parse_number(value)
        if x is None:
            raise ConfigError(f"custom: {name} must be a number, got {value!r}")
        return x

    # -- files ---------------------------------------------------------------------------
    def _path(self, option: str) -> Path:
        value = self.options.get(option)
        if value is None or not str(value).strip():
            raise ConfigError(
                f"custom: the {option} file is required; e.g. load_scenario('custom', "
                "interactions='interactions.csv', items='items.csv')"
            )
        given = Path(str(value)).expanduser()
        if given.is_absolute():
            places = [given]
        else:
            places = ([self.raw_dir / given] if self.raw_dir is not None else []) + [Path.cwd() / given]
        for p in places:
            if p.is_file():
                return p
        where = " or ".join(str(p) for p in places)
        raise DataError(f"custom: {option} file not found: {where}")

    def raw_files(self) -> List[Path]:
        return [self._path("interactions"), self._path("items")]

    def columns(self, path: Path) -> List[str]:
        """The column names of a file, read from its header / schema / first objects."""
        fmt = file_format(path)
        if fmt == "parquet":
            try:
                return list(_parquet().ParquetFile(path).schema_arrow.names)
            except Exception as exc:  # pyarrow raises several types for a non-Parquet file
                raise DataError(f"custom: {path} is not a readable Parquet file ({exc})") from None
        if fmt == "jsonl":
            check_json_format(path, self.report, "a JSON object per line (JSON lines)")
            keys: Dict[str, None] = {}
            for n, (_, obj) in enumerate(iter_jsonl(path, BuildReport())):
                keys.update(dict.fromkeys(obj))
                if n + 1 >= JSON_KEY_PROBE:
                    break
            return list(keys)
        for _, text in iter_lines(path, BuildReport()):
            return [c.strip() for c in next(csv.reader([text], delimiter="," if fmt == "csv" else "\t"))]
        raise DataError(f"custom: {path} is empty; expected a header line")

    def _require(self, path: Path, wanted: Sequence[Tuple[str, str]]) -> List[str]:
        found = self.columns(path)
        for option, col in wanted:
            if col not in found:
                raise DataError(
                    f"custom: {path} has no column '{col}' (set the {option} option, --{option.replace('_', '-')} "
                    "on the command line); "
                    f"available columns: {', '.join(found) or '(none)'}"
                )
        return found

    def _check(self) -> None:
        if self._checked:
            return
        path = self._path("interactions")
        wanted = [("user_col", self.user_col), ("item_col", self.item_col)]
        if self.label_col:
            wanted.append(("label_col", self.label_col))
        if self.rating_col:
            wanted.append(("rating_col", self.rating_col))
        if self.time_col_given:
            wanted.append(("time_col", self.time_col_given))
        found = self._require(path, wanted)
        if self.time_col_given is None:
            self._time_col = "timestamp" if "timestamp" in found else None
        else:
            self._time_col = self.time_col_given or None
        self._checked = True

    def rows(self, path: Path, columns: Sequence[str]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(where, row) for every row; a missing cell is None."""
        fmt = file_format(path)
        name = path.name
        if fmt in ("csv", "tsv"):
            delimiter = "," if fmt == "csv" else "\t"
            for lineno, row in iter_delimited(path, self.report, delimiter=delimiter):
                yield f"{name}:{lineno}", row
        elif fmt == "jsonl":
            for lineno, obj in iter_jsonl(path, self.report):
                yield f"{name}:{lineno}", obj
        else:
            pf = _parquet().ParquetFile(path)
            n = 0
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=list(columns)):
                cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                names = batch.schema.names
                for values in zip(*cols):
                    n += 1
                    yield f"{name} row {n}", dict(zip(names, values))

    # -- RawSource -----------------------------------------------------------------------
    def load_items(self) -> Dict[str, str]:
        path = self._path("items")
        self._require(path, [("item_col", self.item_col), ("text_col", self.text_col)])
        items: Dict[str, str] = {}
        for where, row in self.rows(path, [self.item_col, self.text_col]):
            item = _clean(row.get(self.item_col))
            if item is None:
                self.report.skip("missing item id", where)
                continue
            text = _clean(row.get(self.text_col))
            if text is None:
                self.report.skip("empty item text", where, item)
                continue
            if item in items:
                self.report.skip("duplicate item id (first kept)", where, item)
                continue
            items[item] = text
        return items

    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        self._check()
        path = self._path("interactions")
        cols = [self.user_col, self.item_col]
        for extra in (self._time_col, self.label_col, self.rating_col):
            if extra:
                cols.append(extra)
        pos, neg = self.positive_threshold, self.negative_threshold
        for seq, (where, row) in enumerate(self.rows(path, cols)):
            user = _clean(row.get(self.user_col))
            item = _clean(row.get(self.item_col))
            if user is None or item is None:
                self.report.skip("missing user or item id", where)
                continue
            if self._time_col:
                time = parse_time(row.get(self._time_col))
                if time is None:
                    self.report.skip("unreadable time", where, repr(row.get(self._time_col))[:40])
                    continue
            else:
                time = float(seq)
            if self.label_col:
                label = parse_label(row.get(self.label_col))
                if label is None:
                    self.report.skip("label not 0/1", where, repr(row.get(self.label_col))[:40])
                    continue
            elif self.rating_col:
                rating = parse_number(row.get(self.rating_col))
                if rating is None:
                    self.report.skip("non-numeric rating", where, repr(row.get(self.rating_col))[:40])
                    continue
                if rating >= pos:
                    label = 1
                elif rating <= neg:
                    label = 0
                else:
                    self.report.drop(f"rating between {neg:g} and {pos:g}")
                    continue
            else:
                label = 1
            yield Event(user, item, time, label)
