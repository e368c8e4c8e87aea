"""Columnar engine: DuckDB reads, checks and counts the big raw files.

The Python reader parses every row in the interpreter, twice (two passes): about 70k
rows/s per pass, 1.5-2 hours for Goodreads' 228M interactions. Here DuckDB reads each raw
file once, on all cores, and does the parsing, the checks, the labels, the counting of
bad rows by reason, the exact duplicates, the unknown items and the per-user counts in
SQL; the sampling itself is base.py's, shared with the Python engine.

How a file is read:

* JSON lines (Goodreads, Yelp, Amazon): DuckDB's own reader (``read_ndjson_objects`` on
  the path, gzip included) gives one row per non-blank line (blank: only the bytes that
  ``bytes.strip()`` removes, as for the Python reader), in file order: a table filled
  from it keeps that order (``preserve_insertion_order``), so a row's ``rowid`` is its
  rank among the non-blank lines. A line DuckDB cannot parse is a NULL row.
* Other text files (CSV/TSV: MovieLens, H&M, MIND; HotelRec, which feeds two tables): Python
  reads raw blocks (no per-line work) and DuckDB splits them into lines with their exact
  numbers (``string_split``), decodes and checks them.

Same samples as the Python reader, by construction: each loader gives SQL that sorts every
line into a kept event, a row left out by a protocol rule (``drops``), a bad row whose
reason the SQL can tell exactly as the loader's Python code does (``skips``), or ``'?'``:
a line the SQL cannot read exactly (odd spellings, JSON quirks that DuckDB's parser accepts
and Python's rejects, undecodable bytes, ...). Counts by reason are SQL. Only when such
rows exist does a narrow pass run the loader's own Python code, the code of
``engine="python"``, on those lines alone: every ``'?'`` line (its events join the
table, its bad rows are reported by the same code, with reason, first example and
file:line) and the first line of each SQL reason (its example and file:line; the loader
must give the same reason, which is checked). For JSON lines that pass streams the file
in Python up to the last line it needs, counting non-blank lines to turn ranks into line
numbers; for other files the lines are still in memory. With --strict the first bad row
in file order (a bad line or an unknown item) stops the build with the Python reader's
message.

Memory: DuckDB works under ``memory_limit`` (default 1GB, RECBENCH_DUCKDB_MEMORY) and
spills to a temporary folder (RECBENCH_TMP, else the system's) removed afterwards; Python
holds a few blocks of raw bytes and the selected users' events.
"""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import (TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple)

import numpy as np

from ..errors import DataError
from .io import GZIP_MAGIC, BuildReport, check_text_file, corrupt, open_binary

if TYPE_CHECKING:  # pragma: no cover
    from .base import Event, Interactions, RawSource, Scenario

ENGINES = ("duckdb", "python")
SHIFT = 20  # pos = line (or rank) << SHIFT | index of the event within its line (MIND: one per impression)
BLOCK_BYTES = 16 << 20  # lines cut by Python (the narrow pass, undecodable blocks)
CHUNK_BYTES = 4 << 20  # raw blocks handed to DuckDB's line splitter
CHUNKS_PER_BATCH = 4  # one SQL statement per batch; DuckDB splits the chunks in parallel
BATCH_ROWS = 1 << 14

# -- SQL pieces shared by the loaders -----------------------------------------------------

# Python's str.strip()/split() whitespace, as an RE2 class.
WS = r"[\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
NWS = WS.replace("[", "[^", 1)


def canon(expr: str) -> str:
    """SQL: expr is a non-empty string that str.strip() leaves as is (no NUL either).
    Quick when both ends are printable ASCII, a regex otherwise."""
    return (f"coalesce(CASE WHEN ascii({expr}) BETWEEN 33 AND 126 AND ord({expr}[-1]) BETWEEN 33 AND 126 "
            f"THEN NOT contains({expr}, chr(0)) "
            f"ELSE {expr} <> '' AND NOT regexp_matches({expr}, '^{WS}|{WS}$|\\x00') END, false)")


def canon_words(expr: str) -> str:
    """SQL: expr is non-empty and " ".join(expr.split()) == expr."""
    return f"coalesce(regexp_full_match({expr}, '{NWS}+( {NWS}+)*'), false)"


def blank(expr: str) -> str:
    """SQL: expr is a string that str.strip() empties ("" included)."""
    return f"coalesce(regexp_full_match({expr}, '{WS}*'), false)"


def json_str(value: str) -> str:
    """SQL: the text of a JSON string value (as from_json(..., 'JSON') gives it), else NULL."""
    return f"(CASE WHEN starts_with({value}, '\"') THEN {value} ->> '$' END)"


def json_text(value: str) -> str:
    """SQL: the text of a JSON string value without escapes (quick), else NULL."""
    return (f"(CASE WHEN starts_with({value}, '\"') AND NOT contains({value}, '\\') "
            f"THEN substr({value}, 2, length({value}) - 2) END)")


def json_is(value: str, *kinds: str) -> str:
    """SQL: a raw JSON value (as from_json(..., 'JSON') gives it) is one of the kinds:
    null, bool, string, object, array, number. NULL (no value) is none of them.
    (Comparisons of its first character's code, not an IN list: DuckDB turns a long IN
    list into a join, and a join would cost the JSON reader its order; see Session.)"""
    c = f"ascii({value})"
    first = {"null": f"{c} = 110", "bool": f"{c} = 116 OR {c} = 102", "string": f"{c} = 34", "object": f"{c} = 123",
             "array": f"{c} = 91", "number": f"{c} = 45 OR {c} BETWEEN 48 AND 57"}
    return f"coalesce({' OR '.join(first[k] for k in kinds)}, false)"


def json_number(value: str) -> str:
    """SQL: a finite JSON number (as from_json(..., 'JSON') writes it) as DOUBLE, else NULL.

    Python reads a JSON number as int or float, and float() of either is correctly rounded,
    as DuckDB's cast is: the same double. Infinite ones (1e999) go to Python.
    """
    x = f"TRY_CAST({value}::VARCHAR AS DOUBLE)"
    return f"(CASE WHEN {json_is(value, 'number')} AND isfinite({x}) THEN {x} END)"


