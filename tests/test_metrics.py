"""Tests for recbench.metrics: scikit-learn as the oracle where one exists, hand-worked
numbers (arithmetic in the comments) where it does not."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from recbench import metrics as M

SEEDS = [0, 1, 2, 3, 4]
LOG2_3 = math.log2(3)
LOG2_5 = math.log2(5)


def _random_data(seed: int, n_users: int = 40, max_items: int = 12, decimals: int = 1):
    """Users with 1..max_items candidates; scores rounded so ties are common."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_items + 1, size=n_users)
    users = np.repeat([f"u{i}" for i in range(n_users)], sizes)
    rng.shuffle(users)  # users' samples interleaved, as in real score files
    labels = (rng.random(users.size) < 0.3).astype(int)
    scores = np.round(rng.random(users.size) * 0.6 + 0.4 * labels, decimals)
    return users, labels, scores


def _per_user(users, labels, scores):
    df = pd.DataFrame({"u": users, "y": labels, "s": scores})
    for _, g in df.groupby("u", sort=False):
        yield g["y"].to_numpy(), g["s"].to_numpy()


# --------------------------------------------------------------------------- vs sklearn


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn_with_ties(seed):
    _, labels, scores = _random_data(seed)
    assert np.unique(scores).size < scores.size  # ties really present
    assert M.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_gauc_matches_manual_sklearn_loop(seed):
    users, labels, scores = _random_data(seed)
    aucs, skipped = [], 0
    for y, s in _per_user(users, labels, scores):
        if 0 < y.sum() < y.size:
            aucs.append(roc_auc_score(y, s))
        else:
            skipped += 1
    res = M.gauc(users, labels, scores)
    assert res.value == pytest.approx(np.mean(aucs), abs=1e-12)
    assert res.users == len(aucs)
    assert res.skipped_users == skipped
    assert res.users + res.skipped_users == len(set(users))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_matches_sklearn_tie_averaged(seed, k):
    users, labels, scores = _random_data(seed)
    expected = [ndcg_score(y[None], s[None], k=k)
                for y, s in _per_user(users, labels, scores) if 0 < y.sum() < y.size]
    assert M.ndcg_at_k(users, labels, scores, k) == pytest.approx(np.mean(expected), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_logloss_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=500)
    probs = np.round(rng.uniform(1e-6, 1 - 1e-6, size=500), 2).clip(1e-6, 1 - 1e-6)
    assert M.logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-12)


def test_logloss_clips_at_1e7():
    # a confident mistake costs -log(1e-7) = 16.118..., not infinity
    assert M.logloss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert M.logloss([1], [1.0]) == pytest.approx(-math.log(1 - 1e-7), rel=1e-9)


