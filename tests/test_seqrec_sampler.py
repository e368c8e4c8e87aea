"""The SeqRec split (recbench/scenarios/seqrec.py): the pure sampler on hand-made users, the
event-stream adapter on the fixtures of several scenarios (against an independent reading),
the demo's split and the Parquet cache."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recbench
from recbench.config import RunConfig
from recbench.errors import DataError
from recbench.scenarios import get_source
from recbench.scenarios.io import BuildReport
from recbench.scenarios.seqrec import (
    ALL,
    DEFAULT_CANDIDATES,
    DEFAULT_HISTORY_LEN,
    UserSequence,
    Universe,
    draw_negatives,
    sample_seqrec,
    split_positives,
)

FIX = Path(__file__).parent / "fixtures"
UNIVERSE = [f"i{k:03d}" for k in range(300)]


def seq(positives, extra=()):
    return UserSequence(tuple(positives), frozenset(positives) | frozenset(extra))


# ----------------------------------------------------------------------------------------
# The pure sampler
# ----------------------------------------------------------------------------------------


def test_target_is_the_last_positive_and_history_the_distinct_ones_before_it():
    assert split_positives(["a", "b", "c", "d"], 19) == (("a", "b", "c"), "d")
    # repeats: each item at its latest position, the target's earlier copies left out
    assert split_positives(["a", "d", "b", "a", "c", "d"], 19) == (("b", "a", "c"), "d")
    assert split_positives(["a", "b", "c", "d", "e"], 2) == (("c", "d"), "e")
    # fewer than 3 distinct positives: not eligible
    assert split_positives(["a", "b"], 19) is None
    assert split_positives(["a", "b", "a", "b"], 19) is None
    assert split_positives([], 19) is None


def test_candidates_target_first_then_unseen_negatives():
    users = {"u1": seq(["i001", "i002", "i003", "i004"], extra=["i005"]),
             "u2": seq(["i010", "i011", "i012"])}
    test, ft = sample_seqrec(users, UNIVERSE, seed=7, num_test=5, num_finetune=0)
    assert ft == [] and {s.user_id for s in test} == {"u1", "u2"}
    for s in test:
        assert s.candidates[0] == s.target and len(s.candidates) == DEFAULT_CANDIDATES
        assert len(set(s.candidates)) == len(s.candidates)  # without replacement
        assert not set(s.candidates[1:]) & users[s.user_id].interacted  # never interacted with
    u1 = next(s for s in test if s.user_id == "u1")
    assert u1.target == "i004" and u1.history == ("i001", "i002", "i003")


def test_draws_are_seeded_per_seed_and_user_and_independent_of_the_others():
    users = {f"u{k}": seq([f"i{k:03d}", f"i{k + 1:03d}", f"i{k + 2:03d}"]) for k in range(0, 60, 3)}
    base, _ = sample_seqrec(users, UNIVERSE, seed=1, num_test=100)
    by_user = {s.user_id: s for s in base}
    # another user more, the universe listed in another order: each user's draw is unchanged
    more = dict(users, extra=seq(["i200", "i201", "i202"]))
    again, _ = sample_seqrec(more, list(reversed(UNIVERSE)), seed=1, num_test=100)
    for s in again:
        if s.user_id in by_user:
            assert s == by_user[s.user_id]
    other, _ = sample_seqrec(users, UNIVERSE, seed=2, num_test=100)
    assert [s.candidates for s in other] != [by_user[s.user_id].candidates for s in other]


def test_uniform_draw():
    """Every free item is about equally likely (chi-square-ish bound over many users)."""
    universe = Universe.of(f"x{k:02d}" for k in range(50))
    counts = dict.fromkeys(universe.items, 0)
    interacted = frozenset(["x00", "x01"])
    for u in range(2000):
        for item in draw_negatives(f"user{u}", interacted, universe, 5, seed=3):
            counts[item] += 1
    assert counts["x00"] == counts["x01"] == 0
    free = [c for i, c in counts.items() if i not in interacted]
    expected = 2000 * 5 / 48
    assert max(abs(c - expected) for c in free) < 0.25 * expected


def test_small_universe_gives_every_free_item():
    users = {"u": seq(["i000", "i001", "i002"])}
    [s], _ = sample_seqrec(users, UNIVERSE[:10], seed=0, num_test=1, candidates=100)
    assert s.candidates[0] == "i002" and sorted(s.candidates[1:]) == UNIVERSE[3:10]


def test_test_and_finetune_users_are_disjoint_and_test_first():
    users = {f"u{k}": seq([f"i{k:03d}", f"i{k + 1:03d}", f"i{k + 2:03d}"]) for k in range(100)}
    users["short"] = seq(["i000", "i001"])
    test, ft = sample_seqrec(users, UNIVERSE, seed=4, num_test=30, num_finetune=50)
    assert len(test) == 30 and len(ft) == 50
    assert not {s.user_id for s in test} & {s.user_id for s in ft}
    assert "short" not in {s.user_id for s in test + ft}
    only_test, _ = sample_seqrec(users, UNIVERSE, seed=4, num_test=30, num_finetune=0)
    assert only_test == test  # the test set does not depend on the fine-tuning size


def test_full_catalogue_mode_lists_what_to_mask():
    users = {"u": seq(["i001", "i002", "i003", "i001"], extra=["i009", "zz-not-in-universe"])}
    [s], _ = sample_seqrec(users, UNIVERSE, seed=0, num_test=1, candidates=ALL)
    assert s.target == "i001" and s.candidates == ()
    assert s.exclude == ("i002", "i003", "i009")  # other interactions in the catalogue, not the target


def test_bad_candidates():
    with pytest.raises(DataError, match="candidates"):
        sample_seqrec({}, UNIVERSE, candidates=1)
    with pytest.raises(DataError, match="candidates"):
        sample_seqrec({}, UNIVERSE, candidates="some")


def test_config_defaults_match_the_sampler():
    cfg = RunConfig()
    assert (cfg.history_len, cfg.candidates) == (DEFAULT_HISTORY_LEN, DEFAULT_CANDIDATES)


# ----------------------------------------------------------------------------------------
# The adapter over real readers (fixtures)
# ----------------------------------------------------------------------------------------


def reference_sequences(name, raw_dir):
    """An independent per-user reading of the reader's events: positives in time order."""
    src = get_source(name)(raw_dir, BuildReport())
    items = src.load_items()
    rows = [(e.user, e.time, k, e.item, e.label, e.history) for k, e in enumerate(src.iter_events(items))
            if e.item in items]
    by_user = {}
    for user, t, k, item, label, hist in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        by_user.setdefault(user, []).append((item, label, hist))
    seqs, universe = {}, set()
    for user, evs in by_user.items():
        hists = [tuple(h for h in hist if h in items) for _, _, hist in evs if hist is not None]
        pos = list(hists[-1]) if hists else []
        pos += [item for item, label, _ in evs if label == 1]
        inter = {item for item, _, _ in evs} | {h for hist in hists for h in hist}
        seqs[user] = UserSequence(tuple(pos), frozenset(inter))
        universe |= inter
    return seqs, universe


