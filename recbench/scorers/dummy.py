"""`dummy`: a deterministic fake backend that needs no torch (tests, pipeline dry runs).

Its scores mean a little (word overlap between the history and the candidate, so a demo
run lands above random) and are exactly reproducible: the runner, the reporter and the CLI
are tested end to end with it in seconds.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..prompts import PromptRequest
from .base import EmbeddingScorer, GenerativeScorer, OnResult

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"[a-z0-9]{3,}")
DIM = 256
VERSION = 1  # bump when the fake scores change (it is part of the cache identity)


def _words(text: str) -> List[str]:
    return _WORD.findall(text.lower())


def _unit_noise(text: str) -> float:
    """A stable pseudo-random number in [-0.5, 0.5) from the text."""
    h = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64 - 0.5


class _DummyBase:
    backend = "dummy"

    def __init__(self, spec, max_length: Optional[int] = None):
        self.spec = spec
        self._budget = int(max_length or 4096)

    def identity(self) -> Dict:
        return {"model": "dummy", "model_id": "dummy", "backend": "dummy", "revision": f"v{VERSION}"}

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    @property
    def context_budget(self) -> int:
        return self._budget

    def diagnostics(self) -> Dict:
        return {"device": "none"}

    def efficiency_counters(self) -> Dict:
        return {"device": "none", "dtype": None}


class DummyGenerativeScorer(_DummyBase, GenerativeScorer):
    @classmethod
    def from_run(cls, spec, run) -> "DummyGenerativeScorer":
        return cls(spec, max_length=run.max_length)

    def label_info(self) -> Dict:
        return {"yes": 1, "no": 0, "yes_text": " Yes", "no_text": " No", "pieces": 1}

    def _p_yes(self, request: PromptRequest) -> float:
        history = set(_words(request.prefix))
        cand = _words(request.suffix)
        overlap = sum(1 for w in cand if w in history) / math.sqrt(len(cand) + 1)
        return 1.0 / (1.0 + math.exp(-(1.5 * overlap - 0.5 + 0.2 * _unit_noise(request.text))))

    def score_detailed(self, requests: Sequence[PromptRequest],
                       on_result: Optional[OnResult] = None) -> Tuple[List[float], List[Dict]]:
        scores = [self._p_yes(r) for r in requests]
        return scores, [{"mass": 1.0} for _ in requests]


class DummyEmbeddingScorer(_DummyBase, EmbeddingScorer):
    embed_batch_size = 64

    @classmethod
    def from_run(cls, spec, run) -> "DummyEmbeddingScorer":
        return cls(spec, max_length=run.max_length)

    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for r, text in enumerate(texts):
            for w in _words(text):
                h = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "big")
                out[r, h % DIM] += 1.0 if (h >> 32) & 1 else -1.0
            out[r, DIM - 1] += 0.05  # no all-zero vectors
        return out