def text_number(expr: str, integer: bool = False, signed: bool = True) -> str:
    """SQL: a plain decimal number in a CSV field as DOUBLE (what float() gives), else NULL."""
    sign = "-?" if signed else ""
    pattern = rf"{sign}[0-9]{{1,15}}" if integer else rf"{sign}[0-9]{{1,15}}(\.[0-9]{{1,15}})?"
    return f"(CASE WHEN regexp_full_match({expr}, '{pattern}') THEN CAST({expr} AS DOUBLE) END)"


def iso_seconds(expr: str) -> str:
    """SQL: seconds since the epoch (UTC) of "YYYY-MM-DD HH:MM:SS" (or with a T), else NULL;
    what reviews.parse_time gives for that form."""
    return (f"(CASE WHEN regexp_full_match({expr}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T]([01][0-9]|2[0-3]):"
            f"[0-5][0-9]:[0-5][0-9]') AND NOT starts_with({expr}, '0000') "
            f"THEN epoch(TRY_CAST({expr} AS TIMESTAMP)) END)")


def json_line_ok(t: str) -> str:
    """SQL: the line is a JSON object that Python's json module reads as DuckDB does.

    DuckDB's parser also accepts nan/inf literals in any case and trailing commas, which
    Python rejects (Python's own NaN/Infinity go to Python too): lines that might hold
    them (a false alarm inside a text only costs speed) go to the Python path. Repeated
    keys (Python keeps the last, DuckDB the first) are caught by json_fields.
    """
    nan = r"[-+]?(?:[nN][aA][nN]|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)[ \t\n\r]*[,\]}]"
    full = (f"NOT regexp_matches({t}, ',[ \\t\\n\\r]*(?:[}}\\]]|{nan})') "
            f"AND NOT regexp_matches({t}, ':[ \\t\\n\\r]*{nan}') "
            f"AND NOT (contains({t}, '[') AND regexp_matches({t}, '\\[[ \\t\\n\\r]*{nan}'))")
    # Quick path for a flat object (no array, no object as a value: one scan from each ':'
    # finds both that and a nan/inf value): a trailing comma can only stand before its last brace.
    flat = f"NOT contains({t}, '[') AND regexp_extract({t}, ':[ \\t\\n\\r]*(\\{{|{nan})', 1) = ''"
    return (f"(starts_with({t}, '{{') AND CASE WHEN {flat} "
            f"THEN NOT regexp_matches({t}, ',[ \\t\\n\\r]*}}[ \\t\\n\\r]*$') ELSE {full} END)")


def json_fields(t: str, keys: Sequence[str]) -> str:
    """SQL: a struct of the keys' values as raw JSON for a canonical JSON line, else NULL.

    from_json_strict fails (NULL here) when a key is missing or repeated, however spelled,
    so such lines go to the Python path.
    """
    return (f"(CASE WHEN {t} IS NOT NULL AND {json_line_ok(t)} "
            f"THEN try(from_json_strict({t}, '{json_struct(keys)}')) END)")


def json_struct(keys: Sequence[str]) -> str:
    """The from_json structure that returns each key's value as raw JSON."""
    return "{" + ", ".join(f'"{k}": "JSON"' for k in keys) + "}"


def csv_line_ok(t: str, delimiter: str, quotes: bool = True) -> str:
    """SQL: a delimited line that the csv module splits exactly at each delimiter: no quote
    character (when the file uses quoting), no carriage return, no NUL."""
    bad = "\\r\\x00" + ('"' if quotes else "")
    return f"coalesce(NOT regexp_matches({t}, '[{bad}]'), false)"


# -- lines cut by Python (the narrow pass; undecodable chunks) -------------------------------


@dataclass
class LineBlock:
    """Consecutive lines of a file: data[starts[i]:nexts[i]] is line first + i."""

    data: bytes
    first: int
    starts: np.ndarray
    ends: np.ndarray  # end of the text, the line ending (\r* \n) excluded
    nexts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, ln: int) -> bytes:
        i = ln - self.first
        return bytes(self.data[self.starts[i]:self.nexts[i]])

    def table(self, start_line: int = 1):
        """Arrow table (ln, line) without copying: each line's text is followed by a row
        holding its line ending (ln 0), which the SQL skips; so are lines before start_line."""
        import pyarrow as pa

        n = len(self.starts)
        offsets = np.empty(2 * n + 1, dtype=np.int32)
        offsets[0:-1:2] = self.starts
        offsets[1::2] = self.ends
        offsets[-1] = self.nexts[-1]
        ln = np.zeros(2 * n, dtype=np.int64)
        ln[0::2] = np.arange(self.first, self.first + n, dtype=np.int64)
        if start_line > self.first:
            ln[0:2 * min(n, start_line - self.first):2] = 0
        line = pa.Array.from_buffers(pa.binary(), 2 * n, [None, pa.py_buffer(offsets), pa.py_buffer(self.data)])
        table = pa.Table.from_arrays([pa.array(ln), line], names=["ln", "line"])
        # several record batches (zero-copy slices), so that every DuckDB thread gets work
        return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS))

    def nonblank(self) -> np.ndarray:
        """Which lines hold a byte that bytes.strip() keeps (DuckDB's JSON reader gives
        those lines a row, and only those)."""
        a = np.frombuffer(self.data, dtype=np.uint8)
        starts, nexts = self.starts, self.nexts
        has = starts < nexts
        first = a[np.minimum(starts, len(a) - 1)] if len(a) else np.zeros(len(starts), np.uint8)
        out = has & ~_WS_BYTE[first]
        for i in np.flatnonzero(has & _WS_BYTE[first]):  # lines starting with a blank: look closer
            out[i] = bool(bytes(self.data[starts[i]:nexts[i]]).strip())
        return out


_WS_BYTE = np.zeros(256, dtype=bool)
_WS_BYTE[list(b" \t\n\r\x0b\x0c")] = True


