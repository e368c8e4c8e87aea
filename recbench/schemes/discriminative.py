"""`discriminative`: similarity of the user-history and candidate embeddings (PROTOCOL §1).

Each distinct user text and item text is embedded once, committed to the vector cache in
small batches (a kill loses seconds of work), and the scores are one row-wise dot product.

Full-catalogue ranking (seqrec --candidates all, `SchemeContext.catalogue`): every catalogue
item is embedded once and each batch of users is scored against all items with one matrix
product; the task's reduction turns each block into the targets' ranks, so no (users x items)
matrix is ever held whole and no Python loop runs per item.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, cast

import numpy as np

from ..cache import request_key
from ..progress import progress_bar
from ..scorers.base import EmbeddingScorer
from .base import Scheme, SchemeContext, SchemeOutput

if TYPE_CHECKING:  # pragma: no cover
    from ..distributed import Shard

COMMIT_EVERY_S = 2.0  # commit embeddings at least this often
MAX_BATCH = 64  # texts per embed call (and per commit at most)
CATALOGUE_BLOCK = 1 << 24  # scores per user-block x catalogue matrix product (64 MiB of float32)
# float32 halves the time of the matrix products; scores closer than float32 precision may then
# rank differently from the per-pair path (float64), which matters only for near-exact ties
CATALOGUE_DTYPE = np.float32


def normalise(m: np.ndarray) -> np.ndarray:
    return m / np.clip(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12, None)


def rank_catalogue(users: np.ndarray, items: np.ndarray, reduce) -> np.ndarray:
    """Score (n, d) user vectors against (I, d) item vectors one block of users at a time (one
    matrix product each) and return what `reduce(group indices, block)` makes of each block."""
    v_t = np.ascontiguousarray(items.T)
    out = np.empty(len(users), dtype=np.float64)
    step = max(1, CATALOGUE_BLOCK // max(1, v_t.shape[1]))
    for start in range(0, len(users), step):
        stop = min(len(users), start + step)
        out[start:stop] = reduce(range(start, stop), users[start:stop] @ v_t)
    return out


class DiscriminativeScheme(Scheme):
    name = "discriminative"
    help = "cosine (or dot) similarity of user-history and item embeddings"
    scorer_kind = "embedding"
    probabilities = False
    template_layout = "pair"
    sft_losses = ("bce", "cosine", "contrastive")
    sft_trainer = "recbench.sft.train:DiscriminativeTrainer"
    sft_settings = ("temperature", "margin")
    ranks_catalogue = True

    def _texts(self, ctx: SchemeContext) -> Tuple[List[str], List[str], List[int]]:
        """User text and item text per pair, in the groups' order, and the pairs' slots."""
        texts = ctx.texts
        user_of: Dict[Tuple[str, ...], str] = {}
        item_of: Dict[str, str] = {}
        users: List[str] = []
        items: List[str] = []
        slots: List[int] = []
        for g in ctx.groups:
            if g.history not in user_of:
                user_of[g.history] = ctx.builder.user_text([texts[h] for h in g.history if h in texts])
            for slot, c in zip(g.slots, g.candidates):
                if c not in item_of:
                    item_of[c] = ctx.builder.item_text(texts[c])
                users.append(user_of[g.history])
                items.append(item_of[c])
                slots.append(slot)
        return users, items, slots

    def dry_run_requests(self, ctx: SchemeContext):
        if ctx.catalogue is not None:
            users, items = self._catalogue_texts(ctx)
            return list(dict.fromkeys(users)) + list(dict.fromkeys(items)), []
        users, items, _ = self._texts(ctx)
        distinct = list(dict.fromkeys(users)) + list(dict.fromkeys(items))
        return distinct, []

    def embed_distinct(self, ctx: SchemeContext, role: str, distinct: List[str]) -> Tuple[np.ndarray, int]:
        """(len(distinct), dim) vectors, from the cache or computed and committed as they come."""
        keys = [request_key(ctx.namespace, f"{role}\x00{t}") for t in distinct]
        found = ctx.cache.get_vectors(keys)
        todo = [k for k in range(len(distinct)) if keys[k] not in found]
        bar = progress_bar(len(todo), f"{ctx.desc} {role}s", ctx.config.progress)
        pending: Dict[str, np.ndarray] = {}
        last = time.monotonic()
        scorer = cast(EmbeddingScorer, ctx.scorer)
        step = max(1, min(MAX_BATCH, scorer.embed_batch_size))
        for start in range(0, len(todo), step):
            idx = todo[start : start + step]
            vecs = scorer.embed([distinct[k] for k in idx], role)
            fresh = {keys[k]: v for k, v in zip(idx, vecs)}
            pending.update(fresh)
            found.update(fresh)
            if time.monotonic() - last >= COMMIT_EVERY_S or start + step >= len(todo):
                ctx.cache.put_vectors(pending)
                pending, last = {}, time.monotonic()
            bar.update(len(idx))
        bar.close()
        out = np.stack([found[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
        return out, len(todo)

    def _catalogue_texts(self, ctx: SchemeContext) -> Tuple[List[str], List[str]]:
        """User text per group and item text per catalogue item."""
        texts = ctx.texts
        assert ctx.catalogue is not None
        user_of: Dict[Tuple[str, ...], str] = {}
        for g in ctx.groups:
            if g.history not in user_of:
                user_of[g.history] = ctx.builder.user_text([texts[h] for h in g.history if h in texts])
        return [user_of[g.history] for g in ctx.groups], [ctx.builder.item_text(texts[i]) for i in ctx.catalogue.items]

    def _score_catalogue(self, ctx: SchemeContext) -> SchemeOutput:
        """One matrix product per block of users against every catalogue item."""
        assert ctx.catalogue is not None
        users, items = self._catalogue_texts(ctx)
        computed = 0
        mats = {}
        counts = {}
        for role, per_row in (("user", users), ("item", items)):
            distinct = list(dict.fromkeys(per_row))
            vecs, n = self.embed_distinct(ctx, role, distinct)
            computed += n
            pos = {t: i for i, t in enumerate(distinct)}
            m = vecs[[pos[t] for t in per_row]].astype(np.float64)
            if ctx.config.similarity == "cosine":
                m = normalise(m)
            mats[role] = np.ascontiguousarray(m, dtype=CATALOGUE_DTYPE)  # read when called: tests may patch it
            counts[role] = len(distinct)
        t0 = time.perf_counter()
        reduce = ctx.catalogue.reduce
        user_idx = np.fromiter((ctx.catalogue.user_of(g) for g in ctx.groups), dtype=np.int64, count=len(ctx.groups))
        ranks = np.full(ctx.catalogue.num_users, np.nan)  # users of groups not scored here (shards) stay NaN
        ranks[user_idx] = rank_catalogue(mats["user"], mats["item"],
                                         lambda rows, block: reduce(user_idx[np.asarray(rows)], block))
        rank_s = time.perf_counter() - t0
        n_distinct = counts["user"] + counts["item"]
        shown: Dict[str, List[Any]] = {}
        if ctx.config.log_samples:
            user_col: List[Any] = [None] * ctx.catalogue.num_users
            for k, text in zip(user_idx.tolist(), users):
                user_col[k] = text
            shown = {"user_text": user_col}
        return SchemeOutput(
            scores=ranks, requests=n_distinct, cached=n_distinct - computed, computed=computed,
            meta={"similarity": ctx.config.similarity, "full_catalogue": True, "rank_s": round(rank_s, 3)},
            counts={"distinct_users": counts["user"], "distinct_items": counts["item"],
                    "catalogue_items": len(items), "computed_embeddings": computed},
            shown=shown,
        )

    def score_share(self, ctx: SchemeContext, shard: "Shard") -> SchemeOutput:
        """Every rank embeds its share of the distinct texts of all users (an item two ranks'
        users share is embedded once, and a catalogue is split, not embedded by every rank)."""
        if ctx.catalogue is not None:
            per_role = dict(zip(("user", "item"), self._catalogue_texts(ctx)))
        else:
            users, items, _ = self._texts(ctx)
            per_role = {"user": users, "item": items}
        computed = 0
        for role, texts in per_role.items():
            computed += self.embed_distinct(ctx, role, shard.take(list(dict.fromkeys(texts))))[1]
        return SchemeOutput(scores=np.full(ctx.num_scores, np.nan), requests=computed, cached=0, computed=computed)

    def score(self, ctx: SchemeContext) -> SchemeOutput:
        if ctx.catalogue is not None:
            return self._score_catalogue(ctx)
        users, items, slot_of = self._texts(ctx)
        matrices = {}
        computed = 0
        distinct_of = {}
        for role, per_slot in (("user", users), ("item", items)):
            distinct = list(dict.fromkeys(per_slot))
            distinct_of[role] = distinct
            matrices[role], n = self.embed_distinct(ctx, role, distinct)
            computed += n
        pos_u = {t: i for i, t in enumerate(distinct_of["user"])}
        pos_i = {t: i for i, t in enumerate(distinct_of["item"])}
        u = matrices["user"][[pos_u[t] for t in users]].astype(np.float64)
        v = matrices["item"][[pos_i[t] for t in items]].astype(np.float64)
        if ctx.config.similarity == "cosine":
            u, v = normalise(u), normalise(v)
        scores = np.full(ctx.num_scores, np.nan)
        scores[slot_of] = np.einsum("ij,ij->i", u, v)
        n_distinct = len(distinct_of["user"]) + len(distinct_of["item"])
        shown: Dict[str, List[Any]] = {}
        if ctx.config.log_samples:
            user_col: List[Optional[str]] = [None] * ctx.num_scores
            item_col: List[Optional[str]] = [None] * ctx.num_scores
            for s, a, b in zip(slot_of, users, items):
                user_col[s], item_col[s] = a, b
            shown = {"user_text": user_col, "item_text": item_col}
        return SchemeOutput(
            scores=scores, requests=n_distinct, cached=n_distinct - computed, computed=computed,
            meta={"similarity": ctx.config.similarity},
            counts={"distinct_users": len(distinct_of["user"]), "distinct_items": len(distinct_of["item"]),
                    "computed_embeddings": computed},
            shown=shown,
        )
