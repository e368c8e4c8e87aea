"""Prefix-shared packing for generative SFT: one user's prompt prefix runs once per sequence.

About ten candidates of one user share the same long history prompt and differ only in
their short candidate suffix. Instead of running every (prefix + suffix) in full, a packed
row holds the prefix once followed by several suffixes:

    [ prefix (P tokens) | suffix 1 | suffix 2 | ... | padding ]

A block attention mask (4D, additive) lets prefix tokens attend causally to the prefix and
each suffix token to the whole prefix and to its own suffix only; position ids continue
from P in every suffix (the trick the scorer's prefix path uses at inference with a KV
cache of the prefix). Short packs share a row ([pack A | pack B | padding], each attending
only within itself, positions restarting at 0), so little goes to padding. Each suffix's
answer logits are read at its own last token: the label logits, hence the loss and its
gradients, equal the unpacked computation within float error.

Samples whose tokenization does not start with their prefix's tokens (prefix length 0)
are packed as independent sequences (an empty prefix: block-diagonal causal attention).
Whether a model's attention honours such masks is checked by a small probe
(`check_support`); where it does not, training falls back to the plain path.

Everything here is a pure function of token ids, so a scheme's SFT objective can call it
directly: `plan_chunks` (forward passes) -> `pack_rows` -> `packed_inputs` -> `answer_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

PACK_FACTOR = 2  # a packed row holds at most PACK_FACTOR x the longest sample's tokens ...
MIN_ROW_TOKENS = 1024  # ... or this many, whichever is larger (attention over a row is quadratic)


@dataclass
class Pack:
    """One packed row: a shared prefix and the suffixes of some samples (`samples` order)."""

    prefix: List[int]
    samples: List[int] = field(default_factory=list)
    suffixes: List[List[int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return len(self.prefix) + sum(len(s) for s in self.suffixes)


@dataclass
class PackedBatch:
    """Model inputs for a list of packs, right-padded to one width."""

    input_ids: object  # (rows, width) long
    position_ids: object  # (rows, width) long
    attention_mask: object  # (rows, 1, width, width) additive float: 0 attend, dtype min blocked
    rows: object  # (samples,) row of each sample's answer token
    cols: object  # (samples,) column of each sample's answer token
    samples: List[int]  # sample index of each answer, in the order of rows/cols


def prefix_length(full_ids: Sequence[int], prefix_ids: Sequence[int]) -> int:
    """How many leading tokens of `full_ids` are the prefix's own tokens (0: not splittable).

    The scorer's rule: the full prompt's tokenization must start with the prefix's and be longer."""
    n = len(prefix_ids)
    if n and len(full_ids) > n and list(full_ids[:n]) == list(prefix_ids):
        return n
    return 0


def make_packs(idx: Sequence[int], ids: Sequence[Sequence[int]], prefix_len: Sequence[int],
               groups: Sequence[int], max_tokens: int) -> List[Pack]:
    """Packs for samples `idx`: samples of one prefix group share a pack while it stays within
    `max_tokens` (else the group is split over several packs, each with the prefix).

    `groups[i]` names sample i's prefix (equal ids <=> equal prefix tokens); samples with
    prefix_len 0 share one group with an empty prefix. Deterministic in the order of idx."""
    by_group: Dict[object, List[int]] = {}
    for i in idx:
        key = groups[i] if prefix_len[i] else None
        by_group.setdefault(key, []).append(int(i))
    packs: List[Pack] = []
    for key, members in by_group.items():
        plen = prefix_len[members[0]] if key is not None else 0
        prefix = list(ids[members[0]][:plen])
        cur = Pack(prefix)
        for i in members:
            suffix = list(ids[i][plen:])
            if cur.samples and cur.tokens + len(suffix) > max_tokens:
                packs.append(cur)
                cur = Pack(prefix)
            cur.samples.append(i)
            cur.suffixes.append(suffix)
        packs.append(cur)
    return packs


