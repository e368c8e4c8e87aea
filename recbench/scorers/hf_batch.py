"""One padded batch of prompts, and the logits at each prompt's answer position.

The scorer, the list-wise generator and SFT's plain loss all run batches of token-id lists of
different lengths; they must pad them the same way, or a model is trained on inputs it is
never scored on. Causal LMs are padded on the left with explicit position ids, so every
prompt's answer position is the last column and its positions start at 0 as when it runs
alone. BERT-style masked LMs are padded on the right: their absolute position embeddings
take no position ids from the padding mask, so a left-padded prompt would be read at shifted
positions.
"""

from __future__ import annotations

from typing import Callable, Sequence, Tuple


def pad_batch(torch, seqs: Sequence[Sequence[int]], pad_id: int, *, left: bool) -> Tuple[object, object]:
    """(input_ids, attention_mask), both (len(seqs), longest) long tensors on the CPU."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        cols = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, cols] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def answer_logits(torch, forward: Callable, seqs: Sequence[Sequence[int]], pad_id: int, device, *,
                  masked: bool, mask_token_id, takes_pos: bool, takes_keep: bool):
    """The (len(seqs), vocab) logits each prompt gives its answer: at the last token of a
    causal LM's prompt, at the [MASK] of a masked LM's. `forward` is the model (or its
    DDP/PEFT wrapper); gradients flow unless the caller disables them."""
    ids, mask = pad_batch(torch, seqs, pad_id, left=not masked)
    ids, mask = ids.to(device), mask.to(device)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if masked:
        logits = forward(**kwargs).logits
        rows = torch.arange(len(seqs), device=logits.device)
        return logits[rows, (ids == mask_token_id).int().argmax(dim=1)]
    if takes_pos:
        kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
    if takes_keep:
        kwargs["logits_to_keep"] = 1
    return forward(**kwargs, use_cache=False).logits[:, -1, :]
