"""`baseline` backend: conventional recommenders (the `recommender` ability).

A recommender scorer reads item ids, never prompts: it is fitted on a scenario's
fine-tuning split (or loaded from the folder of an earlier, identical fit) and scores
(history ids, candidate id) pairs. Which data it learns from and where item-text vectors come
from is the conventional scheme's business; this class owns the model: build, train, save,
reuse, score.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Optional

import numpy as np

from ..baselines import BaselineConfig, baseline_info, recommender_class
from ..baselines.base import FitData, Recommender
from ..baselines.config import FORMAT_VERSION, config_hash
from ..baselines.data import Pairs
from ..baselines.store import model_folder, read_meta, read_vocab, write_folder
from ..results import utc_now
from .base import Scorer


def train_sizes(data: FitData) -> Dict[str, Optional[int]]:
    """What a model was trained on. Train pairs are built only for the models that read them:
    a sequential model's record has train_pairs None and counts its users by their sequences."""
    sequences = None if data.sequences is None else int(len(data.sequences))
    if data.train is None:
        return {"train_pairs": None, "train_sequences": sequences, "train_users": sequences}
    return {"train_pairs": len(data.train), "train_sequences": sequences,
            "train_users": int(len(set(data.train.users)))}


class BaselineScorer(Scorer):
    """Scores (history ids, candidate id) pairs: the `recommender` ability."""

    backend = "baseline"
    kind: ClassVar[str] = "recommender"

    def __init__(self, spec, run, config: BaselineConfig):
        self.spec = spec
        self.run = run
        self.config = config
        self.architecture = spec.model_id
        self.info = baseline_info(self.architecture)
        self.recommender: Optional[Recommender] = None
        self.folder: Optional[Path] = None
        self.record: Dict[str, Any] = {}
        self._device: Optional[str] = None

    @classmethod
    def from_run(cls, spec, run) -> "BaselineScorer":
        cfg = BaselineConfig.from_any(run.baseline)
        scorer = cls(spec, run, cfg)
        recommender_class(scorer.architecture)  # a missing library is reported before any data work
        if scorer.info.extra:
            from ..baselines.deep import _rechub

            _rechub()
        return scorer

    # -- the contract --------------------------------------------------------------------
    def identity(self) -> Dict:
        from ..models import resolve_model

        emb = self.spec.item_embeddings
        ident = {"model": self.spec.name, "model_id": self.spec.name, "backend": "baseline",
                 "architecture": self.architecture, "revision": f"baselines-v{FORMAT_VERSION}",
                 "item_embeddings": resolve_model(emb).public_id if emb else None}
        if self.info.extra:
            from ..baselines.deep import LIBRARY, library_version

            ident["library"] = f"{LIBRARY} {library_version()}"
        return ident

    def count_tokens(self, text: str) -> int:
        return 0  # no prompts

    @property
    def context_budget(self) -> int:
        return 1 << 30

    @property
    def device(self) -> str:
        if self._device is None:
            if not self.info.extra:
                self._device = "cpu"
            elif self.run.device:
                self._device = str(self.run.device)
            else:
                import torch

                self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    def diagnostics(self) -> Dict:
        return {"device": self.device}

    # -- fitting -------------------------------------------------------------------------
    def settings_used(self) -> Dict[str, Any]:
        """The hashed settings this model reads (the counting models read no optimiser knobs)."""
        hashed = self.config.hashed()
        if recommender_class(self.architecture).trained:
            return hashed
        return {k: hashed[k] for k in ("num_finetune", "format")}

    def prepare_model(self, scenario: str, payload: Dict[str, Any], fit_data: Callable[[], FitData],
                      say: Callable[[str], None]) -> Dict[str, Any]:
        """Load the trained model of this configuration, or fit one (fit_data builds the data
        only then) and save it. Returns the folder's record."""
        payload = {**payload, "model": self.architecture, "settings": self.settings_used(),
                   "item_embeddings": self.identity()["item_embeddings"]}
        digest = config_hash(payload)
        folder = model_folder(self.run.output_dir, self.spec.slug, scenario, digest)
        cls = recommender_class(self.architecture)
        meta = None if (self.config.retrain or not self.run.use_cache) else read_meta(folder)
        rec = cls(self.config)
        rec.device = self.device
        if meta is not None:
            rec.load(folder, read_vocab(folder), meta)
            say(f"{self.spec.name}: reusing the trained model in {folder} (trained {meta.get('created')}; "
                "--retrain to train again)")
            meta = {**meta, "reused": True}
        else:
            data = fit_data()
            data.device = self.device
            t0 = time.perf_counter()
            report = rec.fit(data)
            train_s = time.perf_counter() - t0
            meta = {
                "model": self.spec.name, "architecture": self.architecture, "scenario": scenario,
                "config_hash": digest, "hash_of": payload, "settings": self.config.public(),
                "fit": asdict(report), "train_s": round(train_s, 3), "device": self.device,
                **train_sizes(data), "valid_pairs": len(data.valid), "valid_users": int(len(set(data.valid.users))),
                "items": len(data.vocab.items), "history_width": int(data.history_width),
                "text_dim": getattr(rec, "text_dim", 0), **rec.info(),
                "created": utc_now(),
            }
            write_folder(folder, rec, data.vocab, meta)
            meta = {**meta, "reused": False}
        self.recommender, self.folder, self.record = rec, folder, meta
        return meta

    def score_pairs(self, pairs: Pairs) -> np.ndarray:
        assert self.recommender is not None, "prepare_model first"
        return np.asarray(self.recommender.score(pairs), dtype=np.float64)

    @property
    def history_width(self) -> int:
        """History items a pair holds (fixed when the model was fitted)."""
        return int(self.record.get("history_width") or self.config.max_history)

    @property
    def vocab(self):
        return self.recommender.vocab if self.recommender is not None else None


def stderr_say(enabled: bool) -> Callable[[str], None]:
    return (lambda m: print(m, file=sys.stderr)) if enabled else (lambda _m: None)