def test_logloss_rejects_non_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        M.logloss([0, 1], [-0.1, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        M.logloss([0, 1], [0.2, 3.0])


# --------------------------------------------------------------------------- hand-worked


def test_auc_hand_worked_tie():
    # pos {0.5, 0.9}, neg {0.5, 0.1}: pairs (0.9>0.5)=1, (0.9>0.1)=1, (0.5=0.5)=0.5,
    # (0.5>0.1)=1 -> 3.5 / 4
    assert M.roc_auc([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.1]) == 0.875


def test_mrr_hand_worked_pessimistic_ties():
    users = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2 + ["e"] * 3
    labels = [0, 1, 0,  1, 0, 0,  1, 0,  1, 1,  0, 1, 1]
    scores = [.9, .8, .7, .5, .5, .1, .3, .2, .6, .4, .4, .4, .4]
    # a: one negative above the positive            -> rank 2 -> 1/2
    # b: positive tied with a negative, neg first   -> rank 2 -> 1/2
    # c: positive on top                            -> rank 1 -> 1
    # d: positives only                             -> skipped
    # e: all tied, one negative placed first        -> rank 2 -> 1/2
    # mrr = (1/2 + 1/2 + 1 + 1/2) / 4 = 2.5 / 4 = 0.625
    assert M.mrr(users, labels, scores) == 0.625


def test_mrr_is_not_average_precision():
    # positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 0.833..., reciprocal rank = 1
    assert M.mrr(["u"] * 3, [1, 0, 1], [0.9, 0.8, 0.7]) == 1.0


def test_ndcg_hand_worked():
    users, labels, scores = ["u"] * 4, [0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6]
    # positives at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); IDCG = 1/log2(2) + 1/log2(3)
    expected5 = (1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3)  # = 0.6509...
    assert M.ndcg_at_k(users, labels, scores, 5) == pytest.approx(expected5, abs=1e-12)
    # top 1 is a negative: DCG@1 = 0
    assert M.ndcg_at_k(users, labels, scores, 1) == 0.0
    # k=2: DCG = 1/log2(3); IDCG@2 = 1 + 1/log2(3)
    expected2 = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    assert M.ndcg_at_k(users, labels, scores, 2) == pytest.approx(expected2, abs=1e-12)


def test_ndcg_hand_worked_tie_averaged():
    users, labels, scores = ["u"] * 3, [1, 0, 0], [0.5, 0.5, 0.1]
    # tied group {pos, neg} at ranks 1-2 gets mean gain 1/2 at both positions:
    # k=5: DCG = 1/2 * (1/log2(2) + 1/log2(3)); IDCG = 1
    assert M.ndcg_at_k(users, labels, scores, 5) == pytest.approx(0.5 * (1 + 1 / LOG2_3))
    # k=1: only rank 1 is discounted non-zero: DCG = 1/2 * 1
    assert M.ndcg_at_k(users, labels, scores, 1) == pytest.approx(0.5)


def test_recall_and_hit_hand_worked():
    users = ["a"] * 5 + ["b"] * 2
    labels = [1, 0, 1, 0, 1,  0, 1]
    scores = [.9, .8, .7, .6, .5,  .9, .8]
    # a: 3 positives at ranks 1, 3, 5;  b: 1 positive at rank 2
    # recall@1 = (1/3 + 0) / 2 = 1/6;     hit@1 = (1 + 0) / 2 = 0.5
    # recall@3 = (2/3 + 1) / 2 = 5/6;     hit@3 = (1 + 1) / 2 = 1
    # recall@5 = (3/3 + 1) / 2 = 1
    assert M.recall_at_k(users, labels, scores, 1) == pytest.approx(1 / 6)
    assert M.recall_at_k(users, labels, scores, 3) == pytest.approx(5 / 6)
    assert M.recall_at_k(users, labels, scores, 5) == 1.0
    assert M.hit_at_k(users, labels, scores, 1) == 0.5
    assert M.hit_at_k(users, labels, scores, 3) == 1.0


def test_recall_and_hit_pessimistic_ties():
    # positive tied with a negative at the top: negative goes first, so nothing in top 1
    users, labels, scores = ["u"] * 2, [1, 0], [0.5, 0.5]
    assert M.recall_at_k(users, labels, scores, 1) == 0.0
    assert M.hit_at_k(users, labels, scores, 1) == 0.0
    assert M.hit_at_k(users, labels, scores, 2) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_hit_equals_recall_for_single_positive_users(seed):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(30).astype(str), 8)
    labels = np.zeros(users.size, dtype=int)
    labels[np.arange(30) * 8 + rng.integers(0, 8, 30)] = 1
    scores = np.round(rng.random(users.size), 1)
    for k in (1, 3, 5):
        assert M.hit_at_k(users, labels, scores, k) == M.recall_at_k(users, labels, scores, k)


@pytest.mark.parametrize("seed", SEEDS)
def test_rank_metrics_brute_force(seed):
    # brute force: sort each user by (score desc, label asc), read the ranks off directly
    users, labels, scores = _random_data(seed)
    rr, rec, hit = [], [], []
    for y, s in _per_user(users, labels, scores):
        if not 0 < y.sum() < y.size:
            continue
        ranked = y[np.lexsort((y, -s))]
        rr.append(1 / (np.argmax(ranked == 1) + 1))
        rec.append(ranked[:5].sum() / y.sum())
        hit.append(float(ranked[:5].any()))
    assert M.mrr(users, labels, scores) == pytest.approx(np.mean(rr), abs=1e-12)
    assert M.recall_at_k(users, labels, scores, 5) == pytest.approx(np.mean(rec), abs=1e-12)
    assert M.hit_at_k(users, labels, scores, 5) == pytest.approx(np.mean(hit), abs=1e-12)


def test_positive_rate():
    assert M.positive_rate([1, 0, 0, 1, 1]) == 0.6
    assert M.positive_rate(np.array([True, False])) == 0.5


# --------------------------------------------------------------------------- skipping


def test_single_label_users_skipped_and_counted():
    users = ["a", "a", "b", "b", "c", "d", "d"]
    labels = [1, 0, 1, 1, 0, 0, 1]
    scores = [0.9, 0.1, 0.5, 0.4, 0.3, 0.8, 0.2]
    # a: auc 1, rank 1;  d: auc 0, rank 2;  b (only positives), c (only negative) skipped
    res = M.gauc(users, labels, scores)
    assert res == (0.5, 2, 2)
    assert M.mrr(users, labels, scores) == pytest.approx((1 + 1 / 2) / 2)
    out = M.compute_metrics(users, labels, scores, probabilities=False)
    assert out["users"] == 4 and out["gauc_users"] == 2 and out["gauc_skipped_users"] == 2
    assert out["hit@1"] == 0.5


# --------------------------------------------------------------------------- degenerate


def test_one_class_gives_nan_not_error():
    users, labels, scores = ["a", "a", "b"], [0, 0, 0], [0.1, 0.2, 0.3]
    assert math.isnan(M.roc_auc(labels, scores))
    assert M.gauc(users, labels, scores)[1:] == (0, 2)
    out = M.compute_metrics(users, labels, scores, probabilities=True, bootstrap=20)
    for key in ("auc", "gauc", "mrr", "ndcg@1", "recall@5", "hit@10"):
        assert math.isnan(out[key]), key
    assert all(math.isnan(v) for v in out["gauc_ci"] + out["auc_ci"])
    assert out["positive_rate"] == 0.0
    assert out["logloss"] > 0


def test_single_sample():
    out = M.compute_metrics(["a"], [1], [0.7], probabilities=True)
    assert out["n"] == 1 and out["users"] == 1 and out["gauc_users"] == 0
    assert math.isnan(out["auc"]) and math.isnan(out["gauc"])


def test_constant_scores():
    users = ["a"] * 4 + ["b"] * 2
    labels = [1, 0, 0, 1, 0, 1]
    scores = [0.5] * 6
    out = M.compute_metrics(users, labels, scores, probabilities=True)
    assert out["auc"] == 0.5 and out["gauc"] == 0.5
    # pessimistic: a's two negatives come first -> rank 3; b's negative first -> rank 2
    assert out["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert out["hit@1"] == 0.0
    # tie-averaged nDCG: every position of a fully tied list gets the mean gain
    # a: mean gain 2/4 over 4 positions: DCG = 0.5*(1 + 1/log2 3 + 1/log2 4 + 1/log2 5),
    #    IDCG = 1 + 1/log2 3;  b: DCG = 0.5*(1 + 1/log2 3), IDCG = 1
    a = 0.5 * (1 + 1 / LOG2_3 + 0.5 + 1 / LOG2_5) / (1 + 1 / LOG2_3)
    b = 0.5 * (1 + 1 / LOG2_3)
    assert out["ndcg@10"] == pytest.approx((a + b) / 2)


def test_infinite_scores_are_ordered():
    assert M.roc_auc([1, 0, 0], [np.inf, -np.inf, 0.0]) == 1.0
    assert M.mrr(["u"] * 3, [0, 1, 0], [-np.inf, 0.0, np.inf]) == 0.5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.roc_auc([], []), "empty"),
        (lambda: M.compute_metrics([], [], [], probabilities=False), "empty"),
        (lambda: M.roc_auc([0, 1], [0.1]), "length mismatch"),
        (lambda: M.gauc(["a"], [0, 1], [0.1, 0.2]), "length mismatch"),
        (lambda: M.compute_metrics(["a", "b"], [0, 1], [0.1], probabilities=False),
         "length mismatch"),
        (lambda: M.roc_auc([0, 2], [0.1, 0.2]), "0/1"),
        (lambda: M.roc_auc([0, 1], [0.1, np.nan]), "NaN"),
        (lambda: M.gauc(["a", None], [0, 1], [0.1, 0.2]), "missing"),
        (lambda: M.ndcg_at_k(["a"], [1], [0.1], 0), "positive integer"),
        (lambda: M.roc_auc([[0, 1]], [[0.1, 0.2]]), "one-dimensional"),
        (lambda: M.bootstrap_ci(["a"], [1], [0.1], metric="mrr"), "gauc"),
        (lambda: M.compute_metrics(["a"], [1], [0.1], probabilities=False, bootstrap=-1),
         "n_resamples"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_input_types_are_equivalent():
    users, labels, scores = _random_data(7)
    idx = np.arange(users.size)[::-1] * 3  # non-default index: must be ignored (positional)
    ref = M.compute_metrics(users, labels, scores, probabilities=False)
    as_lists = M.compute_metrics(list(users), labels.tolist(), scores.tolist(),
                                 probabilities=False)
    as_series = M.compute_metrics(pd.Series(users, index=idx), pd.Series(labels, index=idx),
                                  pd.Series(scores, index=idx), probabilities=False)
    as_bool = M.compute_metrics(users, labels.astype(bool), scores, probabilities=False)
    assert ref == as_lists == as_series == as_bool


def test_user_order_does_not_matter():
    users, labels, scores = _random_data(8)
    perm = np.random.default_rng(0).permutation(users.size)
    a = M.compute_metrics(users, labels, scores, probabilities=False)
    b = M.compute_metrics(users[perm], labels[perm], scores[perm], probabilities=False)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key


# --------------------------------------------------------------------------- bootstrap


def _bigger_data(seed: int = 0, n_users: int = 200, per_user: int = 10):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"user-{i}" for i in range(n_users)], per_user)
    labels = (rng.random(users.size) < 0.3).astype(int)
    scores = rng.random(users.size) + 0.5 * labels
    return users, labels, scores


