"""`listwise`: the model writes a ranking of a user's candidates (LLMRank / LLM4Rec style).

One prompt per user shows the history and k candidates (`--listwise-k`, default 20) with
short identifiers ([A], [B], ... or [1], [2], ... above 26) in a seeded shuffled order and
asks for a ranking; the answer is generated greedily, parsed and turned into scores. Every
rule below is chosen so that nothing but the model's answer can favour the target:

- **Shown candidates.** The first k of a group in the task's order (seqrec: the target, then
  its negatives in their drawn order; the task never passes labels). Candidates beyond k
  score 0, below every shown one (shown scores are >= 1). A task whose candidate order
  follows its labels (ctr lists a user's positives first) says so with
  `Task.may_cut_groups(cfg) -> False`; there a group larger than k is refused with one line
  rather than cut, since the cut would favour the positives. ctr groups that fit are ranked
  like any other (gauc, MRR and nDCG then measure the generated ranking).
- **Shown order.** A permutation seeded by (seed, user, permutation index) only, never by
  item ids or their order in the group: every candidate, the target included, is equally
  likely to be shown at each position.
- **Parsing.** Identifiers are read in answer order from the first lines that hold any
  ([C] > [A] > ..., one per line, or bare letters/numbers on a line of nothing else), up to
  a `Reason:` line. Per answer it records whether it is a valid complete permutation, and how
  many identifiers were missing, repeated (later copies are ignored) or invented.
- **Unranked candidates** (missing from an answer) go below the ranked ones in their shown
  order. As the shown order is the seeded shuffle, the target's place among them is uniform:
  the fill cannot favour it (tests/test_listwise.py checks this by construction and
  statistically).
- **Scores.** Per permutation, the candidate at rank r (0 = first) of n shown gets n - r
  points; a candidate's score is its mean over `--permutations` P orders (Borda count), so P
  > 1 averages out the model's position bias. Scores are not probabilities.
- **Position bias.** `meta.ranking.position_bias` (documented in `position_bias_block`)
  holds, per shown position, how many valid answers showed a candidate there, its mean rank
  and how often it came first: over all candidates (the model's position bias) and for the
  group's first candidate (the target in seqrec). The reporter draws it
  (report/figures.py: position_bias_figure). With --log-samples each scored row also holds
  its shown position and rank per permutation.
- **Cache.** Each answer is committed the moment it exists, as a score-cache row (value 0,
  the text in its extra JSON) keyed by namespace + the answer's token allowance + the exact
  text the model sees; a rerun generates nothing it has.

Settings: --listwise-k, --permutations, --explain (a one-line reason for the top item, kept
in the logged samples), --max-new-tokens (default: 6 per shown candidate, +48 with
--explain). The chat template applies when the model has one, unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
import sys
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from ..cache import request_key
from ..errors import ConfigError, ModelError
from ..progress import progress_bar
from ..prompts import PromptBuilder, Template, _put, _slots, shorten
from ..scorers.base import GenerationRequest, TextGenerator
from .base import Scheme, SchemeContext, SchemeOutput

CHUNK_USERS = 8  # users per generate call: small enough to checkpoint often
TOKENS_PER_CANDIDATE = 6  # default answer allowance: "[A] > " is about 4 tokens
EXPLAIN_TOKENS = 48
MIN_PROMPT_TOKENS = 64
EXPLAIN_INSTRUCTION = ('. Then, on a new line starting with "Reason:", say in one sentence why the first one '
                       "fits this user best")
_BRACKETED = re.compile(r"\[\s*([^\[\]\s]{1,12})\s*\]")
_BARE_SPLIT = re.compile(r"(?:->|[\s>,;|.()])+")
_BARE_TOKEN = re.compile(r"^(?:[A-Z]|\d{1,3})$")
_LABEL = re.compile(r"^\s*(?:ranking|answer|ranked list)\s*:\s*", re.IGNORECASE)
_REASON = re.compile(r"\b(?:reason|explanation)\s*:", re.IGNORECASE)


# -- pure pieces (tested directly) ------------------------------------------------------------
def identifiers(n: int, k: int) -> List[str]:
    """The first n identifiers of a run that shows up to k: letters up to 26, else numbers."""
    if k <= len(string.ascii_uppercase):
        return list(string.ascii_uppercase[:n])
    return [str(i) for i in range(1, n + 1)]


def shown_order(seed: int, user_id: str, permutation: int, n: int) -> List[int]:
    """order[s] = the candidate index shown at position s. Seeded by (seed, user, permutation)
    only (a stable hash, not Python's), so it does not depend on which items the candidates
    are nor on where the task put the target."""
    digest = hashlib.sha256(f"listwise\x00{seed}\x00{user_id}\x00{permutation}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return [int(x) for x in rng.permutation(n)]


@dataclass
class ParsedRanking:
    """What an answer said: shown positions in the answer's order (first mentions only)."""

    order: List[int]
    missing: int
    repeated: int
    invented: int
    reason: Optional[str] = None

    @property
    def valid(self) -> bool:
        """A complete permutation: every identifier once, nothing else."""
        return self.missing == 0 and self.repeated == 0 and self.invented == 0

    @property
    def empty(self) -> bool:
        return not self.order and self.repeated == 0 and self.invented == 0

    def as_dict(self) -> Dict[str, Any]:
        return {"valid": self.valid, "missing": self.missing, "repeated": self.repeated, "invented": self.invented}


def _line_tokens(line: str) -> List[str]:
    found = _BRACKETED.findall(line)
    if found:
        return found
    parts = [p for p in _BARE_SPLIT.split(_LABEL.sub("", line)) if p]
    if parts and all(_BARE_TOKEN.match(p) for p in parts):
        return parts
    return []


def _norm(token: str) -> str:
    token = token.strip()
    return str(int(token)) if token.isdigit() else token.upper()


def parse_ranking(text: str, ids: Sequence[str]) -> ParsedRanking:
    """The ranking an answer gives over `ids` (the identifiers in shown order)."""
    text = text or ""
    reason = None
    m = _REASON.search(text)
    if m:
        rest = text[m.end():].strip().splitlines()
        reason = " ".join(rest[0].split())[:300] if rest else ""
        text = text[: m.start()]
    tokens: List[str] = []
    for line in text.splitlines():
        got = _line_tokens(line)
        if got:
            tokens.extend(got)
        elif tokens:
            break  # the ranking is over; what follows is talk
    where = {_norm(i): s for s, i in enumerate(ids)}
    order: List[int] = []
    seen = set()
    repeated = invented = 0
    for t in tokens:
        s = where.get(_norm(t))
        if s is None:
            invented += 1
        elif s in seen:
            repeated += 1
        else:
            seen.add(s)
            order.append(s)
    return ParsedRanking(order, len(ids) - len(order), repeated, invented, reason)


def full_ranking(order: Sequence[int], n: int) -> List[int]:
    """Shown positions from first to last: the ranked ones, then the rest in shown order."""
    ranked = set(order)
    return list(order) + [s for s in range(n) if s not in ranked]


def candidate_ranks(order: Sequence[int], shown: Sequence[int]) -> List[int]:
    """ranks[j] (0 = first) of candidate j, from the answer's order over shown positions and
    `shown` (shown[s] = candidate index at position s)."""
    ranks = [0] * len(shown)
    for r, s in enumerate(full_ranking(order, len(shown))):
        ranks[shown[s]] = r
    return ranks


def borda(ranks: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Mean Borda points (n - rank) over permutations: in [1, n], higher is better."""
    return np.mean([[n - r for r in per] for per in ranks], axis=0).astype(np.float64)




class _Bias:
    """Position-bias tallies over valid answers (invalid ones are filled in shown order by
    construction, which would show a bias the model does not have)."""

    def __init__(self, k: int):
        self.k = k
        self.n = np.zeros((2, k), dtype=np.int64)  # row 0: all candidates, row 1: the first candidate
        self.rank_sum = np.zeros((2, k), dtype=np.float64)
        self.top1 = np.zeros((2, k), dtype=np.int64)

    def add(self, shown: Sequence[int], ranks: Sequence[int]) -> None:
        for s, j in enumerate(shown):
            for row in ((0, 1) if j == 0 else (0,)):
                self.n[row, s] += 1
                self.rank_sum[row, s] += ranks[j] + 1
                self.top1[row, s] += int(ranks[j] == 0)

    def block(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"positions": self.k, "answers": "valid", "rank": "1 = first"}
        for row, name in ((0, "all"), (1, "first_candidate")):
            n = self.n[row]
            out[name] = {"n": n.tolist(),
                         "mean_rank": [float(r / c) if c else None for r, c in zip(self.rank_sum[row], n)],
                         "top1_rate": [float(t / c) if c else None for t, c in zip(self.top1[row], n)]}
        return out


def position_bias_block(bias: "_Bias") -> Dict[str, Any]:
    """The documented results field `meta.ranking.position_bias`:

    {"positions": k, "answers": "valid", "rank": "1 = first",
     "all": {"n": [..k], "mean_rank": [..k], "top1_rate": [..k]},
     "first_candidate": {"n": [..k], "mean_rank": [..k], "top1_rate": [..k]}}

    Index s is the shown position (0 = shown first). "all" counts every shown candidate (an
    unbiased model has mean rank (n+1)/2 at every position); "first_candidate" counts the
    group's candidate 0 only: for seqrec the target (the task puts it first), so its
    mean_rank / top1_rate by position is the target's rank by the position it was shown at.
    Only valid answers count. None where nothing was shown at a position."""
    return bias.block()


@dataclass
class _Plan:
    """One user's prompts: one per permutation."""

    group: int
    n: int  # candidates shown
    shown: List[List[int]]  # per permutation: shown[s] = candidate index at position s
    prompts: List[str]
    keys: List[str]


class ListwiseScheme(Scheme):
    name = "listwise"
    help = "the model writes a ranking of k shown candidates (generated text, parsed)"
    scorer_kind = "generation"
    probabilities = False
    template_layout = "prompt"
    uses_chat_template = True

    def chat_default(self, spec) -> Optional[bool]:
        """None: the backend applies the model's chat template when it has one."""
        return None

    def variant(self, cfg, spec) -> str:
        if cfg.chat_template is None:
            return ""
        return "+chat" if cfg.chat_template else "+nochat"

    # -- settings ---------------------------------------------------------------------------
    @staticmethod
    def max_new_tokens(cfg) -> int:
        if cfg.max_new_tokens:
            return int(cfg.max_new_tokens)
        return TOKENS_PER_CANDIDATE * int(cfg.listwise_k) + (EXPLAIN_TOKENS if cfg.explain else 0)

    @staticmethod
    def _may_cut(cfg) -> bool:
        from ..tasks import get_task

        return bool(get_task(cfg.task).may_cut_groups(cfg))

    def _builder(self, ctx: SchemeContext, count: int, cache: Dict[int, PromptBuilder]) -> PromptBuilder:
        """The runner's builder with {count}/{explain} filled in and room left for the answer;
        its truncation counts go to the runner's stats."""
        if count in cache:
            return cache[count]
        tpl: Template = ctx.builder.template
        text = _put(tpl.text, "count", str(count))
        if ctx.config.explain and not _slots(text, "explain"):
            raise ConfigError(f"--explain needs an {{explain}} placeholder in the listwise template '{tpl.id}' "
                              "(where the instruction to give a reason goes)")
        text = _put(text, "explain", EXPLAIN_INSTRUCTION if ctx.config.explain else "")
        budget = ctx.builder.budget - self.max_new_tokens(ctx.config)
        if budget < MIN_PROMPT_TOKENS:
            raise ModelError(f"the model's context ({ctx.builder.budget} tokens) leaves no room for a prompt next to "
                             f"answers of {self.max_new_tokens(ctx.config)} tokens; lower --max-new-tokens or "
                             "--listwise-k")
        cache[count] = dataclasses.replace(ctx.builder, template=dataclasses.replace(tpl, text=text), budget=budget)
        return cache[count]

    def _fit(self, builder: PromptBuilder, texts: List[str], ids: List[str]) -> List[str]:
        """Candidate texts on one line each, shortened (longest first) until the list takes at
        most half the prompt budget: the builder would otherwise cut the list's end."""
        texts = [" ".join(t.split()) for t in texts]
        tail = builder.count_tokens(builder.tail.replace("{candidate}", ""))
        limit = builder.budget // 2 - tail - 16 - len(texts)
        while builder.count_tokens(_block(ids, texts)) > limit:
            longest = max(len(t) for t in texts)
            changed = False
            for j, t in enumerate(texts):
                if len(t) >= 0.6 * longest:
                    short = shorten(t)
                    if short != t:
                        texts[j] = short
                        changed = True
                        builder.stats.candidates_shortened += 1
            if not changed:
                raise ModelError(f"the model's context ({builder.budget} tokens for the prompt) is too small for "
                                 f"{len(texts)} candidates; use a smaller --listwise-k or a model with a longer context")
        return texts

    def _plans(self, ctx: SchemeContext) -> List[_Plan]:
        cfg = ctx.config
        k, perms = int(cfg.listwise_k), int(cfg.permutations)
        big = [g for g in ctx.groups if len(g.candidates) > k]
        if big and not self._may_cut(cfg):
            worst = max(len(g.candidates) for g in big)
            raise ConfigError(
                f"{ctx.scenario}: {len(big)} user(s) have more than --listwise-k {k} candidates (up to {worst}); the "
                f"{cfg.task} task's candidate order is not one whose first {k} may stand for the rest (it follows the "
                f"labels, or no order at all), so showing only those would be unfair; pass --listwise-k {worst}")
        max_new = self.max_new_tokens(cfg)
        builders: Dict[int, PromptBuilder] = {}
        texts = ctx.texts
        plans = []
        for gi, g in enumerate(ctx.groups):
            n = min(k, len(g.candidates))
            builder = self._builder(ctx, n, builders)
            ids = identifiers(n, k)
            cand_texts = self._fit(builder, [texts[c] for c in g.candidates[:n]], ids)
            shown = [shown_order(cfg.seed, g.user_id, p, n) for p in range(perms)]
            blocks = [_block(ids, [cand_texts[j] for j in order]) for order in shown]
            reqs = builder.user_prompts([texts[h] for h in g.history if h in texts], blocks)
            prompts = [q.text for q in reqs]
            keys = [request_key(ctx.namespace, f"generation\x00{max_new}\x00{_generator(ctx).render(q)}") for q in prompts]
            plans.append(_Plan(gi, n, shown, prompts, keys))
        return plans

    def dry_run_requests(self, ctx: SchemeContext):
        plans = self._plans(ctx)
        max_new = self.max_new_tokens(ctx.config)
        return ([GenerationRequest(q, max_new) for p in plans for q in p.prompts],
                [key for p in plans for key in p.keys])

    # -- scoring ----------------------------------------------------------------------------
    def _generate(self, ctx: SchemeContext, plans: List[_Plan]) -> Tuple[Dict[str, str], int]:
        """Every answer, from the cache or generated and committed the moment it exists."""
        cache, scorer = ctx.cache, _generator(ctx)
        keys = [key for p in plans for key in p.keys]
        answers: Dict[str, str] = {}
        for key, extra in cache.get_extras(keys).items():
            if isinstance(extra, dict) and isinstance(extra.get("text"), str):
                answers[key] = extra["text"]
        todo_plans = [p for p in plans if any(key not in answers for key in p.keys)]
        n_todo = len({key for key in keys if key not in answers})
        bar = progress_bar(n_todo, ctx.desc, ctx.config.progress)
        max_new = self.max_new_tokens(ctx.config)
        lock = threading.Lock()
        computed = 0
        chunk = max(CHUNK_USERS, scorer.concurrency * 2)
        queued: set = set()
        for start in range(0, len(todo_plans), chunk):
            prompts: List[str] = []
            pkeys: List[str] = []
            for p in todo_plans[start : start + chunk]:
                for q, key in zip(p.prompts, p.keys):
                    if key not in answers and key not in queued:  # one request per distinct prompt
                        queued.add(key)
                        prompts.append(q)
                        pkeys.append(key)

            def on_result(i: int, text: str, _keys=pkeys) -> None:
                key = _keys[i]
                with lock:
                    if key in answers:
                        return
                    answers[key] = text
                cache.put_scores({key: 0.0}, {key: {"text": text}})
                with lock:
                    bar.update(1)

            out = scorer.generate(prompts, max_new, on_result=on_result)
            for i, text in enumerate(out):
                if pkeys[i] not in answers:  # a backend that reported nothing as it went
                    on_result(i, text)
            computed += len(pkeys)
        bar.close()
        return answers, computed

    def score(self, ctx: SchemeContext) -> SchemeOutput:
        cfg = ctx.config
        k, perms = int(cfg.listwise_k), int(cfg.permutations)
        plans = self._plans(ctx)
        answers, computed = self._generate(ctx, plans)
        scores = np.full(ctx.num_scores, np.nan)  # slots of groups not scored here stay NaN (shards)
        log = bool(cfg.log_samples)
        shown_col: List[Any] = [None] * ctx.num_scores
        rank_col: List[Any] = [None] * ctx.num_scores
        user_cols: Dict[str, List[Any]] = {c: [None] * ctx.num_scores for c in ("prompt", "answer", "parse", "reason")}
        bias = _Bias(max((p.n for p in plans), default=1))
        tally = {"answers": 0, "valid": 0, "empty": 0, "missing": 0, "repeated": 0, "invented": 0}
        users_all_valid = cut_users = not_shown = 0
        for plan in plans:
            g = ctx.groups[plan.group]
            ids = identifiers(plan.n, k)
            ranks, parsed = [], []
            for order, key in zip(plan.shown, plan.keys):
                pr = parse_ranking(answers[key], ids)
                r = candidate_ranks(pr.order, order)
                if pr.valid:
                    bias.add(order, r)
                ranks.append(r)
                parsed.append(pr)
                tally["answers"] += 1
                tally["valid"] += int(pr.valid)
                tally["empty"] += int(pr.empty)
                tally["missing"] += pr.missing
                tally["repeated"] += pr.repeated
                tally["invented"] += pr.invented
            users_all_valid += int(all(p.valid for p in parsed))
            points = borda(ranks, plan.n)
            for j, slot in enumerate(g.slots):
                scores[slot] = points[j] if j < plan.n else 0.0  # beyond k: below every shown candidate
            if len(g.candidates) > plan.n:
                cut_users += 1
                not_shown += len(g.candidates) - plan.n
            if log:
                for j, slot in enumerate(g.slots):
                    if j < plan.n:
                        shown_col[slot] = [order.index(j) for order in plan.shown]
                        rank_col[slot] = [r[j] for r in ranks]
                first = g.slots[0]
                user_cols["prompt"][first] = [_generator(ctx).render(q) for q in plan.prompts]
                user_cols["answer"][first] = [answers[key] for key in plan.keys]
                user_cols["parse"][first] = [p.as_dict() for p in parsed]
                if cfg.explain:
                    user_cols["reason"][first] = [p.reason for p in parsed]
        n_answers = tally["answers"]
        rate = tally["valid"] / n_answers if n_answers else None
        self._warn(ctx, tally)
        shown: Dict[str, List[Any]] = {}
        if log:
            shown = {"shown_position": shown_col, "listwise_rank": rank_col, "prompt": user_cols["prompt"],
                     "answer": user_cols["answer"], "parse": user_cols["parse"]}
            if cfg.explain:
                shown["reason"] = user_cols["reason"]
        keys = [key for p in plans for key in p.keys]
        n_distinct = len(set(keys))
        meta = {
            "chat_template": _generator(ctx).chat_applied,
            "ranking": {
                "k": k, "permutations": perms, "identifiers": "letters" if k <= 26 else "numbers",
                "explain": bool(cfg.explain), "max_new_tokens": self.max_new_tokens(cfg),
                "users": len(plans), "answers": n_answers, "valid_answers": tally["valid"],
                "valid_output_rate": rate, "users_all_valid": users_all_valid,
                "answers_without_identifiers": tally["empty"], "missing_identifiers": tally["missing"],
                "repeated_identifiers": tally["repeated"], "invented_identifiers": tally["invented"],
                "users_cut": cut_users, "candidates_not_shown": not_shown,
                "scores": "mean Borda points n - rank over permutations; candidates beyond k: 0",
                "fill_rule": "unranked candidates follow the ranked ones in their (seeded, shuffled) shown order",
                "position_bias": position_bias_block(bias),
            },
        }
        return SchemeOutput(scores=scores, requests=len(keys), cached=n_distinct - computed, computed=computed,
                            meta=meta, counts={"generated": computed, "valid_answers": tally["valid"]}, shown=shown,
                            metrics={"valid_output_rate": rate})

    @staticmethod
    def _warn(ctx: SchemeContext, tally: Dict[str, int]) -> None:
        """A model that never answers with a valid ranking: a clear line, not a crash (its
        scores are the fill rule's, i.e. the shuffled shown order: chance level)."""
        n = tally["answers"]
        if n and tally["valid"] == 0:
            none = tally["empty"]
            print(f"warning: {ctx.desc}: none of {n} list-wise answers was a valid ranking ({none} held no identifier "
                  "at all); the scores follow the shuffled shown order, i.e. chance level. Look at the answers with "
                  "--log-samples, or raise --max-new-tokens if they were cut off", file=sys.stderr)


def _generator(ctx: SchemeContext) -> TextGenerator:
    return cast(TextGenerator, ctx.scorer)  # the runner made it for this scheme's scorer_kind


def _block(ids: Sequence[str], texts: Sequence[str]) -> str:
    return "\n".join(f"[{i}] {t}" for i, t in zip(ids, texts))
