"""Prompt templates (data in prompts/) and rendering with protocol truncation (PROTOCOL §4).

A template is split at `{candidate}`: the text before it (instructions + numbered history)
is the *prefix* shared by all candidates of a user, the rest the per-candidate *suffix*.
Scorers compute the prefix once and reuse it (KV cache), so the split is part of the data
model rather than an optimisation bolted on later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError, ModelError, suggest

HISTORY_SHOWN = 20  # the protocol shows the last 20 history items
ITEM_MARKER = "<<<ITEM>>>"
LAYOUTS = ("prompt", "pair")  # split before {candidate} | user text and item text around ITEM_MARKER
MIN_TEXT_CHARS = 8  # below this a shortened item text carries no information


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
        text = self.text.replace("{item_noun}", item_noun)
        if self.layout == "pair":
            if ITEM_MARKER not in text:
                raise ConfigError(f"{self.scheme} template '{self.id}' needs a line {ITEM_MARKER} between user and item text")
            head, _, tail = text.partition(ITEM_MARKER)
            head, tail = head.strip("\n"), tail.strip("\n")
        else:
            # split after the last line break before {candidate}: tokenizers do not merge
            # across it, so prefix tokens + suffix tokens == tokens of the whole prompt
            idx = text.find("{candidate}")
            cut = text.rfind("\n", 0, idx) + 1 if "\n" in text[:idx] else idx
            head, tail = text[:cut], text[cut:]
        if head.count("{history}") != 1 or tail.count("{candidate}") != 1 or "{candidate}" in head:
            raise ConfigError(
                f"template '{self.id}' must contain {{history}} before {{candidate}}, each once"
            )
        return head, tail


def number_history(texts: Sequence[str]) -> str:
    return "\n".join(f"({i}) {t}" for i, t in enumerate(texts, 1))


def _fill(part: str, **values: str) -> str:
    out = part.replace("{{", "\x00").replace("}}", "\x01")
    for k, v in values.items():
        out = out.replace("{" + k + "}", v.replace("{", "\x02").replace("}", "\x03"))
    return out.replace("\x00", "{").replace("\x01", "}").replace("\x02", "{").replace("\x03", "}")


def shorten(text: str, ratio: float = 0.7) -> str:
    """Cut a text to `ratio` of its length at a word boundary, marking the cut."""
    keep = max(MIN_TEXT_CHARS, int(len(text) * ratio))
    if keep >= len(text) - 1:
        return text  # nothing meaningful left to cut: callers treat this as "cannot shorten"
    cut = text[:keep].rsplit(" ", 1)[0] if " " in text[:keep] else text[:keep]
    return cut.rstrip() + "…"


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

    def _fit_history(self, history: List[str], reserve: int) -> Tuple[str, bool, bool]:
        """The rendered head for the longest history that fits budget - reserve."""
        limit = self.budget - reserve - self.margin
        hist = list(history[-self.shown:]) if self.shown else []
        cut = shortened = False
        head = self._head(hist)
        while self.count_tokens(head) > limit:
            if len(hist) > 1:
                hist.pop(0)
                self.stats.history_items_dropped += 1
                cut = True
            else:
                longest = max(range(len(hist)), key=lambda k: len(hist[k])) if hist else None
                cut_text = shorten(hist[longest]) if longest is not None else None
                if cut_text is None or cut_text == hist[longest]:
                    raise ModelError(
                        f"the model's context ({self.budget} tokens) is too small for the prompt with even "
                        "one history item; use a model with a longer context or a shorter template"
                    )
                hist[longest] = cut_text
                shortened = True
            head = self._head(hist)
        return head, cut, shortened

    def _fit_candidates(self, candidates: Sequence[str]) -> Tuple[List[str], int]:
        """Suffixes, each shortened to at most half the budget; and the longest's tokens."""
        half = self.budget // 2
        suffixes = []
        longest = 0
        for cand in candidates:
            suffix = self._suffix(cand)
            n = self.count_tokens(suffix)
            while n > half:
                shorter = shorten(cand)
                if shorter == cand:
                    break  # the history fit below reports a context that is too small
                cand = shorter
                suffix = self._suffix(cand)
                n = self.count_tokens(suffix)
                self.stats.candidates_shortened += 1
            suffixes.append(suffix)
            longest = max(longest, n)
        return suffixes, longest

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
