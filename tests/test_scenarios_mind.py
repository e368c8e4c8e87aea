"""MIND loader: official news.tsv/behaviors.tsv layout, explicit histories, awkward rows."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

import recbench
from recbench.errors import DataError
from recbench.scenarios.mind import parse_time

FIX = Path(__file__).parent / "fixtures" / "mind"
TRAIN = FIX / "MINDsmall_train"


def load(raw_dir=FIX, **kw):
    kw.setdefault("num_test", 40)
    kw.setdefault("num_finetune", 60)
    return recbench.load_scenario("mind", raw_dir=raw_dir, **kw)


def raw_news():
    news = {}
    for line in (TRAIN / "news.tsv").read_text().splitlines():
        f = line.split("\t")
        news[f[0]] = f[3]
    return news


def raw_impressions():
    """user -> list of (time, line, history tuple, {item: label}) for rows the protocol keeps."""
    out = {}
    for lineno, line in enumerate((TRAIN / "behaviors.tsv").read_text().splitlines(), 1):
        _, user, when, hist, imps = line.split("\t")
        try:
            t = datetime.strptime(when, "%m/%d/%Y %I:%M:%S %p")
        except ValueError:
            continue
        if not hist.split():
            continue
        labels = {}
        for tok in imps.split():
            item, _, lab = tok.rpartition("-")
            if item and lab in ("0", "1"):
                labels[item] = max(labels.get(item, 0), int(lab))
        out.setdefault(user, []).append((t, lineno, tuple(hist.split()), labels))
    return out


@pytest.fixture(scope="module")
def sc():
    return load(use_cache=False)


def test_shape_and_metadata(sc):
    assert (sc.name, sc.domain, sc.item_noun) == ("mind", "news", "news article")
    assert len(sc.test) == 40 and 0 < len(sc.finetune) <= 60
    assert list(sc.test.columns) == ["user_id", "item_id", "label", "history"]
    assert set(sc.test["label"]) == {0, 1}


def test_labels_histories_and_items(sc):
    news, imps = raw_news(), raw_impressions()
    text = sc.item_text()
    for df in (sc.test, sc.finetune):
        for user, item, label, history in df.itertuples(index=False):
            rows = imps[user]
            shown = {}
            for *_, labels in rows:
                for i, y in labels.items():
                    shown[i] = max(shown.get(i, 0), y)
            assert item in shown, (user, item)
            assert shown[item] == label  # a clicked item is never a negative
            latest = max(rows, key=lambda r: (r[0], r[1]))
            assert list(history) == [h for h in latest[2] if h in news][-100:]
            for i in [item, *history]:
                assert text[i] == news[i]
    assert "N9999" not in {h for hist in sc.test["history"] for h in hist}


def test_skipped_and_dropped_counts(sc):
    assert sc.info["skipped"]["bad time"] == 1
    assert sc.info["skipped"]["malformed impression token"] == 2
    assert sc.info["skipped"]["unknown item id"] == 3  # N9001/N9002 in rows with a history
    assert sc.info["dropped_by_rule"] == {"impression with empty history": 5}
    assert sc.info["skipped_examples"]["malformed impression token"].startswith("behaviors.tsv:")
    users = set(sc.test["user_id"]) | set(sc.finetune["user_id"])
    assert not users & {"U130", "U131"}  # empty history only


def test_deterministic_other_seed_and_disjoint_users(sc):
    again = load(use_cache=False)
    pd.testing.assert_frame_equal(sc.test, again.test)
    pd.testing.assert_frame_equal(sc.finetune, again.finetune)
    other = load(use_cache=False, seed=7)
    assert not other.test.equals(sc.test)
    assert not set(sc.test["user_id"]) & set(sc.finetune["user_id"])


def test_folder_layouts_and_crlf(sc):
    assert b"\r\n" in (FIX / "crlf" / "behaviors.tsv").read_bytes()
    for raw_dir in (TRAIN, FIX / "crlf", FIX.parent):  # split folder, CRLF copy, ROOT/mind
        other = load(raw_dir=raw_dir, use_cache=False)
        pd.testing.assert_frame_equal(sc.test, other.test)
        pd.testing.assert_frame_equal(sc.finetune, other.finetune)


def test_cache_round_trip(sc):
    first = load()
    second = load()
    pd.testing.assert_frame_equal(first.test, sc.test)
    pd.testing.assert_frame_equal(second.test, sc.test)


def test_strict_names_file_and_line():
    with pytest.raises(DataError, match=r"behaviors\.tsv:3\b.*bad time"):
        load(strict=True, use_cache=False)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"news\.tsv and behaviors\.tsv not found.*msnews\.github\.io"):
        load(raw_dir=tmp_path)
    shutil.copy(TRAIN / "news.tsv", tmp_path / "news.tsv")
    with pytest.raises(DataError, match=r"behaviors\.tsv not found"):
        load(raw_dir=tmp_path)


def test_ambiguous_split_folders(tmp_path):
    for split in ("MINDsmall_dev", "MINDlarge_dev"):
        shutil.copytree(TRAIN, tmp_path / split)
    with pytest.raises(DataError, match="several MIND splits"):
        load(raw_dir=tmp_path)


def test_wrong_format_names_file_and_line(tmp_path):
    shutil.copy(TRAIN / "behaviors.tsv", tmp_path / "news.tsv")
    shutil.copy(TRAIN / "news.tsv", tmp_path / "behaviors.tsv")
    with pytest.raises(DataError, match=r"news\.tsv line 1: expected MIND news\.tsv.*8 tab-separated"):
        load(raw_dir=tmp_path)


def test_parse_time():
    expected = datetime(2019, 11, 11, 21, 5, 58, tzinfo=timezone.utc).timestamp()
    assert parse_time("11/11/2019 9:05:58 PM") == expected
    assert parse_time("11/11/2019 12:00:00 AM") == datetime(2019, 11, 11, tzinfo=timezone.utc).timestamp()
    assert parse_time("13/45/2019 10:00:00 AM") is None
    assert parse_time("") is None
    assert parse_time("1/2/2019 1:02:03 AM") == parse_time("01/02/2019 01:02:03 AM")