@pytest.mark.parametrize("metric", ["gauc", "auc"])
def test_bootstrap_ci_contains_estimate_and_is_deterministic(metric):
    users, labels, scores = _bigger_data()
    point = (M.gauc(users, labels, scores).value if metric == "gauc"
             else M.roc_auc(labels, scores))
    lo, hi = M.bootstrap_ci(users, labels, scores, metric=metric, n_resamples=300, seed=3)
    assert lo < point < hi
    assert hi - lo < 0.2
    assert (lo, hi) == M.bootstrap_ci(users, labels, scores, metric=metric,
                                      n_resamples=300, seed=3)
    assert (lo, hi) != M.bootstrap_ci(users, labels, scores, metric=metric,
                                      n_resamples=300, seed=4)
    wider = M.bootstrap_ci(users, labels, scores, metric=metric, n_resamples=300,
                           alpha=0.01, seed=3)
    assert wider[0] <= lo and wider[1] >= hi


def test_bootstrap_auc_matches_naive_resampling():
    # same seed, same draws: resample indices into the ORIGINAL samples, sklearn AUC each
    users, labels, scores = _bigger_data(n_users=30)
    scores = np.round(scores, 1)  # ties
    n, b = labels.size, 50
    idx = np.random.default_rng(11).integers(0, n, size=(b, n))
    stats = [roc_auc_score(labels[i], scores[i]) for i in idx]
    expected = tuple(np.percentile(stats, [2.5, 97.5]))
    got = M.bootstrap_ci(users, labels, scores, metric="auc", n_resamples=b, seed=11)
    assert got == pytest.approx(expected, abs=1e-12)


