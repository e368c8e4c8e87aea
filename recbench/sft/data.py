"""Fine-tuning data: the scenarios' fine-tuning sets as model inputs (PROTOCOL §7).

Training and validation prompts are built by the evaluation's own PromptBuilder with the
scorer's token counter and context budget, then rendered and encoded by the scorer itself,
so a training input is token-for-token what the evaluation sends for the same sample.
Several training scenarios are joined; validation stays per scenario (gauc is averaged).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import DataError
from ..prompts import PromptBuilder, PromptRequest, Template
from ..scenarios import Scenario, get_source, load_scenario
from .config import SFTConfig
from .packing import prefix_length


@dataclass
class ValidSet:
    """One validation scenario: what the evaluation would score, plus users and labels."""

    scenario: str
    users: np.ndarray
    labels: np.ndarray
    requests: List[PromptRequest] = field(default_factory=list)  # generative
    user_texts: List[str] = field(default_factory=list)  # discriminative
    item_texts: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.labels))


@dataclass
class SFTData:
    """Training examples (all scenarios joined) and per-scenario validation sets.

    Generative: train_ids[i] are the token ids of the rendered prompt; its first
    train_prefix[i] tokens are the user's shared prompt prefix (0: not splittable), the same
    prefix for all samples of one train_groups[i] (used by prefix packing and the user-grouped
    batch order). Discriminative: train_pairs[i] = (user text, item text)."""

    labels: np.ndarray
    train_ids: List[List[int]] = field(default_factory=list)
    train_prefix: List[int] = field(default_factory=list)
    train_groups: List[int] = field(default_factory=list)
    train_pairs: List[Tuple[str, str]] = field(default_factory=list)
    valid: List[ValidSet] = field(default_factory=list)
    info: Dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels))


# -- scenarios ----------------------------------------------------------------------------


def check_finetune_available(cfg: SFTConfig) -> None:
    """Fail fast (before loading anything heavy) on scenarios that have no fine-tuning set."""
    for name in dict.fromkeys(cfg.train + cfg.valid_scenarios):
        source = get_source(name)
        if source.default_num_finetune == 0 and not cfg.num_finetune:
            raise DataError(
                f"scenario '{name}' has no fine-tuning set by default (PROTOCOL §3 builds one for mind, "
                "microlens, goodreads, cds and hm); pass --num-finetune N to build one from users disjoint "
                "from its test users, or choose other --train/--valid scenarios"
            )


def load_sft_scenarios(cfg: SFTConfig, progress: bool = True) -> Dict[str, Scenario]:
    """Build (or load from cache) every named scenario with its fine-tuning set.

    The test size stays the scenario's default: test users are drawn first, so the fine-tuning
    users are disjoint from the users the evaluation tests on (same seed)."""
    check_finetune_available(cfg)
    say = (lambda m: print(m, file=sys.stderr)) if progress else None
    out: Dict[str, Scenario] = {}
    for name in dict.fromkeys(cfg.train + cfg.valid_scenarios):
        opts = dict(cfg.scenario_options.get(name, {}))
        sc = load_scenario(name, cfg.raw_dir, seed=cfg.data_seed, num_finetune=cfg.num_finetune,
                           strict=cfg.strict, use_cache=cfg.use_cache, progress=say, **opts)
        if sc.finetune.empty:
            raise DataError(
                f"scenario '{name}' produced no fine-tuning samples (too few users beyond its test set?); "
                "use a larger raw dataset or other --train/--valid scenarios"
            )
        out[name] = sc
    for name in cfg.train:
        if out[name].finetune_split("train").empty:
            raise DataError(f"scenario '{name}': the training part of its fine-tuning set is empty")
    for name in cfg.valid_scenarios:
        if out[name].finetune_split("valid").empty:
            raise DataError(
                f"scenario '{name}': the validation part (10% of fine-tuning users) is empty; "
                "pass a larger --num-finetune"
            )
    return out


def subsample_users(df: pd.DataFrame, limit: Optional[int], seed: int) -> pd.DataFrame:
    """At most `limit` rows, taking whole users in a seeded order (gauc needs whole users)."""
    if limit is None or len(df) <= limit:
        return df
    users = list(dict.fromkeys(df["user_id"]))
    sizes = df.groupby("user_id", sort=False).size()
    order = np.random.default_rng(seed).permutation(len(users))
    keep, total = set(), 0
    for k in order:
        u = users[k]
        n = int(sizes[u])
        if total + n > limit:
            if keep:
                continue
        keep.add(u)
        total += n
        if total >= limit:
            break
    return df[df["user_id"].isin(keep)].reset_index(drop=True)


def user_groups(df: pd.DataFrame) -> List[Tuple[List[str], List[int]]]:
    """(history, row positions) per (user, history), in first-seen order."""
    groups: Dict[Tuple[str, Tuple[str, ...]], List[int]] = {}
    hists: Dict[Tuple[str, Tuple[str, ...]], List[str]] = {}
    for pos, (u, hist) in enumerate(zip(df["user_id"], df["history"])):
        key = (u, tuple(hist))
        groups.setdefault(key, []).append(pos)
        hists.setdefault(key, list(hist))
    return [(hists[k], rows) for k, rows in groups.items()]


def _texts(sc: Scenario, df: pd.DataFrame) -> Dict[str, str]:
    texts = sc.item_text()
    missing = [i for i in dict.fromkeys(df["item_id"]) if i not in texts]
    if missing:
        raise DataError(f"{sc.name}: {len(missing)} fine-tuning item(s) have no text (e.g. {missing[0]})")
    return texts


# -- generative ---------------------------------------------------------------------------


def generative_requests(sc: Scenario, df: pd.DataFrame, builder: PromptBuilder) -> List[PromptRequest]:
    """The evaluation's prompts for these samples, in row order."""
    texts = _texts(sc, df)
    items = list(df["item_id"])
    out: List[Optional[PromptRequest]] = [None] * len(df)
    for hist, rows in user_groups(df):
        reqs = builder.user_prompts([texts[h] for h in hist if h in texts], [texts[items[r]] for r in rows])
        for r, q in zip(rows, reqs):
            out[r] = q
    return out  # type: ignore[return-value]


