"""Prompt templates (data in prompts/) and rendering with protocol truncation (PROTOCOL §4).

A template is split at `{candidate}`: the text before it (instructions + numbered history)
is the *prefix* shared by all candidates of a user, the rest the per-candidate *suffix*.
Scorers compute the prefix once and reuse it (KV cache), so the split is part of the data
model rather than an optimisation bolted on later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from .errors import ConfigError, ModelError, suggest

HISTORY_SHOWN = 20  # the protocol shows the last 20 history items
ITEM_MARKER = "<<<ITEM>>>"
LAYOUTS = ("prompt", "pair")  # split before {candidate} | user text and item text around ITEM_MARKER
MIN_TEXT_CHARS = 8  # below this a shortened item text carries no information
# An item whose own token count exceeds the limit by more than this cannot fit in any head
# (the numbering and template only add tokens; merges at its edges change a few at most).
HOPELESS_SLACK = 8


def templates_root() -> Path:
    """prompts/ inside the installed wheel, or the repository's top-level prompts/."""
    here = Path(__file__).resolve().parent
    for cand in (here / "prompts", here.parent / "prompts"):
        if cand.is_dir():
            return cand
    raise RuntimeError("recbench prompt templates not found; the installation is incomplete")


def list_templates(folder: str) -> List[str]:
    return sorted(p.stem for p in (templates_root() / folder).glob("*.txt"))


@dataclass(frozen=True)
class Template:
    """A versioned prompt template; its sha256 goes into every results file."""

    id: str
    scheme: str  # the template folder (the scheme's name)
    text: str
    sha256: str
    layout: str = "prompt"

    @classmethod
    def load(cls, scheme: str, name_or_path: Optional[str] = None, layout: Optional[str] = None) -> "Template":
        """A template of prompts/<scheme>/ by id, or the user's own .txt file.

        layout: what the scheme needs; None infers it from the text (a template with an
        ITEM_MARKER line is a user-text/item-text pair)."""
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"unknown template layout {layout!r}")
        if not (templates_root() / scheme).is_dir():
            folders = [p.name for p in templates_root().iterdir() if p.is_dir()]
            raise ConfigError(f"unknown scheme '{scheme}' (no prompts/{scheme}/ folder)" + suggest(scheme, folders))
        name_or_path = name_or_path or "default"
        path = Path(name_or_path)
        if not (path.suffix == ".txt" and path.is_file()):
            path = templates_root() / scheme / f"{name_or_path}.txt"
            if not path.is_file():
                raise ConfigError(
                    f"unknown {scheme} template '{name_or_path}'"
                    + suggest(str(name_or_path), list_templates(scheme))
                    + "; or pass the path of your own .txt file"
                )
        raw = path.read_bytes()
        text = raw.decode("utf-8").rstrip("\n")
        if layout is None:
            layout = "pair" if ITEM_MARKER in text else "prompt"
        tpl = cls(id=path.stem, scheme=scheme, text=text, sha256=hashlib.sha256(raw).hexdigest(), layout=layout)
        tpl.parts("item")  # validate early
        return tpl

    def parts(self, item_noun: str) -> Tuple[str, str]:
        """(head, tail): head holds {history}; tail holds {candidate}.

        "prompt" layout: the prompt is head + tail, split right before {candidate}.
        "pair" layout: head is the user text and tail the item text."""
        text = _put(self.text, "item_noun", item_noun)
        if self.layout == "pair":
            if ITEM_MARKER not in text:
                raise ConfigError(f"{self.scheme} template '{self.id}' needs a line {ITEM_MARKER} between user and item text")
            head, _, tail = text.partition(ITEM_MARKER)
            head, tail = head.strip("\n"), tail.strip("\n")
        else:
            # split after the last line break before {candidate}: tokenizers do not merge
            # across it, so prefix tokens + suffix tokens == tokens of the whole prompt
            found = _slots(text, "candidate")
            idx = found[0] if found else -1
            cut = text.rfind("\n", 0, idx) + 1 if "\n" in text[:idx] else idx
            head, tail = text[:cut], text[cut:]
        if len(_slots(head, "history")) != 1 or len(_slots(tail, "candidate")) != 1 or _slots(head, "candidate"):
            raise ConfigError(
                f"template '{self.id}' must contain {{history}} before {{candidate}}, each once"
            )
        return head, tail