CASES = [("mind", FIX / "mind"), ("movielens", FIX / "movielens" / "ml-100k"), ("microlens", FIX / "microlens"),
         ("steam", FIX / "steam" / "recbench"), ("hm", FIX / "hm")]


@pytest.mark.parametrize("name, raw_dir", CASES)
def test_adapter_equals_the_pure_sampler_on_fixtures(name, raw_dir):
    sc = recbench.load_scenario(name, raw_dir, task="seqrec", num_test=8, num_finetune=6, candidates=20,
                                use_cache=False)
    seqs, universe = reference_sequences(name, raw_dir)
    test, ft = sample_seqrec(seqs, universe, seed=sc.seed, num_test=8, num_finetune=6, candidates=20)
    assert len(sc.test) == len(test) > 0
    for df, ref in ((sc.test, test), (sc.finetune, ft)):
        assert list(df.columns) == ["user_id", "history", "target", "candidates"]
        got = [(r.user_id, tuple(r.history), r.target, tuple(r.candidates)) for r in df.itertuples()]
        assert got == [(s.user_id, s.history, s.target, s.candidates) for s in ref]
    texts = sc.item_text()
    for r in sc.test.itertuples():
        assert r.candidates[0] == r.target and r.target not in r.history
        assert all(i in texts for i in [*r.history, *r.candidates])
        assert not set(r.candidates[1:]) & seqs[r.user_id].interacted
    assert sc.info["task"] == "seqrec" and sc.info["candidates"] == 20