def discriminative_texts(sc: Scenario, df: pd.DataFrame, builder: PromptBuilder) -> Tuple[List[str], List[str]]:
    """The evaluation's user and item texts for these samples, in row order."""
    texts = _texts(sc, df)
    user_text_of: Dict[Tuple[str, ...], str] = {}
    users: List[str] = []
    for hist in df["history"]:
        key = tuple(hist)
        if key not in user_text_of:
            user_text_of[key] = builder.user_text([texts[h] for h in hist if h in texts])
        users.append(user_text_of[key])
    item_text_of: Dict[str, str] = {}
    items = []
    for i in df["item_id"]:
        if i not in item_text_of:
            item_text_of[i] = builder.item_text(texts[i])
        items.append(item_text_of[i])
    return users, items


def build_data(cfg: SFTConfig, scenarios: Dict[str, Scenario], template: Template, scorer) -> SFTData:
    """Training examples and validation sets, rendered and encoded as the evaluation does."""
    labels: List[int] = []
    train_ids: List[List[int]] = []
    train_prefix: List[int] = []
    train_groups: List[int] = []
    group_of: Dict[Tuple[int, ...], int] = {}
    pairs: List[Tuple[str, str]] = []
    info: Dict = {"train": {}, "valid": {}}
    generative = scorer.kind == "logits"

    def builder_for(sc: Scenario) -> PromptBuilder:
        return PromptBuilder(template, sc.item_noun, scorer.count_tokens, scorer.context_budget)

    for k, name in enumerate(cfg.train):
        sc = scenarios[name]
        df = subsample_users(sc.finetune_split("train"), cfg.max_train_samples, cfg.data_seed + k)
        builder = builder_for(sc)
        if generative:
            reqs = generative_requests(sc, df, builder)
            pairs = [scorer._rendered(q) for q in reqs]  # the scorer's own encoding: item text stays plain text
            ids = [scorer._encode(r.text, spans) for r, spans in pairs]
            prefix_ids: Dict[str, List[int]] = {}
            for (q, spans), full in zip(pairs, ids):
                if q.prefix not in prefix_ids:
                    head = [(x, min(y, len(q.prefix))) for x, y in spans if x < len(q.prefix)]
                    prefix_ids[q.prefix] = scorer._encode(q.prefix, head) if q.prefix else []
                plen = prefix_length(full, prefix_ids[q.prefix])
                key = tuple(full[:plen]) if plen else (-1 - len(train_groups),)  # unsplittable: its own group
                train_prefix.append(plen)
                train_groups.append(group_of.setdefault(key, len(group_of)))
            train_ids.extend(ids)
            lengths = [len(x) for x in ids]
        else:
            u, v = discriminative_texts(sc, df, builder)
            pairs.extend(zip(u, v))
            lengths = [scorer.count_tokens(a) + scorer.count_tokens(b) for a, b in zip(u[:200], v[:200])]
        labels.extend(int(y) for y in df["label"])
        info["train"][name] = {
            "samples": int(len(df)), "users": int(df["user_id"].nunique()),
            "positive_rate": round(float(df["label"].mean()), 4),
            "tokens_mean": round(float(np.mean(lengths)), 1) if lengths else 0.0,
            "tokens_max": int(max(lengths)) if lengths else 0,
            "truncation": builder.stats.as_dict(), "data_fingerprint": sc.fingerprint,
        }

    valid: List[ValidSet] = []
    for k, name in enumerate(cfg.valid_scenarios):
        sc = scenarios[name]
        df = subsample_users(sc.finetune_split("valid"), cfg.max_valid_samples, cfg.data_seed + 1000 + k)
        builder = builder_for(sc)
        vs = ValidSet(name, df["user_id"].to_numpy(), df["label"].to_numpy().astype(np.int64))
        if generative:
            vs.requests = generative_requests(sc, df, builder)
        else:
            vs.user_texts, vs.item_texts = discriminative_texts(sc, df, builder)
        valid.append(vs)
        info["valid"][name] = {
            "samples": int(len(df)), "users": int(df["user_id"].nunique()),
            "positive_rate": round(float(df["label"].mean()), 4),
            "truncation": builder.stats.as_dict(), "data_fingerprint": sc.fingerprint,
        }
    if not labels:
        raise DataError("no training samples were built; check --train and --max-train-samples")
    return SFTData(np.asarray(labels, dtype=np.int64), train_ids, train_prefix, train_groups, pairs, valid, info)


def epoch_order(n: int, seed: int, epoch: int, per_step: int, groups: Optional[Sequence[int]] = None) -> np.ndarray:
    """The shuffled sample order of one epoch, cyclically padded to whole optimizer steps.

    With `groups` (a group id per sample: one user's prompt prefix) the groups are shuffled
    and each group's samples stay together (shuffled among themselves), so a step holds a
    few whole users whose shared prefix packing runs once. Deterministic in (seed, epoch):
    a resumed run replays the same order and skips the steps already taken."""
    rng = np.random.default_rng([seed, epoch, 7])
    if groups is not None and len(groups) == n:
        members: Dict[int, List[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(int(g), []).append(i)
        keys = list(members)
        parts = [rng.permutation(members[keys[k]]) for k in rng.permutation(len(keys))]
        perm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    else:
        perm = rng.permutation(n)
    steps = -(-n // per_step)
    need = steps * per_step
    if need > n:
        perm = np.concatenate([perm, np.resize(perm, need - n)])
    return perm


def steps_per_epoch(n: int, per_step: int) -> int:
    return max(1, -(-n // per_step))


def shard(seq: Sequence, rank: int, world: int) -> List:
    """Every world-th element from rank (the same slicing on every process)."""
    return list(seq[rank::world])
