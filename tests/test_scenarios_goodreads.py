"""Goodreads loader: gzipped JSON lines, is_read labels, blank titles, awkward rows."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

import recbench
from recbench.errors import DataError
from recbench.scenarios.goodreads import DATE_FORMAT, parse_date, read_label

FIX = Path(__file__).parent / "fixtures" / "goodreads"
INTER, WORKS = "goodreads_interactions_dedup.json", "goodreads_book_works.json"


def load(raw_dir=FIX, **kw):
    kw.setdefault("num_test", 40)
    kw.setdefault("num_finetune", 60)
    return recbench.load_scenario("goodreads", raw_dir=raw_dir, **kw)


def raw_titles():
    works = [json.loads(line) for line in (FIX / WORKS).read_text().splitlines()]
    return {w["best_book_id"]: w["original_title"].strip() for w in works if w["original_title"].strip()}


def raw_interactions():
    """user -> [(time, line, book, is_read)] for the rows the loader keeps, time-ordered."""
    titles = raw_titles()
    out = {}
    for n, line in enumerate(gzip.open(FIX / (INTER + ".gz"), "rt").read().splitlines()):
        try:
            obj = json.loads(line)
            t = datetime.strptime(obj["date_added"], DATE_FORMAT).timestamp()
        except ValueError:
            continue
        if obj["book_id"] in titles:
            out.setdefault(obj["user_id"], []).append((t, n, obj["book_id"], int(obj["is_read"])))
    return {u: sorted(rows) for u, rows in out.items()}


@pytest.fixture(scope="module")
def sc():
    return load(use_cache=False)


def test_shape_and_metadata(sc):
    assert (sc.name, sc.domain, sc.item_noun) == ("goodreads", "books", "book")
    assert len(sc.test) == 40 and len(sc.finetune) == 60
    assert set(sc.test["label"]) == {0, 1}


def test_labels_histories_and_items(sc):
    inter, titles = raw_interactions(), raw_titles()
    text = sc.item_text()
    for df in (sc.test, sc.finetune):
        for user, group in df.groupby("user_id"):
            rows = inter[user]
            read = {b: y for _, _, b, y in rows}
            for item, label in zip(group["item_id"], group["label"]):
                assert read[item] == label  # is_read decides, not the rating
            positives = [b for _, _, b, y in rows if y == 1]
            held = list(dict.fromkeys(reversed(positives)))[:2][::-1]
            history = group["history"].iloc[0]
            assert list(history) == [b for b in positives if b not in held][-100:]
            assert sorted(group.loc[group.label == 1, "item_id"]) == sorted(held)
            negatives = {b for _, _, b, y in rows if y == 0}
            sampled = set(group.loc[group.label == 0, "item_id"])
            assert sampled <= negatives
            if user != df["user_id"].iloc[-1]:  # the last user may be cut at the target size
                assert len(sampled) == min(len(negatives), 10)
            for item in [*group["item_id"], *history]:
                assert text[item] == titles[item]


def test_skipped_and_dropped_counts(sc):
    unknown = 0
    titles = raw_titles()
    for line in gzip.open(FIX / (INTER + ".gz"), "rt"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        unknown += obj["date_added"] != "sometime in 2015" and obj["book_id"] not in titles
    assert unknown > 0
    assert sc.info["skipped"] == {"bad JSON": 1, "bad date_added": 1, "unknown item id": unknown}
    assert sc.info["dropped_by_rule"] == {"blank title": 3}
    assert sc.info["skipped_examples"]["bad JSON"].startswith(INTER + ".gz:8")


def test_deterministic_other_seed_and_disjoint_users(sc):
    again = load(use_cache=False)
    pd.testing.assert_frame_equal(sc.test, again.test)
    pd.testing.assert_frame_equal(sc.finetune, again.finetune)
    other = load(use_cache=False, seed=7)
    assert not other.test.equals(sc.test)
    assert not set(sc.test["user_id"]) & set(sc.finetune["user_id"])


def test_plain_and_gzipped_files_give_the_same_samples(sc, tmp_path):
    (tmp_path / INTER).write_bytes(gzip.open(FIX / (INTER + ".gz")).read())
    with gzip.open(tmp_path / (WORKS + ".gz"), "wb") as fh:
        fh.write((FIX / WORKS).read_bytes())
    other = load(raw_dir=tmp_path, use_cache=False)
    pd.testing.assert_frame_equal(sc.test, other.test)
    pd.testing.assert_frame_equal(sc.finetune, other.finetune)


def test_strict_names_file_and_line():
    with pytest.raises(DataError, match=rf"{INTER}\.gz:8\b.*bad JSON"):
        load(strict=True, use_cache=False)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=rf"{INTER} and {WORKS} not found.*recbench data download goodreads"):
        load(raw_dir=tmp_path)
    shutil.copy(FIX / WORKS, tmp_path / WORKS)
    with pytest.raises(DataError, match=rf"{INTER} not found"):
        load(raw_dir=tmp_path)


def test_wrong_format(tmp_path):
    shutil.copy(FIX / (INTER + ".gz"), tmp_path / (INTER + ".gz"))
    (tmp_path / WORKS).write_text('{"book_id": "1", "title": "A"}\n')
    with pytest.raises(DataError, match=rf"{WORKS} line 1: .*missing key\(s\) best_book_id, original_title"):
        load(raw_dir=tmp_path)
    (tmp_path / WORKS).write_text("best_book_id,original_title\n1,A\n")
    with pytest.raises(DataError, match=rf"{WORKS} line 1: expected JSON lines"):
        load(raw_dir=tmp_path)


def test_parse_date_matches_strptime():
    texts = ["Thu Dec 17 11:10:42 -0800 2015", "Mon Aug 01 13:41:57 +0530 2016", "Sat Jan 03 00:00:00 +0000 2009",
             "Tue Feb 29 23:59:59 -1000 2000", "Wed Mar 01 00:00:00 +01:00 2017"]
    texts += [line.split('"date_added": "')[1][:30] for line in gzip.open(FIX / (INTER + ".gz"), "rt")
              if '"date_added": "' in line and "sometime" not in line]
    assert len(texts) > 200
    for text in texts:
        assert parse_date(text) == datetime.strptime(text, DATE_FORMAT).timestamp(), text
    for bad in ("", None, "sometime in 2015", "Thu Dec 45 11:10:42 -0800 2015", "Thu Foo 17 11:10:42 -0800 2015"):
        assert parse_date(bad) is None


def test_read_label():
    assert [read_label(v) for v in (True, False, 1, 0, "true", "False", "1")] == [1, 0, 1, 0, 1, 0, 1]
    assert [read_label(v) for v in (None, 2, "yes", [])] == [None] * 4
