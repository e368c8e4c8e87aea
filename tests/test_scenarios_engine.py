"""The columnar engine (DuckDB) builds exactly what the Python reader builds.

Every fixture is built by both engines (engine="python" is the streaming reader the
project had before the engine) and the DataFrames, the counts of bad rows by reason, their
first examples (file:line) and the --strict error must be equal.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbench.errors import ConfigError, DataError
from recbench.scenarios import get_source, load_scenario
from recbench.scenarios.engine import EngineSettings, iter_line_blocks, resolve_engine
from recbench.scenarios.io import BuildReport

FIX = Path(__file__).parent / "fixtures"
CASES = [
    ("goodreads", "goodreads"), ("yelp", "yelp"), ("hotelrec", "hotelrec"), ("cds", "cds/2014"),
    ("cds", "cds/2018"), ("cds", "cds/2023"), ("electronics", "electronics"), ("hm", "hm"),
    ("mind", "mind/MINDsmall_train"), ("mind", "mind/crlf"), ("movielens", "movielens/ml-latest"),
    ("movielens", "movielens/ml-1m"), ("movielens", "movielens/ml-100k"),
]
INFO = ("rows_read", "skipped", "skipped_examples", "dropped_by_rule", "users_total", "items_total",
        "data_fingerprint", "finetune_fingerprint")


def build(name, folder, engine, **kw):
    kw.setdefault("use_cache", False)
    return load_scenario(name, folder, engine=engine, **kw)


def assert_same(a, b) -> None:
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.finetune, b.finetune)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert {k: a.info.get(k) for k in INFO} == {k: b.info.get(k) for k in INFO}


def strict_error(name, folder, engine) -> str:
    try:
        build(name, folder, engine, num_test=40, num_finetune=40, strict=True)
    except DataError as exc:
        return str(exc)
    return "no error"


@pytest.mark.parametrize("name,folder", CASES, ids=[c[1] for c in CASES])
def test_both_engines_build_the_same_scenario(name, folder):
    for seed, num_test, num_finetune in ((2024, 40, 60), (7, 20000, 100000)):
        py = build(name, FIX / folder, "python", seed=seed, num_test=num_test, num_finetune=num_finetune)
        dd = build(name, FIX / folder, "duckdb", seed=seed, num_test=num_test, num_finetune=num_finetune)
        assert len(py.test) > 0
        assert_same(py, dd)
    assert strict_error(name, FIX / folder, "duckdb") == strict_error(name, FIX / folder, "python")


def test_the_large_file_loaders_have_a_columnar_plan():
    for name, folder in CASES:
        src = get_source(name)(FIX / folder, BuildReport())
        assert src.columnar() is not None, name


def quirky_yelp(tmp_path: Path) -> Path:
    """The Yelp fixture plus lines that DuckDB's parser reads but Python's rejects or reads
    differently, and valid lines in unusual spellings: each must go to the Python path."""
    shutil.copy(FIX / "yelp" / "yelp_academic_dataset_business.json", tmp_path)
    lines = (FIX / "yelp" / "yelp_academic_dataset_review.json").read_bytes().splitlines(keepends=True)
    good = json.loads(lines[0])
    user, biz = "uQuirk", good["business_id"]

    def review(**kw) -> dict:
        return {"review_id": "q", "user_id": user, "business_id": biz, "stars": 5.0,
                "date": "2015-01-01 00:00:00", **kw}

    extra = [
        json.dumps(review(date="2015-01-02 00:00:00")),
        json.dumps(review(date="2015-01-03 00:00:00")).replace('"stars": 5.0', '"stars": 5.0, "useful": nan'),
        json.dumps(review(date="2015-01-04 00:00:00"))[:-1] + ", }",  # trailing comma: bad JSON for Python
        json.dumps(review(date="2015-01-05 00:00:00")).replace('"stars": 5.0', '"stars": 1.0, "stars": 5.0'),
        json.dumps(review(date="2015-01-06 00:00:00")).replace('"user_id"', '"user\\u005fid": "other", "user_id"'),
        json.dumps(review(date="2015-01-07 00:00:00", useful=float("nan"))),  # Python's NaN: valid for both
        json.dumps(review(date="2015-01-08T00:00:00", stars=2)),  # ISO T, integer rating
        json.dumps(review(date=" 2015-01-09 00:00:00", stars="1")),  # blanks, rating as a string
        json.dumps(review(date="2015-01-10 00:00:00", user_id=f" {user} ")),
        json.dumps(review(date="2015-02-30 00:00:00")),  # no such day
        json.dumps(review(date="2015-01-11 00:00:00", stars=True)),  # float(True) == 1.0
        "\ufeff" + json.dumps(review(date="2015-01-12 00:00:00")),  # a BOM that is not on line 1
        json.dumps(review(date="2015-01-13 00:00:00", stars=1), ensure_ascii=False).replace(user, "uQu\u00efrk"),
        json.dumps(review(date="2015-01-14 00:00:00", stars=1.0000000000000002)),
        "   ",
        json.dumps(review(date="2015-01-15 00:00:00")).replace(": ", ":\t"),
    ]
    body = b"".join(lines[:30]) + "\r\n".join(extra).encode("utf-8") + b"\r\n" + b"".join(lines[30:])
    (tmp_path / "yelp_academic_dataset_review.json").write_bytes(body)
    return tmp_path


def test_json_quirks_are_read_as_python_reads_them(tmp_path):
    folder = quirky_yelp(tmp_path)
    py = build("yelp", folder, "python", num_test=20000)
    dd = build("yelp", folder, "duckdb", num_test=20000)
    assert_same(py, dd)
    assert py.info["skipped"]["bad JSON"] >= 3  # the fixture's own bad line, nan and the trailing comma
    quirk = py.test[py.test["user_id"] == "uQuirk"]
    assert len(quirk) > 0


def test_gzip_and_crlf_give_the_same_samples(tmp_path):
    src = FIX / "yelp"
    shutil.copy(src / "yelp_academic_dataset_business.json", tmp_path)
    text = (src / "yelp_academic_dataset_review.json").read_bytes().replace(b"\n", b"\r\n")
    with gzip.open(tmp_path / "yelp_academic_dataset_review.json.gz", "wb") as fh:
        fh.write(text)
    plain = build("yelp", src, "duckdb", num_test=60)
    packed = build("yelp", tmp_path, "duckdb", num_test=60)
    pd.testing.assert_frame_equal(plain.test, packed.test)
    assert plain.info["skipped"] == packed.info["skipped"]


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_lines_are_cut_as_python_iterates_a_binary_file(tmp_path, block):
    rng = random.Random(block)
    alphabet = [b"a", b"b", b"\n", b"\r", b"\r\n", b" ", b"\xff", b"\xc3\xa9", b"{}", b"\t"]
    for case in range(20):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        path = tmp_path / f"f{case}.txt"
        path.write_bytes(data)
        with open(path, "rb") as fh:
            expected = list(enumerate(fh, 1))
        got = []
        for blk in iter_line_blocks(path, block_bytes=block):
            for i in range(len(blk)):
                ln = blk.first + i
                got.append((ln, blk.raw(ln)))
                assert blk.data[blk.starts[i]:blk.ends[i]] == blk.raw(ln).rstrip(b"\r\n")
        assert got == expected


def test_engine_choice_and_settings(monkeypatch):
    assert resolve_engine(None) == "duckdb"
    monkeypatch.setenv("RECBENCH_ENGINE", "Python")
    assert resolve_engine(None) == "python"
    assert resolve_engine("duckdb") == "duckdb"
    with pytest.raises(ConfigError, match="unknown engine 'spark'; choose one of: duckdb, python"):
        resolve_engine("spark")
    monkeypatch.setenv("RECBENCH_DUCKDB_MEMORY", "300MB")
    monkeypatch.setenv("RECBENCH_DUCKDB_THREADS", "1")
    s = EngineSettings.from_env()
    assert (s.memory_limit, s.threads) == ("300MB", 1)
    # the environment's engine is used by load_scenario (the fallback for CLI users)
    sc = load_scenario("movielens", FIX / "movielens" / "ml-latest", use_cache=False, num_test=40)
    assert sc.info["rows_read"] == 82


def test_sql_readings_equal_python_ones_on_random_values():
    """Every value a loader's SQL reads must read the same in Python (NULL: left to Python)."""
    import duckdb

    from recbench.scenarios import engine as E
    from recbench.scenarios.goodreads import date_sql, parse_date
    from recbench.scenarios.mind import parse_time as mind_time
    from recbench.scenarios.mind import time_sql
    from recbench.scenarios.reviews import parse_time as iso_time

    rng = random.Random(7)

    def n(lo, hi):
        v = rng.randint(lo, hi)
        return f"{v:02d}" if rng.random() < 0.7 else str(v)

    def year():
        return rng.choice(["2015", "0000", "0001", "9999", str(rng.randint(1, 9999)).zfill(4)])

    def number():
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 17)))
        frac = rng.choice(["", ".", "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 17)))])
        return rng.choice(["", "-", "+", " "]) + digits + frac

    def as_float(text):
        try:
            return float(text)
        except ValueError:
            return None

    days, months = ["Mon", "Thu", "Sun", "Xyz"], ["Jan", "Feb", "Dec", "dec"]
    cases = {
        "goodreads date": (date_sql, parse_date, lambda: f"{rng.choice(days)} {rng.choice(months)} {n(0, 39)} "
                           f"{n(0, 29)}:{n(0, 69)}:{n(0, 69)} {rng.choice('+-')}{n(0, 99)}{n(0, 99)} {year()}"),
        "goodreads date, as JSON": (lambda x: date_sql(f"('\"' || {x} || '\"')", quoted=True), parse_date,
                                    lambda: f"{rng.choice(days)} {rng.choice(months)} {n(0, 39)} {n(0, 29)}:"
                                            f"{n(0, 69)}:{n(0, 69)} {rng.choice('+-')}{n(0, 99)}{n(0, 99)} {year()}"),
        "mind time": (time_sql, mind_time, lambda: f"{n(0, 13)}/{n(0, 33)}/{year()} {n(0, 13)}:{n(0, 61)}:"
                      f"{n(0, 61)} {rng.choice(['AM', 'PM', 'am'])}"),
        "iso time": (E.iso_seconds, iso_time, lambda: f"{year()}-{n(0, 13)}-{n(0, 33)}{rng.choice(' Tt')}"
                     f"{n(0, 25)}:{n(0, 61)}:{n(0, 61)}"),
        "number": (E.text_number, as_float, number),
        "integer": (lambda x: E.text_number(x, integer=True), as_float, number),
    }
    con = duckdb.connect()
    for name, (sql, python, make) in cases.items():
        values = sorted({make() for _ in range(5000)})
        con.execute("CREATE OR REPLACE TABLE v AS SELECT unnest(?::VARCHAR[]) AS x", [values])
        got = dict(con.execute(f"SELECT x, {sql('x')} FROM v").fetchall())
        read = [v for v in values if got[v] is not None]
        assert len(read) > 200, name  # the SQL does read the usual forms
        assert [got[v] for v in read] == [python(v) for v in read], name


# -- DuckDB's JSON reader: ranks, SQL reasons, the narrow pass --------------------------------


def goodreads_with(tmp_path: Path, lines) -> Path:
    """The Goodreads fixture with these interaction lines (text) instead of its own."""
    shutil.copy(FIX / "goodreads" / "goodreads_book_works.json", tmp_path)
    (tmp_path / "goodreads_interactions_dedup.json").write_bytes("".join(lines).encode("utf-8"))
    return tmp_path


def fixture_lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines(keepends=True)


def test_blank_lines_do_not_shift_the_reported_lines(tmp_path):
    """DuckDB's reader numbers non-blank lines only; bad rows are still reported at their line."""
    lines = fixture_lines(FIX / "goodreads" / "goodreads_interactions_dedup.json.gz")
    good = json.loads(lines[0])
    out = []
    for k, line in enumerate(lines):
        out.append(line if k % 7 else line.replace("\n", "\r\n"))
        if k % 11 == 3:
            out.append(["\n", "   \n", "\t\r\n", "\x0b\n", "\x0c \n", "\r\n"][k % 6])
        if k in (40, 90, 150):
            out.append(json.dumps(dict(good, is_read=None)) + "\n")  # an SQL reason
            out.append(json.dumps(dict(good, date_added="someday")) + "\n")  # Python's call
            out.append("{not json\n")
    folder = goodreads_with(tmp_path, out)
    py = build("goodreads", folder, "python", num_test=20000)
    dd = build("goodreads", folder, "duckdb", num_test=20000)
    assert_same(py, dd)
    assert py.info["skipped"]["bad is_read"] == 3 and py.info["skipped"]["bad date_added"] >= 3
    assert py.info["skipped_examples"]["bad is_read"].startswith("goodreads_interactions_dedup.json:")
    assert strict_error("goodreads", folder, "duckdb") == strict_error("goodreads", folder, "python")


def yelp_bad_rows(tmp_path: Path) -> Path:
    """The Yelp fixture with many rows of each bad-row reason the SQL tells, and odd valid ones."""
    shutil.copy(FIX / "yelp" / "yelp_academic_dataset_business.json", tmp_path)
    lines = fixture_lines(FIX / "yelp" / "yelp_academic_dataset_review.json")
    first = json.loads(lines[0])
    odd = [dict(first, user_id=None), dict(first, user_id=""), dict(first, user_id=7), dict(first, business_id=""),
           dict(first, business_id=[]), dict(first, stars=None), dict(first, stars=""), dict(first, stars={}),
           dict(first, stars="4.5"), dict(first, stars=True), dict(first, date=None), dict(first, date=20160101),
           dict(first, date=""), dict(first, date="2016-13-01 00:00:00"), dict(first, stars=3),
           dict(first, user_id="   ")]
    body = []
    for k, line in enumerate(lines):
        body.append(line)
        if k % 9 == 0:
            body.append(json.dumps(dict(odd[k % len(odd)], review_id=f"odd{k}")) + "\n")
    (tmp_path / "yelp_academic_dataset_review.json").write_text("".join(body), encoding="utf-8")
    return tmp_path


def test_bad_rows_counted_in_sql_match_the_python_reader(tmp_path, monkeypatch):
    from recbench.scenarios import engine as E

    folder = yelp_bad_rows(tmp_path)
    py = build("yelp", folder, "python", num_test=20000)
    calls = []
    real = E.Session._python_line
    monkeypatch.setattr(E.Session, "_python_line", lambda self, *a, **k: calls.append(a[1]) or real(self, *a, **k))
    dd = build("yelp", folder, "duckdb", num_test=20000)
    assert_same(py, dd)
    for reason in ("missing user or item id", "missing or non-numeric rating", "missing or bad time"):
        assert py.info["skipped"][reason] >= 3, reason
    # the narrow pass reads the lines SQL cannot read, and one line per SQL reason, not all bad rows
    bad = sum(n for r, n in py.info["skipped"].items() if r not in ("unknown item id", "duplicate"))
    assert len(calls) < bad
    assert strict_error("yelp", folder, "duckdb") == strict_error("yelp", folder, "python")


@pytest.mark.parametrize("name,folder", [("goodreads", "goodreads"), ("yelp", "yelp"), ("cds", "cds/2018"),
                                         ("cds", "cds/2023")])
def test_the_text_splitter_reads_json_lines_the_same(name, folder, monkeypatch):
    """The path used when DuckDB's JSON reader refuses a file gives the same samples too."""
    from recbench.scenarios import engine as E

    py = build(name, FIX / folder, "python", num_test=20000)
    monkeypatch.setattr(E.EngineSettings, "from_env", classmethod(lambda cls: cls(json_reader="split")))
    assert_same(py, build(name, FIX / folder, "duckdb", num_test=20000))


def test_a_truncated_gzip_gives_the_python_readers_error(tmp_path):
    data = gzip.compress("".join(fixture_lines(FIX / "goodreads" / "goodreads_interactions_dedup.json.gz")).encode())
    shutil.copy(FIX / "goodreads" / "goodreads_book_works.json", tmp_path)
    (tmp_path / "goodreads_interactions_dedup.json.gz").write_bytes(data[: len(data) * 2 // 3])
    errors = []
    for engine in ("python", "duckdb"):
        with pytest.raises(DataError) as err:
            build("goodreads", tmp_path, engine, num_test=40)
        errors.append(str(err.value))
    assert errors[0] == errors[1] and "truncated or corrupt compressed file" in errors[0]


def test_ranks_of_duckdbs_json_reader_map_to_line_numbers(tmp_path):
    """iter_ranked_lines finds, for each rank of DuckDB's JSON reader, the line it read."""
    import duckdb

    from recbench.scenarios.engine import iter_ranked_lines

    rng = random.Random(5)
    parts = [b"\xef\xbb\xbf"]
    for k in range(3000):
        parts.append(rng.choice([b"", b"", b"", b"\n", b"  \n", b"\r\n", b"\x0b\x0c\n", b"\t \n"]))
        parts.append(rng.choice([b'{"k": %d}' % k, b'  {"k": %d} ' % k, b'{"k": %d, }' % k, b"[%d]" % k,
                                 b'{"k": "\xff"}', b"nope %d" % k]) + rng.choice([b"\n", b"\r\n"]))
    path = tmp_path / "ranks.json"
    path.write_bytes(b"".join(parts))
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("CREATE TABLE r AS SELECT json::VARCHAR AS t FROM read_ndjson_objects(?, ignore_errors=true)",
                [str(path)])
    texts = [t for (t,) in con.execute("SELECT t FROM r ORDER BY rowid").fetchall()]
    found = list(iter_ranked_lines(path, np.arange(len(texts))))
    with open(path, "rb") as fh:
        raw_lines = list(fh)
    assert [r for r, _, _ in found] == list(range(len(texts)))
    for (rank, ln, raw), text in zip(found, texts):
        assert raw == raw_lines[ln - 1]
        if text is not None:
            line = raw.strip(b" \t\n\r\x0b\x0c")
            assert (line[3:] if ln == 1 else line).decode() == text
    nonblank = [k for k, raw in enumerate(raw_lines, 1) if raw.replace(b"\xef\xbb\xbf", b"", k == 1).strip()]
    assert [ln for _, ln, _ in found] == nonblank


JSON_LINES = [("goodreads", "goodreads"), ("yelp", "yelp"), ("cds", "cds/2018"), ("cds", "cds/2023"),
              ("electronics", "electronics")]


@pytest.mark.parametrize("name,folder", JSON_LINES, ids=[c[1] for c in JSON_LINES])
def test_the_json_readers_order_is_kept_by_every_loaders_sql(name, folder):
    """Ranks are rowids only if DuckDB inserts in file order (batches); an operator such as
    a join (DuckDB makes one of a long IN list) would lose it. The engine checks the plan
    and falls back to its line splitter; this test keeps the loaders on the fast path."""
    from recbench.scenarios import engine as E

    plan = get_source(name)(FIX / folder, BuildReport()).columnar()
    specs = [(plan.events_path, plan.events())] + ([(plan.items.path, plan.items.spec())] if plan.items else [])
    with E.Session() as db:
        db.con.execute("SET preserve_insertion_order = true")
        for path, spec in specs:
            assert spec.json_lines
            assert db.keeps_order(*E.Session.json_lines_create(path, "t", spec)), path.name
        # and what makes it fail is caught
        create, params = E.Session.json_lines_create(plan.events_path, "t", plan.events())
        worse = create.replace("SELECT st,", "SELECT st IN ('a', 'b', 'c', 'd', 'e', 'f') AS x, st,", 1)
        assert not db.keeps_order(worse, params)


def test_json_line_ok_passes_only_lines_pythons_json_reads():
    """Lines that DuckDB parses and json_line_ok passes must be valid for Python's json too
    (nan/inf spellings and trailing commas, which DuckDB's parser accepts, must not pass)."""
    import duckdb

    from recbench.scenarios import engine as E

    rng = random.Random(11)
    atoms = ['"s"', '"a,}"', '": nan"', "1", "-2.5", "true", "null", '"x: {"', "[]", "{}"] * 3 + [
        "NaN", "nan", "-Infinity", "inf", "+inf", "INF"]

    def value(depth: int) -> str:
        kind = rng.random()
        if depth < 2 and kind < 0.2:
            items = [value(depth + 1) for _ in range(rng.randint(0, 3))]
            return "[" + rng.choice([", ", ",", " , "]).join(items) + rng.choice(["", "", "", ",", " ,"]) + "]"
        if depth < 2 and kind < 0.35:
            return obj(depth + 1)
        return rng.choice(atoms)

    def obj(depth: int) -> str:
        members = [f'"k{i}"{rng.choice([":", ": ", " : ", chr(9) + ":"])}{value(depth)}' for i in range(rng.randint(1, 4))]
        return "{" + rng.choice([", ", ","]).join(members) + rng.choice(["", "", "", "", "", ",", " ,", ",\t"]) + "}"

    lines = sorted({obj(0) for _ in range(4000)})
    con = duckdb.connect()
    con.execute("CREATE TABLE v AS SELECT unnest(?::VARCHAR[]) AS t", [lines])
    passed = [t for (t,) in con.execute(f"SELECT t FROM v WHERE json_valid(t) AND {E.json_line_ok('t')}").fetchall()]
    for t in passed:
        json.loads(t)  # raises if the SQL let a line through that Python rejects
    assert len(passed) > 500
    rejected = {t for (t,) in con.execute(f"SELECT t FROM v WHERE NOT {E.json_line_ok('t')}").fetchall()}
    assert any(", }" in t or ",}" in t for t in rejected) and any(": nan" in t for t in rejected)


def test_json_numbers_read_as_python_reads_them():
    """json_number on what from_json gives for a JSON number equals float() of Python's value."""
    import math

    import duckdb

    from recbench.scenarios import engine as E

    rng = random.Random(3)
    values = ["-0", "0", "4.5", "1e5", "1E400", "-1e-400", "12345678901234567890123", "9007199254740993", "0.1",
              "2.9999999999999999999", '"4.5"', "true", "null", "[1]", "{}"]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25))).lstrip("0") or "0"
        frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 25)))
        values.append(rng.choice(["", "-"]) + digits + ("." + frac if frac else "")
                      + rng.choice(["", "e5", "E-7", "e+300", "e-320", "e400"]))
    con = duckdb.connect()
    con.execute("CREATE TABLE v AS SELECT unnest(?::VARCHAR[]) AS x", [['{"a": ' + v + "}" for v in values]])
    got = con.execute(f"SELECT x, {E.json_number('s.a')} FROM (SELECT x, from_json_strict(x, "
                      """'{"a": "JSON"}') AS s FROM v)""").fetchall()
    read = 0
    for line, value in got:
        py = json.loads(line)["a"]
        want = float(py) if isinstance(py, (int, float)) and not isinstance(py, bool) else None
        if want is not None and not math.isfinite(want):
            want = None
        if value is not None:
            read += 1
            assert value == want, line
    assert read > 2000


