"""Trained sequential recommenders from torch-rechub: SASRec and GRU4Rec.

Both read a user's history as an id sequence (left-padded, the most recent item last) and
turn it into one user vector; a candidate's score is that vector's dot product with the
candidate's embedding, so scoring a whole catalogue is one matrix product per block of users.
The architectures are the library's `nn.Module`s (its SASRec attention blocks and GRU4Rec
GRU + user MLP); recbench lays out the inputs, samples negatives, trains and early-stops on
the fine-tuning split's valid users (gauc of their pairs, as the other deep models).

- SASRec (Kang & McAuley 2018) learns next-item prediction at every position of a train
  user's sequence at once (causal self-attention), binary cross-entropy of the next item
  against `negatives` items drawn uniformly per position.
- GRU4Rec (Hidasi et al. 2016) learns from every prefix of a train user's sequence: the
  prefix's GRU state against the next item and `negatives` uniform items, a sampled softmax
  over cosine similarities (the library's list-wise setting, temperature below).

What recbench changes around the library, each for a reason:
- SASRec's `seq_forward` builds its position and mask tensors on the CPU and squeezes away a
  batch of one; `_SASRecOnDevice.seq_forward` is the same computation with those tensors on
  the input's device and the batch dimension kept. The user vector is the output at the last
  position (the library's `user_tower` assumes right padding; SASRec's own code pads left).
- Item embeddings start with Xavier-normal values (the library's default, N(0, 1e-4), times
  SASRec's sqrt(d) scaling leaves the attention blocks nearly blind for the first epochs), and
  SASRec's position embeddings at the scale of the scaled item embeddings (with the library's
  N(0, 1) positions drowned the items: valid gauc stayed at 0.51 on the demo).
- GRU4Rec's user "features" are the mean of the history embeddings (a feature of the
  history; no user id is encoded anywhere, PROTOCOL §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..errors import DataError, require
from .base import FitData
from .data import FIRST, PAD, Pairs, Vocab, pad_history
from .deep import SCORE_BATCH, DeepRecommender, _rechub, _threads

GRU_TEMPERATURE = 0.1  # cosine logits / temperature in GRU4Rec's sampled softmax
SASREC_BLOCKS = 2
SASREC_HEADS = 1


def _negatives(gen, shape, vocab_size: int):
    """Uniform item rows (never padding or the unknown row), seeded through `gen`."""
    import torch

    return torch.randint(FIRST, max(FIRST + 1, vocab_size), shape, generator=gen)


class SequentialRecommender(DeepRecommender):
    """Trained by DeepRecommender's loop on `examples` with the subclass's `batch_loss`;
    scored by the user vector's dot product with the item embeddings."""

    def __init__(self, config):
        super().__init__(config)
        self.width = 0  # history items the model reads (fixed at fit time)

    # subclasses: the library model, the training examples, one batch's loss (batch_loss), user vectors
    def build_sequential(self, vocab_size: int):
        raise NotImplementedError

    def examples(self, sequences: np.ndarray) -> Tuple[Any, ...]:
        raise NotImplementedError

    def user_vectors(self, history):
        raise NotImplementedError


    def item_table(self):
        raise NotImplementedError

    def _make(self, vocab_size: int, text):
        torch = require("torch", "baselines", "the deep baselines")
        if text is not None:
            raise DataError(f"{self.name} reads item ids only; LLM-for-RS item-text features apply to the "
                            "pairwise models (din, dcnv2, deepfm, bst)")
        _rechub()
        return self.build_sequential(vocab_size).to(torch.device(self.device))

    # -- training (DeepRecommender._fit runs the loop) ----------------------------------------
    example_unit = "seq"

    def training_examples(self, data: FitData) -> Tuple[np.ndarray, ...]:
        if data.sequences is None or not len(data.sequences):
            raise DataError(f"{self.name}: no training sequences in the fine-tuning split; raise --num-finetune")
        self.width = int(data.sequences.shape[1]) - 1
        return self.examples(data.sequences)

    # -- scoring -------------------------------------------------------------------------
    def _fit_width(self, history: np.ndarray) -> np.ndarray:
        """History rows cut or left-padded to the width the model was trained with."""
        if history.shape[1] >= self.width:
            return history[:, history.shape[1] - self.width:]
        pad = np.zeros((history.shape[0], self.width - history.shape[1]), dtype=history.dtype)
        return np.concatenate([pad, history], axis=1)

    def encode_users(self, history: np.ndarray) -> np.ndarray:
        """(n, d) user vectors of (n, width) history rows."""
        torch = require("torch", "baselines", "the deep baselines")
        dev = torch.device(self.device)
        history = self._fit_width(history)
        self.model.eval()
        out = []
        with torch.no_grad(), _threads(self.device):
            for start in range(0, len(history), SCORE_BATCH):
                rows = torch.from_numpy(np.ascontiguousarray(history[start:start + SCORE_BATCH])).to(dev)
                out.append(self.user_vectors(rows).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_dim))

    def item_matrix(self) -> np.ndarray:
        torch = require("torch", "baselines", "the deep baselines")
        with torch.no_grad():
            return self.item_table().double().cpu().numpy()

    def score(self, pairs: Pairs) -> np.ndarray:
        if not len(pairs):
            return np.zeros(0, dtype=np.float64)
        # each distinct history once: a user's candidates share one user vector
        _, first, inverse = np.unique(pairs.history_of, return_index=True, return_inverse=True)
        users = self.encode_users(pairs.history[first])
        items = self.item_matrix()[pairs.candidate]
        return np.einsum("ij,ij->i", users[inverse.reshape(-1)], items)

    def score_matrix(self, users, histories, items, width: int) -> np.ndarray:
        """One matrix product of the users' vectors and the items' embeddings."""
        assert self.vocab is not None, "fit or load first"
        hist = np.stack([pad_history(self.vocab, h, width) for h in histories]) if len(histories) else \
            np.zeros((0, width), dtype=np.int64)
        return self.encode_users(hist) @ self.item_matrix()[self.vocab.encode(list(items))].T

    # -- storage -------------------------------------------------------------------------
    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        self.width = int(meta.get("history_width") or self.config.max_history)
        super().load(folder, vocab, {**meta, "text_dim": 0})


