"""The custom scenario: the user's own files in CSV, TSV, Parquet or JSON lines."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import recbench
from recbench.errors import ConfigError, DataError
from recbench.scenarios import BuildReport, get_source
from recbench.scenarios.custom import CustomSource


def load(**kw):
    kw.setdefault("use_cache", False)
    return recbench.load_scenario("custom", **kw)


@pytest.fixture
def custom_dir(fixtures):
    return fixtures / "custom"


@pytest.fixture
def rated(custom_dir):
    return load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", rating_col="rating")


def expected_from_ratings(custom_dir):
    """PROTOCOL §3 by hand: the last 2 positives by time held out, history before, real negatives."""
    df = pd.read_csv(custom_dir / "ratings.csv", dtype={"rating": str})
    df = df[df["rating"] != "abc"].astype({"rating": float})
    df = df[df["item_id"] != "i77"]
    out = {}
    for user, g in df.sort_values("timestamp", kind="stable").groupby("user_id"):
        pos = list(g.loc[g["rating"] >= 4, "item_id"])
        neg = list(g.loc[g["rating"] <= 2, "item_id"])
        out[user] = (pos[:-2], pos[-2:], neg)
    return out


def test_registered():
    cls = get_source("custom")
    assert cls is CustomSource and not cls.needs_raw_dir
    assert cls.domain == "custom" and cls.item_noun == "item"
    assert {"interactions", "items", "user_col", "item_col", "time_col", "label_col", "rating_col",
            "positive_threshold", "negative_threshold", "text_col"} == set(cls.option_names())


def test_csv_with_ratings(rated, custom_dir):
    expected = expected_from_ratings(custom_dir)
    assert set(rated.test["user_id"]) == set(expected)
    for user, rows in rated.test.groupby("user_id"):
        hist, held, neg = expected[user]
        assert list(rows.loc[rows["label"] == 1, "item_id"]) == held
        assert sorted(rows.loc[rows["label"] == 0, "item_id"]) == sorted(neg)
        assert all(list(h) == hist for h in rows["history"])
    info = rated.info
    assert info["dropped_by_rule"] == {"rating between 2 and 4": 6}
    assert info["skipped"] == {"empty item text": 1, "non-numeric rating": 1, "unknown item id": 1}
    assert rated.item_text()["i01"] == "Alien (1979)"


def test_thresholds(custom_dir):
    sc = load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", rating_col="rating",
              positive_threshold="4.5", negative_threshold=1)
    assert sc.info["dropped_by_rule"] == {"rating between 1 and 4.5": 24}  # 4, 4, 3 and 2 per user
    df = pd.read_csv(custom_dir / "ratings.csv", dtype={"rating": str})
    rating = {(u, i): r for u, i, r in zip(df["user_id"], df["item_id"], df["rating"])}
    for user, item, label in zip(sc.test["user_id"], sc.test["item_id"], sc.test["label"]):
        assert float(rating[user, item]) >= 4.5 if label else float(rating[user, item]) <= 1


def test_parquet_with_labels_matches_csv(rated, custom_dir, tmp_path):
    df = pd.read_csv(custom_dir / "ratings.csv", dtype={"rating": str})
    df = df[~df["rating"].isin(["abc", "3"])]
    table = pa.table({
        "user": df["user_id"].tolist(),
        "item_id": df["item_id"].tolist(),
        "timestamp": pa.array(pd.to_datetime(df["timestamp"], unit="s")),  # a real timestamp type
        "clicked": [int(float(r) >= 4) for r in df["rating"]],
    })
    pq.write_table(table, tmp_path / "log.parquet", row_group_size=7)  # several record batches
    items = pd.read_csv(custom_dir / "items.csv").dropna()
    items.to_parquet(tmp_path / "items.parquet", index=False)
    sc = load(interactions=str(tmp_path / "log.parquet"), items=str(tmp_path / "items.parquet"),
              user_col="user", label_col="clicked")
    assert sc.test["label"].tolist().count(0) > 0
    pd.testing.assert_frame_equal(sc.test, rated.test)


def test_tsv_other_columns_iso_dates_matches_csv(rated, fixtures):
    # raw_dir may also be the root holding one folder per scenario (fixtures/custom/...)
    sc = load(raw_dir=fixtures, interactions="interactions.tsv", items="items.tsv", user_col="uid",
              item_col="mid", time_col="when", label_col="liked", text_col="name")
    pd.testing.assert_frame_equal(sc.test, rated.test)


def test_jsonl_without_labels_samples_negatives(custom_dir):
    sc = load(raw_dir=custom_dir, interactions="interactions.jsonl", items="items.jsonl")
    log = [json.loads(line) for line in (custom_dir / "interactions.jsonl").read_text().splitlines()]
    seen = {}
    for row in log:  # no time column: file order
        seen.setdefault(row["user_id"], []).append(row["item_id"])
    assert set(sc.test["user_id"]) == set(seen)
    for user, rows in sc.test.groupby("user_id"):
        assert list(rows.loc[rows["label"] == 1, "item_id"]) == seen[user][-2:]
        negatives = rows.loc[rows["label"] == 0, "item_id"].tolist()
        assert len(negatives) == 2 and not set(negatives) & set(seen[user])
        assert all(list(h) == seen[user][:-2] for h in rows["history"])
    again = load(raw_dir=custom_dir, interactions="interactions.jsonl", items="items.jsonl")
    pd.testing.assert_frame_equal(sc.test, again.test)
    assert sc.fingerprint == again.fingerprint


def test_relative_paths_use_cwd_without_raw_dir(custom_dir, monkeypatch, rated):
    monkeypatch.chdir(custom_dir)
    sc = load(interactions="ratings.csv", items="items.csv", rating_col="rating")
    pd.testing.assert_frame_equal(sc.test, rated.test)


def test_cache_reuse(custom_dir):
    kw = dict(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", rating_col="rating")
    first = load(use_cache=True, **kw)
    second = load(use_cache=True, **kw)
    pd.testing.assert_frame_equal(first.test, second.test)
    other = load(use_cache=True, positive_threshold=4.5, **kw)
    assert other.info["cache_key"] != first.info["cache_key"]


def test_wrong_column_lists_available(custom_dir):
    with pytest.raises(DataError) as err:
        load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", user_col="uid", rating_col="rating")
    msg = str(err.value)
    assert "ratings.csv" in msg and "'uid'" in msg and "user_col" in msg
    assert "user_id, item_id, rating, timestamp" in msg
    with pytest.raises(DataError, match=r"text_col.*available columns: item_id, text, year"):
        load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", text_col="title")
    with pytest.raises(DataError, match=r"time_col.*available columns: user_id, item_id"):
        load(raw_dir=custom_dir, interactions="interactions.jsonl", items="items.jsonl", time_col="ts")


def test_missing_file_and_bad_options(custom_dir, tmp_path):
    with pytest.raises(DataError, match="interactions file not found"):
        load(raw_dir=custom_dir, interactions="nope.csv", items="items.csv")
    with pytest.raises(ConfigError, match="interactions file is required"):
        load(items="items.csv")
    with pytest.raises(ConfigError, match="not both"):
        load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", rating_col="rating", label_col="x")
    with pytest.raises(ConfigError, match="need rating_col"):
        load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", positive_threshold=4)
    with pytest.raises(ConfigError, match="takes no option"):
        load(raw_dir=custom_dir, interactions="ratings.csv", items="items.csv", user_column="u")
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(DataError, match="cannot tell the format"):
        load(interactions=str(tmp_path / "log.xlsx"), items=str(custom_dir / "items.csv"))
    (tmp_path / "log.json").write_text('[{"user_id": 1}]\n')
    with pytest.raises(DataError, match="JSON lines"):
        load(interactions=str(tmp_path / "log.json"), items=str(custom_dir / "items.jsonl"))


def test_policy_follows_options():
    assert CustomSource(None, BuildReport(), label_col="y").policy.min_negatives == 1
    assert CustomSource(None, BuildReport(), rating_col="r").policy.sampled_negatives == 0
    assert CustomSource(None, BuildReport()).policy.sampled_negatives == 2
    assert CustomSource.policy.sampled_negatives == 0  # the class attribute is untouched