def _block(data, first: int, nl: np.ndarray, size: int) -> LineBlock:
    a = np.frombuffer(data, dtype=np.uint8, count=size)
    nexts = nl + 1
    if len(nexts) == 0 or nexts[-1] < size:  # the last line has no line ending
        nexts = np.append(nexts, size)
    starts = np.empty_like(nexts)
    starts[0] = 0
    starts[1:] = nexts[:-1]
    ends = nexts.copy()
    ends[: len(nl)] -= 1  # drop the \n
    while True:  # and any \r before it (bytes.rstrip(b"\r\n"))
        cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == 13)
        if not cr.any():
            break
        ends[cr] -= 1
    return LineBlock(data, first, starts, ends, nexts)


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run an iterator in a background thread, `depth` items ahead: Python reads (and
    decompresses) the next raw blocks while DuckDB works on these."""
    import queue
    import threading

    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    thread = threading.Thread(target=run, name="recbench-lines", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join()


def iter_line_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[LineBlock]:
    """The file's lines in blocks of about block_bytes; gzip is read transparently."""
    for chunk in iter_chunks(path, block_bytes, check_utf8=False):
        yield chunk.block()


def iter_ranked_lines(path: Path, ranks: np.ndarray) -> Iterator[Tuple[int, int, bytes]]:
    """(rank, line number, raw line) of the non-blank lines of the given ranks (sorted,
    0-based; the rowids of a table filled by DuckDB's JSON reader). Reads the file up to
    the last of them."""
    seen = 0  # non-blank lines before this block
    i = 0
    if len(ranks) == 0:
        return
    for block in iter_line_blocks(path):
        nonblank = block.nonblank()
        if block.first == 1 and len(block) and block.raw(1).startswith(b"\xef\xbb\xbf"):
            nonblank[0] = bool(block.raw(1)[3:].strip())  # DuckDB skips a BOM at the start of the file
        counts = np.cumsum(nonblank)
        total = int(counts[-1]) if len(counts) else 0
        while i < len(ranks) and ranks[i] < seen + total:
            line = int(np.searchsorted(counts, ranks[i] - seen + 1))
            ln = block.first + line
            yield int(ranks[i]), ln, block.raw(ln)
            i += 1
        if i == len(ranks):
            return
        seen += total
    raise DataError(f"{path} changed while it was read (it has fewer lines than a moment ago); read it again")


# -- raw blocks split into lines by DuckDB ------------------------------------------------------


@dataclass
class Chunk:
    """Whole lines of a file as raw bytes: lines first .. first + n - 1 (the last one may
    lack its line ending at the end of the file). utf8: the bytes are valid UTF-8."""

    first: int
    n: int
    data: memoryview
    utf8: bool

    def block(self) -> LineBlock:
        """The same lines cut by Python (numpy)."""
        nl = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 10)
        return _block(self.data, self.first, nl, len(self.data))


def _is_utf8(data, within=None) -> bool:
    """data is valid UTF-8 (quick when it, or the buffer `within` that holds it, is ASCII)."""
    if (within if within is not None else data).isascii():
        return True
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True


def iter_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES, check_utf8: bool = True) -> Iterator[Chunk]:
    """The file's bytes in chunks of whole lines (about chunk_bytes each), numbered as
    ``for line in open(path, "rb")`` numbers them; gzip is read transparently."""
    is_utf8 = _is_utf8 if check_utf8 else (lambda data, within=None: False)
    check_text_file(path)
    first = 1
    carry = b""
    with open_binary(path) as fh:
        try:
            while True:
                buf = bytearray(chunk_bytes + len(carry))
                buf[:len(carry)] = carry
                size = len(carry)
                view = memoryview(buf)
                while size < len(buf):
                    got = fh.readinto(view[size:])
                    if not got:
                        break
                    size += got
                if size == len(carry):  # end of the file
                    if carry:
                        yield Chunk(first, 1, memoryview(carry), is_utf8(carry))
                    return
                cut = buf.rfind(b"\n", 0, size) + 1
                if cut == 0:  # no line ending yet: a longer line
                    carry = bytes(buf[:size])
                    continue
                data = view[:cut]
                n = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))
                yield Chunk(first, n, data, is_utf8(data, buf))
                first += n
                carry = bytes(buf[cut:size])
        except (EOFError, OSError) as exc:  # gzip.BadGzipFile is an OSError
            raise corrupt(path, exc) from None


def chunk_table(chunks: Sequence[Chunk]):
    """Arrow table (first, n, chunk), one record batch per chunk, without copying."""
    import pyarrow as pa

    batches = []
    for c in chunks:
        offsets = pa.py_buffer(np.array([0, len(c.data)], dtype=np.int32))
        data = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(c.data)])
        batches.append(pa.record_batch([pa.array([c.first], pa.int64()), pa.array([c.n], pa.int64()), data],
                                       names=["first", "n", "chunk"]))
    return pa.Table.from_batches(batches)


def _lines_sql(raw: str, start_line: int) -> str:
    """The lines CTE (ln, t) over (ln, text) rows: t without its line ending (bytes.rstrip(b"\\r\\n")),
    a BOM removed from line 1, empty lines and lines before start_line left out."""
    return (f"SELECT ln, CASE WHEN ln = 1 AND starts_with(t, chr(65279)) THEN substr(t, 2) ELSE t END AS t "
            f"FROM (SELECT ln, rtrim(t, chr(13)) AS t FROM ({raw}) WHERE ln >= {max(start_line, 1)}) "
            "WHERE t IS NULL OR t <> ''")


# Chunks split by DuckDB (every chunk valid UTF-8); undecodable ones are cut by Python.
CHUNK_LINES = ("SELECT first + i - 1 AS ln, t FROM (SELECT first, n, generate_subscripts(l, 1) AS i, unnest(l) AS t "
               "FROM (SELECT first, n, string_split(decode(chunk), chr(10)) AS l FROM blk)) WHERE i <= n")
BLOCK_LINES = "SELECT ln, try(decode(line)) AS t FROM blk WHERE ln > 0"


# -- what a loader declares --------------------------------------------------------------


