"""MovieLens: the three official layouts (ml-latest CSV with CRLF, ml-1m latin-1 `::`, ml-100k)."""

import shutil

import pandas as pd
import pytest

import recbench
from recbench.errors import DataError

FIX = pytest.importorskip("conftest").FIXTURES / "movielens"


def load(layout, **kw):
    kw.setdefault("num_test", 30)
    kw.setdefault("num_finetune", 10)
    return recbench.load_scenario("movielens", raw_dir=FIX / layout if "raw_dir" not in kw else kw.pop("raw_dir"), **kw)


def raw_ratings(layout):
    if layout == "ml-latest":
        df = pd.read_csv(FIX / layout / "ratings.csv", on_bad_lines="skip")
        df = df[pd.to_numeric(df["rating"], errors="coerce").notna()]
        rows = [(str(u), str(m), r, t) for u, m, r, t in df.itertuples(index=False)]
    elif layout == "ml-1m":
        rows = [line.split("::") for line in (FIX / layout / "ratings.dat").read_text().splitlines()]
    else:
        rows = [line.split("\t") for line in (FIX / layout / "u.data").read_text().splitlines()]
    out = {}  # a user may rate a movie more than once: keep every (rating, time)
    for u, m, r, t in rows:
        out.setdefault((u, m), []).append((float(r), float(t)))
    return out


@pytest.mark.parametrize("layout", ["ml-latest", "ml-1m", "ml-100k"])
def test_labels_histories_and_items(layout):
    sc = load(layout)
    ratings = raw_ratings(layout)
    texts = sc.item_text()
    assert len(sc.test) > 0
    for df in (sc.test, sc.finetune):
        for user, item, label, hist in df.itertuples(index=False):
            rated = [(r, t) for r, t in ratings[(user, item)] if (r > 3) == bool(label) and r != 3]
            assert rated, (user, item, label)  # the label follows a real rating of this pair
            assert item in texts and item not in hist
            for h in hist:  # history: positives only
                assert any(r > 3 for r, _ in ratings[(user, h)])
            if label == 1:  # ...and earlier than the held-out positive
                ts = max(t for _, t in rated)
                assert all(min(t for r, t in ratings[(user, h)] if r > 3) <= ts for h in hist)
    assert set(sc.test.user_id).isdisjoint(sc.finetune.user_id)


def test_title_text_and_encodings():
    assert "Amélie (2001)" in load("ml-1m").items["text"].tolist()  # latin-1 movies.dat
    items = recbench.load_scenario("movielens", raw_dir=FIX / "ml-100k", num_test=100, use_cache=False).items
    assert "Señor Movie (1995)" in items["text"].tolist()  # u.item is latin-1
    latest = load("ml-latest").item_text()
    assert all(t and "," not in t or t.endswith(", The") for t in latest.values())


def test_bad_rows_are_counted_not_fatal():
    sc = load("ml-latest", use_cache=False)
    assert sc.info["skipped"] == {"empty title": 1, "non-numeric rating or timestamp": 1, "unknown item id": 1,
                                  "wrong number of columns": 1}
    assert sc.info["dropped_by_rule"]["rating of exactly 3"] > 0
    assert sc.info["skipped_examples"]["wrong number of columns"].startswith("ratings.csv:")


def test_strict_mode_names_file_and_line():
    with pytest.raises(DataError, match=r"movies\.csv:42.*empty title"):
        load("ml-latest", strict=True, use_cache=False)


def test_seeded_and_deterministic():
    a = load("ml-latest", use_cache=False)
    b = load("ml-latest", use_cache=False)
    pd.testing.assert_frame_equal(a.test, b.test)
    c = load("ml-latest", seed=7, use_cache=False)
    assert not a.test.equals(c.test)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_cache_reuses_and_rebuilds_on_change(tmp_path):
    folder = tmp_path / "movielens"
    shutil.copytree(FIX / "ml-latest", folder)
    first = load("", raw_dir=tmp_path)
    assert load("", raw_dir=tmp_path).info["cache_key"] == first.info["cache_key"]
    with open(folder / "ratings.csv", "a") as fh:
        fh.write("99,1,5.0,2000000\r\n")
    changed = load("", raw_dir=tmp_path)
    assert changed.info["cache_key"] != first.info["cache_key"]
    assert load("", raw_dir=tmp_path, num_test=12).info["cache_key"] != changed.info["cache_key"]


def test_missing_and_wrong_files(tmp_path):
    with pytest.raises(DataError, match=r"ratings\.csv \+ movies\.csv.*grouplens"):
        load("", raw_dir=tmp_path)
    (tmp_path / "movies.csv").write_text("id,name\n1,x\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,5,1\n")
    with pytest.raises(DataError, match=r"movies\.csv line 1: missing column\(s\) movieId, title"):
        load("", raw_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load("", raw_dir=tmp_path / "nope")
