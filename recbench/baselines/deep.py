"""Trained deep CTR models from torch-rechub (DIN, DCNv2, DeepFM, BST).

The architectures are the library's own `nn.Module`s; recbench only lays out the features,
trains (BCE, Adam, shuffled batches, validation gauc every epoch, early stopping with
patience, the best epoch kept) and scores. Features, for every model:

- `item`: the candidate's id embedding;
- `hist` / `hist_mean`: the user's history ids, as a sequence (DIN's attention, BST's
  transformer) and mean-pooled (the "user" vector of DCNv2 and DeepFM, DIN's and BST's
  context feature). They share the candidate's embedding table.
- LLM-for-RS: `item_text` / `hist_text` / `hist_text_mean`, the same three over a frozen
  table of item-text vectors (text.py) of the same size as the id embeddings.

No user id is encoded: a user is scored from the history alone.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import require
from ..progress import progress_bar
from .base import FitData, FitReport, Recommender
from .data import PAD, Pairs, Vocab

LIBRARY = "torch-rechub"
SCORE_BATCH = 4096
ID_INIT_STD = 1e-4  # the library's default for id embeddings
# These models are small: on CPU one thread is as fast as several, and far faster when the
# cores are shared (2 threads were 4x slower than 1 per DIN epoch on a loaded 2-core machine).
CPU_THREADS = 1


def _rechub():
    require("torch", "baselines", "the deep baselines")
    return require("torch_rechub", "baselines", "the deep baselines (DIN, DCNv2, DeepFM, BST)")


@contextmanager
def _threads(device: str):
    torch = require("torch", "baselines", "the deep baselines")
    if not str(device).startswith("cpu"):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def library_version() -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(LIBRARY)
    except metadata.PackageNotFoundError:
        return None


class DeepRecommender(Recommender):
    """Shared training loop; subclasses build the library's model from the features."""

    trained = True
    library = LIBRARY

    def __init__(self, config):
        super().__init__(config)
        self.model = None
        self.text_dim = 0
        self.device = "cpu"

    # -- features ------------------------------------------------------------------------
    def features(self, vocab_size: int, text: Optional[np.ndarray]) -> Dict[str, Any]:
        """The torch-rechub feature objects, by role."""
        _rechub()
        from torch_rechub.basic.features import SequenceFeature, SparseFeature
        from torch_rechub.basic.initializers import Pretrained, RandomNormal

        dim = self.config.embedding_dim
        f: Dict[str, Any] = {
            "item": SparseFeature("item", vocab_size, dim, padding_idx=PAD, initializer=RandomNormal(0.0, ID_INIT_STD)),
            "hist": SequenceFeature("hist", vocab_size, dim, pooling="concat", shared_with="item", padding_idx=PAD),
            "hist_mean": SequenceFeature("hist_mean", vocab_size, dim, pooling="mean", shared_with="item",
                                         padding_idx=PAD),
        }
        if text is not None:
            f["item_text"] = SparseFeature("item_text", vocab_size, dim, padding_idx=PAD,
                                           initializer=Pretrained(text, freeze=True))
            f["hist_text"] = SequenceFeature("hist_text", vocab_size, dim, pooling="concat", shared_with="item_text",
                                             padding_idx=PAD)
            f["hist_text_mean"] = SequenceFeature("hist_text_mean", vocab_size, dim, pooling="mean",
                                                  shared_with="item_text", padding_idx=PAD)
        return f

    @staticmethod
    def pick(f: Dict[str, Any], *names: str) -> List[Any]:
        return [f[n] for n in names if n in f]

    def build(self, f: Dict[str, Any]):
        raise NotImplementedError

    def _inputs(self, hist, cand) -> Dict[str, Any]:
        x = {"item": cand, "hist": hist, "hist_mean": hist}
        if self.text_dim:
            x.update({"item_text": cand, "hist_text": hist, "hist_text_mean": hist})
        return x

    def _make(self, vocab_size: int, text: Optional[np.ndarray]):
        torch = require("torch", "baselines", "the deep baselines")
        self.text_dim = 0 if text is None else int(text.shape[1])
        model = self.build(self.features(vocab_size, text))
        return model.to(torch.device(self.device))

    # -- training ------------------------------------------------------------------------
    def fit(self, data: FitData) -> FitReport:
        with _threads(data.device):
            return self._fit(data)

    def _fit(self, data: FitData) -> FitReport:
        """The one training loop of every torch-rechub model: Adam, shuffled batches of the
        subclass's examples (`training_examples`, `batch_loss`), validation gauc every epoch,
        early stopping with patience, the best epoch kept."""
        torch = require("torch", "baselines", "the deep baselines")

        cfg = self.config
        self.vocab, self.device = data.vocab, data.device
        examples = self.training_examples(data)
        torch.manual_seed(int(data.seed))
        self.model = self._make(data.vocab.size, data.item_vectors)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        dev = torch.device(self.device)
        tensors = tuple(torch.from_numpy(a).to(dev) for a in examples)
        n = int(tensors[0].shape[0])
        step = self.rows_per_batch()
        gen = torch.Generator().manual_seed(int(data.seed))
        report = FitReport(parameters=int(sum(p.numel() for p in params)))
        best, best_state, bad = -math.inf, None, 0
        for epoch in range(1, cfg.epochs + 1):
            self.model.train()
            order = torch.randperm(n, generator=gen).to(dev)
            bar = progress_bar(n, f"{data.desc} epoch {epoch}/{cfg.epochs}", data.progress, unit=self.example_unit)
            total, seen = 0.0, 0
            for start in range(0, n, step):
                idx = order[start:start + step]
                if idx.numel() < 2:  # batch norm needs two rows
                    bar.update(int(idx.numel()))
                    continue
                loss = self.batch_loss(tuple(t[idx] for t in tensors), gen, data.vocab.size)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(idx.numel())
                seen += int(idx.numel())
                bar.update(int(idx.numel()))
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
            bar.close()
            report.epochs = epoch
            report.train_loss.append(round(total / max(seen, 1), 6))
            gauc = math.nan
            if data.validate is not None and len(data.valid):
                gauc = float(data.validate(data.valid, self.score(data.valid)))
            report.valid_curve.append(gauc)
            if math.isnan(gauc):  # nothing to stop on: keep the last epoch
                best_state, report.best_epoch = None, epoch
                continue
            if gauc > best + 1e-9:
                best, bad, report.best_epoch = gauc, 0, epoch
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad += 1
                if bad >= cfg.patience:
                    report.stopped_early = epoch < cfg.epochs
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
            report.valid_gauc = best
        self.model.eval()
        return report

    # what one training step reads and how it is scored (the pairwise CTR models: BCE on pairs)
    example_unit = "pair"

    def training_examples(self, data: FitData) -> Tuple[np.ndarray, ...]:
        """Parallel arrays, one row per training example (indexed together for a batch)."""
        train = data.train_pairs()
        return (train.history, train.candidate, train.label)

    def rows_per_batch(self) -> int:
        """Example rows per optimizer step."""
        return self.config.train_batch_size

    def batch_loss(self, batch: Tuple[Any, ...], gen, vocab_size: int):
        import torch.nn.functional as F

        hist, cand, label = batch
        p = self.model(self._inputs(hist, cand))
        return F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), label)

    def score(self, pairs: Pairs) -> np.ndarray:
        torch = require("torch", "baselines", "the deep baselines")
        dev = torch.device(self.device)
        self.model.eval()
        out = np.zeros(len(pairs), dtype=np.float64)
        with torch.no_grad(), _threads(self.device):
            for start in range(0, len(pairs), SCORE_BATCH):
                hist = torch.from_numpy(pairs.history[start:start + SCORE_BATCH]).to(dev)
                cand = torch.from_numpy(pairs.candidate[start:start + SCORE_BATCH]).to(dev)
                out[start:start + SCORE_BATCH] = self.model(self._inputs(hist, cand)).double().cpu().numpy()
        return out

    # -- storage -------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        torch = require("torch", "baselines", "the deep baselines")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(state, folder / "weights.pt")

    def load(self, folder: Path, vocab: Vocab, meta: Dict[str, Any]) -> None:
        torch = require("torch", "baselines", "the deep baselines")
        self.vocab = vocab
        text_dim = int(meta.get("text_dim") or 0)
        placeholder = np.zeros((vocab.size, text_dim), dtype=np.float32) if text_dim else None
        self.model = self._make(vocab.size, placeholder)
        state = torch.load(folder / "weights.pt", map_location=torch.device(self.device), weights_only=True)
        self.model.load_state_dict(state, strict=True)
        self.model.eval()

    def info(self) -> Dict[str, Any]:
        return {"library": LIBRARY, "library_version": library_version(), "text_dim": self.text_dim}