@dataclass(frozen=True)
class LineSpec:
    """One table filled from the lines of one raw file: SQL for the lines it reads exactly,
    the loader's Python code for the others.

    sql: a query over ``lines(ln, t)`` returning ln, k, st and then `columns` in order. t is
    the line without its line ending, NULL when it is not UTF-8 (or, for JSON lines, when
    DuckDB's reader cannot parse it). ln is the line number; for JSON lines (json_lines)
    it is the line's text instead, passed through untouched (the engine ranks the rows).
    st NULL keeps the row; '?' hands the whole line to `python`; a name in `drops` leaves
    the row out by that protocol rule (dropped_by_rule); a name in `skips` is a bad row
    with the reason the loader's Python code gives it (counted, its first example and
    file:line taken from that code). python(ln, raw) -> the rows (tuples of `columns`)
    of one line; it reports its own bad rows.
    """

    columns: Tuple[Tuple[str, str], ...]
    sql: str
    python: Callable[[int, bytes], Iterable[tuple]]
    start_line: int = 1
    # A kept SQL row with one of these NULL is a mistake in the SQL: its line goes to Python.
    required: Tuple[str, ...] = ("user", "item", "time", "label")
    drops: Tuple[str, ...] = ()
    skips: Tuple[str, ...] = ()
    json_lines: bool = False

    def query(self) -> str:
        """sql, with rows missing a required value handed to Python (a safety net)."""
        cols = ", ".join(f'"{c}"' for c, _ in self.columns)
        missing = " OR ".join(f'"{c}" IS NULL' for c in self.required) or "false"
        return (f"SELECT ln, k, CASE WHEN st IS NULL AND ({missing}) THEN '?' ELSE st END AS st, {cols} "
                f"FROM ({self.sql}) AS q")


EVENT_COLUMNS = (("user", "VARCHAR"), ("item", "VARCHAR"), ("time", "DOUBLE"), ("label", "TINYINT"))
ITEM_COLUMNS = (("key", "VARCHAR"), ("text", "VARCHAR"), ("skip", "VARCHAR"), ("detail", "VARCHAR"))
ITEM_REQUIRED = ("key", "text")


@dataclass(frozen=True)
class ItemPlan:
    """The item table. spec() runs the file's format checks, then describes its lines as
    rows (key, text, skip, detail): the line's item, or why it is a bad row (key set when
    known; such rows come from the loader's Python code). The first text of a key wins.
    skips_after_valid=False: a bad line of a key that already has a text is not counted
    (Amazon's meta files repeat items). finish: build the items from (key, first line) in
    order of appearance instead (HotelRec; a text file, not JSON lines)."""

    path: Path
    spec: Callable[[], LineSpec]
    skips_after_valid: bool = True
    finish: Optional[Callable[[List[Tuple[str, int]]], Dict[str, str]]] = None


@dataclass(frozen=True)
class ColumnarPlan:
    """How the columnar engine reads a source. events() runs the events file's format checks
    (after the items are read, as the Python reader does), then describes its lines; its
    columns are EVENT_COLUMNS, plus ("hist", "VARCHAR") with history."""

    events_path: Path
    events: Callable[[], LineSpec]
    items: Optional[ItemPlan] = None  # None: RawSource.load_items()
    history: bool = False


def event_rows(line_events: Callable[[int, bytes], Iterable["Event"]], history: bool = False):
    """A LineSpec.python for events from a loader's per-line event reader."""
    if history:
        return lambda ln, raw: ((e.user, e.item, e.time, int(e.label),
                                 None if e.history is None else " ".join(e.history))
                                for e in line_events(ln, raw))
    return lambda ln, raw: ((e.user, e.item, e.time, int(e.label)) for e in line_events(ln, raw))


def item_skip(reason: str, detail: str = "") -> tuple:
    return (None, None, reason, detail)


ItemReader = Callable[[int, bytes, BuildReport], Optional[Tuple[str, Optional[str]]]]


def item_line(fn: ItemReader) -> Callable[[int, bytes], List[tuple]]:
    """A LineSpec.python for items from fn(ln, raw, report) -> (key, text), or None or
    (key, None) after reporting why the line is bad (at most one report per line)."""

    def rows(ln: int, raw: bytes) -> List[tuple]:
        local = BuildReport()
        got = fn(ln, raw, local)
        if local.first_fatal is not None:
            reason, _where, detail = local.first_fatal
            return [(got[0] if got else None, None, reason, detail)]
        return [] if got is None else [(got[0], got[1], None, None)]

    return rows


def collect_items(path: Path, rows: Callable[[int, bytes], Iterable[tuple]], report: BuildReport,
                  start_line: int = 1, skips_after_valid: bool = True) -> Dict[str, str]:
    """The Python engine's reading of an ItemPlan's rows (the same rules as the SQL one)."""
    from .io import iter_raw_lines

    name = Path(path).name
    items: Dict[str, str] = {}
    for lineno, raw in iter_raw_lines(path):
        if lineno < start_line:
            continue
        for key, text, skip, detail in rows(lineno, raw):
            if skip is not None:
                if skips_after_valid or key is None or key not in items:
                    report.skip(skip, f"{name}:{lineno}", detail or "")
            elif key not in items:
                items[key] = text
    return items


# -- the engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSettings:
    memory_limit: str = "1GB"
    threads: int = 0  # 0: DuckDB's default (one per core)
    temp_dir: Optional[str] = None
    chunk_bytes: int = CHUNK_BYTES
    # "auto": DuckDB's JSON reader for JSON lines; "split": every file through DuckDB's line
    # splitter (the fallback, also used when DuckDB's reader refuses a file)
    json_reader: str = "auto"

    @classmethod
    def from_env(cls) -> "EngineSettings":
        threads = os.environ.get("RECBENCH_DUCKDB_THREADS", "0")
        return cls(memory_limit=os.environ.get("RECBENCH_DUCKDB_MEMORY", "1GB"),
                   threads=int(threads) if threads.isdigit() else 0,
                   temp_dir=os.environ.get("RECBENCH_TMP") or None)


def duckdb_module():
    try:
        import duckdb
    except ImportError:  # pragma: no cover - a core dependency
        from ..errors import RecBenchError

        raise RecBenchError("the package 'duckdb' is needed by the columnar engine; install it with: "
                            "pip install duckdb, or use engine='python' (RECBENCH_ENGINE=python)") from None
    return duckdb


def _arrow(rel):
    """A relation's rows as an Arrow table (DuckDB 2 renamed fetch_arrow_table)."""
    fn = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return fn()


def _batches(rel, size: int):
    fn = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
    return fn(size)


@dataclass
class _Fatal:
    """The first bad row of a table in file order: pos and the error to raise."""

    pos: int
    error: DataError