class SASRec(SequentialRecommender):
    name = "sasrec"
    description = "Self-Attentive Sequential Recommendation: causal self-attention over the history (torch-rechub)"

    def build_sequential(self, vocab_size: int):
        from torch_rechub.basic.features import SequenceFeature
        from torch_rechub.basic.initializers import XavierNormal

        dim = self.config.embedding_dim
        seq = SequenceFeature("seq", vocab_size, dim, pooling="concat", padding_idx=PAD, initializer=XavierNormal())
        pos = SequenceFeature("pos", vocab_size, dim, pooling="concat", shared_with="seq", padding_idx=PAD)
        neg = SequenceFeature("neg", vocab_size, dim, pooling="concat", shared_with="seq", padding_idx=PAD)
        import torch

        model = _sasrec_class()([seq, pos, neg], max_len=max(1, self.width), dropout_rate=self.config.dropout,
                                num_blocks=SASREC_BLOCKS, num_heads=SASREC_HEADS)
        # positions at the scale of the (sqrt(d)-scaled) item embeddings, not nn.Embedding's N(0, 1)
        item_std = float(model.item_emb.embed_dict["seq"].weight.detach().std()) * dim ** 0.5
        torch.nn.init.normal_(model.position_emb.weight, 0.0, item_std)
        return model

    def item_table(self):
        return self.model.item_emb.embed_dict["seq"].weight

    def examples(self, sequences: np.ndarray):
        """One row per train user: inputs seq[:-1] and next items seq[1:]."""
        keep = (sequences[:, 1:] != PAD).any(axis=1) & (sequences[:, :-1] != PAD).any(axis=1)
        rows = sequences[keep]
        return (np.ascontiguousarray(rows[:, :-1]), np.ascontiguousarray(rows[:, 1:]))

    def rows_per_batch(self) -> int:
        """A row predicts up to `width` next items: a batch holds --train-batch-size of them."""
        return max(2, self.config.train_batch_size // max(1, self.width))

    def _outputs(self, seq):
        emb = self.item_table()[seq]
        return self.model.seq_forward({"seq": seq}, emb)

    def batch_loss(self, batch, gen, vocab_size: int):
        import torch
        import torch.nn.functional as F

        inputs, nxt = batch
        out = self._outputs(inputs)  # (B, W, d)
        table = self.item_table()
        neg = _negatives(gen, (*nxt.shape, self.config.negatives), vocab_size).to(out.device)
        pos_logit = (out * table[nxt]).sum(-1)  # (B, W)
        neg_logit = torch.einsum("bwd,bwkd->bwk", out, table[neg])
        mask = (nxt != PAD) & (inputs != PAD)  # positions with a history item and a next item
        loss = F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit), reduction="none")
        loss = loss + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit),
                                                         reduction="none").sum(-1)
        return (loss * mask).sum() / mask.sum().clamp(min=1)

    def user_vectors(self, history):
        return self._outputs(history)[:, -1]


