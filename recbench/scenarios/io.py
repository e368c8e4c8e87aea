"""Streaming readers for raw dataset files.

Every reader yields rows one at a time (memory stays flat for multi-GB files), accepts
gzip transparently (detected from the magic bytes, not the name), strips CRLF, and
reports malformed rows through a :class:`BuildReport` instead of dropping them silently.

The per-line pieces (:func:`decode_line`, :func:`parse_json_line`, :class:`Delimited`) are
also what the columnar engine (engine.py) runs on the lines its SQL does not handle, so
both engines read an odd line the same way.
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

    In strict mode the first skipped row raises a DataError naming file and line (rows
    skipped with fatal=False, such as exact duplicates, are only counted).
    """

    strict: bool = False
    rows_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: Dict[str, str] = field(default_factory=dict)
    # Rows left out by the protocol's rules (e.g. ratings of exactly 3): not errors.
    dropped: Counter = field(default_factory=Counter)
    # The first fatal skip seen while not strict: (reason, where, detail). The columnar
    # engine reads it to stop at the first bad row in file order.
    first_fatal: Optional[Tuple[str, str, str]] = None

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def skip(self, reason: str, where: str = "", detail: str = "", fatal: bool = True) -> None:
        self.skipped[reason] += 1
        if reason not in self.examples:
            self.examples[reason] = (where + (f": {detail}" if detail else "")).strip(": ")
        if fatal:
            if self.strict:
                raise self.error(reason, where, detail)
            if self.first_fatal is None:
                self.first_fatal = (reason, where, detail)

    def add_skipped(self, reason: str, count: int, example: str) -> None:
        """Count `count` rows skipped for `reason` at once (never fatal)."""
        if count > 0:
            self.skipped[reason] += count
            self.examples.setdefault(reason, example)

    @staticmethod
    def error(reason: str, where: str = "", detail: str = "") -> DataError:
        loc = f" at {where}" if where else ""
        extra = f" ({detail})" if detail else ""
        return DataError(
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


# Magic bytes of formats people mistake for text tables, and how to fix each.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (or .xlsx workbook)", "unpack it (or export the sheet as CSV) first"),
    (b"PAR1", "a Parquet file", "use the custom scenario, which reads Parquet, or export it as CSV"),
    (b"BZh", "a bzip2-compressed file", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it first (unzstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "unpack it first"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV first"),
)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (little-endian byte-order mark FF FE 00 00)", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (big-endian byte-order mark 00 00 FE FF)", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16 text (little-endian byte-order mark FF FE)", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16 text (big-endian byte-order mark FE FF)", "UTF-16BE"),
)


