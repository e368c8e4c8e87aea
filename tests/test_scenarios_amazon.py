"""Amazon Reviews scenarios (cds, electronics) on tiny files in the 2014/2018/2023 layouts."""

from __future__ import annotations

import ast
import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from recbench.errors import DataError
from recbench.scenarios import load_scenario
from recbench.scenarios.amazon import CdsSource, ElectronicsSource, clean_title
from recbench.scenarios.io import BuildReport

FIX = Path(__file__).parent / "fixtures"

# (scenario, folder, review file, meta file, user/item/rating/time keys, meta item key)
LAYOUTS = {
    "cds-2018": ("cds", FIX / "cds" / "2018", "CDs_and_Vinyl.json.gz", "meta_CDs_and_Vinyl.json.gz",
                 ("reviewerID", "asin", "overall", "unixReviewTime"), "asin"),
    "cds-2014": ("cds", FIX / "cds" / "2014", "reviews_CDs_and_Vinyl.json.gz", "meta_CDs_and_Vinyl.json.gz",
                 ("reviewerID", "asin", "overall", "unixReviewTime"), "asin"),
    "cds-2023": ("cds", FIX / "cds" / "2023", "CDs_and_Vinyl.jsonl", "meta_CDs_and_Vinyl.jsonl.gz",
                 ("user_id", "parent_asin", "rating", "timestamp"), "parent_asin"),
    "electronics": ("electronics", FIX / "electronics", "Electronics.json.gz", "meta_Electronics.json.gz",
                    ("reviewerID", "asin", "overall", "unixReviewTime"), "asin"),
}

# The bad rows planted in each fixture (see the fixture files).
PLANTED = {
    "cds-2018": {"HTML in title": 2, "bad JSON": 1, "empty title": 1,
                 "missing or non-numeric rating": 1, "unknown item id": 4},
    "cds-2014": {"HTML in title": 2, "bad JSON": 1, "bad Python literal": 1, "empty title": 1, "unknown item id": 4},
    "cds-2023": {"HTML in title": 2, "bad JSON": 1, "empty title": 1, "unknown item id": 4},
    "electronics": {"HTML in title": 2, "bad JSON": 1, "empty title": 1,
                    "missing or non-numeric rating": 1, "unknown item id": 4},
}


# -- an independent reading of the raw fixture --------------------------------------------
def _raw_lines(path: Path):
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            try:
                yield ast.literal_eval(line)
            except (ValueError, SyntaxError):
                continue


def raw_truth(layout: str):
    """(valid item titles, user -> [(time, order, item, label)], number of 3-star rows)."""
    _, folder, reviews, meta, (ukey, ikey, rkey, tkey), mkey = LAYOUTS[layout]
    titles = {}
    for m in _raw_lines(folder / meta):
        t = m.get("title")
        if m[mkey] not in titles and isinstance(t, str) and t.strip() and "<" not in t and "getTime" not in t:
            titles[m[mkey]] = t
    events, threes = defaultdict(list), 0
    for k, r in enumerate(_raw_lines(folder / reviews)):
        if rkey not in r:
            continue
        if r[rkey] == 3:
            threes += 1
            continue
        if r[ikey] in titles:
            events[r[ukey]].append((r[tkey], k, r[ikey], 1 if r[rkey] >= 4 else 0))
    for evs in events.values():
        evs.sort()
    return titles, events, threes


def check_samples(df: pd.DataFrame, events, max_negatives: int = 10) -> None:
    """Labels, histories and negatives of every sample against the raw events."""
    assert list(df.columns) == ["user_id", "item_id", "label", "history"]
    for user, rows in df.groupby("user_id", sort=False):
        evs = events[user]
        pos = [i for _, _, i, y in evs if y == 1]
        neg = {i for _, _, i, y in evs if y == 0} - set(pos)
        assert len(pos) >= 3 and neg, "ineligible user sampled"
        held = pos[-2:]
        expected_hist = [i for i in pos[:-2] if i not in held][-100:]
        for item, label, hist in zip(rows["item_id"], rows["label"], rows["history"]):
            assert list(hist) == expected_hist  # only earlier positives, oldest first
            assert item not in hist
            if label == 1:
                assert item in held
            else:
                assert label == 0 and item in neg  # a real negative of this user
        assert (rows["label"] == 0).sum() <= max_negatives