class GRU4Rec(SequentialRecommender):
    name = "gru4rec"
    description = "GRU4Rec: a recurrent network over the history, sampled softmax (torch-rechub)"

    def build_sequential(self, vocab_size: int):
        from torch_rechub.basic.features import SequenceFeature, SparseFeature
        from torch_rechub.basic.initializers import XavierNormal
        from torch_rechub.models.matching import GRU4Rec as Model

        dim = self.config.embedding_dim
        item = SparseFeature("item", vocab_size, dim, padding_idx=PAD, initializer=XavierNormal())
        hist = SequenceFeature("hist", vocab_size, dim, pooling="concat", shared_with="item", padding_idx=PAD)
        hist_mean = SequenceFeature("hist_mean", vocab_size, dim, pooling="mean", shared_with="item",
                                    padding_idx=PAD)
        neg = SequenceFeature("neg", vocab_size, dim, pooling="concat", shared_with="item", padding_idx=PAD)
        return Model([hist_mean], [hist], [item], [neg],
                     user_params={"dims": [*self.config.hidden(), dim], "dropout": self.config.dropout},
                     temperature=GRU_TEMPERATURE)

    def item_table(self):
        import torch.nn.functional as F

        return F.normalize(self.model.embedding.embed_dict["item"].weight, p=2, dim=-1)

    def examples(self, sequences: np.ndarray):
        """Every prefix with at least one item: (history, next item)."""
        width = sequences.shape[1] - 1
        hist, nxt = [], []
        for t in range(1, sequences.shape[1]):
            ok = (sequences[:, t] != PAD) & (sequences[:, t - 1] != PAD)
            if not ok.any():
                continue
            h = np.zeros((int(ok.sum()), width), dtype=np.int64)
            h[:, width - t:] = sequences[ok, :t]
            hist.append(h)
            nxt.append(sequences[ok, t])
        if not hist:
            return (np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64))
        return (np.concatenate(hist), np.concatenate(nxt))

    def _user(self, history):
        return self.model.user_tower({"hist": history, "hist_mean": history}).squeeze(1)  # (B, d), unit length

    def batch_loss(self, batch, gen, vocab_size: int):
        import torch
        import torch.nn.functional as F

        history, nxt = batch
        user = self._user(history)
        neg = _negatives(gen, (nxt.shape[0], self.config.negatives), vocab_size).to(user.device)
        cands = torch.cat([nxt.unsqueeze(1), neg], dim=1)  # the next item first
        logits = torch.einsum("bd,bkd->bk", user, self.item_table()[cands]) / GRU_TEMPERATURE
        return F.cross_entropy(logits, torch.zeros(len(nxt), dtype=torch.long, device=user.device))

    def user_vectors(self, history):
        return self._user(history)


_SASREC = None


def _sasrec_class():
    """The library's SASRec with `seq_forward` made device-safe (see the module docstring)."""
    global _SASREC
    if _SASREC is None:
        import torch
        from torch_rechub.models.matching import SASRec as Library

        class _SASRecOnDevice(Library):
            def seq_forward(self, x, embed_x_feature):
                seq = x["seq"]
                h = embed_x_feature.reshape(seq.shape[0], seq.shape[1], -1) * self.embed_dim ** 0.5
                positions = torch.arange(seq.shape[1], device=seq.device).unsqueeze(0).expand(seq.shape[0], -1)
                h = self.emb_dropout(h + self.position_emb(positions))
                keep = (seq != 0).unsqueeze(-1)
                h = h * keep
                causal = ~torch.tril(torch.ones((seq.shape[1], seq.shape[1]), dtype=torch.bool, device=seq.device))
                for i in range(len(self.attention_layers)):
                    h = torch.transpose(h, 0, 1)
                    q = self.attention_layernorms[i](h)
                    out, _ = self.attention_layers[i](q, h, h, attn_mask=causal)
                    h = torch.transpose(q + out, 0, 1)
                    h = self.forward_layers[i](self.forward_layernorms[i](h)) * keep
                return self.last_layernorm(h)

        _SASREC = _SASRecOnDevice
    return _SASREC
