"""H&M loader: string article ids with leading zeros, purchases as positives, awkward rows."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest

import recbench
from recbench.errors import DataError
from recbench.scenarios.hm import article_key

FIX = Path(__file__).parent / "fixtures" / "hm"
ARTICLES, TRANSACTIONS = "articles.csv", "transactions_train.csv"


def load(raw_dir=FIX, **kw):
    kw.setdefault("num_test", 40)
    kw.setdefault("num_finetune", 60)
    return recbench.load_scenario("hm", raw_dir=raw_dir, **kw)


def raw_descriptions():
    with open(FIX / ARTICLES, newline="") as fh:
        return {r["article_id"]: r["detail_desc"] for r in csv.DictReader(fh) if r["detail_desc"]}


def raw_purchases():
    """customer -> articles in date order (file order on ties), rows the loader keeps."""
    desc = raw_descriptions()
    rows = []
    with open(FIX / TRANSACTIONS, newline="") as fh:
        for n, r in enumerate(csv.reader(fh)):
            if n and len(r) == 5 and r[0] != "2019-13-45" and r[2] in desc:
                rows.append((r[1], r[0], n, r[2]))
    out = {}
    for customer, _, _, article in sorted(rows):
        out.setdefault(customer, []).append(article)
    return out


@pytest.fixture(scope="module")
def sc():
    return load(use_cache=False)


def test_shape_and_metadata(sc):
    assert (sc.name, sc.domain, sc.item_noun) == ("hm", "fashion", "fashion product")
    assert len(sc.test) == 40 and len(sc.finetune) == 60
    assert sc.test["label"].mean() == 0.5


def test_article_ids_keep_leading_zeros(sc):
    desc = raw_descriptions()
    assert all(len(i) == 10 and i.startswith("0") for i in sc.items["item_id"])
    for item, text in sc.item_text().items():
        assert text == desc[item]
    assert desc["0108801003"] == 'Jersey top with "Hello" print, short sleeves'


def test_labels_and_histories(sc):
    purchases = raw_purchases()
    for df in (sc.test, sc.finetune):
        assert not df.duplicated(["user_id", "item_id"]).any()  # two units bought = one candidate
        for user, group in df.groupby("user_id"):
            items = purchases[user]
            held = list(dict.fromkeys(reversed(items)))[:2][::-1]
            history = group["history"].iloc[0]
            assert list(history) == [i for i in items if i not in held][-100:]
            assert sorted(group.loc[group.label == 1, "item_id"]) == sorted(held)
            negatives = set(group.loc[group.label == 0, "item_id"])
            assert len(negatives) == 2 and not negatives & set(items)


def test_repeat_purchase_of_the_latest_article_is_one_candidate():
    sc = load(use_cache=False, num_test=1000, num_finetune=0)
    purchases = raw_purchases()
    repeat = [u for u, items in purchases.items() if len(items) > 2 and items[-1] == items[-2]]
    assert repeat and set(repeat) <= set(sc.test["user_id"])
    for user in repeat:
        group = sc.test[sc.test.user_id == user]
        assert (group.label == 1).sum() == 2 and purchases[user][-1] in set(group.item_id)


def test_skipped_counts(sc):
    desc = raw_descriptions()
    with open(FIX / TRANSACTIONS, newline="") as fh:
        unknown = sum(len(r) == 5 and r[0][:4] == "2019" and r[0] != "2019-13-45" and r[2] not in desc
                      for r in csv.reader(fh))
    assert unknown > 0
    assert sc.info["skipped"] == {
        "bad t_dat": 1,
        "empty detail_desc": 3,
        "unknown item id": unknown,  # purchases of the articles without a description
        "wrong number of columns": 1,
    }


def test_deterministic_other_seed_and_disjoint_users(sc):
    again = load(use_cache=False)
    pd.testing.assert_frame_equal(sc.test, again.test)
    pd.testing.assert_frame_equal(sc.finetune, again.finetune)
    other = load(use_cache=False, seed=7)
    assert not other.test.equals(sc.test)
    assert not set(sc.test["user_id"]) & set(sc.finetune["user_id"])


def test_ids_that_lost_their_leading_zero_are_padded(sc, tmp_path):
    for name, col in ((ARTICLES, 0), (TRANSACTIONS, 2)):
        with open(FIX / name, newline="") as src, open(tmp_path / name, "w", newline="") as dst:
            out = csv.writer(dst, lineterminator="\n")
            for n, row in enumerate(csv.reader(src)):
                if n and len(row) > col:
                    row[col] = row[col].lstrip("0")
                out.writerow(row)
    assert "\n108775001," in (tmp_path / ARTICLES).read_text()
    other = load(raw_dir=tmp_path, use_cache=False)
    pd.testing.assert_frame_equal(sc.test, other.test)
    assert article_key("108775001") == "0108775001" and article_key("0108775001") == "0108775001"


def test_strict_names_file_and_line():
    with pytest.raises(DataError, match=rf"{ARTICLES}:9\b.*empty detail_desc"):
        load(strict=True, use_cache=False)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=rf"{ARTICLES} and {TRANSACTIONS} not found.*kaggle\.com"):
        load(raw_dir=tmp_path)
    shutil.copy(FIX / ARTICLES, tmp_path / ARTICLES)
    with pytest.raises(DataError, match=rf"{TRANSACTIONS} not found"):
        load(raw_dir=tmp_path)


def test_wrong_format(tmp_path):
    shutil.copy(FIX / TRANSACTIONS, tmp_path / TRANSACTIONS)
    (tmp_path / ARTICLES).write_text("article_id,prod_name\n0108775015,Strap top\n")
    with pytest.raises(DataError, match=rf"{ARTICLES} line 1: missing column\(s\) detail_desc"):
        load(raw_dir=tmp_path)