def fill_rows(packs: Sequence[Pack], max_tokens: int) -> List[List[Pack]]:
    """Consecutive packs share a row while it stays within `max_tokens` (next fit, in order):
    short packs (a user's last candidates of a step, short prompts) need no padding."""
    rows: List[List[Pack]] = []
    used = 0
    for p in packs:
        if rows and used + p.tokens <= max_tokens:
            rows[-1].append(p)
            used += p.tokens
        else:
            rows.append([p])
            used = p.tokens
    return rows


def pack_rows(idx: Sequence[int], ids: Sequence[Sequence[int]], prefix_len: Sequence[int],
              groups: Sequence[int], max_tokens: int) -> List[List[Pack]]:
    """The packed rows of samples `idx` (`make_packs`, then `fill_rows`), each within `max_tokens`."""
    return fill_rows(make_packs(idx, ids, prefix_len, groups, max_tokens), max_tokens)


def plan_chunks(idx: Sequence[int], ids: Sequence[Sequence[int]], prefix_len: Sequence[int],
                groups: Sequence[int], max_tokens: int, budget: int) -> List[List[int]]:
    """Split samples `idx` into forward passes of whole rows whose padded size (rows x widest
    row) stays within `budget` tokens (at least one row per pass). `pack_rows` on each
    returned chunk gives back the same rows."""
    chunks: List[List[int]] = []
    cur: List[int] = []
    n = width = 0
    for row in pack_rows(idx, ids, prefix_len, groups, max_tokens):
        tokens = sum(p.tokens for p in row)
        w = max(width, tokens)
        if cur and (n + 1) * w > budget:
            chunks.append(cur)
            cur, n, w = [], 0, tokens
        for p in row:
            cur.extend(p.samples)
        n, width = n + 1, w
    if cur:
        chunks.append(cur)
    return chunks


def packed_inputs(torch, rows: Sequence[Sequence[Pack]], pad_id: int, dtype, device) -> PackedBatch:
    """Token ids, positions, block attention mask and answer coordinates of packed `rows`.

    Within a row, pack b's tokens carry block b; its prefix segment 0 and its k-th suffix
    segment k. A token attends to earlier tokens of its own block that are prefix or its own
    segment; positions restart at 0 with every pack's prefix."""
    width = max(sum(p.tokens for p in row) for row in rows)
    n = len(rows)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    blk = torch.full((n, width), -1, dtype=torch.long)  # pack within the row; -1 padding
    seg = torch.zeros((n, width), dtype=torch.long)  # 0 prefix, k suffix k
    out_rows: List[int] = []
    cols: List[int] = []
    samples: List[int] = []
    for r, row in enumerate(rows):
        at = 0
        for b, p in enumerate(row):
            plen = len(p.prefix)
            if plen:
                ids[r, at:at + plen] = torch.tensor(p.prefix)
                pos[r, at:at + plen] = torch.arange(plen)
                blk[r, at:at + plen] = b
                at += plen
            for k, (i, s) in enumerate(zip(p.samples, p.suffixes), start=1):
                ids[r, at:at + len(s)] = torch.tensor(s)
                pos[r, at:at + len(s)] = torch.arange(plen, plen + len(s))
                blk[r, at:at + len(s)] = b
                seg[r, at:at + len(s)] = k
                at += len(s)
                out_rows.append(r)
                cols.append(at - 1)
                samples.append(i)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    same = (blk[:, :, None] == blk[:, None, :]) & (blk[:, :, None] >= 0)
    visible = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    allowed = causal & same & visible
    allowed |= torch.eye(width, dtype=torch.bool)  # padding attends to itself: no empty softmax row
    mask = torch.zeros((n, 1, width, width), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return PackedBatch(ids.to(device), pos.to(device), mask.to(device), torch.tensor(out_rows, device=device),
                       torch.tensor(cols, device=device), samples)


def answer_logits(torch, model, batch: PackedBatch, keep: bool):
    """Vocabulary logits at every sample's answer token, (samples, vocab), in batch.samples order.

    With `keep` (the model's forward takes logits_to_keep) the LM head runs only at the answer
    columns; otherwise the full logits are computed and indexed."""
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "position_ids": batch.position_ids, "use_cache": False}
    if keep:
        cols, where = torch.unique(batch.cols, sorted=True, return_inverse=True)
        logits = model(**kwargs, logits_to_keep=cols).logits
        return logits[batch.rows, where]
    return model(**kwargs).logits[batch.rows, batch.cols]