@dataclass
class _Table:
    """One table being filled: `name`_sql holds what the SQL read (st marks the rows left
    out and the lines handed to Python; their first two columns are NULL), `name`_py the
    rows of the Python-read lines, and the view `name` both (pos, ln, columns): a row whose
    first column (user, key) is NULL is not one."""

    name: str
    spec: LineSpec
    file: str
    rows: List[tuple] = field(default_factory=list)
    verified: Set[str] = field(default_factory=set)  # SQL reasons checked against the loader's code
    fatal: Optional[_Fatal] = None  # the first bad row met (strict mode)

    @property
    def cols(self) -> str:
        return ", ".join(f'"{c}"' for c, _ in self.spec.columns)

    @property
    def kept_cols(self) -> str:
        """The columns, the first two NULL in the rows the SQL leaves out (st set)."""
        names = [c for c, _ in self.spec.columns]
        return ", ".join(f'CASE WHEN st IS NULL THEN "{c}" END AS "{c}"' if i < 2 else f'"{c}"'
                         for i, c in enumerate(names))


@dataclass
class Session:
    """One DuckDB database in a temporary folder, removed on close."""

    settings: EngineSettings = field(default_factory=EngineSettings.from_env)

    def __post_init__(self) -> None:
        duckdb = duckdb_module()
        self.folder = Path(tempfile.mkdtemp(prefix="recbench-duckdb-", dir=self.settings.temp_dir))
        # In memory, with tables and intermediates spilled to the folder past memory_limit.
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET memory_limit = '{self.settings.memory_limit}'")
        self.con.execute(f"SET temp_directory = '{self.folder / 'spill'}'")
        self.con.execute("SET preserve_insertion_order = false")  # positions are explicit
        if self.settings.threads:
            self.con.execute(f"SET threads = {int(self.settings.threads)}")

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def q(self, sql: str, params: Sequence = ()) -> list:
        return self.con.execute(sql, list(params)).fetchall()

    # -- reading a file -------------------------------------------------------------------
    def ingest(self, path: Path, tables: Sequence[Tuple[str, LineSpec]], report: BuildReport,
               after_block: Optional[Callable[[int, int, Dict[str, Optional[_Fatal]]], None]] = None,
               ) -> Dict[str, Optional[_Fatal]]:
        """Read a file once into one table per spec (the view `name`: pos, ln, columns).

        Bad rows are counted and reported; with a strict report they are recorded instead
        and the first one per table returned (and, for text files, passed to after_block
        with each batch's first and last pos), so that the caller can raise the earliest
        error in file order.
        """
        strict, report.strict = report.strict, False
        tabs = [_Table(name, spec, Path(path).name) for name, spec in tables]
        try:
            native = (self.settings.json_reader == "auto" and len(tabs) == 1 and tabs[0].spec.json_lines)
            if native:
                native = self._read_json_lines(path, tabs[0], report, strict)
            if not native:
                self._read_chunks(path, tabs, report, strict, after_block)
        finally:
            report.strict = strict
        return {t.name: t.fatal for t in tabs}

    def _create(self, tab: _Table, pos: bool) -> None:
        types = ", ".join(f'"{c}" {t}' for c, t in tab.spec.columns)
        if pos:
            self.con.execute(f'CREATE OR REPLACE TABLE "{tab.name}_sql" (pos BIGINT, st VARCHAR, {types})')
        self.con.execute(f'CREATE OR REPLACE TABLE "{tab.name}_py" (pos BIGINT, ln BIGINT, {types})')

    def _view(self, tab: _Table, ranked: bool) -> None:
        sql_pos = f"rowid << {SHIFT} AS pos, NULL::BIGINT AS ln" if ranked else f"pos, pos >> {SHIFT} AS ln"
        # No filter on st: the SQL rows left out have their first two columns NULL (user and item,
        # key and text), which the queries over the view skip; a filter would cost as much as a join.
        self.con.execute(f'CREATE OR REPLACE VIEW "{tab.name}" AS SELECT {sql_pos}, {tab.cols} FROM "{tab.name}_sql" '
                         f'UNION ALL SELECT pos, ln, {tab.cols} FROM "{tab.name}_py"')

    def _flush(self, tab: _Table) -> None:
        """Python-read rows into the table."""
        if not tab.rows:
            return
        import pyarrow as pa

        types = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "TINYINT": pa.int8(), "BIGINT": pa.int64()}
        names = ["pos", "ln"] + [c for c, _ in tab.spec.columns]
        schema = pa.schema([("pos", pa.int64()), ("ln", pa.int64())]
                           + [(c, types[t]) for c, t in tab.spec.columns])
        extra = pa.Table.from_pylist([dict(zip(names, r)) for r in tab.rows], schema=schema)  # noqa: F841
        self.con.register("_extra", extra)
        self.con.execute(f'INSERT INTO "{tab.name}_py" SELECT * FROM _extra')
        self.con.unregister("_extra")
        tab.rows = []

    def _python_line(self, tab: _Table, ln: int, raw: bytes, base: int, report: BuildReport,
                     expect: Optional[str] = None) -> None:
        """The loader's own reading of one line: its rows wait in tab.rows (pos base + k),
        its bad rows are reported (the first fatal one recorded in tab.fatal). expect: the
        reason the SQL gave the line, which the loader must give too."""
        report.first_fatal = None
        before = sum(report.skipped.values())
        k = 0
        for row in tab.spec.python(ln, raw):
            if report.first_fatal is not None and tab.fatal is None:
                tab.fatal = _Fatal(base + k, BuildReport.error(*report.first_fatal))
            tab.rows.append((base + k, ln, *row))
            k += 1
        found = report.first_fatal
        if found is not None and tab.fatal is None:
            tab.fatal = _Fatal(base + k, BuildReport.error(*found))
        if expect is not None and (k or found is None or found[0] != expect
                                   or sum(report.skipped.values()) != before + 1):
            got = f"'{found[0]}'" if found is not None else f"{k} row(s)"
            raise RuntimeError(f"columnar engine: the SQL reads {tab.file}:{ln} as a bad row ('{expect}') but "
                               f"the loader gives {got}; please report this (RECBENCH_ENGINE=python avoids it)")

    def _sql_counts(self, tab: _Table, stats: Iterable[Tuple[str, int, int]], report: BuildReport,
                    ) -> Dict[int, str]:
        """Count the SQL's left-out rows (st, count, first pos); returns the first rows (pos)
        that the loader's code must read: one per reason not yet checked (its example)."""
        firsts: Dict[int, str] = {}
        for st, n, first in stats:
            if st == "?":
                continue
            if st in tab.spec.drops:
                report.dropped[st] += n
            elif st in tab.spec.skips:
                if st in tab.verified:
                    report.skipped[st] += n
                else:
                    tab.verified.add(st)
                    report.skipped[st] += n - 1  # the loader's code reports the first one
                    firsts[first] = st
            else:
                raise RuntimeError(f"columnar engine: the SQL of {tab.file} gives an undeclared status '{st}'")
        return firsts

    # JSON lines: DuckDB's reader; a narrow Python pass over the lines it cannot read exactly
    def _read_json_lines(self, path: Path, tab: _Table, report: BuildReport, strict: bool) -> bool:
        """Fill the table from DuckDB's JSON reader; False when DuckDB refuses the file (a
        line over its size limit, a compressed stream it cannot read), which is then read
        as a text file."""
        import duckdb

        self._create(tab, pos=False)
        create, params = self.json_lines_create(path, tab.name, tab.spec)
        try:
            self.con.execute("SET preserve_insertion_order = true")  # rowid = rank in the file
            if not self.keeps_order(create, params):
                return False
            self.con.execute(create, params)
        except duckdb.Error:
            return False
        finally:
            self.con.execute("SET preserve_insertion_order = false")
        self._view(tab, ranked=True)
        stats = self.q(f"SELECT st, count(*), min(rowid) FROM \"{tab.name}_sql\" WHERE st IS NOT NULL GROUP BY st")
        firsts = self._sql_counts(tab, [(st, n, first << SHIFT) for st, n, first in stats], report)
        if not any(st == "?" for st, _, _ in stats) and not firsts:
            return True
        # the narrow pass: the lines handed to Python, and the first line of each SQL reason
        table = f'"{tab.name}_sql"'
        ranks = _arrow(self.con.sql(f"SELECT rowid AS r FROM {table} WHERE st = '?' ORDER BY rowid")).column("r")
        expect = {pos >> SHIFT: st for pos, st in firsts.items()}
        todo = np.union1d(ranks.to_numpy(), np.fromiter(expect, dtype=np.int64, count=len(expect)))
        # the text DuckDB read, for the first lines handed to Python: a check on the ranks
        text_of = dict(self.q(f"SELECT rowid, t FROM {table} WHERE st = '?' ORDER BY rowid LIMIT 1000"))
        limit = self._first_unknown_rank(tab) if strict else None
        for rank, ln, raw in iter_ranked_lines(path, todo):
            if limit is not None and rank > limit:
                break
            if rank in text_of:  # the line found is the one DuckDB read (a check on the ranks)
                self._check_rank(tab, path, ln, raw, text_of[rank])
            self._python_line(tab, ln, raw, rank << SHIFT, report, expect.get(rank))
            if len(tab.rows) >= 1 << 16:
                self._flush(tab)
            if strict and tab.fatal is not None:
                break
        self._flush(tab)
        return True

    @staticmethod
    def json_lines_create(path: Path, name: str, spec: LineSpec) -> Tuple[str, dict]:
        """The statement filling `name`_sql from DuckDB's JSON reader, and its parameters."""
        with open(path, "rb") as fh:
            compression = "gzip" if fh.read(2) == GZIP_MAGIC else "none"
        lines = ("SELECT t AS ln, t FROM (SELECT json::VARCHAR AS t FROM read_ndjson_objects($path, "
                 f"compression='{compression}', ignore_errors=true))")
        tab = _Table(name, spec, Path(path).name)
        create = (f'CREATE OR REPLACE TABLE "{name}_sql" AS WITH lines AS ({lines}) '
                  f"SELECT st, {tab.kept_cols}, CASE WHEN st = '?' THEN left(ln, 80) END AS t FROM ({spec.query()})")
        return create, {"path": str(path)}

    def keeps_order(self, create: str, params) -> bool:
        """The CREATE TABLE keeps the reader's order (DuckDB inserts in batches in file order):
        true unless the query holds an operator that does not keep order (a join, ...), and
        then the rowids would not be ranks. Checked on the plan, before reading."""
        plan = " ".join(str(row[-1]) for row in self.con.execute("EXPLAIN " + create, params).fetchall())
        return "Batch Create Table As" in plan or "BATCH_CREATE_TABLE_AS" in plan

    @staticmethod
    def _check_rank(tab: _Table, path: Path, ln: int, raw: bytes, text: Optional[str]) -> None:
        if text is None:
            return
        line = raw.strip(b" \t\n\r\x0b\x0c")
        if ln == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:].lstrip(b" \t\n\r\x0b\x0c")
        if not line.decode("utf-8", "replace").startswith(text):
            raise RuntimeError(f"columnar engine: line {ln} of {path} is not the line DuckDB's JSON reader "
                               "ranked there; please report this (RECBENCH_ENGINE=python avoids it)")

    def _first_unknown_rank(self, tab: _Table) -> Optional[int]:
        """Strict mode: the rank of the first SQL-read event whose item is unknown (later
        lines need not be read: the build stops there)."""
        if tab.name != "ev" or not self._has("it"):
            return None
        got = self.q(f"SELECT min(rowid) FROM \"{tab.name}_sql\" e WHERE st IS NULL AND NOT EXISTS "
                     "(SELECT 1 FROM it WHERE it.item = e.item)")
        return None if got[0][0] is None else int(got[0][0])

    def _has(self, table: str) -> bool:
        return bool(self.q("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table])[0][0])

    # other text files: Python reads raw chunks, DuckDB splits them into lines
    def _read_chunks(self, path: Path, tabs: Sequence[_Table], report: BuildReport, strict: bool,
                     after_block: Optional[Callable[[int, int, Dict[str, Optional[_Fatal]]], None]]) -> None:
        import duckdb

        for tab in tabs:
            self._create(tab, pos=True)
            self._view(tab, ranked=False)
        start = min(t.spec.start_line for t in tabs)

        def batches() -> Iterator[List[Chunk]]:
            batch: List[Chunk] = []
            for chunk in iter_chunks(path, self.settings.chunk_bytes):
                if chunk.first + chunk.n <= start:
                    continue
                batch.append(chunk)
                if len(batch) == CHUNKS_PER_BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

        for batch in prefetch(batches()):
            lo, hi = batch[0].first << SHIFT, (batch[-1].first + batch[-1].n) << SHIFT
            blocks: Dict[int, LineBlock] = {}
            good = [c for c in batch if c.utf8]
            good_ids = {id(c) for c in good}
            try:
                self._insert(tabs, [(chunk_table(good), CHUNK_LINES)] if good else [])
            except duckdb.Error:  # DuckDB refuses what Python decoded: cut those lines in Python
                for tab in tabs:
                    self.con.execute(f'DELETE FROM "{tab.name}_sql" WHERE pos >= ? AND pos < ?', [lo, hi])
                good_ids = set()
            for c in batch:
                if id(c) not in good_ids:
                    blocks[c.first] = c.block()
                    self._insert(tabs, [(blocks[c.first].table(), BLOCK_LINES)])
            for tab in tabs:
                self._handle_batch(tab, batch, blocks, lo, hi, report)
            if strict and after_block is not None:
                after_block(lo, hi, {t.name: t.fatal for t in tabs})

    def _insert(self, tabs: Sequence[_Table], sources: Sequence[Tuple[object, str]]) -> None:
        for blk, raw in sources:  # noqa: B007 - blk is read by the SQL
            self.con.register("blk", blk)
            try:
                for tab in tabs:
                    lines = _lines_sql(raw, tab.spec.start_line)
                    self.con.execute(f'INSERT INTO "{tab.name}_sql" WITH lines AS ({lines}) '
                                     f"SELECT (ln << {SHIFT}) + k, st, {tab.kept_cols} "
                                     f"FROM ({tab.spec.query()})")
            finally:
                self.con.unregister("blk")

    def _handle_batch(self, tab: _Table, batch: Sequence[Chunk], blocks: Dict[int, LineBlock], lo: int, hi: int,
                      report: BuildReport) -> None:
        """Counts of the batch's left-out rows; the loader's code on the lines that need it."""
        stats = self.q(f'SELECT st, count(*), min(pos) FROM "{tab.name}_sql" WHERE pos >= ? AND pos < ? '
                       "AND st IS NOT NULL GROUP BY st", [lo, hi])
        firsts = self._sql_counts(tab, stats, report)
        todo: Dict[int, Optional[str]] = {}
        if any(st == "?" for st, _, _ in stats):
            for (ln,) in self.q(f'SELECT DISTINCT pos >> {SHIFT} FROM "{tab.name}_sql" WHERE pos >= ? AND pos < ? '
                                "AND st = '?'", [lo, hi]):
                todo[ln] = None
        for pos, st in firsts.items():
            todo[pos >> SHIFT] = st
        chunks = sorted(batch, key=lambda c: c.first)
        for ln in sorted(todo):
            chunk = next(c for c in reversed(chunks) if c.first <= ln)
            if chunk.first not in blocks:
                blocks[chunk.first] = chunk.block()
            self._python_line(tab, ln, blocks[chunk.first].raw(ln), ln << SHIFT, report, todo[ln])
        self._flush(tab)

    # -- items --------------------------------------------------------------------------
    def items(self, plan: ItemPlan, report: BuildReport, table: str = "items_raw") -> Dict[str, str]:
        """The items of an ItemPlan's table (filled by ingest); bad rows reported in file
        order. Also makes the table `it` of the item ids."""
        name = plan.path.name
        if plan.finish is not None:
            firsts = self.q(f"SELECT key, min(ln) AS ln FROM {table} WHERE key IS NOT NULL "
                            "GROUP BY key ORDER BY min(pos)")
            return plan.finish([(k, int(ln)) for k, ln in firsts])
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _firsts AS SELECT key, arg_min(text, pos) AS text, "
                         f"min(pos) AS pos FROM {table} WHERE skip IS NULL AND key IS NOT NULL "
                         "AND text IS NOT NULL GROUP BY key")
        cond = "" if plan.skips_after_valid else (
            "AND (r.key IS NULL OR NOT EXISTS (SELECT 1 FROM _firsts f WHERE f.key = r.key AND f.pos < r.pos))")
        for ln, reason, detail in self.q(f"SELECT ln, skip, detail FROM {table} r WHERE skip IS NOT NULL "
                                         f"{cond} ORDER BY pos"):
            report.skip(reason, f"{name}:{ln}", detail or "")
        rel = _arrow(self.con.sql("SELECT key, text FROM _firsts"))
        items = dict(zip(rel.column("key").to_pylist(), rel.column("text").to_pylist()))
        self.con.execute("CREATE OR REPLACE TABLE it AS SELECT key AS item FROM _firsts")
        return items

    # -- events -------------------------------------------------------------------------
    def load_item_keys(self, items: Dict[str, str]) -> None:
        import pyarrow as pa

        keys = pa.table({"item": pa.array(list(items), pa.string())})  # noqa: F841
        self.con.register("_keys", keys)
        self.con.execute("CREATE OR REPLACE TABLE it AS SELECT DISTINCT item FROM _keys")
        self.con.unregister("_keys")

    def first_unknown(self, lo: int, hi: int) -> Optional[_Fatal]:
        got = self.q("SELECT pos, item FROM ev e WHERE pos >= ? AND pos < ? AND user IS NOT NULL AND NOT EXISTS "
                     "(SELECT 1 FROM it WHERE it.item = e.item) ORDER BY pos LIMIT 1", (lo, hi))
        if not got:
            return None
        return _Fatal(got[0][0], BuildReport.error("unknown item id", "", got[0][1]))

    def interactions(self, source: "RawSource", report: BuildReport, history: bool) -> "Interactions":
        """Per-user counts of the events with a known item, exact duplicates counted once
        (unless the source keeps them), unknown items and duplicates reported."""
        import pyarrow.compute as pc

        from .base import Interactions

        policy = source.policy
        hist = ", hist" if history else ""
        # exact duplicates: events equal (user, item, time, label, history) to an earlier one;
        # candidates by a hash of every event (cheap), then the exact groups among the known ones
        self.con.execute("CREATE OR REPLACE TABLE dups (pos BIGINT, user VARCHAR, item VARCHAR, label TINYINT)")
        if not source.keep_duplicates:
            key = f"user, item, time + 0.0, label{hist}"  # -0.0 and 0.0 are the same time
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _dupkeys AS SELECT hash({key}) AS h FROM ev "
                             "GROUP BY ALL HAVING count(*) > 1 AND count(user) > 1")
            if self.q("SELECT count(*) FROM _dupkeys")[0][0]:
                self.con.execute(
                    "INSERT INTO dups SELECT pos, user, item, label FROM (SELECT pos, user, item, label, "
                    f"row_number() OVER (PARTITION BY {key} ORDER BY pos) AS r FROM ev SEMI JOIN it USING (item) "
                    f"WHERE hash({key}) IN (SELECT h FROM _dupkeys)) WHERE r > 1")
        # one pass: per user, the events, those with a known item, their positives, the first unknown
        counts = _arrow(self.con.sql(
            "SELECT user, count(*) AS n, sum(k) AS nk, sum(k * label) AS npos, min(CASE WHEN k = 0 THEN pos END) AS unk "
            "FROM (SELECT user, label, pos, (item IN (SELECT item FROM it))::INTEGER AS k FROM ev) "
            "GROUP BY user HAVING user IS NOT NULL"))
        n, nk = counts.column("n").to_numpy(), counts.column("nk").to_numpy()
        report.rows_read += int(n.sum())
        n_unknown = int(n.sum() - nk.sum())
        if n_unknown:
            first = pc.min(counts.column("unk")).as_py()
            example = self.q("SELECT item FROM ev WHERE pos = ?", [first])[0][0]
            report.skipped["unknown item id"] += n_unknown
            report.examples.setdefault("unknown item id", (example or "").strip(": "))
        npos = counts.column("npos").to_numpy().astype(np.int64)
        nneg = nk.astype(np.int64) - npos
        n_users = int(np.count_nonzero(nk))
        n_dup, dup_user, dup_item = self.q("SELECT count(*), arg_min(user, pos), arg_min(item, pos) FROM dups")[0]
        if n_dup:
            report.add_skipped("duplicate", int(n_dup), f"user {dup_user}, item {dup_item}")
            index = {u: i for i, u in enumerate(counts.column("user").to_pylist())}
            for user, label, times in self.q("SELECT user, label, count(*) FROM dups GROUP BY ALL"):
                (npos if label else nneg)[index[user]] -= times
        keep = np.flatnonzero((npos >= policy.min_positives) & (nneg >= policy.min_negatives) & (nk > 0))
        users = counts.column("user").take(keep).to_pylist()
        order = sorted(range(len(users)), key=users.__getitem__)
        npos_l, nneg_l = npos[keep].tolist(), nneg[keep].tolist()
        del counts

        def universe() -> List[str]:
            return [r[0] for r in self.q("SELECT item FROM ev SEMI JOIN it USING (item) GROUP BY item ORDER BY min(pos)")]

        def events_of(selected: List[str]):
            import pyarrow as pa

            out: Dict[str, list] = {u: [] for u in selected}
            sel = pa.table({"user": pa.array(selected, pa.string())})  # noqa: F841
            self.con.register("_sel", sel)
            rel = self.con.sql(f"SELECT user, time, pos, item, label{hist} FROM ev SEMI JOIN it USING (item) "
                               "SEMI JOIN _sel USING (user) ANTI JOIN dups USING (pos) ORDER BY user, time, pos")
            for batch in _batches(rel, 1 << 16):
                cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                hists = cols[5] if history else [None] * len(cols[0])
                for user, time, pos, item, label, h in zip(*cols[:5], hists):
                    out[user].append((time, pos, item, int(label), None if h is None else tuple(h.split(" "))))
            self.con.unregister("_sel")
            return out

        return Interactions([users[i] for i in order], [npos_l[i] for i in order], [nneg_l[i] for i in order],
                            n_users, universe, events_of)