TEXT_FILES = [("movielens", "movielens/ml-latest"), ("movielens", "movielens/ml-1m"), ("hm", "hm"),
              ("mind", "mind/crlf"), ("hotelrec", "hotelrec")]


@pytest.mark.parametrize("how", ["python cuts", "duckdb refuses"])
@pytest.mark.parametrize("name,folder", TEXT_FILES, ids=[c[1] for c in TEXT_FILES])
def test_blocks_duckdb_cannot_split_are_cut_by_python(name, folder, how, monkeypatch):
    """Raw blocks that are not UTF-8 (or that DuckDB refuses) are cut into lines by Python,
    each line decoded on its own: same samples."""
    from recbench.scenarios import engine as E

    py = build(name, FIX / folder, "python", num_test=20000)
    if how == "python cuts":
        monkeypatch.setattr(E, "_is_utf8", lambda data, within=None: False)
    else:  # DuckDB fails after part of the rows went in: they are taken out again
        import duckdb

        real = E.Session._insert

        def insert(self, tabs, sources):
            real(self, tabs, sources)
            if any(raw == E.CHUNK_LINES for _, raw in sources):
                raise duckdb.InvalidInputException("refused")

        monkeypatch.setattr(E.Session, "_insert", insert)
    assert_same(py, build(name, FIX / folder, "duckdb", num_test=20000))


def test_undecodable_lines_in_a_text_file(tmp_path):
    src = FIX / "movielens" / "ml-latest"
    shutil.copy(src / "movies.csv", tmp_path)
    lines = (src / "ratings.csv").read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b",", b"\xff,", 1)
    lines[40] = b"\xef\xbb\xbf" + lines[40]
    (tmp_path / "ratings.csv").write_bytes(b"".join(lines))
    py = build("movielens", tmp_path, "python", num_test=20000)
    dd = build("movielens", tmp_path, "duckdb", num_test=20000)
    assert_same(py, dd)
    assert py.info["skipped"]["undecodable bytes"] == 1
    assert strict_error("movielens", tmp_path, "duckdb") == strict_error("movielens", tmp_path, "python")
