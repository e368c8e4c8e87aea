"""`generative`: P(Yes) from the next-token logits of the Yes/No label tokens (PROTOCOL §1, §5).

Each user's candidates share one prompt prefix (instructions + numbered history), so they are
sent together and a local scorer runs the prefix once. Every score is committed to the cache
the moment it exists: API scorers report each answer through `on_result` as it arrives.
"""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..cache import request_key
from ..progress import progress_bar
from ..prompts import PromptRequest
from .base import Scheme, SchemeContext, SchemeOutput

CHUNK_USERS = 8  # users per scoring call: small enough to checkpoint often


def distinct_slots(slots: List[int], keys: List[str]) -> List[int]:
    """The first slot of each distinct prompt, in order (one request per distinct prompt)."""
    seen: Set[str] = set()
    out = []
    for s in slots:
        if keys[s] not in seen:
            seen.add(keys[s])
            out.append(s)
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

    def prepare(self, scorer, builder) -> None:
        # label tokens from the template in use: what follows its answer cue
        scorer.set_answer_cue(builder.probe())

    def _requests(self, ctx: SchemeContext) -> Tuple[List[PromptRequest], List[List[int]]]:
        """Requests in slot order, and the slots of each user (one scoring unit)."""
        requests: List[Optional[PromptRequest]] = [None] * ctx.num_scores
        per_user: List[List[int]] = []
        texts = ctx.texts
        for g in ctx.groups:
            reqs = ctx.builder.user_prompts([texts[h] for h in g.history if h in texts],
                                            [texts[c] for c in g.candidates])
            for slot, q in zip(g.slots, reqs):
                requests[slot] = q
            per_user.append(list(g.slots))
        return requests, per_user  # type: ignore[return-value]

    def _keys(self, ctx: SchemeContext, requests: List[PromptRequest]) -> Tuple[List[PromptRequest], List[str]]:
        rendered = [ctx.scorer.render(q) for q in requests]
        return rendered, [request_key(ctx.namespace, q.text) for q in rendered]

    def dry_run_requests(self, ctx: SchemeContext):
        requests, _ = self._requests(ctx)
        _, keys = self._keys(ctx, requests)
        return requests, keys

    def score(self, ctx: SchemeContext) -> SchemeOutput:
        requests, per_user = self._requests(ctx)
        rendered, keys = self._keys(ctx, requests)
        cache, scorer = ctx.cache, ctx.scorer
        found = cache.get_scores(keys)
        extras_found = cache.get_extras(keys)
        todo_users = [slots for slots in per_user if any(keys[s] not in found for s in slots)]
        n_todo = sum(1 for k in set(keys) if k not in found)
        bar = progress_bar(n_todo, ctx.desc, ctx.config.progress)
        computed = 0
        # API scorers send a chunk concurrently: give them enough users to fill the pool
        chunk = max(CHUNK_USERS, scorer.concurrency * 2)
        lock = threading.Lock()
        for start in range(0, len(todo_users), chunk):
            slots = [s for grp in todo_users[start : start + chunk] for s in grp if keys[s] not in found]
            slots = distinct_slots(slots, keys)
            committed: Set[str] = set()

            def on_result(i: int, score: float, extra: Dict, _slots=slots, _done=committed) -> None:
                key = keys[_slots[i]]
                cache.put_scores({key: score}, {key: extra} if extra else None)
                with lock:
                    _done.add(key)
                    bar.update(1)

            scores, extras = scorer.score_detailed([requests[s] for s in slots], on_result=on_result)
            fresh = {keys[s]: float(v) for s, v in zip(slots, scores)}
            fresh_extra = {keys[s]: e for s, e in zip(slots, extras) if e}
            rest = {k: v for k, v in fresh.items() if k not in committed}
            if rest:
                cache.put_scores(rest, {k: fresh_extra[k] for k in rest if k in fresh_extra})
                bar.update(len(rest))
            found.update(fresh)
            extras_found.update(fresh_extra)
            computed += len(fresh)
        bar.close()
        masses = [e.get("mass") for e in (extras_found.get(k) for k in keys) if e and e.get("mass") is not None]
        shown = {"prompt": [q.text for q in rendered]} if ctx.config.log_samples else {}
        n_distinct = len(set(keys))
        return SchemeOutput(
            scores=np.asarray([found[k] for k in keys], dtype=np.float64),
            requests=len(keys), cached=n_distinct - computed, computed=computed,
            meta={"label_mass_mean": float(np.mean(masses)) if masses else None,
                  "label_token_ids": scorer.label_info()},
            shown=shown,
        )
