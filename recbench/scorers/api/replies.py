"""Reading OpenAI-compatible answers: the few fields the scorers need, checked.

A parser raises `Malformed` for an answer that lacks what it should hold; the transport
retries those like any transient fault (a one-off glitch must not change a run), and a
`kind` says which field was missing, so that repeated evidence can be told apart.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


class Unsupported(Exception):
    """The server refused an endpoint or parameter (HTTP 400/404/405/415/422)."""


class Malformed(Exception):
    """A 200 answer without the expected shape or field (retried like a transient error)."""

    def __init__(self, detail: str, kind: str = "malformed answer"):
        super().__init__(detail)
        self.kind = kind


NO_LOGPROBS = "answer without logprobs"  # the Malformed kind tier detection counts


def as_dict(resp) -> dict:
    """The client's response object as plain JSON-like data."""
    if isinstance(resp, dict):
        return resp
    try:
        return resp.model_dump(warnings=False)
    except Exception as exc:  # pydantic refuses a broken object
        raise Malformed(f"unreadable response ({type(exc).__name__})") from None


def first_choice(d: dict) -> dict:
    choices = d.get("choices") if isinstance(d, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Malformed("no choices in the answer")
    return choices[0]


def completion_top(d: dict) -> Dict[str, float]:
    """The answer position's top log-probs from a /completions answer {token: logprob}."""
    lp = first_choice(d).get("logprobs") or {}
    tops = lp.get("top_logprobs") if isinstance(lp, dict) else None
    if not tops or not isinstance(tops[0], dict) or not tops[0]:
        raise Malformed("the answer has no logprobs", NO_LOGPROBS)
    return {str(k): float(v) for k, v in tops[0].items() if v is not None}


def chat_top(d: dict) -> List[Tuple[str, float]]:
    """The first answer token's top log-probs from a /chat/completions answer [(token, logprob)]."""
    lp = first_choice(d).get("logprobs") or {}
    content = lp.get("content") if isinstance(lp, dict) else None
    if not content or not isinstance(content[0], dict):
        raise Malformed("the answer has no logprobs", NO_LOGPROBS)
    tops = content[0].get("top_logprobs") or []
    out = [(str(t.get("token")), float(t["logprob"]))
           for t in tops if isinstance(t, dict) and t.get("logprob") is not None]
    if not out and content[0].get("logprob") is not None:
        out = [(str(content[0].get("token")), float(content[0]["logprob"]))]
    if not out:
        raise Malformed("the answer has no logprobs", NO_LOGPROBS)
    return out


def answer_text(d: dict, endpoint: str) -> str:
    """The generated text of a chat or completions answer ('' when the server sent none)."""
    ch = first_choice(d)
    text = (ch.get("message") or {}).get("content") if endpoint == "chat" else ch.get("text")
    return text or ""


def echo_label_logprob(d: dict, prompt: str, label: str) -> Optional[float]:
    """Log-prob of the label's first token from an echo answer for prompt + label (None: unusable)."""
    ch = first_choice(d)
    lp = ch.get("logprobs") or {}
    tokens = lp.get("tokens") or []
    values = lp.get("token_logprobs") or []
    full = prompt + label
    text = ch.get("text") or ""
    if len(tokens) != len(values) or not text.startswith(full):
        return None  # the server ignored echo
    generated = text[len(full):]
    j, acc = len(tokens), ""
    while j > 0 and len(acc) < len(generated):
        j -= 1
        acc = str(tokens[j]) + acc
    if acc != generated:
        return None
    k, acc = j, ""
    while k > 0 and len(acc) < len(label):
        k -= 1
        acc = str(tokens[k]) + acc
    if acc != label or values[k] is None:
        return None  # the label's first piece merged with the prompt's last characters
    return float(values[k])


def parse_answer(text: Optional[str]) -> Optional[float]:
    """1.0 for an answer starting with yes, 0.0 for no, None for anything else."""
    m = _ANSWER.match(text or "")
    if not m:
        return None
    return 1.0 if m.group(1).lower() == "yes" else 0.0


def vectors(d: dict, n: int) -> List[list]:
    """The n embeddings of an /embeddings answer, in input order (token-level ones are returned
    as they are: the caller refuses them with a clear line)."""
    data = d.get("data") if isinstance(d, dict) else None
    if not isinstance(data, list) or len(data) != n:
        raise Malformed(f"expected {n} embeddings, got {len(data) if isinstance(data, list) else 'none'}")
    rows = sorted(data, key=lambda e: e.get("index", 0) if isinstance(e, dict) else 0)
    out = []
    for e in rows:
        v = e.get("embedding") if isinstance(e, dict) else None
        if not isinstance(v, list) or not v:
            raise Malformed("an embedding is missing")
        out.append(v)
    return out
