"""The bundled demo scenario: offline, deterministic, learnable but not saturated."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recbench
from recbench.metrics import gauc
from recbench.scenarios import BuildReport, get_source
from recbench.scenarios.demo import DemoSource, read_catalog, synthesize


@pytest.fixture(scope="module")
def catalog():
    return {r["item_id"]: r for r in read_catalog()}


@pytest.fixture(scope="module")
def demo():
    start = time.perf_counter()
    sc = recbench.load_scenario("demo", use_cache=False)
    return sc, time.perf_counter() - start


def taste_overlap(df: pd.DataFrame, catalog) -> np.ndarray:
    """Fraction of history items sharing the candidate's (kind, genre)."""
    taste = {i: (r["kind"], r["genre"]) for i, r in catalog.items()}
    return np.array([np.mean([taste[h] == taste[i] for h in hist]) for i, hist in zip(df["item_id"], df["history"])])


def test_registered_and_offline(demo):
    sc, seconds = demo
    assert "demo" in recbench.list_scenarios()
    cls = get_source("demo")
    assert cls is DemoSource and not cls.needs_raw_dir
    assert cls.domain == "mixed media" and cls.item_noun == "item"
    assert "not a benchmark domain" in cls.description
    assert sc.name == "demo" and sc.seed == 2024
    # its build time is printed by benchmarks, not asserted: a wall-clock bound fails on a loaded machine


def test_catalog_is_the_fingerprinted_raw_file():
    files = DemoSource(None, BuildReport()).raw_files()
    assert len(files) == 1 and files[0].name == "demo_catalog.csv" and files[0].is_file()
    assert Path(recbench.__file__).parent in files[0].parents


def test_sizes_and_candidates(demo):
    sc, _ = demo
    assert len(sc.test) == 500 and len(sc.finetune) == 5000
    per_user = sc.test.groupby("user_id")["label"].agg(["size", "sum"])
    assert (per_user["size"] >= 10).all()
    assert (per_user["sum"] == 5).all()  # 5 positives, 5 negatives
    assert set(sc.test["user_id"]).isdisjoint(sc.finetune["user_id"])
    assert len(sc.finetune) >= 4000 and sc.finetune["user_id"].nunique() == 500
    for df in (sc.test, sc.finetune):
        assert df["history"].map(len).between(8, 20).all()
        for item, hist in zip(df["item_id"], df["history"]):
            assert item not in hist
    assert len(sc.finetune_split("train")) + len(sc.finetune_split("valid")) == 5000


def test_item_text_names_title_and_genre(demo, catalog):
    sc, _ = demo
    texts = sc.item_text()
    assert set(texts) <= set(catalog)
    for item, text in texts.items():
        row = catalog[item]
        assert row["genre"] in text and row["kind"] in text and row["title"] in text
    shining = next(i for i, r in catalog.items() if r["title"] == "The Shining")
    assert DemoSource(None, BuildReport()).load_items()[shining] == "The Shining (1980) — horror movie"
    every = DemoSource(None, BuildReport()).load_items()
    assert len(every) == len(catalog) == 442


def test_deterministic_and_population_fixed(demo):
    sc, _ = demo
    again = recbench.load_scenario("demo", use_cache=False)
    pd.testing.assert_frame_equal(sc.test, again.test)
    pd.testing.assert_frame_equal(sc.finetune, again.finetune)
    assert sc.fingerprint == again.fingerprint
    other = recbench.load_scenario("demo", seed=7, num_finetune=0, use_cache=False)
    assert set(other.test["user_id"]) != set(sc.test["user_id"])  # the seed picks the users ...
    population = {u: (hist, dict(cands)) for u, hist, cands in synthesize(read_catalog())}
    for df in (sc.test, other.test):  # ... the users themselves are fixed
        for user, rows in df.groupby("user_id"):
            hist, cands = population[user]
            assert dict(zip(rows["item_id"], rows["label"])) == cands
            assert all(list(h) == hist for h in rows["history"])
    # user k does not depend on the population size
    assert synthesize(read_catalog(), n_users=5)[4] == synthesize(read_catalog(), n_users=50)[4]


def test_genre_overlap_baseline_beats_chance_but_not_saturated(demo, catalog):
    sc, _ = demo
    for df in (sc.test, sc.finetune):
        value = gauc(df["user_id"], df["label"], taste_overlap(df, catalog)).value
        assert 0.7 < value < 0.99, value
    rng = np.random.default_rng(0)
    chance = gauc(sc.finetune["user_id"], sc.finetune["label"], rng.random(len(sc.finetune))).value
    assert abs(chance - 0.5) < 0.05
