"""Evaluation metrics of the RecBench protocol, as plain functions over arrays.

These functions are the protocol's definitions; every report and leaderboard number is
computed here, from the scorers' UNROUNDED float scores.

* The paper's headline "AUC" is :func:`gauc`: per-user ROC AUC, unweighted mean over the
  users that have both a positive and a negative candidate. :func:`roc_auc` (the pooled,
  global AUC) is reported alongside it as ``auc``.
* Per-user ranking metrics (gauc, mrr, ndcg@k, recall@k, hit@k) all average over the same
  users, those with >= 1 positive and >= 1 negative, so the numbers are comparable.
  Users with a single label carry no ranking signal and are skipped (and counted).

Two defects of the reference implementation are deliberately NOT repeated:

* it rounded scores to 4 decimals before computing metrics, which manufactures ties
  (a generative scorer's probabilities often differ only in later decimals), and
* its "MRR" was label-ranking average precision, not the reciprocal rank of the first
  positive.

Ties are handled explicitly rather than by whatever order a sort happens to produce:
AUC/gAUC use average ranks (Mann-Whitney U, identical to scikit-learn), nDCG averages
gains over tied groups (identical to ``sklearn.metrics.ndcg_score``), and the
first-hit/top-k metrics (mrr, recall@k, hit@k) break ties pessimistically (negatives
before positives) so a scorer that emits constant scores earns no credit from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "GAUCResult",
    "roc_auc",
    "gauc",
    "mrr",
    "ndcg_at_k",
    "recall_at_k",
    "hit_at_k",
    "logloss",
    "positive_rate",
    "bootstrap_ci",
    "compute_metrics",
    "target_ranks",
    "ranks_in_matrix",
    "ndcg_from_ranks",
    "recall_from_ranks",
    "bootstrap_mean_ci",
    "random_ranking_expectation",
    "ranking_metrics",
]

LOGLOSS_EPS = 1e-7
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000  # bounds memory of one vectorised bootstrap batch


class GAUCResult(NamedTuple):
    """gAUC plus the user counts needed to judge how much of the data it covers."""

    value: float
    users: int
    skipped_users: int


# --------------------------------------------------------------------------- validation


def _as_1d(x: ArrayLike, name: str, dtype: Any = None) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_labels(labels: ArrayLike) -> np.ndarray:
    y = _as_1d(labels, "labels")
    if y.size == 0:
        raise ValueError("metrics need at least one sample; labels is empty")
    if y.dtype == bool:
        return y.astype(np.int64)
    try:
        yf = y.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"labels must be 0/1, got dtype {y.dtype}") from None
    if not np.all((yf == 0) | (yf == 1)):
        bad = np.unique(yf[~((yf == 0) | (yf == 1))])[:5]
        raise ValueError(f"labels must be 0/1, found {bad.tolist()}")
    return yf.astype(np.int64)


def _check_scores(scores: ArrayLike, n: int, name: str = "scores") -> np.ndarray:
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if s.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {s.shape}")
    if s.size != n:
        raise ValueError(f"length mismatch: {n} labels but {s.size} {name}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contain NaN ({int(np.isnan(s).sum())} of {n}); "
                         "fix the scorer output instead of evaluating it")
    return s


def _check_users(user_ids: ArrayLike, n: int) -> Tuple[np.ndarray, int]:
    u = _as_1d(user_ids, "user_ids", dtype=object)
    if u.size != n:
        raise ValueError(f"length mismatch: {n} labels but {u.size} user_ids")
    codes, uniques = pd.factorize(u)
    if (codes < 0).any():
        raise ValueError(f"user_ids contain {int((codes < 0).sum())} missing values")
    return codes.astype(np.int64), len(uniques)


def _check_k(k: int) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


# --------------------------------------------------------------------------- core


@dataclass
class _Ranked:
    """Samples sorted once by (user, score desc, label asc); every metric reads this.

    Sorting negatives before positives inside a tie makes ``pos`` the pessimistic
    position used by mrr/recall/hit; tie groups (``gid``) are contiguous either way, so
    the tie-averaged metrics (AUC, nDCG) can use the same order.
    """

    n_users: int
    order: np.ndarray  # sorted position -> original sample index
    codes: np.ndarray  # user code per sorted sample
    y: np.ndarray  # label per sorted sample (int64)
    s: np.ndarray  # score per sorted sample
    pos: np.ndarray  # 0-based position inside the user's list
    gid: np.ndarray  # tie-group id per sorted sample (groups never span users)
    g_start: np.ndarray  # within-user position of each group's first sample
    g_size: np.ndarray  # samples per tie group
    g_pos: np.ndarray  # positives per tie group
    n_u: np.ndarray  # samples per user
    p_u: np.ndarray  # positives per user

    @property
    def eligible(self) -> np.ndarray:
        """Users with both labels: the only ones with a defined ranking metric."""
        return (self.p_u > 0) & (self.p_u < self.n_u)


def _rank(codes: np.ndarray, y: np.ndarray, s: np.ndarray, n_users: int) -> _Ranked:
    order = np.lexsort((y, -s, codes))
    codes, y, s = codes[order], y[order], s[order]
    n = codes.size
    n_u = np.bincount(codes, minlength=n_users)
    p_u = np.bincount(codes, weights=y, minlength=n_users).astype(np.int64)
    user_start = np.concatenate(([0], np.cumsum(n_u)[:-1]))
    pos = np.arange(n) - user_start[codes]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = (codes[1:] != codes[:-1]) | (s[1:] != s[:-1])
    gid = np.cumsum(new_group) - 1
    return _Ranked(
        n_users=n_users,
        order=order,
        codes=codes,
        y=y,
        s=s,
        pos=pos,
        gid=gid,
        g_start=pos[new_group],
        g_size=np.bincount(gid),
        g_pos=np.bincount(gid, weights=y).astype(np.int64),
        n_u=n_u,
        p_u=p_u,
    )


def _user_auc(r: _Ranked) -> np.ndarray:
    """Per-user Mann-Whitney AUC (NaN for users with one label)."""
    # average 1-based rank in descending order, then flipped to ascending
    desc_rank = r.g_start + (r.g_size - 1) / 2.0 + 1.0
    asc_rank = r.n_u[r.codes] + 1.0 - desc_rank[r.gid]
    rank_sum = np.bincount(r.codes, weights=r.y * asc_rank, minlength=r.n_users)
    n_neg = r.n_u - r.p_u
    u_stat = rank_sum - r.p_u * (r.p_u + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u_stat / (r.p_u * n_neg)
    auc[~r.eligible] = np.nan
    return auc


def _first_positive_rank(r: _Ranked) -> np.ndarray:
    """1-based pessimistic rank of each user's first positive (inf when none)."""
    first = np.full(r.n_users, np.inf)
    is_pos = r.y == 1
    users_with_pos, idx = np.unique(r.codes[is_pos], return_index=True)
    first[users_with_pos] = r.pos[is_pos][idx] + 1
    return first