def number_history(texts: Sequence[str]) -> str:
    return "\n".join(f"({i}) {t}" for i, t in enumerate(texts, 1))


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]+)\}")


def _fill(part: str, **values: str) -> str:
    """Fill {name} placeholders and unescape {{ }} in one pass over the template, so the
    values are copied verbatim: no text in them (braces, control characters, other
    placeholders) can change the template or each other."""

    def sub(m: "re.Match[str]") -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        return values.get(m.group(1), tok)

    return _PLACEHOLDER.sub(sub, part)


def _slots(part: str, name: str) -> List[int]:
    """Where the real {name} placeholders start (not escaped {{name}} text)."""
    return [m.start() for m in _PLACEHOLDER.finditer(part) if m.group(1) == name]


def _put(part: str, name: str, value: str) -> str:
    """Fill one placeholder but keep the text a template (other placeholders and {{ }} stay,
    braces in the value are escaped), for the item noun filled before the split."""
    escaped = value.replace("{", "{{").replace("}", "}}")

    def sub(m: "re.Match[str]") -> str:
        return escaped if m.group(1) == name else m.group(0)

    return _PLACEHOLDER.sub(sub, part)


def shorten(text: str, ratio: float = 0.7) -> str:
    """Cut a text to `ratio` of its length at a word boundary, marking the cut."""
    keep = max(MIN_TEXT_CHARS, int(len(text) * ratio))
    if keep >= len(text) - 1:
        return text  # nothing meaningful left to cut: callers treat this as "cannot shorten"
    cut = text[:keep].rsplit(" ", 1)[0] if " " in text[:keep] else text[:keep]
    return cut.rstrip() + "…"


def shortenings(text: str) -> List[str]:
    """text, shorten(text), shorten(shorten(text)), ... until it cannot be shortened.

    Lengths shrink geometrically, so building the whole list costs about 3x the text."""
    out = [text]
    while True:
        nxt = shorten(out[-1])
        if nxt == out[-1]:
            return out
        out.append(nxt)


T = TypeVar("T")