# -- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_samples_follow_the_protocol(layout):
    name, folder, *_ = LAYOUTS[layout]
    sc = load_scenario(name, folder, num_test=40, num_finetune=40, use_cache=False)
    titles, events, threes = raw_truth(layout)
    assert len(sc.test) == 40 and len(sc.finetune) == 40
    check_samples(sc.test, events)
    check_samples(sc.finetune, events)
    assert set(sc.test["user_id"]).isdisjoint(sc.finetune["user_id"])
    assert {"AFEWPOS", "ANONEG"}.isdisjoint(set(sc.test["user_id"]) | set(sc.finetune["user_id"]))
    # every user but possibly the last one cut at the target size gets both held-out positives
    pos_per_user = sc.test[sc.test["label"] == 1].groupby("user_id").size()
    assert (pos_per_user.iloc[:-1] == 2).all()
    assert sc.info["skipped"] == PLANTED[layout]
    assert sc.info["dropped_by_rule"] == {"rating of exactly 3": threes}
    used = set(sc.test["item_id"]).union(*map(set, sc.test["history"]))
    assert used <= set(sc.items["item_id"])
    assert (sc.domain, sc.item_noun) == (("music", "music album") if name == "cds" else ("e-commerce", "product"))


def test_held_out_item_rated_twice_is_not_in_the_history():
    titles, events, _ = raw_truth("cds-2018")
    user = "A18000XYZ"  # rated its first liked album again as its last review
    pos = [i for _, _, i, y in events[user] if y == 1]
    assert pos[0] == pos[-1]
    sc = load_scenario("cds", LAYOUTS["cds-2018"][1], num_test=10000, num_finetune=0, use_cache=False)
    rows = sc.test[sc.test["user_id"] == user]
    assert set(rows.loc[rows["label"] == 1, "item_id"]) == set(pos[-2:])
    assert pos[0] not in rows["history"].iloc[0]
    assert len(rows["history"].iloc[0]) == len(pos) - 3


@pytest.mark.parametrize("layout", ["cds-2018", "cds-2014", "cds-2023"])
def test_item_texts(layout):
    source = CdsSource(LAYOUTS[layout][1], BuildReport())
    items = source.load_items()
    seed = {"cds-2018": 18, "cds-2014": 14, "cds-2023": 23}[layout]
    a = lambda k: f"B00{seed:02d}{k:05d}"  # noqa: E731
    assert items[a(1)] == "Simon & Garfunkel: Greatest Hits"
    assert items[a(2)] == "Rock 'n' Roll \"Live\""
    assert items[a(3)] == "Blue Train (Remastered)"
    assert items[a(4)] == "CDs Title 4"  # a repeated meta row does not replace the first
    assert not any("<" in t or "getTime" in t or "&" in t.replace(" & ", "") for t in items.values())
    assert all(t.strip() for t in items.values())


def test_clean_title():
    assert clean_title("Simon &amp; Garfunkel") == ("Simon & Garfunkel", "")
    assert clean_title("AC&#47;DC") == ("AC/DC", "")
    assert clean_title("Love <3 Songs") == ("Love <3 Songs", "")
    assert clean_title("") == (None, "empty title")
    assert clean_title(None) == (None, "empty title")
    assert clean_title('<div class="x">junk</div>')[1] == "HTML in title"
    assert clean_title("&lt;span&gt;junk&lt;/span&gt;")[1] == "HTML in title"
    assert clean_title("var aPageStart = (new Date()).getTime();")[1] == "HTML in title"