def _is_utf8(head: bytes) -> bool:
    """Valid UTF-8, allowing a character cut at the end of the sample."""
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def sniff_binary(head: bytes) -> Optional[Tuple[str, str]]:
    """(what the bytes are, how to fix it) when they are not UTF-8/ASCII text, else None."""
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return what, fix
    for bom, what, enc in _BOMS:
        if head.startswith(bom):
            return what, f"convert it to UTF-8 first (e.g. iconv -f {enc} -t UTF-8)"
    if 0 not in head:
        return None
    if head.count(0) < max(4, len(head) // 100) and _is_utf8(head):
        return None  # a stray NUL in a text file is one bad row, not a binary file
    even, odd = head[0::2], head[1::2]
    for zeros, other, enc in ((odd, even, "UTF-16LE"), (even, odd, "UTF-16BE")):
        if zeros and zeros.count(0) >= 0.9 * len(zeros) and other.count(0) <= 0.1 * len(other):
            return ("UTF-16 text without a byte-order mark (every other byte is NUL)",
                    f"convert it to UTF-8 first (e.g. iconv -f {enc} -t UTF-8)")
    return "binary data (NUL bytes), not a text table", "is this the right file?"


def check_text_file(path: Path, head: Optional[bytes] = None) -> None:
    """Raise a one-line DataError when a raw file is binary or in a wrong encoding (UTF-16).

    Without this, such a file reads as "empty" or "line 1: missing columns" with NUL bytes
    in the message. `head`: the first (decompressed) bytes, when the caller has them.
    """
    if head is None:
        try:
            head = read_text_sample(path)
        except (EOFError, gzip.BadGzipFile) as exc:
            raise corrupt(path, exc) from None
    found = sniff_binary(head)
    if found is not None:
        what, fix = found
        raise DataError(f"{path} is {what}, not UTF-8 text; {fix}")


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


def iter_raw_lines(path: Path) -> Iterator[Tuple[int, bytes]]:
    """(line number, raw bytes with their line ending), as iterating the file in binary
    mode splits them (on b"\\n" only); binary and UTF-16 files are refused first."""
    check_text_file(path)
    with open_binary(path) as fh:
        try:
            yield from enumerate(fh, 1)
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise corrupt(path, exc) from None


def corrupt(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path}: truncated or corrupt compressed file ({exc}); download it again")


def decode_line(
    lineno: int, raw: bytes, report: BuildReport, name: str, encoding: str = "utf-8", skip_blank: bool = True
) -> Optional[str]:
    """The text of one raw line without its line ending; None for a blank line (when
    skip_blank) or an undecodable one (reported). A UTF-8 BOM on line 1 is removed."""
    raw = raw.rstrip(b"\r\n")
    if skip_blank and not raw.strip():
        return None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        report.skip("undecodable bytes", f"{name}:{lineno}", f"not {encoding}: {exc.reason}")
        return None
    if text.startswith("\ufeff") and lineno == 1:
        text = text[1:]
    return text


def iter_lines(
    path: Path, report: BuildReport, encoding: str = "utf-8", skip_blank: bool = True
) -> Iterator[Tuple[int, str]]:
    """Yield (line number, text without line ending); undecodable lines are reported."""
    name = Path(path).name
    for lineno, raw in iter_raw_lines(path):
        text = decode_line(lineno, raw, report, name, encoding, skip_blank)
        if text is not None:
            yield lineno, text


def parse_json_line(lineno: int, text: str, report: BuildReport, name: str, literal: bool = False) -> Optional[dict]:
    """The object on one line, or None (reported as bad JSON / not a JSON object).

    Python literals (the UCSD Steam files) are parsed with ast.literal_eval, never eval.
    """
    try:
        obj = ast.literal_eval(text) if literal else json.loads(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        kind = "bad Python literal" if literal else "bad JSON"
        report.skip(kind, f"{name}:{lineno}", str(exc)[:80])
        return None
    if not isinstance(obj, dict):
        report.skip("not a JSON object", f"{name}:{lineno}")
        return None
    return obj


def iter_jsonl(path: Path, report: BuildReport, literal: bool = False) -> Iterator[Tuple[int, dict]]:
    """Yield (line number, object) from JSON lines; Python-literal lines with literal=True."""
    name = Path(path).name
    for lineno, text in iter_lines(path, report):
        obj = parse_json_line(lineno, text, report, name, literal)
        if obj is not None:
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


@dataclass(frozen=True)
class Delimited:
    """How the lines of a CSV/TSV-like file become row dicts, once the header is read.

    Lines before `first_line` (the header and anything above it) are not data.
    """

    name: str
    columns: Tuple[str, ...]
    delimiter: str = ","
    min_fields: Optional[int] = None
    quoting: int = csv.QUOTE_MINIMAL
    multichar: Optional[str] = None
    encoding: str = "utf-8"
    first_line: int = 1

    def row(self, lineno: int, text: str, report: BuildReport) -> Optional[Dict[str, str]]:
        """The row dict of one decoded line, or None (reported)."""
        if self.multichar:
            fields = text.split(self.multichar)
        else:
            # csv over single physical lines keeps line numbers exact; quoted fields with
            # embedded newlines are rare in these datasets and are reported as bad rows.
            try:
                fields = next(csv.reader([text], delimiter=self.delimiter, quoting=self.quoting))
            except csv.Error as exc:
                report.skip("bad CSV quoting", f"{self.name}:{lineno}", str(exc))
                return None
        n = len(self.columns)
        need = n if self.min_fields is None else self.min_fields
        if len(fields) < need or (self.min_fields is None and len(fields) != n):
            report.skip("wrong number of columns", f"{self.name}:{lineno}", f"expected {n}, got {len(fields)}")
            return None
        return dict(zip(self.columns, fields))

    def line(self, lineno: int, raw: bytes, report: BuildReport) -> Optional[Dict[str, str]]:
        """The row dict of one raw line, or None (blank, undecodable or malformed)."""
        text = decode_line(lineno, raw, report, self.name, self.encoding)
        return None if text is None else self.row(lineno, text, report)

    def index(self, column: str) -> int:
        """Position of a column in a line's fields (the last one of that name, as dict(zip()) keeps)."""
        return len(self.columns) - 1 - self.columns[::-1].index(column)


def read_header(
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
) -> Delimited:
    """Read (and check) the header of a CSV/TSV-like file; see iter_delimited."""
    cols: Optional[List[str]] = list(columns) if columns is not None else None
    first_line = 1
    if header:
        first = next(iter_lines(path, report, encoding=encoding), None)
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
        first_line = first[0] + 1
    assert cols is not None
    return Delimited(Path(path).name, tuple(cols), delimiter, min_fields, quoting, multichar, encoding, first_line)


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
    layout = read_header(path, report, delimiter=delimiter, columns=columns, header=header, required=required,
                         encoding=encoding, min_fields=min_fields, quoting=quoting, multichar=multichar)
    for lineno, raw in iter_raw_lines(path):
        if lineno < layout.first_line:
            continue
        row = layout.line(lineno, raw, report)
        if row is not None:
            yield lineno, row


def sniff_first_line(path: Path) -> str:
    """The first line of a (possibly gzip) file, decoded leniently, for format checks."""
    check_text_file(path)
    with open_binary(path) as fh:
        raw = fh.readline()
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def read_text_sample(path: Path, n: int = 4096) -> bytes:
    with open_binary(path) as fh:
        return fh.read(n)


__all__ = [
    "BuildReport",
    "Delimited",
    "check_text_file",
    "decode_line",
    "iter_raw_lines",
    "parse_json_line",
    "read_header",
    "check_json_format",
    "iter_delimited",
    "iter_jsonl",
    "iter_lines",
    "open_binary",
    "sniff_first_line",
    "read_text_sample",
]