def test_mind_positives_are_the_history_column_then_the_clicks():
    """Straight from behaviors.tsv: the target is the user's last click, else the last history item."""
    sc = recbench.load_scenario("mind", FIX / "mind", task="seqrec", num_test=50, num_finetune=0, use_cache=False)
    news = {line.split("\t")[0] for line in (FIX / "mind" / "MINDsmall_train" / "news.tsv").read_text().splitlines()}
    raw = {}
    for line in (FIX / "mind" / "MINDsmall_train" / "behaviors.tsv").read_text().splitlines():
        _, user, when, hist, imps = line.split("\t")
        try:
            t = datetime.strptime(when, "%m/%d/%Y %I:%M:%S %p")
        except ValueError:
            continue
        if not hist.split():
            continue
        raw.setdefault(user, []).append((t, hist.split(), [i.rsplit("-", 1) for i in imps.split() if "-" in i]))
    checked = 0
    for r in sc.test.itertuples():
        rows = sorted(raw[r.user_id], key=lambda x: x[0])
        clicks = [n for _, _, imps in rows for n, lab in imps if lab == "1" and n in news]
        history = [h for h in rows[-1][1] if h in news]
        positives = history + clicks
        assert r.target == positives[-1]
        assert r.history == [p for p in dict.fromkeys(reversed(positives[:-1])) if p != r.target][::-1][-19:]
        checked += 1
    assert checked == len(sc.test) > 3


def test_movielens_target_is_the_latest_liked_rating():
    sc = recbench.load_scenario("movielens", FIX / "movielens" / "ml-100k", task="seqrec", num_test=50,
                                num_finetune=0, use_cache=False)
    ratings = pd.read_csv(FIX / "movielens" / "ml-100k" / "u.data", sep="\t", names=["u", "i", "r", "t"], dtype=str)
    ratings["t"] = ratings["t"].astype(int)
    for r in sc.test.itertuples():
        mine = ratings[(ratings.u == r.user_id) & (ratings.r.astype(int) > 3)].reset_index()
        last = mine.sort_values(["t", "index"]).iloc[-1]
        assert r.target == last.i
        # negatives: never rated (liked or disliked); ratings of exactly 3 are dropped by the
        # reader's rule (PROTOCOL §2) and so are unseen interactions for every task
        rated = set(ratings[(ratings.u == r.user_id) & (ratings.r != "3")].i)
        assert not set(r.candidates[1:]) & rated


# ----------------------------------------------------------------------------------------
# The demo and the cache
# ----------------------------------------------------------------------------------------


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_demo_split_cache_and_ctr_unchanged(tmp_path, monkeypatch, capsys):
    sc = recbench.load_scenario("demo", task="seqrec", cache_dir=tmp_path)
    assert (len(sc.test), len(sc.finetune)) == (200, 1000)
    assert not set(sc.test.user_id) & set(sc.finetune.user_id)
    assert sc.test.candidates.map(len).eq(100).all()
    assert set(sc.finetune_split("valid").user_id) | set(sc.finetune_split("train").user_id) == set(sc.finetune.user_id)
    import recbench.scenarios.seqrec as seqrec_mod

    def no_rebuild(*a, **k):
        raise AssertionError("the cached split was rebuilt")

    with monkeypatch.context() as m:
        m.setattr(seqrec_mod, "build_seqrec", no_rebuild)
        again = recbench.load_scenario("demo", task="seqrec", cache_dir=tmp_path)  # from the Parquet cache
    assert "rebuilding" not in capsys.readouterr().err
    assert again.info["data_fingerprint"] == sc.info["data_fingerprint"] == sc.fingerprint
    assert again.info["finetune_fingerprint"] == sc.info["finetune_fingerprint"]
    assert again.info["cache_key"] == sc.info["cache_key"]
    assert isinstance(again.test.loc[0, "candidates"], list) and isinstance(again.test.loc[0, "history"], list)
    pd.testing.assert_frame_equal(again.test, sc.test)
    entries = sorted(p.name for p in (tmp_path / "scenarios" / "demo").iterdir())
    assert len(entries) == 1 and entries[0].startswith("seqrec-")
    # settings enter the key: another history length or candidate count is another entry
    short = recbench.load_scenario("demo", task="seqrec", cache_dir=tmp_path, history_len=5)
    assert short.test.history.map(len).max() == 5 and short.info["cache_key"] != sc.info["cache_key"]
    full = recbench.load_scenario("demo", task="seqrec", cache_dir=tmp_path, candidates="all")
    assert len(full.items) == full.info["catalogue"] == 442 and full.test.candidates.map(len).eq(0).all()
    assert len(list((tmp_path / "scenarios" / "demo").iterdir())) == 3
    # the default task: ctr samples as before
    ctr = recbench.load_scenario("demo", cache_dir=tmp_path)
    assert list(ctr.test.columns) == ["user_id", "item_id", "label", "history"] and len(ctr.test) == 500

    # the demo's target is a liked item: it shares its (kind, genre) with much of the history
    from recbench.scenarios.demo import read_catalog

    taste = {r["item_id"]: (r["kind"], r["genre"]) for r in read_catalog()}
    share = np.mean([np.mean([taste[h] == taste[r.target] for h in r.history]) for r in sc.test.itertuples()])
    assert share > 0.3  # one or two liked tastes make up ~85% of a history