def test_bootstrap_gauc_matches_naive_user_resampling():
    # users resampled among those with both labels, in order of first appearance
    users, labels, scores = _bigger_data(n_users=30, per_user=4)
    per_user = np.array([roc_auc_score(y, s) for y, s in _per_user(users, labels, scores)
                         if 0 < y.sum() < y.size])
    b = 50
    idx = np.random.default_rng(5).integers(0, per_user.size, size=(b, per_user.size))
    expected = tuple(np.percentile(per_user[idx].mean(axis=1), [2.5, 97.5]))
    got = M.bootstrap_ci(users, labels, scores, metric="gauc", n_resamples=b, seed=5)
    assert got == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_keys_exact_and_json():
    users, labels, scores = _bigger_data()
    base = {"n", "users", "positive_rate", "auc", "gauc", "gauc_users", "gauc_skipped_users",
            "mrr", "ndcg@1", "ndcg@5", "ndcg@10", "recall@1", "recall@5", "recall@10",
            "hit@1", "hit@5", "hit@10"}
    out = M.compute_metrics(users, labels, scores, probabilities=False)
    assert set(out) == base
    probs = scores / scores.max()
    out = M.compute_metrics(users, labels, probs, probabilities=True, bootstrap=50, seed=1)
    assert set(out) == base | {"logloss", "gauc_ci", "auc_ci"}
    for key, value in out.items():
        if key in ("gauc_ci", "auc_ci"):
            assert isinstance(value, list) and len(value) == 2
            assert all(type(v) is float for v in value)
        elif key in ("n", "users", "gauc_users", "gauc_skipped_users"):
            assert type(value) is int, key
        else:
            assert type(value) is float, key
    json.dumps(out)
    # consistent with the standalone functions
    assert out["gauc"] == M.gauc(users, labels, probs).value
    assert out["auc"] == M.roc_auc(labels, probs)
    assert out["mrr"] == M.mrr(users, labels, probs)
    assert out["ndcg@5"] == M.ndcg_at_k(users, labels, probs, 5)
    assert out["logloss"] == M.logloss(labels, probs)
    assert out["gauc_ci"] == list(M.bootstrap_ci(users, labels, probs, "gauc", 50, seed=1))
    assert out["auc_ci"] == list(M.bootstrap_ci(users, labels, probs, "auc", 50, seed=1))


def test_compute_metrics_at_benchmark_scale():
    # 20k samples over 2k users (speed is measured in benchmarks/, not asserted here)
    users, labels, scores = _bigger_data(n_users=2000, per_user=10)
    out = M.compute_metrics(users, labels, scores, probabilities=False, bootstrap=200)
    assert out["gauc_ci"][0] < out["gauc"] < out["gauc_ci"][1]
