"""Streaming readers for raw dataset files.

Every reader yields rows one at a time (memory stays flat for multi-GB files), accepts
gzip transparently (detected from the magic bytes, not the name), strips CRLF, and
reports malformed rows through a :class:`BuildReport` instead of dropping them silently.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class BuildReport:
    """Counts of what was read and what was skipped, and why.

    In strict mode the first skipped row raises a DataError naming file and line.
    """

    strict: bool = False
    rows_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: Dict[str, str] = field(default_factory=dict)
    # Rows left out by the protocol's rules (e.g. ratings of exactly 3): not errors.
    dropped: Counter = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def skip(self, reason: str, where: str = "", detail: str = "") -> None:
        self.skipped[reason] += 1
        if reason not in self.examples:
            self.examples[reason] = (where + (f": {detail}" if detail else "")).strip(": ")
        if self.strict:
            loc = f" at {where}" if where else ""
            extra = f" ({detail})" if detail else ""
            raise DataError(
                f"malformed row{loc}: {reason}{extra}; fix the file or run without --strict "
                "to skip and count such rows"
            )

    def as_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_examples": dict(sorted(self.examples.items())),
            "dropped_by_rule": dict(sorted(self.dropped.items())),
        }


def open_binary(path: Path):
    """Open a file for binary reading, decompressing gzip when the content is gzip."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    head = fh.read(2)
    fh.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")
    return fh


def iter_lines(
    path: Path, report: BuildReport, encoding: str = "utf-8", skip_blank: bool = True
) -> Iterator[Tuple[int, str]]:
    """Yield (line number, text without line ending); undecodable lines are reported."""
    name = Path(path).name
    with open_binary(path) as fh:
        try:
            for lineno, raw in enumerate(fh, 1):
                raw = raw.rstrip(b"\r\n")
                if skip_blank and not raw.strip():
                    continue
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    report.skip("undecodable bytes", f"{name}:{lineno}", f"not {encoding}: {exc.reason}")
                    continue
                if text.startswith("\ufeff") and lineno == 1:
                    text = text[1:]
                yield lineno, text
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise DataError(f"{path}: truncated or corrupt compressed file ({exc}); download it again") from None


def iter_jsonl(path: Path, report: BuildReport, literal: bool = False) -> Iterator[Tuple[int, dict]]:
    """Yield (line number, object) from JSON lines; Python-literal lines with literal=True.

    Python literals (the UCSD Steam files) are parsed with ast.literal_eval, never eval.
    """
    name = Path(path).name
    for lineno, text in iter_lines(path, report):
        try:
            obj = ast.literal_eval(text) if literal else json.loads(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            kind = "bad Python literal" if literal else "bad JSON"
            report.skip(kind, f"{name}:{lineno}", str(exc)[:80])
            continue
        if not isinstance(obj, dict):
            report.skip("not a JSON object", f"{name}:{lineno}")
            continue
        yield lineno, obj


def check_json_format(path: Path, report: BuildReport, expected: str, literal: bool = False) -> None:
    """Fail early with file/line when the first non-blank line is not a JSON object at all."""
    probe = BuildReport()
    for lineno, text in iter_lines(path, probe):
        try:
            obj = ast.literal_eval(text) if literal else json.loads(text)
            ok = isinstance(obj, dict)
        except Exception:
            ok = False
        if not ok:
            raise DataError(
                f"{path} line {lineno}: expected {expected}, got {text[:60]!r}; "
                "is this the right file?"
            )
        return
    raise DataError(f"{path} is empty; expected {expected}")


def iter_delimited(
    path: Path,
    report: BuildReport,
    *,
    delimiter: str = ",",
    columns: Optional[Sequence[str]] = None,
    header: bool = True,
    required: Sequence[str] = (),
    encoding: str = "utf-8",
    min_fields: Optional[int] = None,
    quoting: int = csv.QUOTE_MINIMAL,
    multichar: Optional[str] = None,
) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Yield (line number, row dict) from a CSV/TSV-like file.

    header=True reads the column names from the first line and checks that `required`
    columns are present (a missing column is a format error naming the file). Rows with
    the wrong number of fields are reported. `multichar` splits on a multi-character
    separator such as MovieLens' '::' instead of using the csv module.
    """
    name = Path(path).name
    lines = iter_lines(path, report, encoding=encoding)
    cols: Optional[List[str]] = list(columns) if columns is not None else None
    if header:
        first = next(lines, None)
        if first is None:
            raise DataError(f"{path} is empty; expected a header line")
        if multichar:
            found = first[1].split(multichar)
        else:
            found = next(csv.reader([first[1]], delimiter=delimiter))
        found = [c.strip() for c in found]
        missing = [c for c in required if c not in found]
        if missing:
            raise DataError(
                f"{path} line 1: missing column(s) {', '.join(missing)}; found {', '.join(found[:12])}"
            )
        cols = found
    assert cols is not None
    n = len(cols)
    need = n if min_fields is None else min_fields

    def rows() -> Iterator[Tuple[int, List[str]]]:
        if multichar:
            for lineno, text in lines:
                yield lineno, text.split(multichar)
            return
        # csv over single physical lines keeps line numbers exact; quoted fields with
        # embedded newlines are rare in these datasets and are reported as bad rows.
        for lineno, text in lines:
            try:
                fields = next(csv.reader([text], delimiter=delimiter, quoting=quoting))
            except csv.Error as exc:
                report.skip("bad CSV quoting", f"{name}:{lineno}", str(exc))
                continue
            yield lineno, fields

    for lineno, fields in rows():
        if len(fields) < need or (min_fields is None and len(fields) != n):
            report.skip(
                "wrong number of columns", f"{name}:{lineno}", f"expected {n}, got {len(fields)}"
            )
            continue
        yield lineno, dict(zip(cols, fields))


def sniff_first_line(path: Path) -> str:
    """The first line of a (possibly gzip) file, decoded leniently, for format checks."""
    with open_binary(path) as fh:
        raw = fh.readline()
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def read_text_sample(path: Path, n: int = 4096) -> bytes:
    with open_binary(path) as fh:
        return fh.read(n)


__all__ = [
    "BuildReport",
    "check_json_format",
    "iter_delimited",
    "iter_jsonl",
    "iter_lines",
    "open_binary",
    "sniff_first_line",
    "read_text_sample",
]
