"""SeqRec ranking metrics (recbench.metrics): hand-worked cases, a naive loop and
sklearn.metrics.ndcg_score as independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from recbench import metrics as M


def _flat(score_lists):
    """Flat scores, group ids and target flags (target = each list's first entry)."""
    scores, groups, target = [], [], []
    for g, lst in enumerate(score_lists):
        scores += list(lst)
        groups += [g] * len(lst)
        target += [True] + [False] * (len(lst) - 1)
    return np.array(scores, dtype=float), np.array(groups), np.array(target)


def _naive_rank(user_scores, t=0):
    """Pessimistic rank by counting, one candidate at a time."""
    rank = 1
    for j, s in enumerate(user_scores):
        if j != t and s >= user_scores[t]:
            rank += 1
    return rank


def test_hand_worked_ranks_and_metrics():
    # user a: target 0.9; 0.95 above it, 0.9 tied (placed before it): rank 3
    # user b: target 0.8 is the best of three: rank 1
    # user c: all tied: rank = number of candidates = 4
    scores, groups, target = _flat([[0.9, 0.5, 0.95, 0.9], [0.8, 0.1, 0.2], [0.3, 0.3, 0.3, 0.3]])
    ranks = M.target_ranks(scores, groups, target)
    assert ranks.tolist() == [3, 1, 4]
    out = M.ranking_metrics(ranks, num_candidates=[4, 3, 4])
    # ndcg@1: only b -> 1/3; ndcg@5: (1/log2(4) + 1 + 1/log2(5)) / 3 = (0.5 + 1 + 0.430677) / 3
    assert out["ndcg@1"] == pytest.approx(1 / 3)
    assert out["ndcg@5"] == pytest.approx((0.5 + 1 + 1 / math.log2(5)) / 3)
    assert out["ndcg@10"] == out["ndcg@20"] == out["ndcg@5"]
    assert out["mrr"] == pytest.approx((1 / 3 + 1 + 1 / 4) / 3)
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["recall@5"] == 1.0
    assert out["mean_rank"] == pytest.approx(8 / 3)
    assert out["n"] == out["users"] == 3 and out["candidates"] == pytest.approx(11 / 3)


def test_constant_scores_earn_the_worst_rank():
    scores, groups, target = _flat([[0.5] * 100])
    assert M.target_ranks(scores, groups, target).tolist() == [100]
    assert M.ranking_metrics([100])["ndcg@20"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_a_naive_loop_with_ties(seed):
    rng = np.random.default_rng(seed)
    lists = [np.round(rng.random(rng.integers(2, 30)), 1) for _ in range(60)]  # rounded: many ties
    scores, groups, target = _flat(lists)
    ranks = M.target_ranks(scores, groups, target)
    naive = [_naive_rank(lst) for lst in lists]
    assert ranks.tolist() == naive
    out = M.ranking_metrics(ranks)
    for k in M.RANKING_KS:
        assert out[f"ndcg@{k}"] == pytest.approx(np.mean([1 / math.log2(r + 1) if r <= k else 0.0 for r in naive]))
        assert out[f"recall@{k}"] == pytest.approx(np.mean([r <= k for r in naive]))
    assert out["mrr"] == pytest.approx(np.mean([1 / r for r in naive]))
    assert out["mean_rank"] == pytest.approx(np.mean(naive))


@pytest.mark.parametrize("seed", [0, 1])
def test_ndcg_matches_sklearn_without_ties(seed):
    rng = np.random.default_rng(seed)
    n_users, n_cand = 50, 100
    s = rng.random((n_users, n_cand))
    scores, groups, target = _flat(list(s))
    ranks = M.target_ranks(scores, groups, target)
    y = np.zeros_like(s)
    y[:, 0] = 1  # the target is column 0
    for k in M.RANKING_KS:
        assert M.ranking_metrics(ranks)[f"ndcg@{k}"] == pytest.approx(ndcg_score(y, s, k=k), abs=1e-12)


def test_ranks_in_matrix_with_exclusions_matches_deleting_the_columns():
    rng = np.random.default_rng(3)
    s = np.round(rng.random((20, 40)), 1)
    target_col = rng.integers(0, 40, size=20)
    rows, cols = [], []
    for u in range(20):
        excl = [j for j in rng.choice(40, size=8, replace=False) if j != target_col[u]]
        rows += [u] * len(excl)
        cols += excl
    ranks = M.ranks_in_matrix(s, target_col, (np.array(rows), np.array(cols)))
    for u in range(20):
        keep = [j for j in range(40) if j not in [c for r, c in zip(rows, cols) if r == u]]
        row = [s[u, j] for j in keep]
        assert ranks[u] == _naive_rank(row, keep.index(target_col[u]))
    # without exclusions: the same as the flat computation
    flat = M.target_ranks(s.ravel(), np.repeat(np.arange(20), 40),
                          (np.arange(40)[None, :] == target_col[:, None]).ravel())
    assert M.ranks_in_matrix(s, target_col).tolist() == flat.tolist()


def test_random_expectation_by_enumeration():
    for c in (1, 7, 100):
        ranks = np.arange(1, c + 1)  # a random ranking puts the target at each rank equally often
        brute = M.ranking_metrics(ranks)
        for metric in ("ndcg@1", "ndcg@10", "ndcg@20", "recall@5", "mrr", "mean_rank"):
            assert M.random_ranking_expectation([c], metric) == pytest.approx(brute[metric])
    assert M.random_ranking_expectation([100], "ndcg@10") == pytest.approx(0.0454, abs=5e-4)  # PROTOCOL §10
    with pytest.raises(ValueError):
        M.random_ranking_expectation([100], "gauc")


def test_bootstrap_over_users():
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 101, size=400)
    out = M.ranking_metrics(ranks, bootstrap=200, seed=5)
    lo, hi = out["ndcg@10_ci"]
    assert lo < out["ndcg@10"] < hi
    assert out["mrr_ci"][0] < out["mrr"] < out["mrr_ci"][1]
    assert M.ranking_metrics(ranks, bootstrap=200, seed=5)["ndcg@10_ci"] == [lo, hi]  # seeded
    wide = M.bootstrap_mean_ci(M.ndcg_from_ranks(ranks[:40], 10), 200, seed=5)
    assert wide[1] - wide[0] > hi - lo  # fewer users, wider interval


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="exactly one target"):
        M.target_ranks([0.1, 0.2], [0, 0], [True, True])
    with pytest.raises(ValueError, match="NaN"):
        M.target_ranks([np.nan, 0.2], [0, 0], [True, False])
    with pytest.raises(ValueError, match="exceeds"):
        M.ranking_metrics([5], num_candidates=[4])
    with pytest.raises(ValueError, match=">= 1"):
        M.ranking_metrics([0])
