"""MicroLens loader: quoted titles, all-positive pairs, sampled negatives, awkward rows."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest

import recbench
from recbench.errors import DataError
from recbench.scenarios.io import BuildReport
from recbench.scenarios.microlens import MicroLensSource

FIX = Path(__file__).parent / "fixtures" / "microlens"
PAIRS, TITLES = "MicroLens-50k_pairs.csv", "MicroLens-50k_titles.csv"


def load(raw_dir=FIX, **kw):
    kw.setdefault("num_test", 40)
    kw.setdefault("num_finetune", 60)
    return recbench.load_scenario("microlens", raw_dir=raw_dir, **kw)


def raw_titles():
    with open(FIX / TITLES, newline="") as fh:
        return {r[0]: r[1] for r in list(csv.reader(fh))[1:] if len(r) == 2 and r[1].strip()}


def raw_positives():
    """user -> items in time order (file order on ties), rows the loader keeps."""
    titles = raw_titles()
    rows = []
    with open(FIX / PAIRS, newline="") as fh:
        for n, (user, item, ts) in enumerate(list(csv.reader(fh))[1:]):
            if item in titles and ts.isdigit():
                rows.append((user, float(ts), n, item))
    out = {}
    for user, _, _, item in sorted(rows):
        out.setdefault(user, []).append(item)
    return out


@pytest.fixture(scope="module")
def sc():
    return load(use_cache=False)


def test_shape_and_metadata(sc):
    assert (sc.name, sc.domain, sc.item_noun) == ("microlens", "video", "video")
    assert len(sc.test) == 40 and len(sc.finetune) == 60
    assert sc.test["label"].mean() == 0.5  # 2 held-out positives + 2 sampled negatives per user


def test_labels_and_histories(sc):
    positives, titles = raw_positives(), raw_titles()
    text = sc.item_text()
    for df in (sc.test, sc.finetune):
        for user, group in df.groupby("user_id"):
            items = positives[user]
            held = list(dict.fromkeys(reversed(items)))[:2][::-1]
            history = group["history"].iloc[0]
            assert list(history) == [i for i in items if i not in held][-100:]
            assert sorted(group.loc[group.label == 1, "item_id"]) == sorted(held)
            negatives = list(group.loc[group.label == 0, "item_id"])
            assert len(negatives) == 2 and not set(negatives) & set(items)
            for item in [*group["item_id"], *history]:
                assert text[item] == titles[item]


def test_quoted_titles():
    items = MicroLensSource(FIX, BuildReport()).load_items()
    assert items["3"] == "Cat video, part 2"
    assert items["4"] == 'He said "hello", then left'
    assert "50" not in items and "51" not in items


def test_skipped_counts(sc):
    assert sc.info["skipped"] == {
        "empty title": 1,
        "non-numeric timestamp": 1,
        "unknown item id": 2,  # item 999 (no title row) and item 50 (empty title)
        "wrong number of columns": 1,
    }
    assert sc.info["skipped_examples"]["wrong number of columns"].startswith(f"{TITLES}:52")


def test_deterministic_other_seed_and_disjoint_users(sc):
    again = load(use_cache=False)
    pd.testing.assert_frame_equal(sc.test, again.test)
    pd.testing.assert_frame_equal(sc.finetune, again.finetune)
    other = load(use_cache=False, seed=7)
    assert not other.test.equals(sc.test)
    assert not set(sc.test["user_id"]) & set(sc.finetune["user_id"])


def test_headerless_files(sc, tmp_path):
    for name in (PAIRS, TITLES):
        lines = (FIX / name).read_text().splitlines(True)
        (tmp_path / name).write_text("".join(lines[1:]))
    other = load(raw_dir=tmp_path, use_cache=False)
    pd.testing.assert_frame_equal(sc.test, other.test)


def test_strict_names_file_and_line():
    with pytest.raises(DataError, match=rf"{TITLES}:51\b.*empty title"):
        load(strict=True, use_cache=False)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=rf"{PAIRS} and {TITLES} not found.*westlake-repl/MicroLens"):
        load(raw_dir=tmp_path)
    shutil.copy(FIX / TITLES, tmp_path / TITLES)
    with pytest.raises(DataError, match=rf"{PAIRS} not found"):
        load(raw_dir=tmp_path)


def test_wrong_format(tmp_path):
    shutil.copy(FIX / TITLES, tmp_path / TITLES)
    (tmp_path / PAIRS).write_text("userID,videoID,time\n1,2,3\n")
    with pytest.raises(DataError, match=rf"{PAIRS} line 1: missing column\(s\) user, item, timestamp"):
        load(raw_dir=tmp_path)