def columnar_build(source: "RawSource", plan: ColumnarPlan, *, seed: int, num_test: int, num_finetune: int,
                   say: Callable[[str], None]) -> "Scenario":
    """build_scenario with the columnar engine (see the module docstring)."""
    from .base import _build

    report = source.report
    with Session() as db:

        def stop_at_first(lo: int, hi: int, first: Dict[str, Optional[_Fatal]]) -> None:
            """Strict: raise the earliest of the first bad row and the first unknown item."""
            found = [f for f in (first.get("ev"), db.first_unknown(lo, hi)) if f is not None]
            if found:
                raise min(found, key=lambda f: f.pos).error

        def known(items: Dict[str, str]) -> Dict[str, str]:
            if not items:
                raise DataError(f"{source.name}: no items with text were read; check {source.expected_files}")
            return items

        same_file = plan.items is not None and plan.items.path == plan.events_path
        tables: List[Tuple[str, LineSpec]] = []
        if plan.items is None:
            say(f"{source.name}: reading items")
            items = known(source.load_items())
            db.load_item_keys(items)
        elif not same_file:
            say(f"{source.name}: reading items (duckdb)")
            db.ingest(plan.items.path, [("items_raw", plan.items.spec())], report)
            items = known(db.items(plan.items, report))
        else:
            tables.append(("items_raw", plan.items.spec()))  # HotelRec: items from the events file
        tables.append(("ev", plan.events()))

        say(f"{source.name}: reading interactions (duckdb)")
        first = db.ingest(plan.events_path, tables, report, after_block=None if same_file else stop_at_first)
        if same_file:  # the items' bad rows come first, as the Python reader reads items first
            items = known(db.items(plan.items, report))  # type: ignore[arg-type]
            db.load_item_keys(items)
        if report.strict:
            stop_at_first(0, 1 << 62, first)
        say(f"{source.name}: counting users and collecting the selected ones (duckdb)")
        inter = db.interactions(source, report, plan.history)
        return _build(source, items, inter, seed, num_test, num_finetune)


def resolve_engine(engine: Optional[str]) -> str:
    """The engine to use: the argument, else $RECBENCH_ENGINE, else duckdb."""
    chosen = (engine or os.environ.get("RECBENCH_ENGINE") or "duckdb").strip().lower()
    if chosen not in ENGINES:
        from ..errors import ConfigError

        raise ConfigError(f"unknown engine '{chosen}'; choose one of: {', '.join(ENGINES)}")
    return chosen


__all__ = [
    "ColumnarPlan",
    "ENGINES",
    "EngineSettings",
    "ItemPlan",
    "LineSpec",
    "Session",
    "collect_items",
    "columnar_build",
    "iter_chunks",
    "iter_line_blocks",
    "iter_ranked_lines",
    "resolve_engine",
]