def _user_ndcg(r: _Ranked, k: int) -> np.ndarray:
    # sklearn's tie-averaged DCG: each tied group contributes its mean gain times the sum
    # of the discounts of the positions it occupies (positions >= k discount 0)
    disc = np.where(r.pos < k, 1.0 / np.log2(r.pos + 2.0), 0.0)
    mean_gain = r.g_pos / r.g_size
    dcg = np.bincount(r.codes, weights=mean_gain[r.gid] * disc, minlength=r.n_users)
    ideal_cum = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))))
    idcg = ideal_cum[np.minimum(r.p_u, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dcg / idcg
    out[~r.eligible] = np.nan
    return out


def _user_recall(r: _Ranked, k: int) -> np.ndarray:
    hits = np.bincount(r.codes, weights=r.y * (r.pos < k), minlength=r.n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = hits / r.p_u
    out[~r.eligible] = np.nan
    return out


def _mean_over_eligible(values: np.ndarray, r: _Ranked) -> float:
    el = r.eligible
    return float(values[el].mean()) if el.any() else float("nan")


def _validate(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike
              ) -> Tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    y = _check_labels(labels)
    s = _check_scores(scores, y.size)
    codes, n_users = _check_users(user_ids, y.size)
    return codes, n_users, y, s


def _prepare(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> _Ranked:
    codes, n_users, y, s = _validate(user_ids, labels, scores)
    return _rank(codes, y, s, n_users)


def _global(y: np.ndarray, s: np.ndarray) -> _Ranked:
    return _rank(np.zeros(y.size, dtype=np.int64), y, s, 1)


def _prepare_global(labels: ArrayLike, scores: ArrayLike) -> _Ranked:
    y = _check_labels(labels)
    return _global(y, _check_scores(scores, y.size))


# --------------------------------------------------------------------------- public


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Pooled ROC AUC with average ranks for ties; NaN when only one class is present.

    Equal to ``sklearn.metrics.roc_auc_score`` but returns NaN instead of raising, so a
    degenerate run still produces a report.
    """
    return float(_user_auc(_prepare_global(labels, scores))[0])


def gauc(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> GAUCResult:
    """Per-user AUC, unweighted mean: the paper's headline "AUC".

    Unweighted so heavy users do not dominate. Users without both labels have no AUC
    and are skipped; the counts are returned so a report can show the coverage.
    """
    r = _prepare(user_ids, labels, scores)
    used = int(r.eligible.sum())
    return GAUCResult(_mean_over_eligible(_user_auc(r), r), used, r.n_users - used)


def mrr(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> float:
    """Mean reciprocal rank of each user's first positive, ties broken pessimistically.

    rank = 1 + #negatives scoring >= the user's best positive, i.e. tied negatives are
    placed first. This is deterministic and never rewards a scorer for emitting ties.
    Averaged over users with >= 1 positive and >= 1 negative (as gauc).
    """
    r = _prepare(user_ids, labels, scores)
    return _mean_over_eligible(1.0 / _first_positive_rank(r), r)


def ndcg_at_k(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Binary-relevance nDCG@k per user, averaged over users with both labels.

    Gain 1, discount 1/log2(rank+1), normalised by the ideal DCG. Ties are averaged over
    the tied group exactly like ``sklearn.metrics.ndcg_score`` (its default), so the
    per-user values equal ``ndcg_score(y[None], s[None], k=k)``.
    """
    k = _check_k(k)
    r = _prepare(user_ids, labels, scores)
    return _mean_over_eligible(_user_ndcg(r, k), r)


def recall_at_k(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Per user, #positives in the top k / #positives (not / min(k, #positives)).

    Top k uses the same pessimistic tie-break as :func:`mrr`, so recall@k equals hit@k
    for a user with one positive. Averaged over users with both labels.
    """
    k = _check_k(k)
    r = _prepare(user_ids, labels, scores)
    return _mean_over_eligible(_user_recall(r, k), r)


def hit_at_k(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Fraction of users with a positive in the top k (pessimistic tie-break, as mrr)."""
    k = _check_k(k)
    r = _prepare(user_ids, labels, scores)
    return _mean_over_eligible((_first_positive_rank(r) <= k).astype(float), r)


def logloss(labels: ArrayLike, probs: ArrayLike) -> float:
    """Binary cross-entropy with probabilities clipped to [1e-7, 1 - 1e-7].

    Only meaningful for the generative scheme, whose scores are P("yes"). Clipping keeps
    one confident mistake from making the mean infinite. Probabilities outside [0, 1]
    raise: they mean the scores are not probabilities and the number would be garbage.
    """
    y = _check_labels(labels)
    p = _check_scores(probs, y.size, name="probs")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("logloss needs probabilities in [0, 1]; "
                         f"got min {p.min():.6g}, max {p.max():.6g}")
    p = np.clip(p, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def positive_rate(labels: ArrayLike) -> float:
    """Share of positive samples: the chance level of precision-type numbers."""
    return float(_check_labels(labels).mean())


def _percentile_interval(stats: np.ndarray, alpha: float) -> Tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _bootstrap_gauc(r: _Ranked, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    # resampling users with replacement = resampling their per-user AUCs; users without
    # both labels never enter the mean, so they are left out of the draw
    values = _user_auc(r)[r.eligible]
    m = values.size
    if m == 0:
        return np.full(n_resamples, np.nan)
    out = np.empty(n_resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // m)
    for b0 in range(0, n_resamples, chunk):
        b1 = min(n_resamples, b0 + chunk)
        out[b0:b1] = values[rng.integers(0, m, size=(b1 - b0, m))].mean(axis=1)
    return out


def _bootstrap_auc(r: _Ranked, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    # A resample is a multiset of samples, so only per-tie-group positive/negative counts
    # matter: U = sum_g P_g * (negatives in lower-score groups + N_g / 2).
    n = r.y.size
    n_groups = r.g_size.size
    # index draws by ORIGINAL sample position so a resample is reproducible from the seed
    gid = np.empty(n, dtype=np.int64)
    gid[r.order] = r.gid
    y = np.empty(n, dtype=np.int64)
    y[r.order] = r.y
    out = np.empty(n_resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    for b0 in range(0, n_resamples, chunk):
        b = min(n_resamples, b0 + chunk) - b0
        idx = rng.integers(0, n, size=(b, n))
        keys = (np.arange(b)[:, None] * n_groups + gid[idx]).ravel()
        tot = np.bincount(keys, minlength=b * n_groups).reshape(b, n_groups)
        pos = np.bincount(keys, weights=y[idx].ravel(),
                          minlength=b * n_groups).reshape(b, n_groups)
        neg = tot - pos
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
        # groups are in descending score order: negatives below g = total - cumulative
        neg_below = n_neg[:, None] - np.cumsum(neg, axis=1)
        u_stat = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b0 + b] = u_stat / (n_pos * n_neg)
    return out


def _bootstrap(r_user: _Ranked | None, r_global: _Ranked | None, metric: str,
               n_resamples: int, alpha: float, seed: int) -> Tuple[float, float]:
    rng = np.random.default_rng(seed)
    if metric == "gauc":
        assert r_user is not None
        stats = _bootstrap_gauc(r_user, n_resamples, rng)
    else:
        assert r_global is not None
        stats = _bootstrap_auc(r_global, n_resamples, rng)
    return _percentile_interval(stats, alpha)


def _check_bootstrap_args(metric: str, n_resamples: int, alpha: float) -> None:
    if metric not in ("gauc", "auc"):
        raise ValueError(f"bootstrap metric must be 'gauc' or 'auc', got {metric!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def bootstrap_ci(
    user_ids: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    metric: str = "gauc",
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval for gauc (users resampled) or auc (samples resampled).

    gauc resamples users because users, not samples, are its independent units; auc is
    a pooled statistic, so it resamples samples. Resamples where the statistic is
    undefined are dropped; (NaN, NaN) if none is defined. Deterministic for a seed.
    """
    _check_bootstrap_args(metric, n_resamples, alpha)
    codes, n_users, y, s = _validate(user_ids, labels, scores)
    if metric == "gauc":
        return _bootstrap(_rank(codes, y, s, n_users), None, metric, int(n_resamples), alpha, seed)
    return _bootstrap(None, _global(y, s), metric, int(n_resamples), alpha, seed)


def compute_metrics(
    user_ids: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    probabilities: bool,
    ks: Sequence[int] = (1, 5, 10),
    bootstrap: int = 0,
    seed: int = 0,
) -> Dict[str, Any]:
    """All protocol metrics in one flat, JSON-serialisable dict (plain floats and ints).

    Sorts once and derives every metric from that, so a full report is cheap. Undefined
    values are NaN rather than errors, so a degenerate run still yields a report.
    ``logloss`` is present only when ``probabilities`` (the scores are P(positive));
    ``gauc_ci`` / ``auc_ci`` only when ``bootstrap`` > 0 (the number of resamples).
    """
    ks = [_check_k(k) for k in ks]
    if bootstrap:
        _check_bootstrap_args("gauc", bootstrap, 0.05)
    codes, n_users, y, s = _validate(user_ids, labels, scores)
    r = _rank(codes, y, s, n_users)
    r_global = _global(y, s)
    used = int(r.eligible.sum())
    out: Dict[str, Any] = {
        "n": int(y.size),
        "users": int(r.n_users),
        "positive_rate": float(y.mean()),
        "auc": float(_user_auc(r_global)[0]),
        "gauc": _mean_over_eligible(_user_auc(r), r),
        "gauc_users": used,
        "gauc_skipped_users": int(r.n_users - used),
    }
    first = _first_positive_rank(r)
    out["mrr"] = _mean_over_eligible(1.0 / first, r)
    for k in ks:
        out[f"ndcg@{k}"] = _mean_over_eligible(_user_ndcg(r, k), r)
    for k in ks:
        out[f"recall@{k}"] = _mean_over_eligible(_user_recall(r, k), r)
    for k in ks:
        out[f"hit@{k}"] = _mean_over_eligible((first <= k).astype(float), r)
    if probabilities:
        out["logloss"] = logloss(y, s)
    if bootstrap:
        out["gauc_ci"] = list(_bootstrap(r, None, "gauc", int(bootstrap), 0.05, seed))
        out["auc_ci"] = list(_bootstrap(None, r_global, "auc", int(bootstrap), 0.05, seed))
    return out


# --------------------------------------------------------------------------- ranking (SeqRec)
#
# The SeqRec task (PROTOCOL §10) ranks one target among a user's candidates. Every metric is
# a function of the target's rank, so the ranks are computed once and the metrics read them.
# Ties are broken pessimistically: every other candidate scoring >= the target is placed
# before it, so a scorer emitting constant scores earns the worst rank.

RANKING_KS = (1, 5, 10, 20)


def target_ranks(scores: ArrayLike, group_ids: ArrayLike, is_target: ArrayLike) -> np.ndarray:
    """1-based pessimistic rank of each group's target among the group's scores.

    scores, group_ids (0..G-1) and is_target are flat and aligned; each group has exactly one
    target. rank = 1 + #(other candidates of the group with score >= the target's score).
    """
    g = _as_1d(group_ids, "group_ids").astype(np.int64)
    t = _as_1d(is_target, "is_target").astype(bool)
    s = _check_scores(scores, g.size)
    if t.size != g.size:
        raise ValueError(f"length mismatch: {g.size} group ids but {t.size} target flags")
    if g.size == 0:
        return np.zeros(0, dtype=np.int64)
    n_groups = int(g.max()) + 1
    per_group = np.bincount(g[t], minlength=n_groups)
    if (per_group != 1).any():
        bad = int(np.flatnonzero(per_group != 1)[0])
        raise ValueError(f"every group needs exactly one target; group {bad} has {int(per_group[bad])}")
    t_score = np.empty(n_groups)
    t_score[g[t]] = s[t]
    ahead = (s >= t_score[g]) & ~t
    return 1 + np.bincount(g, weights=ahead, minlength=n_groups).astype(np.int64)


def ranks_in_matrix(scores: np.ndarray, target_col: ArrayLike,
                    exclude: Optional[Tuple[ArrayLike, ArrayLike]] = None) -> np.ndarray:
    """Pessimistic 1-based rank of item target_col[i] in row i of a (users, items) score matrix.

    exclude: optional (rows, cols) index arrays of cells that are not ranked (in full-catalogue
    ranking, the user's other known interactions); each cell at most once, never a target.
    Vectorised over the matrix: no loop per item or user.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a (users, items) matrix, got shape {s.shape}")
    cols = np.asarray(target_col, dtype=np.int64)
    if cols.shape != (s.shape[0],):
        raise ValueError(f"target_col needs one column per row ({s.shape[0]}), got shape {cols.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; fix the scorer output instead of evaluating it")
    rows = np.arange(s.shape[0])
    t = s[rows, cols]
    ranks = np.count_nonzero(s >= t[:, None], axis=1).astype(np.int64)  # the target counts itself
    if exclude is not None:
        r_idx = np.asarray(exclude[0], dtype=np.int64)
        c_idx = np.asarray(exclude[1], dtype=np.int64)
        if r_idx.size:
            ahead = s[r_idx, c_idx] >= t[r_idx]
            ranks -= np.bincount(r_idx, weights=ahead, minlength=s.shape[0]).astype(np.int64)
    return ranks


def ndcg_from_ranks(ranks: ArrayLike, k: int) -> np.ndarray:
    """Per-user NDCG@k with one relevant item: 1/log2(rank+1) inside the top k, else 0."""
    k = _check_k(k)
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)


def recall_from_ranks(ranks: ArrayLike, k: int) -> np.ndarray:
    """Per-user Recall@k (= HR@k) with one relevant item: 1 inside the top k, else 0."""
    k = _check_k(k)
    return (np.asarray(ranks) <= k).astype(np.float64)


def bootstrap_mean_ci(values: ArrayLike, n_resamples: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of a mean over users (users resampled with replacement)."""
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    m = v.size
    if m == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_resamples = int(n_resamples)
    out = np.empty(n_resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // m)
    for b0 in range(0, n_resamples, chunk):
        b1 = min(n_resamples, b0 + chunk)
        out[b0:b1] = v[rng.integers(0, m, size=(b1 - b0, m))].mean(axis=1)
    return _percentile_interval(out, alpha)


def random_ranking_expectation(num_candidates: ArrayLike, metric: str) -> float:
    """Expected value of a ranking metric for a scorer that ranks at random.

    The target is equally likely at every rank 1..C of a user's C candidates; averaged over
    users. ndcg@k = mean(1/log2(r+1), r <= k) / C, recall@k = min(k, C) / C, mrr = H_C / C,
    mean_rank = (C + 1) / 2."""
    c = np.asarray(num_candidates, dtype=np.int64).ravel()
    if c.size == 0 or (c < 1).any():
        raise ValueError("num_candidates must hold positive counts")
    if metric == "mean_rank":
        return float(np.mean((c + 1) / 2.0))
    top = int(c.max())
    disc = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(1, top + 1) + 1.0))))
    harmonic = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, top + 1))))
    if metric == "mrr":
        return float(np.mean(harmonic[c] / c))
    name, _, k_text = metric.partition("@")
    if name in ("ndcg", "recall") and k_text.isdigit():
        k = _check_k(int(k_text))
        if name == "ndcg":
            return float(np.mean(disc[np.minimum(c, k)] / c))
        return float(np.mean(np.minimum(c, k) / c))
    raise ValueError(f"no random expectation for metric {metric!r}")


def ranking_metrics(
    ranks: ArrayLike,
    *,
    num_candidates: Optional[ArrayLike] = None,
    ks: Sequence[int] = RANKING_KS,
    bootstrap: int = 0,
    seed: int = 0,
) -> Dict[str, Any]:
    """The SeqRec metrics from the targets' ranks, one flat JSON-serialisable dict.

    ndcg@k and recall@k for each k, mrr (1/rank, not cut off), mean_rank; users and, with
    num_candidates, the mean number of candidates per user (the chance level depends on it).
    With ``bootstrap`` > 0, ``ndcg@10_ci`` and ``mrr_ci``: percentile intervals over users."""
    ks = [_check_k(k) for k in ks]
    r = _as_1d(ranks, "ranks").astype(np.float64)
    if r.size == 0:
        raise ValueError("ranking metrics need at least one user; ranks is empty")
    if np.isnan(r).any() or (r < 1).any():
        raise ValueError("ranks must be >= 1")
    out: Dict[str, Any] = {"n": int(r.size), "users": int(r.size)}
    if num_candidates is not None:
        c = _as_1d(num_candidates, "num_candidates")
        if c.size != r.size:
            raise ValueError(f"length mismatch: {r.size} ranks but {c.size} candidate counts")
        if (r > c).any():
            raise ValueError("a rank exceeds its user's number of candidates")
        out["candidates"] = float(np.mean(c))
    per_user: Dict[str, np.ndarray] = {}
    for k in ks:
        per_user[f"ndcg@{k}"] = ndcg_from_ranks(r, k)
    per_user["mrr"] = 1.0 / r
    for k in ks:
        per_user[f"recall@{k}"] = recall_from_ranks(r, k)
    for name, values in per_user.items():
        out[name] = float(values.mean())
    out["mean_rank"] = float(r.mean())
    if bootstrap:
        for name in ("ndcg@10", "mrr"):
            ci_of = per_user[name] if name in per_user else ndcg_from_ranks(r, 10)
            out[f"{name}_ci"] = list(bootstrap_mean_ci(ci_of, int(bootstrap), 0.05, seed))
    return out