def test_deterministic_for_a_seed_and_different_for_another():
    folder = LAYOUTS["cds-2018"][1]
    a = load_scenario("cds", folder, seed=7, num_test=30, num_finetune=30, use_cache=False)
    b = load_scenario("cds", folder, seed=7, num_test=30, num_finetune=30, use_cache=False)
    c = load_scenario("cds", folder, seed=8, num_test=30, num_finetune=30, use_cache=False)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.finetune, b.finetune)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert list(a.test["user_id"]) != list(c.test["user_id"])


def test_cached_build_equals_fresh_build(tmp_path):
    folder = LAYOUTS["cds-2023"][1]
    fresh = load_scenario("cds", folder, num_test=30, num_finetune=20, use_cache=False)
    first = load_scenario("cds", folder, num_test=30, num_finetune=20, cache_dir=tmp_path)
    again = load_scenario("cds", folder, num_test=30, num_finetune=20, cache_dir=tmp_path)
    for sc in (first, again):
        pd.testing.assert_frame_equal(sc.test, fresh.test)
        pd.testing.assert_frame_equal(sc.finetune, fresh.finetune)


def test_default_finetune_sizes():
    cds = load_scenario("cds", LAYOUTS["cds-2018"][1], num_test=20, use_cache=False)
    elec = load_scenario("electronics", LAYOUTS["electronics"][1], num_test=20, use_cache=False)
    assert CdsSource.default_num_finetune == 100000 and ElectronicsSource.default_num_finetune == 0
    assert len(cds.finetune) > 0 and cds.finetune["user_id"].nunique() >= 20
    assert elec.finetune.empty
    assert CdsSource.policy.min_negatives == 1 and CdsSource.policy.sampled_negatives == 0
    assert [d.filename for d in CdsSource.downloads] == ["CDs_and_Vinyl.json.gz", "meta_CDs_and_Vinyl.json.gz"]
    assert ElectronicsSource.downloads[1].url.endswith("/metaFiles2/meta_Electronics.json.gz")


@pytest.mark.parametrize("layout,where", [
    ("cds-2018", r"meta_CDs_and_Vinyl\.json\.gz:\d+"),
    ("cds-2014", r"meta_CDs_and_Vinyl\.json\.gz:\d+"),
    ("cds-2023", r"meta_CDs_and_Vinyl\.jsonl\.gz:\d+"),
])
def test_strict_mode_names_file_and_line(layout, where):
    with pytest.raises(DataError, match=where):
        load_scenario("cds", LAYOUTS[layout][1], num_test=20, num_finetune=0, strict=True, use_cache=False)


def test_strict_mode_on_a_bad_review_line(tmp_path):
    src = LAYOUTS["cds-2018"][1]
    asins = sorted({r["asin"] for r in _raw_lines(src / "CDs_and_Vinyl.json.gz")})
    meta = [json.dumps({"asin": a, "title": f"Album {a}"}) for a in asins]  # every item known
    (tmp_path / "meta_CDs_and_Vinyl.json").write_text("\n".join(meta) + "\n")
    shutil.copy(src / "CDs_and_Vinyl.json.gz", tmp_path)
    with pytest.raises(DataError, match=r"CDs_and_Vinyl\.json\.gz:8\b.*bad JSON"):
        load_scenario("cds", tmp_path, num_test=20, num_finetune=0, strict=True, use_cache=False)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"CDs_and_Vinyl\.json\.gz.*meta_CDs_and_Vinyl\.json\.gz"):
        load_scenario("cds", tmp_path, use_cache=False)
    shutil.copy(LAYOUTS["electronics"][1] / "Electronics.json.gz", tmp_path)
    with pytest.raises(DataError, match=r"meta_Electronics\.json"):
        load_scenario("electronics", tmp_path, use_cache=False)


def test_wrong_format_names_file_and_line(tmp_path):
    shutil.copy(LAYOUTS["cds-2018"][1] / "meta_CDs_and_Vinyl.json.gz", tmp_path)
    (tmp_path / "CDs_and_Vinyl.json").write_text("reviewerID,asin,overall\nA1,B1,5\n")
    with pytest.raises(DataError, match=r"CDs_and_Vinyl\.json line 1: expected"):
        load_scenario("cds", tmp_path, num_test=10, num_finetune=0, use_cache=False)
