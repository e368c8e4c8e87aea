"""`generative`: P(Yes) from the next-token logits of the Yes/No label tokens (PROTOCOL §1, §5).

Each user's candidates share one prompt prefix (instructions + numbered history), so they are
sent together and a local scorer runs the prefix once. Every score is committed to the cache
the moment it exists: API scorers report each answer through `on_result` as it arrives.
"""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Set, Tuple, cast

import numpy as np

from ..cache import request_key
from ..progress import progress_bar
from ..prompts import PromptRequest
from ..scorers.base import GenerativeScorer
from .base import Scheme, SchemeContext, SchemeOutput

CHUNK_USERS = 8  # users per scoring call: small enough to checkpoint often


def _scorer(ctx: SchemeContext) -> GenerativeScorer:
    return cast(GenerativeScorer, ctx.scorer)


def distinct_positions(positions: List[int], keys: List[str]) -> List[int]:
    """The first position of each distinct prompt, in order (one request per distinct prompt)."""
    seen: Set[str] = set()
    out = []
    for i in positions:
        if keys[i] not in seen:
            seen.add(keys[i])
            out.append(i)
    return out


class GenerativeScheme(Scheme):
    name = "generative"
    help = "P(Yes) from the Yes/No label logits after the answer cue"
    scorer_kind = "logits"
    probabilities = True
    template_layout = "prompt"
    uses_chat_template = True
    sft_losses = ("bce",)
    sft_trainer = "recbench.sft.train:GenerativeTrainer"
    sft_recipe_version = "2"  # batches of whole users (shuffled users), for prefix packing

    def prepare(self, scorer, builder) -> None:
        # label tokens from the template in use: what follows its answer cue
        scorer.set_answer_cue(builder.probe())

    def _requests(self, ctx: SchemeContext) -> Tuple[List[PromptRequest], List[int], List[List[int]]]:
        """Requests in the groups' order, their slots, and each user's request positions."""
        requests: List[PromptRequest] = []
        slots: List[int] = []
        per_user: List[List[int]] = []
        texts = ctx.texts
        for g in ctx.groups:
            reqs = ctx.builder.user_prompts([texts[h] for h in g.history if h in texts],
                                            [texts[c] for c in g.candidates])
            per_user.append(list(range(len(requests), len(requests) + len(reqs))))
            requests.extend(reqs)
            slots.extend(g.slots)
        return requests, slots, per_user

    def _keys(self, ctx: SchemeContext, requests: List[PromptRequest]) -> Tuple[List[PromptRequest], List[str]]:
        rendered = [_scorer(ctx).render(q) for q in requests]
        return rendered, [request_key(ctx.namespace, q.text) for q in rendered]

    def dry_run_requests(self, ctx: SchemeContext):
        requests, _, _ = self._requests(ctx)
        _, keys = self._keys(ctx, requests)
        return requests, keys

    def score(self, ctx: SchemeContext) -> SchemeOutput:
        requests, slot_of, per_user = self._requests(ctx)
        rendered, keys = self._keys(ctx, requests)
        cache, scorer = ctx.cache, _scorer(ctx)
        found = cache.get_scores(keys)
        extras_found = cache.get_extras(keys)
        todo_users = [pos for pos in per_user if any(keys[i] not in found for i in pos)]
        n_todo = sum(1 for k in set(keys) if k not in found)
        bar = progress_bar(n_todo, ctx.desc, ctx.config.progress)
        computed = 0
        # API scorers send a chunk concurrently: give them enough users to fill the pool
        chunk = max(CHUNK_USERS, scorer.concurrency * 2)
        lock = threading.Lock()
        for start in range(0, len(todo_users), chunk):
            batch = [i for pos in todo_users[start : start + chunk] for i in pos if keys[i] not in found]
            batch = distinct_positions(batch, keys)
            committed: Set[str] = set()

            def on_result(j: int, score: float, extra: Dict, _batch=batch, _done=committed) -> None:
                key = keys[_batch[j]]
                cache.put_scores({key: score}, {key: extra} if extra else None)
                with lock:
                    _done.add(key)
                    bar.update(1)

            scores, extras = scorer.score_detailed([requests[i] for i in batch], on_result=on_result)
            fresh = {keys[i]: float(v) for i, v in zip(batch, scores)}
            fresh_extra = {keys[i]: e for i, e in zip(batch, extras) if e}
            rest = {k: v for k, v in fresh.items() if k not in committed}
            if rest:
                cache.put_scores(rest, {k: fresh_extra[k] for k in rest if k in fresh_extra})
                bar.update(len(rest))
            found.update(fresh)
            extras_found.update(fresh_extra)
            computed += len(fresh)
        bar.close()
        masses = [float(e["mass"]) for e in (extras_found.get(k) for k in keys) if e and e.get("mass") is not None]
        by_slot = np.full(ctx.num_scores, np.nan)
        by_slot[slot_of] = [found[k] for k in keys]
        shown = {}
        if ctx.config.log_samples:
            prompts: List[Optional[str]] = [None] * ctx.num_scores
            for s, q in zip(slot_of, rendered):
                prompts[s] = q.text
            shown = {"prompt": prompts}
        n_distinct = len(set(keys))
        return SchemeOutput(
            scores=by_slot,
            requests=len(keys), cached=n_distinct - computed, computed=computed,
            meta={"label_mass_mean": float(np.mean(masses)) if masses else None,
                  "label_token_ids": scorer.label_info()},
            shown=shown,
        )
