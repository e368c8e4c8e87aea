"""HotelRec scenario on a tiny HotelRec.txt (JSON lines, items parsed from hotel URLs)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from recbench.errors import DataError
from recbench.scenarios import load_scenario
from recbench.scenarios.hotelrec import HotelRecSource, hotel_text
from recbench.scenarios.io import BuildReport

FIX = Path(__file__).parent / "fixtures" / "hotelrec"
BALTIC = "Hotel_Review-g194775-d1121769-Reviews-Hotel_Baltic-Giulianova_Province_of_Teramo_Abruzzo.html"
PLANTED = {"bad JSON": 1, "hotel_url without name": 1, "unknown item id": 2}


def raw_truth():
    """(user -> [(date, order, hotel url, label)], number of 3-star rows)."""
    events, threes = defaultdict(list), 0
    for k, line in enumerate((FIX / "HotelRec.txt").read_text(encoding="utf-8").splitlines()):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r["rating"] == 3:
            threes += 1
        elif "-Reviews-" in r["hotel_url"]:
            events[r["author"]].append((r["date"], k, r["hotel_url"], int(r["rating"] > 3)))
    for evs in events.values():
        evs.sort()
    return events, threes


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
        assert (rows["label"] == 0).sum() <= 25


def test_samples_follow_the_protocol():
    sc = load_scenario("hotelrec", FIX, num_test=40, num_finetune=40, use_cache=False)
    events, threes = raw_truth()
    assert len(sc.test) == 40 and len(sc.finetune) == 40
    check_samples(sc.test, events)
    check_samples(sc.finetune, events)
    assert set(sc.test["user_id"]).isdisjoint(sc.finetune["user_id"])
    assert sc.info["skipped"] == PLANTED
    assert sc.info["dropped_by_rule"] == {"rating of exactly 3": threes}
    assert all(t == hotel_text(u) for u, t in zip(sc.items["item_id"], sc.items["text"]))
    assert (sc.domain, sc.item_noun) == ("hotels", "hotel")


def test_negatives_are_capped_at_25():
    events, _ = raw_truth()
    negatives = {i for _, _, i, y in events["grumpy_guest"] if y == 0}
    assert len(negatives) > 25
    sc = load_scenario("hotelrec", FIX, num_test=100000, num_finetune=0, use_cache=False)
    rows = sc.test[sc.test["user_id"] == "grumpy_guest"]
    assert (rows["label"] == 0).sum() == 25 and (rows["label"] == 1).sum() == 2
    assert set(rows.loc[rows["label"] == 0, "item_id"]) <= negatives
    check_samples(sc.test, events)
    assert HotelRecSource.policy.max_negatives == 25 and HotelRecSource.policy.min_negatives == 1


def test_item_text_from_the_url():
    assert hotel_text(BALTIC) == "Hotel Baltic, Giulianova Province of Teramo Abruzzo"
    assert hotel_text("https://www.tripadvisor.com/" + BALTIC) == "Hotel Baltic, Giulianova Province of Teramo Abruzzo"
    assert hotel_text("Hotel_Review-g1-d2-Reviews-Caf%C3%A9_Inn-Lyon_Rhone-Alpes.html") == "Café Inn, Lyon Rhone-Alpes"
    assert hotel_text("Hotel_Review-g1-d2-Reviews-Lonely_Inn.html") == "Lonely Inn"
    assert hotel_text("ShowUserReviews-g1-d2-r3.html") is None
    items = HotelRecSource(FIX, BuildReport()).load_items()
    assert items[BALTIC] == "Hotel Baltic, Giulianova Province of Teramo Abruzzo"
    assert len(items) == 40


def test_items_pass_does_not_count_bad_rows():
    report = BuildReport()
    HotelRecSource(FIX, report).load_items()
    assert dict(report.skipped) == {"hotel_url without name": 1}  # bad lines are counted by the event pass


def test_deterministic_for_a_seed_and_different_for_another():
    a = load_scenario("hotelrec", FIX, seed=11, num_test=40, num_finetune=30, use_cache=False)
    b = load_scenario("hotelrec", FIX, seed=11, num_test=40, num_finetune=30, use_cache=False)
    c = load_scenario("hotelrec", FIX, seed=12, num_test=40, num_finetune=30, use_cache=False)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.finetune, b.finetune)
    assert a.fingerprint != c.fingerprint


def test_strict_mode_names_file_and_line():
    with pytest.raises(DataError, match=r"HotelRec\.txt:\d+"):
        load_scenario("hotelrec", FIX, num_test=20, strict=True, use_cache=False)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"HotelRec\.txt.*github\.com/Diego999/HotelRec"):
        load_scenario("hotelrec", tmp_path, use_cache=False)


def test_wrong_format_names_file_and_line(tmp_path):
    (tmp_path / "HotelRec.txt").write_text("hotel_url\tauthor\tdate\trating\n")
    with pytest.raises(DataError, match=r"HotelRec\.txt line 1: expected"):
        load_scenario("hotelrec", tmp_path, use_cache=False)