def _first_fit(seq: Sequence[T], start: int, fits: Callable[[T], bool]) -> Optional[int]:
    """The first index >= start whose element fits, None if even the last does not.

    Binary search: elements later in seq are shorter, and a shorter text never needs more
    tokens, so fitting is monotone along seq."""
    lo, hi = start, len(seq) - 1
    if lo > hi or not fits(seq[hi]):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(seq[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class PromptRequest:
    """One generative request: prefix (shared by a user's candidates) + suffix."""

    prefix: str
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


@dataclass
class TruncationStats:
    """How often the protocol's truncation had to act (written into results)."""

    users: int = 0
    users_history_cut: int = 0
    history_items_dropped: int = 0
    users_text_shortened: int = 0
    candidates_shortened: int = 0

    def as_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


@dataclass
class PromptBuilder:
    """Renders prompts for one template and scenario within a token budget.

    count_tokens counts what the model will see; budget is the model's context (minus the
    answer token). Truncation per PROTOCOL §4: show the last 20 items; drop the oldest one at
    a time while too long; then shorten the longest texts; never crash silently.
    """

    template: Template
    item_noun: str
    count_tokens: Callable[[str], int]
    budget: int
    shown: int = HISTORY_SHOWN
    stats: TruncationStats = field(default_factory=TruncationStats)
    margin: int = 2  # token boundary effects between prefix and suffix

    def __post_init__(self) -> None:
        self.head, self.tail = self.template.parts(self.item_noun)

    def _suffix(self, candidate: str) -> str:
        return _fill(self.tail, candidate=candidate)

    def _head(self, history: Sequence[str]) -> str:
        return _fill(self.head, history=number_history(history))

    def _fits(self, text: str, limit: int) -> Tuple[bool, int]:
        n = self.count_tokens(text)
        return n <= limit, n

    def _fit_history(self, history: List[str], reserve: int) -> Tuple[str, bool, bool]:
        """The rendered head for the longest history that fits budget - reserve.

        Same result as dropping the oldest item one at a time and then shortening the one
        left step by step (PROTOCOL §4), found by binary search: a token count grows with
        the text, so the cost is a few counts, not one count of the whole head per item
        dropped or per shortening step (a 20,000-character title took ~40 s that way)."""
        limit = self.budget - reserve - self.margin
        hist = list(history[-self.shown:]) if self.shown else []
        head = self._head(hist)
        if self.count_tokens(head) <= limit:
            return head, False, False
        if not hist:
            raise self._too_small()
        # An item that alone exceeds the limit cannot be in any head that fits: a long item
        # is counted once on its own when a candidate head would include it, and heads that
        # include a hopeless one are never counted.
        hopeless: Dict[int, bool] = {}

        def fits(d: int) -> bool:  # does the head without the d oldest items fit?
            for k in range(d, len(hist)):
                if len(hist[k]) > limit and k not in hopeless:
                    hopeless[k] = self.count_tokens(hist[k]) > limit + HOPELESS_SLACK
                if hopeless.get(k):
                    return False
            return self.count_tokens(self._head(hist[d:])) <= limit

        n = len(hist)
        d = _first_fit(list(range(n)), 1, fits)  # d = 0 is the full head: known not to fit
        if d is not None:
            self.stats.history_items_dropped += d
            return self._head(hist[d:]), True, False
        # not even the most recent item fits: keep it alone and shorten it
        self.stats.history_items_dropped += n - 1
        variants = shortenings(hist[-1])
        k = _first_fit(variants, 1, lambda t: self.count_tokens(self._head([t])) <= limit)
        if k is None:
            raise self._too_small()
        return self._head([variants[k]]), n > 1, True

    def _too_small(self) -> ModelError:
        return ModelError(
            f"the model's context ({self.budget} tokens) is too small for the prompt with even "
            "one history item; use a model with a longer context or a shorter template"
        )

    def _fit_candidates(self, candidates: Sequence[str]) -> Tuple[List[str], int]:
        """Suffixes, each shortened to at most half the budget; and the longest's tokens."""
        half = self.budget // 2
        suffixes = []
        longest = 0
        for cand in candidates:
            suffix = self._suffix(cand)
            n = self.count_tokens(suffix)
            if n > half:
                suffix, n = self._shorten_candidate(cand, n, half)
            suffixes.append(suffix)
            longest = max(longest, n)
        return suffixes, longest

    def _shorten_candidate(self, cand: str, n: int, half: int) -> Tuple[str, int]:
        """The first shortening of `cand` whose suffix fits `half` tokens (else the shortest:
        the history fit then reports a context that is too small), and its token count."""
        variants = shortenings(cand)
        counts: Dict[int, int] = {0: n}

        def fits(k: int) -> bool:
            counts[k] = self.count_tokens(self._suffix(variants[k]))
            return counts[k] <= half

        k = _first_fit(list(range(len(variants))), 1, fits)
        if k is None:
            k = len(variants) - 1
        self.stats.candidates_shortened += k  # one per shortening step, as before
        return self._suffix(variants[k]), counts[k]

    def user_prompts(self, history: Sequence[str], candidates: Sequence[str]) -> List[PromptRequest]:
        """Generative prompts for one user's candidates, sharing one prefix."""
        suffixes, reserve = self._fit_candidates(candidates)
        head, cut, shortened = self._fit_history(list(history), reserve)
        self._count(cut, shortened)
        return [PromptRequest(head, s) for s in suffixes]

    def probe(self) -> PromptRequest:
        """A one-item prompt of this template (not counted in the stats): what follows its
        end is what the label tokens must continue."""
        return PromptRequest(self._head(["A"]), self._suffix("B"))

    def user_text(self, history: Sequence[str]) -> str:
        """Discriminative user text (history only)."""
        head, cut, shortened = self._fit_history(list(history), 0)
        self._count(cut, shortened)
        return head

    def item_text(self, candidate: str) -> str:
        """Discriminative item text, shortened to the budget if needed."""
        suffixes, _ = self._fit_candidates([candidate])
        return suffixes[0]

    def _count(self, cut: bool, shortened: bool) -> None:
        self.stats.users += 1
        self.stats.users_history_cut += int(cut)
        self.stats.users_text_shortened += int(shortened)