def plain_answer_logits(torch, model, seqs: Sequence[Sequence[int]], keep: bool):
    """Reference: each sequence alone (no padding, no mask), logits at its last token."""
    out = []
    for s in seqs:
        ids = torch.tensor([list(s)], device=next(model.parameters()).device)
        kwargs = {"input_ids": ids, "position_ids": torch.arange(len(s), device=ids.device)[None],
                  "use_cache": False}
        if keep:
            kwargs["logits_to_keep"] = 1
        out.append(model(**kwargs).logits[0, -1])
    return torch.stack(out)


def check_support(torch, model, *, takes_pos: bool, takes_keep: bool, masked: bool, pad_id: int,
                  probe_ids: Sequence[Sequence[int]]) -> Tuple[bool, bool, str]:
    """Does this model's attention honour a custom 4D block mask with explicit positions?

    Returns (supported, use logits_to_keep, reason). Statically refused: masked LMs, models
    without position_ids, flash-attention kernels (they take no 4D mask). Otherwise a probe
    packs two suffixes behind one prefix and compares their logits with the plain forward;
    any error or mismatch means no support."""
    if masked:
        return False, False, "masked LMs score a [MASK] token, not a continuation"
    if not takes_pos:
        return False, False, "the model's forward takes no position_ids"
    impl = str(getattr(getattr(model, "config", None), "_attn_implementation", "") or "")
    if "flash" in impl:
        return False, False, f"attention implementation '{impl}' takes no custom 4D mask"
    seqs = [list(s) for s in probe_ids if len(s) >= 4][:2]
    if len(seqs) < 2:
        return False, False, "no probe data"
    cut = min(len(seqs[0]), len(seqs[1])) // 2
    prefix = seqs[0][:cut]
    # suffix 1 long, suffix 2 short: a leak from suffix 1 into suffix 2 changes suffix 2's logits
    probe = [prefix + seqs[0][cut:], prefix + seqs[1][-max(2, cut // 2):]]
    pack = Pack(prefix, [0, 1], [p[cut:] for p in probe])
    was_training = model.training
    model.eval()
    dtype = model.get_input_embeddings().weight.dtype
    if not dtype.is_floating_point:
        dtype = torch.float32
    device = next(model.parameters()).device
    reason = ""
    try:
        with torch.no_grad():
            ref = plain_answer_logits(torch, model, probe, takes_keep).float()
            tol = (1e-4 if dtype == torch.float32 else 5e-2) * max(1.0, float(ref.abs().max()))
            for keep in ([True, False] if takes_keep else [False]):
                try:
                    got = answer_logits(torch, model, packed_inputs(torch, [[pack]], pad_id, dtype, device), keep).float()
                except Exception as exc:  # noqa: BLE001 - any failure means: not supported this way
                    reason = f"the packed forward failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
                    continue
                if got.shape != ref.shape:
                    reason = f"the packed forward returned logits of shape {tuple(got.shape)}"
                    continue
                err = float((got - ref).abs().max())
                if err <= tol:
                    return True, keep, f"block-mask probe matched (max |logit diff| {err:.2e}, attention '{impl or '?'}')"
                reason = (f"the model ignores the block attention mask (probe logits differ by {err:.3g}, "
                          f"attention '{impl or '?'}')")
    except Exception as exc:  # noqa: BLE001 - the plain reference failed: leave it to the plain path
        reason = f"the probe failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    finally:
        model.train(was_training)
    return False, False, reason


__all__ = ["MIN_ROW_TOKENS", "PACK_FACTOR", "Pack", "PackedBatch", "answer_logits", "check_support", "fill_rows",
           "make_packs", "pack_rows", "packed_inputs", "plain_answer_logits", "plan_chunks", "prefix_length"]
