"""Yelp scenario on tiny files in the Yelp Open Dataset format."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from recbench.errors import DataError
from recbench.scenarios import load_scenario
from recbench.scenarios.io import BuildReport
from recbench.scenarios.yelp import BUSINESSES, REVIEWS, YelpSource, parse_time

FIX = Path(__file__).parent / "fixtures" / "yelp"
PLANTED = {"bad JSON": 1, "empty name": 1, "unknown item id": 3}


def raw_truth():
    """(business names, user -> [(time, order, business, label)], number of 3-star rows)."""
    names = {}
    for line in (FIX / BUSINESSES).read_text(encoding="utf-8").splitlines():
        b = json.loads(line)
        if b["name"].strip():
            names[b["business_id"]] = b["name"]
    events, threes = defaultdict(list), 0
    for k, line in enumerate((FIX / REVIEWS).read_bytes().decode("utf-8").splitlines()):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r["stars"] == 3:
            threes += 1
        elif r["business_id"] in names:
            t = datetime.strptime(r["date"], "%Y-%m-%d %H:%M:%S")
            events[r["user_id"]].append((t, k, r["business_id"], int(r["stars"] > 3)))
    for evs in events.values():
        evs.sort()
    return names, events, threes


def check_samples(df: pd.DataFrame, events) -> None:
    for user, rows in df.groupby("user_id", sort=False):
        pos = [i for _, _, i, y in events[user] if y == 1]
        neg = {i for _, _, i, y in events[user] if y == 0} - set(pos)
        assert len(pos) >= 3 and neg
        held = pos[-2:]
        for item, label, hist in zip(rows["item_id"], rows["label"], rows["history"]):
            assert list(hist) == [i for i in pos[:-2] if i not in held]
            assert item not in hist
            assert item in held if label == 1 else item in neg
        assert (rows["label"] == 0).sum() <= 10


def test_samples_follow_the_protocol():
    sc = load_scenario("yelp", FIX, num_test=40, num_finetune=40, use_cache=False)
    names, events, threes = raw_truth()
    assert len(sc.test) == 40 and len(sc.finetune) == 40
    check_samples(sc.test, events)
    check_samples(sc.finetune, events)
    assert set(sc.test["user_id"]).isdisjoint(sc.finetune["user_id"])
    assert "ufew" not in set(sc.test["user_id"]) | set(sc.finetune["user_id"])
    assert sc.info["skipped"] == PLANTED
    assert sc.info["dropped_by_rule"] == {"rating of exactly 3": threes}
    assert dict(zip(sc.items["item_id"], sc.items["text"])) == {i: names[i] for i in sc.items["item_id"]}
    assert (sc.domain, sc.item_noun) == ("restaurants", "restaurant")
    assert YelpSource.default_num_finetune == 0 and YelpSource.downloads == ()


def test_item_text_is_the_name():
    items = YelpSource(FIX, BuildReport()).load_items()
    assert items["biz000-xxx_AbC00"] == "Joe's Pizza & Pasta"
    assert items["biz001-xxx_AbC01"] == "Café Müller"
    assert "blank_name_biz" not in items and len(items) == 40


def test_parse_time():
    assert parse_time("2016-03-09 00:00:00") == 1457481600.0
    assert parse_time("2016-03-09") == 1457481600.0
    assert parse_time("09/03/2016") is None and parse_time(None) is None


def test_deterministic_for_a_seed_and_different_for_another():
    a = load_scenario("yelp", FIX, seed=3, num_test=40, use_cache=False)
    b = load_scenario("yelp", FIX, seed=3, num_test=40, use_cache=False)
    c = load_scenario("yelp", FIX, seed=4, num_test=40, use_cache=False)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert list(a.test["user_id"]) != list(c.test["user_id"])


def test_strict_mode_names_file_and_line():
    with pytest.raises(DataError, match=r"yelp_academic_dataset_business\.json:41\b.*empty name"):
        load_scenario("yelp", FIX, num_test=20, strict=True, use_cache=False)


def test_strict_mode_on_a_bad_review_line(tmp_path):
    lines = (FIX / BUSINESSES).read_text().splitlines()
    (tmp_path / BUSINESSES).write_text("\n".join(line for line in lines if "blank_name_biz" not in line) + "\n")
    shutil.copy(FIX / REVIEWS, tmp_path)
    with pytest.raises(DataError, match=r"yelp_academic_dataset_review\.json:7\b.*bad JSON"):
        load_scenario("yelp", tmp_path, num_test=20, strict=True, use_cache=False)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"yelp_academic_dataset_business\.json"):
        load_scenario("yelp", tmp_path, use_cache=False)
    shutil.copy(FIX / BUSINESSES, tmp_path)
    with pytest.raises(DataError, match=r"yelp_academic_dataset_review\.json.*yelp\.com/dataset"):
        load_scenario("yelp", tmp_path, use_cache=False)


def test_wrong_format_names_file_and_line(tmp_path):
    shutil.copy(FIX / BUSINESSES, tmp_path)
    (tmp_path / REVIEWS).write_text("user_id,business_id,stars,date\n")
    with pytest.raises(DataError, match=r"yelp_academic_dataset_review\.json line 1: expected"):
        load_scenario("yelp", tmp_path, use_cache=False)
