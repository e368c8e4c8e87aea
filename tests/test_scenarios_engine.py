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
        con.execute("CREATE OR REPLACE TABLE v (x VARCHAR)")
        con.executemany("INSERT INTO v VALUES (?)", [[v] for v in values])
        got = dict(con.execute(f"SELECT x, {sql('x')} FROM v").fetchall())
        read = [v for v in values if got[v] is not None]
        assert len(read) > 200, name  # the SQL does read the usual forms
        assert [got[v] for v in read] == [python(v) for v in read], name
