"""Columnar engine: DuckDB reads, checks and counts the big raw files.

The Python reader parses every row in the interpreter, twice (two passes): about 70k
rows/s per pass, 1.5-2 hours for Goodreads' 228M interactions. Here Python only cuts the
file into lines (numpy over 16 MB blocks; gzip through the same reader as everywhere) and
DuckDB parses them, on all cores, into one table of events, once. Counting users,
finding exact duplicates and unknown items, and collecting the selected users' events are
SQL over that table; the sampling itself is base.py's, shared with the Python engine.

Same samples as the Python reader, by construction:

* Lines are cut and numbered exactly as ``for line in open(path, "rb")`` does.
* A loader's SQL handles only *canonical* lines: lines whose every field has a single
  reading (a JSON string id without surrounding blanks, a rating like 4.5, a date like
  "2016-03-09 00:00:00", no JSON quirk that DuckDB's parser accepts and Python's
  rejects). Every other line goes to the loader's own Python code for one line, which is
  the code the Python engine runs: bad rows are counted by the same code, with the same
  reasons, examples and file:line, and an odd but valid row becomes the same event.
* With --strict, the first bad row in file order still stops the build (checked after
  each block of lines), with the Python reader's message.

Memory: DuckDB works under ``memory_limit`` (default 1GB, RECBENCH_DUCKDB_MEMORY) in a
temporary database file and spill folder (RECBENCH_TMP, else the system's) that are
removed afterwards; Python holds one block of lines and the selected users' events.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from .io import BuildReport, check_text_file, corrupt, open_binary

if TYPE_CHECKING:  # pragma: no cover
    from .base import Event, Interactions, RawSource, Scenario

ENGINES = ("duckdb", "python")
SHIFT = 20  # pos = line << SHIFT | index of the event within its line (MIND: one per impression)
BLOCK_BYTES = 16 << 20
BATCH_ROWS = 1 << 14

# -- SQL pieces shared by the loaders -----------------------------------------------------

# Python's str.strip()/split() whitespace, as an RE2 class.
WS = r"[\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
NWS = WS.replace("[", "[^", 1)


def canon(expr: str) -> str:
    """SQL: expr is a non-empty string that str.strip() leaves as is (no NUL either)."""
    return f"coalesce({expr} <> '' AND NOT regexp_matches({expr}, '^{WS}|{WS}$|\\x00'), false)"


def canon_words(expr: str) -> str:
    """SQL: expr is non-empty and " ".join(expr.split()) == expr."""
    return f"coalesce(regexp_full_match({expr}, '{NWS}+( {NWS}+)*'), false)"


def json_str(value: str) -> str:
    """SQL: the text of a JSON string value (as from_json(..., 'JSON') gives it), else NULL."""
    return f"(CASE WHEN starts_with({value}, '\"') THEN {value} ->> '$' END)"


def json_number(value: str, integer: bool = False) -> str:
    """SQL: a plain JSON number (no exponent, at most 15 digits a side) as DOUBLE, else NULL.

    Such numbers read the same in Python (float(int) or float(literal), both exact or
    correctly rounded) and in DuckDB; anything else goes to Python.
    """
    pattern = r"-?[0-9]{1,15}" if integer else r"-?[0-9]{1,15}(\.[0-9]{1,15})?"
    return f"(CASE WHEN regexp_full_match({value}, '{pattern}') THEN CAST({value} AS DOUBLE) END)"


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
    return (f"(starts_with({t}, '{{') AND NOT regexp_matches({t}, ',[ \\t\\n\\r]*(?:[}}\\]]|{nan})') "
            f"AND NOT regexp_matches({t}, ':[ \\t\\n\\r]*{nan}') "
            f"AND NOT (contains({t}, '[') AND regexp_matches({t}, '\\[[ \\t\\n\\r]*{nan}')))")


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


# -- lines ------------------------------------------------------------------------------


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
        return self.data[self.starts[i]:self.nexts[i]]

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


def _block(data: bytes, first: int, nl: np.ndarray, size: int) -> LineBlock:
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
    """Run an iterator in a background thread, `depth` items ahead: Python cuts the next
    block of lines (gzip and numpy release the GIL) while DuckDB parses this one."""
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
    check_text_file(path)
    first = 1
    carry = b""
    with open_binary(path) as fh:
        try:
            while True:
                chunk = fh.read(block_bytes)
                if not chunk:
                    if carry:
                        yield _block(carry, first, np.zeros(0, dtype=np.int64), len(carry))
                    return
                data = carry + chunk if carry else chunk
                nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
                if len(nl) == 0:
                    carry = data
                    continue
                cut = int(nl[-1]) + 1
                yield _block(data, first, nl, cut)
                first += len(nl)
                carry = data[cut:]
        except (EOFError, OSError) as exc:  # gzip.BadGzipFile is an OSError
            raise corrupt(path, exc) from None


# -- what a loader declares --------------------------------------------------------------


@dataclass(frozen=True)
class LineSpec:
    """One table filled from the lines of one raw file: SQL for the canonical lines, the
    loader's Python code for the others.

    sql: a query over ``lines(ln BIGINT, t VARCHAR)`` (t is NULL for a line that is not
    UTF-8) returning ln, k, st and then `columns` in order; st NULL keeps the row, '?'
    hands the whole line to `python`, any other text drops the row by that rule (counted
    under dropped_by_rule). python(ln, raw) -> the rows (tuples of `columns`) of one line;
    it reports its own bad rows.
    """

    columns: Tuple[Tuple[str, str], ...]
    sql: str
    python: Callable[[int, bytes], Iterable[tuple]]
    start_line: int = 1
    # A kept SQL row with one of these NULL is a mistake in the SQL: its line goes to Python.
    required: Tuple[str, ...] = ("user", "item", "time", "label")

    def query(self) -> str:
        """sql, with rows missing a required value handed to Python (a safety net)."""
        cols = ", ".join(f'"{c}"' for c, _ in self.columns)
        missing = " OR ".join(f'"{c}" IS NULL' for c in self.required) or "false"
        return (f"SELECT ln, k, CASE WHEN st IS NULL AND ({missing}) THEN '?' ELSE st END AS st, {cols} "
                f"FROM ({self.sql}) AS q")


EVENT_COLUMNS = (("user", "VARCHAR"), ("item", "VARCHAR"), ("time", "DOUBLE"), ("label", "TINYINT"))
ITEM_COLUMNS = (("key", "VARCHAR"), ("text", "VARCHAR"), ("skip", "VARCHAR"), ("detail", "VARCHAR"))
ITEM_REQUIRED = ("key", "text")
# Item SQL for a file whose lines DuckDB cannot read (Python literals): every line to Python.
ALL_TO_PYTHON = ("SELECT ln, 0 AS k, '?' AS st, NULL::VARCHAR AS key, NULL::VARCHAR AS text, "
                 "NULL::VARCHAR AS skip, NULL::VARCHAR AS detail FROM lines")


@dataclass(frozen=True)
class ItemPlan:
    """The item table. spec() runs the file's format checks, then describes its lines as
    rows (key, text, skip, detail): the line's item, or why it is a bad row (key set when
    known). The first text of a key wins. skips_after_valid=False: a bad line of a key
    that already has a text is not counted (Amazon's meta files repeat items).
    finish: build the items from (key, first line) in order of appearance instead (HotelRec)."""

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
    block_bytes: int = BLOCK_BYTES

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

    # -- reading lines ------------------------------------------------------------------
    def ingest(self, path: Path, tables: Sequence[Tuple[str, LineSpec]], report: BuildReport,
               after_block: Optional[Callable[[int, int, Dict[str, Optional[_Fatal]]], None]] = None,
               ) -> Dict[str, Optional[_Fatal]]:
        """Read a file once into one table per spec (columns pos BIGINT + the spec's).

        Bad rows are reported as they are met (the Python path of each line); with a
        strict report they are recorded instead, and the first one per table returned (and
        passed to after_block with the block's first and last pos), so that the caller can
        raise the earliest error in file order.
        """
        import pyarrow as pa

        strict, report.strict = report.strict, False
        first: Dict[str, Optional[_Fatal]] = {name: None for name, _ in tables}
        try:
            for name, spec in tables:
                cols = ", ".join(f'"{c}" {t}' for c, t in spec.columns)
                self.con.execute(f'CREATE OR REPLACE TABLE "{name}" (pos BIGINT, st VARCHAR, {cols})')
            start = min(spec.start_line for _, spec in tables)

            def blocks() -> Iterator[Tuple[LineBlock, object]]:
                for block in iter_line_blocks(path, self.settings.block_bytes):
                    if block.first + len(block) > start:
                        yield block, block.table(start)

            for block, arrow in prefetch(blocks()):
                lo, hi = block.first << SHIFT, (block.first + len(block)) << SHIFT
                for name, spec in tables:
                    blk = arrow if spec.start_line == start else block.table(spec.start_line)  # noqa: F841
                    self.con.register("blk", blk)
                    colnames = ", ".join(f'"{c}"' for c, _ in spec.columns)
                    # every row goes in (st marks the dropped ones and the lines left to Python;
                    # removed at the end): one pass over the block, no intermediate table
                    self.con.execute(
                        f'INSERT INTO "{name}" SELECT (ln << {SHIFT}) + k, st, {colnames} FROM ('
                        "WITH lines AS (SELECT ln, try(decode(line)) AS t FROM blk WHERE ln > 0) "
                        f"{spec.query()})")
                    self.con.unregister("blk")
                    marked = self.q(f'SELECT st, count(*), min(pos) >> {SHIFT}, max(pos) >> {SHIFT} FROM "{name}" '
                                    "WHERE pos >= ? AND pos < ? AND st IS NOT NULL GROUP BY st", (lo, hi))
                    slow: List[int] = []
                    for reason, n, ln_min, ln_max in marked:
                        if reason != "?":
                            report.dropped[reason] += n
                        elif ln_min == ln_max:
                            slow = [ln_min]
                        else:
                            slow = [r[0] for r in self.q(f'SELECT DISTINCT pos >> {SHIFT} AS ln FROM "{name}" '
                                                         "WHERE pos >= ? AND pos < ? AND st = '?' ORDER BY ln",
                                                         (lo, hi))]
                    rows: List[tuple] = []
                    for ln in slow:
                        before = report.first_fatal
                        k = 0
                        for row in spec.python(ln, block.raw(ln)):
                            found = report.first_fatal
                            if found is not None and found is not before and first[name] is None:
                                first[name] = self._fatal(ln, k, found)
                            rows.append(((ln << SHIFT) + k, None, *row))
                            k += 1
                        found = report.first_fatal
                        if found is not None and found is not before and first[name] is None:
                            first[name] = self._fatal(ln, k, found)
                        if first[name] is not None:
                            report.first_fatal = None  # let the next table's rows be located too
                    if rows:
                        names = ["pos", "st"] + [c for c, _ in spec.columns]
                        extra = pa.Table.from_pylist([dict(zip(names, r)) for r in rows],  # noqa: F841
                                                     schema=self._schema(spec))
                        self.con.register("_extra", extra)
                        self.con.execute(f'INSERT INTO "{name}" SELECT * FROM _extra')
                        self.con.unregister("_extra")
                if strict and after_block is not None:
                    after_block(block.first << SHIFT, (block.first + len(block)) << SHIFT, first)
            for name, _ in tables:
                self.con.execute(f'DELETE FROM "{name}" WHERE st IS NOT NULL')
        finally:
            report.strict = strict
        return first

    @staticmethod
    def _fatal(ln: int, k: int, found: Tuple[str, str, str]) -> _Fatal:
        return _Fatal((ln << SHIFT) + k, BuildReport.error(*found))

    @staticmethod
    def _schema(spec: LineSpec):
        import pyarrow as pa

        types = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "TINYINT": pa.int8(), "BIGINT": pa.int64()}
        return pa.schema([("pos", pa.int64()), ("st", pa.string())] + [(c, types[t]) for c, t in spec.columns])

    # -- items --------------------------------------------------------------------------
    def items(self, plan: ItemPlan, report: BuildReport, table: str = "items_raw") -> Dict[str, str]:
        """The items of an ItemPlan's table (filled by ingest); bad rows reported in file order."""
        name = plan.path.name
        if plan.finish is not None:
            firsts = self.q(f"SELECT key, min(pos) >> {SHIFT} AS ln FROM {table} WHERE key IS NOT NULL "
                            "GROUP BY key ORDER BY min(pos)")
            return plan.finish([(k, int(ln)) for k, ln in firsts])
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _firsts AS SELECT key, arg_min(text, pos) AS text, "
                         f"min(pos) AS pos FROM {table} WHERE skip IS NULL AND key IS NOT NULL "
                         "AND text IS NOT NULL GROUP BY key")
        cond = "" if plan.skips_after_valid else (
            "AND (r.key IS NULL OR NOT EXISTS (SELECT 1 FROM _firsts f WHERE f.key = r.key AND f.pos < r.pos))")
        for pos, reason, detail in self.q(f"SELECT pos, skip, detail FROM {table} r WHERE skip IS NOT NULL "
                                          f"{cond} ORDER BY pos"):
            report.skip(reason, f"{name}:{pos >> SHIFT}", detail or "")
        rel = _arrow(self.con.sql("SELECT key, text FROM _firsts"))
        return dict(zip(rel.column("key").to_pylist(), rel.column("text").to_pylist()))

    # -- events -------------------------------------------------------------------------
    def load_item_keys(self, items: Dict[str, str]) -> None:
        import pyarrow as pa

        keys = pa.table({"item": pa.array(list(items), pa.string())})  # noqa: F841
        self.con.register("_keys", keys)
        self.con.execute("CREATE OR REPLACE TABLE it AS SELECT DISTINCT item FROM _keys")
        self.con.unregister("_keys")

    def first_unknown(self, lo: int, hi: int) -> Optional[_Fatal]:
        got = self.q("SELECT pos, item FROM ev e WHERE pos >= ? AND pos < ? AND st IS NULL AND NOT EXISTS "
                     "(SELECT 1 FROM it WHERE it.item = e.item) ORDER BY pos LIMIT 1", (lo, hi))
        if not got:
            return None
        return _Fatal(got[0][0], BuildReport.error("unknown item id", "", got[0][1]))

    def interactions(self, source: "RawSource", report: BuildReport, history: bool) -> "Interactions":
        from .base import Interactions

        policy = source.policy
        hist = ", hist" if history else ""
        report.rows_read += self.q("SELECT count(*) FROM ev")[0][0]
        n_unknown, example = self.q("SELECT count(*), arg_min(item, pos) FROM ev ANTI JOIN it USING (item)")[0]
        if n_unknown:
            report.skipped["unknown item id"] += n_unknown
            report.examples.setdefault("unknown item id", example)
        if source.keep_duplicates:
            self.con.execute(f"CREATE OR REPLACE VIEW g AS SELECT user, item, time, label{hist}, pos "
                             "FROM ev SEMI JOIN it USING (item)")
        else:
            self.con.execute(f"CREATE OR REPLACE TABLE g AS SELECT user, item, time, label{hist}, min(pos) AS pos, "
                             "count(*) AS n FROM ev SEMI JOIN it USING (item) GROUP BY ALL")
            n_dup = self.q("SELECT coalesce(sum(n - 1), 0) FROM g")[0][0]
            if n_dup:
                same = " AND ".join(f"e.{c} IS NOT DISTINCT FROM g.{c}"
                                    for c in ("user", "item", "time", "label") + (("hist",) if history else ()))
                user, item = self.q(f"SELECT e.user, e.item FROM ev e JOIN g ON {same} "
                                    "WHERE g.n > 1 AND e.pos > g.pos ORDER BY e.pos LIMIT 1")[0]
                report.add_skipped("duplicate", int(n_dup), f"user {user}, item {item}")
        self.con.execute("CREATE OR REPLACE TABLE c AS SELECT user, count(*) FILTER (WHERE label = 1) AS npos, "
                         "count(*) FILTER (WHERE label = 0) AS nneg FROM g GROUP BY user")
        n_users = self.q("SELECT count(*) FROM c")[0][0]
        got = _arrow(self.con.sql("SELECT user, npos, nneg FROM c WHERE npos >= ? AND nneg >= ?",
                                  params=[policy.min_positives, policy.min_negatives]))
        users = got.column("user").to_pylist()
        order = sorted(range(len(users)), key=users.__getitem__)
        npos, nneg = got.column("npos").to_pylist(), got.column("nneg").to_pylist()
        del got

        def universe() -> List[str]:
            return [r[0] for r in self.q("SELECT item FROM g GROUP BY item ORDER BY min(pos)")]

        def events_of(selected: List[str]):
            import pyarrow as pa

            out: Dict[str, list] = {u: [] for u in selected}
            sel = pa.table({"user": pa.array(selected, pa.string())})  # noqa: F841
            self.con.register("_sel", sel)
            rel = self.con.sql(f"SELECT user, time, pos, item, label{hist} FROM g "
                               "SEMI JOIN _sel USING (user) ORDER BY user, time, pos")
            for batch in _batches(rel, 1 << 16):
                cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                hists = cols[5] if history else [None] * len(cols[0])
                for user, time, pos, item, label, h in zip(*cols[:5], hists):
                    out[user].append((time, pos, item, int(label), None if h is None else tuple(h.split(" "))))
            self.con.unregister("_sel")
            return out

        return Interactions([users[i] for i in order], [npos[i] for i in order], [nneg[i] for i in order],
                            int(n_users), universe, events_of)


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
            db.load_item_keys(items)
            return items

        same_file = plan.items is not None and plan.items.path == plan.events_path
        tables: List[Tuple[str, LineSpec]] = []
        if plan.items is None:
            say(f"{source.name}: reading items")
            items = known(source.load_items())
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
    "iter_line_blocks",
    "resolve_engine",
]
