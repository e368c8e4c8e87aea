"""Raw-file hygiene (issue 14): nan/inf ratings, exact duplicate rows, binary and UTF-16
files. Each rule holds in both engines."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recbench.errors import DataError
from recbench.scenarios import load_scenario

FIX = Path(__file__).parent / "fixtures"
ENGINES = ("python", "duckdb")
YELP_REVIEWS, YELP_BUSINESS = "yelp_academic_dataset_review.json", "yelp_academic_dataset_business.json"


def build(name, folder, engine, **kw):
    kw.setdefault("use_cache", False)
    return load_scenario(name, folder, engine=engine, **kw)


def yelp_with(tmp_path: Path, extra_lines) -> Path:
    """The Yelp fixture (without its blank business name) with extra review lines first."""
    business = (FIX / "yelp" / YELP_BUSINESS).read_text(encoding="utf-8").splitlines()
    (tmp_path / YELP_BUSINESS).write_text("\n".join(b for b in business if "blank_name_biz" not in b) + "\n")
    lines = (FIX / "yelp" / YELP_REVIEWS).read_text(encoding="utf-8").splitlines()
    body = list(extra_lines) + lines
    (tmp_path / YELP_REVIEWS).write_text("\n".join(body) + "\n", encoding="utf-8")
    return tmp_path


# -- nan / inf ratings --------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_and_inf_ratings_are_malformed_rows_in_json(tmp_path, engine):
    first = json.loads((FIX / "yelp" / YELP_REVIEWS).read_text().splitlines()[0])
    bad = []
    for k, stars in enumerate(["NaN", "Infinity", "-Infinity", '"nan"', '"inf"']):
        r = dict(first, review_id=f"bad{k}", date=f"2016-01-0{k + 1} 00:00:00")
        bad.append(json.dumps(r).replace('"stars": 5.0', f'"stars": {stars}'))
    base = build("yelp", FIX / "yelp", engine, num_test=20000)
    sc = build("yelp", yelp_with(tmp_path, bad), engine, num_test=20000)
    assert sc.info["skipped"]["rating is nan or inf"] == 5
    assert sc.info["skipped_examples"]["rating is nan or inf"] == f"{YELP_REVIEWS}:1: nan"
    # not counted as ratings of exactly 3, nor turned into labels
    assert sc.info["dropped_by_rule"] == base.info["dropped_by_rule"]
    pd.testing.assert_frame_equal(sc.test, base.test)
    with pytest.raises(DataError, match=r"at yelp_academic_dataset_review\.json:1: rating is nan or inf \(nan\)"):
        build("yelp", tmp_path, engine, num_test=20, strict=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_and_inf_ratings_are_malformed_rows_in_csv(tmp_path, engine):
    src = FIX / "movielens" / "ml-latest"
    shutil.copy(src / "movies.csv", tmp_path)
    lines = (src / "ratings.csv").read_text().splitlines()
    lines[1:1] = ["1,9,nan,1000001", "1,17,inf,1000002", "1,17,-inf,1000003", "1,17,4.0,nan"]
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    base = build("movielens", src, engine, num_test=20000)
    sc = build("movielens", tmp_path, engine, num_test=20000)
    assert sc.info["skipped"]["rating is nan or inf"] == 3
    reason = "non-numeric rating or timestamp"
    assert sc.info["skipped"][reason] == base.info["skipped"][reason] + 1
    assert sc.info["skipped_examples"]["rating is nan or inf"] == "ratings.csv:2: 'nan'"
    assert sc.info["dropped_by_rule"] == base.info["dropped_by_rule"]
    pd.testing.assert_frame_equal(sc.test, base.test)


def test_custom_inf_rating_is_not_a_like(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,text\n" + "".join(f"i{k},Item {k}\n" for k in range(6)))
    rows = ["user_id,item_id,rating,timestamp"] + [f"u1,i{k},5,{k}" for k in range(4)] + ["u1,i4,1,10", "u1,i5,inf,11"]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    sc = load_scenario("custom", tmp_path, interactions="r.csv", items="items.csv", rating_col="rating",
                       use_cache=False, num_test=100)
    assert sc.info["skipped"] == {"non-numeric rating": 1}
    assert "i5" not in set(sc.test["item_id"])


# -- exact duplicate rows -------------------------------------------------------------------


def yelp_events(lines):
    """(events, of which on a known business) among review lines, by hand."""
    names = {json.loads(b)["business_id"] for b in (FIX / "yelp" / YELP_BUSINESS).read_text().splitlines()
             if json.loads(b)["name"].strip()}
    events = known = 0
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r["stars"] != 3:
            events += 1
            known += r["business_id"] in names
    return events, known


@pytest.mark.parametrize("engine", ENGINES)
def test_exact_duplicate_rows_are_counted_once(tmp_path, engine):
    lines = (FIX / "yelp" / YELP_REVIEWS).read_text(encoding="utf-8").splitlines()
    shutil.copy(FIX / "yelp" / YELP_BUSINESS, tmp_path)
    tripled = lines + lines[:120] + lines[:120]  # the first 120 reviews three times
    (tmp_path / YELP_REVIEWS).write_text("\n".join(tripled) + "\n", encoding="utf-8")
    base = build("yelp", FIX / "yelp", engine, num_test=20000)
    sc = build("yelp", tmp_path, engine, num_test=20000)
    pd.testing.assert_frame_equal(sc.test, base.test)  # histories are not tripled
    events, known = yelp_events(lines[:120])
    assert sc.info["skipped"]["duplicate"] == 2 * known
    assert sc.info["rows_read"] == base.info["rows_read"] + 2 * events
    assert sc.info["skipped"]["unknown item id"] == base.info["skipped"]["unknown item id"] + 2 * (events - known)
    assert sc.info["skipped_examples"]["duplicate"].startswith("user ")
    # duplicates are not fatal in strict mode: the first error is still the real bad row
    with pytest.raises(DataError, match="empty name"):
        build("yelp", tmp_path, engine, num_test=20, strict=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_same_event_in_another_spelling_is_a_duplicate(tmp_path, engine):
    src = FIX / "movielens" / "ml-latest"
    shutil.copy(src / "movies.csv", tmp_path)
    lines = (src / "ratings.csv").read_text().splitlines()
    user, movie, rating, ts = lines[1].split(",")
    lines[2:2] = [f"{user},{movie},{rating},{ts}", f" {user} ,{movie},{float(rating)},{ts}.0"]
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    base = build("movielens", src, engine, num_test=20000)
    sc = build("movielens", tmp_path, engine, num_test=20000)
    assert sc.info["skipped"]["duplicate"] == 2
    assert sc.info["skipped_examples"]["duplicate"] == f"user {user}, item {movie}"
    pd.testing.assert_frame_equal(sc.test, base.test)


@pytest.mark.parametrize("engine", ENGINES)
def test_hm_keeps_repeated_purchases(tmp_path, engine):
    """H&M writes one row per unit bought: two units are the article twice in the history."""
    shutil.copy(FIX / "hm" / "articles.csv", tmp_path)
    articles = [line.split(",")[0] for line in (FIX / "hm" / "articles.csv").read_text().splitlines()[1:6]]
    a, b, c, d = articles[:4]
    me = "f" * 64
    rows = [f"2019-01-0{day},{me},{art},0.01,2" for day, art in ((1, a), (1, a), (2, b), (3, c), (4, d))]
    lines = (FIX / "hm" / "transactions_train.csv").read_text().splitlines()
    (tmp_path / "transactions_train.csv").write_text("\n".join(lines[:1] + rows + lines[1:]) + "\n")
    sc = build("hm", tmp_path, engine, num_test=20000)
    mine = sc.test[sc.test["user_id"] == me]
    assert list(mine["history"].iloc[0]) == [a, a, b]
    assert sorted(mine.loc[mine["label"] == 1, "item_id"]) == sorted([c, d])
    assert "duplicate" not in sc.info["skipped"]


# -- binary and wrongly encoded files ------------------------------------------------------


def ml_folder(tmp_path: Path, ratings: bytes) -> Path:
    shutil.copy(FIX / "movielens" / "ml-latest" / "movies.csv", tmp_path)
    (tmp_path / "ratings.csv").write_bytes(ratings)
    return tmp_path


def zipped(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ratings.csv", text)
    return buf.getvalue()


RATINGS = (FIX / "movielens" / "ml-latest" / "ratings.csv").read_text()
BAD_FILES = [
    ("utf16-bom", RATINGS.encode("utf-16"), r"UTF-16 text \(little-endian byte-order mark FF FE\).*iconv -f UTF-16LE"),
    ("utf16be-bom", RATINGS.encode("utf-16-be").join([b"\xfe\xff", b""]), r"UTF-16 text \(big-endian"),
    ("utf16-no-bom", RATINGS.encode("utf-16-le"), r"UTF-16 text without a byte-order mark.*iconv -f UTF-16LE"),
    ("zip", zipped(RATINGS), r"a zip archive .*unpack it"),
    ("binary", bytes(range(256)) * 64, r"binary data \(NUL bytes\), not a text table"),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case,data,message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_binary_or_utf16_files_are_named_in_one_line(tmp_path, engine, case, data, message):
    folder = ml_folder(tmp_path, data)
    with pytest.raises(DataError, match=r"ratings\.csv is " + message) as err:
        build("movielens", folder, engine)
    text = str(err.value)
    assert "\n" not in text and "\x00" not in text and "not UTF-8 text" in text


@pytest.mark.parametrize("engine", ENGINES)
def test_utf16_json_lines_are_not_reported_as_empty(tmp_path, engine):
    shutil.copy(FIX / "yelp" / YELP_BUSINESS, tmp_path)
    (tmp_path / YELP_REVIEWS).write_bytes((FIX / "yelp" / YELP_REVIEWS).read_text().encode("utf-16"))
    with pytest.raises(DataError, match=r"yelp_academic_dataset_review\.json is UTF-16 text") as err:
        build("yelp", tmp_path, engine)
    assert "empty" not in str(err.value)


def test_a_stray_nul_byte_is_one_bad_row_not_a_binary_file(tmp_path):
    folder = ml_folder(tmp_path, RATINGS.replace("1,17,2,1000110", "1,17,2,1000\x00110").encode())
    base = build("movielens", FIX / "movielens" / "ml-latest", "python", num_test=40)
    for engine in ENGINES:
        sc = build("movielens", folder, engine, num_test=40)
        assert sc.info["skipped"]["non-numeric rating or timestamp"] == \
            base.info["skipped"]["non-numeric rating or timestamp"] + 1