class DIN(DeepRecommender):
    """The attention unit uses ReLU: with the library's default Dice there (normalised per
    row over its 36 units) DIN stalled at valid gauc 0.71 on the demo; with ReLU it reaches 0.89."""

    name = "din"
    description = "Deep Interest Network: attention of the candidate over the history (torch-rechub)"

    def build(self, f):
        from torch_rechub.models.ranking import DIN as Model

        return Model(features=self.pick(f, "hist_mean", "hist_text_mean"),
                     history_features=self.pick(f, "hist", "hist_text"),
                     target_features=self.pick(f, "item", "item_text"),
                     mlp_params={"dims": self.config.hidden(), "dropout": self.config.dropout},
                     attention_mlp_params={"dims": [36], "activation": "relu", "use_softmax": False})


class DCNv2(DeepRecommender):
    name = "dcnv2"
    description = "Deep & Cross Network v2 over the candidate and the mean history (torch-rechub)"

    def build(self, f):
        from torch_rechub.models.ranking import DCNv2 as Model

        return Model(features=self.pick(f, "item", "hist_mean", "item_text", "hist_text_mean"), n_cross_layers=3,
                     mlp_params={"dims": self.config.hidden(), "dropout": self.config.dropout, "activation": "relu"})


class DeepFM(DeepRecommender):
    name = "deepfm"
    description = "DeepFM: factorisation machine + MLP over the candidate and the mean history (torch-rechub)"

    def build(self, f):
        from torch_rechub.models.ranking import DeepFM as Model

        fields = self.pick(f, "item", "hist_mean", "item_text", "hist_text_mean")
        return Model(deep_features=fields, fm_features=fields,
                     mlp_params={"dims": self.config.hidden(), "dropout": self.config.dropout, "activation": "relu"})


