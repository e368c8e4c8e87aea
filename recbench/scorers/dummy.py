"""`dummy`: a deterministic fake backend that needs no torch (tests, pipeline dry runs).

Its scores mean a little (word overlap between the history and the candidate, so a demo
run lands above random) and are exactly reproducible: the runner, the reporter and the CLI
are tested end to end with it in seconds. Its generator ranks the `[ID] text` lines of a
list-wise prompt by the same overlap and, for a fixed share of prompts, answers the way
small models do (an identifier missing, repeated or invented, or no ranking at all), so the
parsing paths run too.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..prompts import PromptRequest
from .base import EmbeddingScorer, GenerativeScorer, OnResult, OnText, TextGenerator

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"[a-z0-9]{3,}")
_HISTORY_LINE = re.compile(r"^\(\d+\) (.*)$", re.MULTILINE)
_CANDIDATE_LINE = re.compile(r"^\[([A-Za-z0-9]{1,3})\] (.*)$", re.MULTILINE)
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


class DummyTextGenerator(_DummyBase, TextGenerator):
    """Deterministic list-wise answers: candidates by word overlap with the history.

    The answer's shape depends only on a hash of the prompt: about 72% are complete rankings
    `[C] > [A] > ...`; 8% drop the last identifier, 6% repeat one, 6% invent one and 8% give
    no ranking at all. A prompt that asks for a `Reason:` line gets one. The answer is cut at
    max_new_tokens tokens, as a real model's would be."""

    @classmethod
    def from_run(cls, spec, run) -> "DummyTextGenerator":
        return cls(spec, max_length=run.max_length)

    @property
    def chat_applied(self) -> Optional[bool]:
        return False

    def answer(self, prompt: str) -> str:
        history = set(_words(" ".join(_HISTORY_LINE.findall(prompt))))
        cands = _CANDIDATE_LINE.findall(prompt)
        scored = []
        for ident, text in cands:
            words = _words(text)
            overlap = sum(1 for w in words if w in history) / math.sqrt(len(words) + 1)
            scored.append((-(overlap + 0.3 * _unit_noise(prompt + "\x00" + ident)), ident))
        order = [f"[{ident}]" for _, ident in sorted(scored)]
        shape = _unit_noise("shape\x00" + prompt) + 0.5
        if not order or shape < 0.08:
            text = "I am not sure which of these the user would like."
        else:
            if shape < 0.16 and len(order) > 1:
                order = order[:-1]
            elif shape < 0.22:
                order = order + order[:1]
            elif shape < 0.28:
                order = order[:1] + ["[ZZ]"] + order[1:]
            text = " > ".join(order)
        if "Reason:" in prompt:
            top = dict(cands).get(order[0].strip("[]"), "") if order else ""
            text += f"\nReason: it shares the most words with the history ({' '.join(_words(top)[:3]) or 'none'})."
        return text

    def _cut(self, text: str, max_new_tokens: int) -> str:
        pieces = list(_TOKEN.finditer(text))
        if len(pieces) <= max_new_tokens:
            return text
        return text[: pieces[max_new_tokens - 1].end()] if max_new_tokens > 0 else ""

    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 on_result: Optional[OnText] = None) -> List[str]:
        out = []
        for i, p in enumerate(prompts):
            text = self._cut(self.answer(p), max_new_tokens)
            out.append(text)
            if on_result is not None:
                on_result(i, text)
        return out