class BST(DeepRecommender):
    """Two initialisation choices, both measured on the demo: the position embeddings start at
    the id embeddings' scale (the library leaves nn.Embedding's N(0, 1), which drowns items
    initialised at 1e-4: valid gauc stayed at 0.57 after 6 epochs), and the encoder runs
    without dropout (with 0.2 it stayed at 0.56 after 5 epochs; without, 0.70 and rising)."""

    name = "bst"
    description = "Behavior Sequence Transformer over the history and the candidate (torch-rechub)"

    def build(self, f):
        import torch
        from torch_rechub.models.ranking import BST as Model

        item_dim = self.config.embedding_dim * (2 if self.text_dim else 1)
        heads = next(h for h in (4, 2, 1) if item_dim % h == 0)
        model = Model(features=self.pick(f, "hist_mean", "hist_text_mean"),
                      history_features=self.pick(f, "hist", "hist_text"),
                      target_features=self.pick(f, "item", "item_text"),
                      mlp_params={"dims": self.config.hidden(), "dropout": self.config.dropout, "activation": "relu"},
                      nhead=heads, dropout=0.0, num_layers=1, max_seq_len=self.config.max_history + 1)
        torch.nn.init.normal_(model.pos_embedding.weight, 0.0, ID_INIT_STD)
        return model
