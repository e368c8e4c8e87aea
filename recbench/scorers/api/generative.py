"""P(Yes) from an OpenAI-compatible endpoint, in three tiers (payloads and answers only; the
HTTP side is transport.py).

- ``completions``: /completions with ``max_tokens=1`` and ``logprobs=20`` (5 where the server
  refuses more, as OpenAI does) on the raw prompt; P(Yes) is the two-way softmax of the label
  tokens' log-probabilities at the answer position (" Yes"/" No" after the prompt's
  "Answer (Yes/No):"), as the local scorer does. A label missing from the top list is read
  with an ``echo`` request (prompt + label) where echo is supported and verified correct
  (checked once against a listed token: llama-cpp-python's echo log-probs are shifted by
  one position); otherwise it gets the floor value (the smallest listed log-prob, an upper
  bound), counted in the results.
- ``chat``: /chat/completions with ``max_tokens=1, temperature=0, logprobs, top_logprobs=20``;
  P(Yes) over the Yes/No spelling variants among the first token's top log-probs; an absent
  label gets the floor value, counted.
- ``text``: no logprobs anywhere; the answer text is parsed to 1 (yes) / 0 (no), anything
  else scores 0.5 and counts as invalid; the results say the AUC is on binary scores.

``auto`` probes completions, then chat, then text, when the scorer is made. A tier is taken
on the first probe answered with logprobs, and refused on an explicit HTTP 4xx or after
PROBES answers without logprobs: one glitchy answer never changes the tier. The decision is
one stderr line; a fallback (a lower tier, fewer top log-probs) is a degradation, printed
and listed in the diagnostics. During scoring an answer without logprobs is retried like
any transient fault.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ... import pricing
from ...errors import ConfigError, ModelError
from ...models import ModelSpec
from ...prompts import PromptRequest
from ..base import GenerativeScorer
from ..hf_generative import LABEL_VARIANTS
from ..labels import two_way_softmax
from .replies import NO_LOGPROBS, Unsupported, answer_text, chat_top, completion_top, echo_label_logprob, parse_answer
from .transport import BUDGET_SLACK, OpenAITransport, log, one_line

TIERS = ("auto", "completions", "chat", "text")
PROBE_PROMPT = "Is the sky blue on a clear day? Answer (Yes/No):"
PROBES = 3  # answers without logprobs in a row before a tier is refused
CHAT_OVERHEAD_TOKENS = 8  # role markers around one user message, per request
YES_VARIANTS = frozenset(v[0] for v in LABEL_VARIANTS)
OnResult = Callable[[int, float, Dict], None]  # (index in the requests, P(Yes), extra)
NO_VARIANTS = frozenset(v[1] for v in LABEL_VARIANTS)


class _NoLogprobs(Unsupported):
    """PROBES answers in a row without logprobs: the tier is refused (not a refused parameter)."""


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _label_pair(prompt: str) -> Tuple[str, str]:
    """The label text that naturally follows the prompt: ' Yes' after ':', 'Yes' after a space/newline."""
    return ("Yes", "No") if prompt.endswith((" ", "\n", "\t")) else (" Yes", " No")


class OpenAIGenerativeScorer(OpenAITransport, GenerativeScorer):
    """P(Yes) from an OpenAI-compatible completions or chat endpoint (tiers: see module doc)."""

    COMPLETIONS_TOP = 20  # asked first (vLLM's default maximum); on a refusal, ...
    COMPLETIONS_TOP_MIN = 5  # ... the most the OpenAI completions endpoint gives
    CHAT_TOP = 20  # the most the OpenAI chat endpoint gives
    TEXT_MAX_TOKENS = 3

    def __init__(self, spec: ModelSpec, *, tier: str = "auto", chat_template: bool = False, **kwargs):
        if tier not in TIERS:
            raise ConfigError(f"--api-tier must be one of {', '.join(TIERS)}, got {tier!r}")
        self.requested_tier = tier
        self.tier: Optional[str] = None if tier == "auto" else tier
        self._echo: Optional[bool] = None  # does /completions give correct echo logprobs? (checked once)
        self._echo_lock = threading.Lock()
        self._top_k = self.COMPLETIONS_TOP
        self._text_endpoint = "chat"
        self._confirmed = False  # the tier gave logprobs at least once in this run
        self._counts: Counter = Counter()
        super().__init__(spec, **kwargs)
        if self.tier is None and not self.dry_run:
            self.tier = self._detect_tier(prefer_chat=bool(chat_template))

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "OpenAIGenerativeScorer":
        return cls(spec, tier=run.api_tier, chat_template=run.chat_template, **cls._run_kwargs(run))

    # -- description ----------------------------------------------------------------------
    def identity(self) -> Dict:
        return {**self._base_identity(), "tier": self.tier or self.requested_tier, "labels": self.label_info()}

    def label_info(self) -> Dict:
        tier = self.tier or self.requested_tier
        if tier == "completions":
            return {"tier": tier, "yes_text": " Yes", "no_text": " No",
                    "rule": "first token after the prompt; no leading space after whitespace"}
        if tier == "chat":
            return {"tier": tier, "yes_texts": sorted(YES_VARIANTS), "no_texts": sorted(NO_VARIANTS),
                    "rule": f"summed over the first answer token's top {self.CHAT_TOP} log-probs"}
        return {"tier": tier, "rule": "answer text parsed: yes -> 1, no -> 0, other -> 0.5 (invalid)"}

    @property
    def context_budget(self) -> int:
        overhead = CHAT_OVERHEAD_TOKENS if (self.tier or self.requested_tier) in ("chat", "text") else 0
        return max(64, int(self._context() * BUDGET_SLACK) - overhead - self.TEXT_MAX_TOKENS)

    def begin_scenario(self) -> None:
        super().begin_scenario()
        with self._lock:
            self._counts = Counter()

    def diagnostics(self) -> Dict:
        with self._lock:
            c = Counter(self._counts)
        n = max(1, c["scored"])
        tier = self.tier or self.requested_tier
        d = {"api": self._usage_diag(), "tier": tier, "scored": c["scored"]}
        if tier in ("completions", "chat"):
            d.update({"label_floors": c["floors"], "prompts_with_floor": c["prompts_with_floor"],
                      "floor_rate": c["prompts_with_floor"] / n})
        if tier == "completions":
            d.update({"echo_requests": c["echo_requests"], "echo_supported": self._echo,
                      "top_logprobs": self._top_k})
        if tier == "text":
            d.update({"binary": True, "invalid_answers": c["invalid_answers"],
                      "invalid_answer_rate": c["invalid_answers"] / n, "text_endpoint": self._text_endpoint})
        return d

    # -- choosing the tier ------------------------------------------------------------------
    def _detect_tier(self, prefer_chat: bool) -> str:
        order = ("chat", "completions") if prefer_chat else ("completions", "chat")
        reasons: List[str] = []
        for tier in order:
            try:
                self._score_text(PROBE_PROMPT, tier, probe=True)
            except Unsupported as exc:
                reasons.append(f"{tier}: {exc}")
                continue
            return self._decided(tier, order[0], reasons)
        for endpoint in ("chat", "completions"):
            self._text_endpoint = endpoint
            try:
                self._score_text(PROBE_PROMPT, "text", probe=True)
            except Unsupported as exc:
                reasons.append(f"text via {endpoint}: {exc}")
                continue
            return self._decided("text", order[0], reasons)
        raise ModelError(
            f"the server at {self.endpoint} cannot score with model '{self.model}' ({'; '.join(reasons)}); "
            "check --base-url (it usually ends in /v1) and the model name"
        )

    def _decided(self, tier: str, preferred: str, reasons: List[str]) -> str:
        if tier == preferred:
            self.notices.say(f"{self.endpoint}: scoring model '{self.model}' through the {tier} tier (label log-probs)")
        else:
            binary = "; scores are binary (parsed Yes/No answers)" if tier == "text" else ""
            self._degrade(f"{self.endpoint}: model '{self.model}' scored through the {tier} tier, not {preferred} "
                          f"({'; '.join(reasons)}){binary}")
        return tier

    # -- one request per tier -----------------------------------------------------------------
    def _tier_request(self, what: str, endpoint: str, payload: Dict, parse: Callable, probe: bool):
        if probe:
            return self._request(what, endpoint, payload, parse, budget={NO_LOGPROBS: PROBES}, fail=self._probe_fail)
        return self._request(what, endpoint, payload, parse, fail=self._scoring_fail)

    def _probe_fail(self, detail: str, attempts: int, kind: str) -> Optional[Exception]:
        if kind == NO_LOGPROBS:
            return _NoLogprobs(f"answered without logprobs ({attempts} attempts)")
        return None

    def _scoring_fail(self, detail: str, attempts: int, kind: str) -> Optional[Exception]:
        if kind != NO_LOGPROBS:
            return None
        if self._confirmed:
            return ModelError(
                f"the server at {self.endpoint} answered {attempts} time(s) without logprobs for model "
                f"'{self.model}' on the {self.tier} tier, though it gave them before; finished requests are cached: "
                "rerun the same command to resume")
        return ModelError(
            f"the server at {self.endpoint} does not support the {self.tier} tier for model '{self.model}' (no "
            f"logprobs in {attempts} answer(s)); use --api-tier auto, or --api-tier text for servers without logprobs")

    def _score_text(self, text: str, tier: Optional[str] = None, probe: bool = False) -> Tuple[float, Dict]:
        tier = tier or self.tier
        if tier == "completions":
            return self._score_completions(text, probe)
        if tier == "chat":
            return self._score_chat(text, probe)
        return self._score_answer(text, probe)

    def _completions_top(self, text: str, probe: bool) -> Dict[str, float]:
        """The answer position's top log-probs (k=20; 5 from the first refusal on, said once)."""
        k = self._top_k

        def payload(n: int) -> Dict:
            return {"prompt": text, "max_tokens": 1, "temperature": 0, "logprobs": n}

        try:
            return self._tier_request("completions", "completions", payload(k), completion_top, probe)
        except Unsupported as exc:
            if k <= self.COMPLETIONS_TOP_MIN or isinstance(exc, _NoLogprobs):
                raise
            refusal = exc
        top = self._tier_request("completions", "completions", payload(self.COMPLETIONS_TOP_MIN), completion_top,
                                 probe)
        with self._lock:
            lowered, self._top_k = self._top_k > self.COMPLETIONS_TOP_MIN, self.COMPLETIONS_TOP_MIN
        if lowered:
            self._degrade(f"{self.endpoint} refused logprobs={k} ({refusal}) but accepts "
                          f"{self.COMPLETIONS_TOP_MIN}: asking for the top {self.COMPLETIONS_TOP_MIN} from now on")
        return top

    def _score_completions(self, text: str, probe: bool) -> Tuple[float, Dict]:
        top = self._completions_top(text, probe)
        self._confirmed = True
        lps, floors, echoed = {}, [], 0
        for name, label in zip(("yes", "no"), _label_pair(text)):
            lp = top.get(label)
            if lp is None and not probe and self._echo_usable(text, top):
                lp = self._echo_logprob(text, label)
                echoed += 1
            if lp is None:
                lp = min(top.values())
                floors.append(name)
            lps[name] = lp
        p_yes, mass = two_way_softmax(lps["yes"], lps["no"])
        extra = {"mass": mass, "lp_yes": lps["yes"], "lp_no": lps["no"]}
        if floors:
            extra["floor"] = floors
        if echoed:
            extra["echo"] = echoed
        return p_yes, extra

    def _echo_usable(self, text: str, top: Dict[str, float]) -> bool:
        """Whether echo gives correct log-probs here; checked once, on the first missing label.

        The check echoes the prompt's most likely next token and compares the log-prob the
        echo reports with the one in the top list (some servers shift echo log-probs by one
        position, llama-cpp-python among them)."""
        if self._echo is not None:
            return self._echo
        with self._echo_lock:
            if self._echo is None:
                token, expected = max(((t, v) for t, v in top.items() if t), key=lambda kv: kv[1])
                got = self._echo_logprob(text, token)
                self._echo = got is not None and abs(got - expected) < 0.02
                log.info("%s: echo log-probs %s", self.endpoint, "verified" if self._echo else
                         "unavailable or inconsistent; missing labels get the floor value")
        return self._echo

    def _echo_logprob(self, text: str, label: str) -> Optional[float]:
        payload = {"prompt": text + label, "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": True}
        try:
            value = self._request("completions (echo)", "completions", payload,
                                  lambda d: echo_label_logprob(d, text, label))
        except Unsupported:
            return None
        with self._lock:
            self._counts["echo_requests"] += 1
        return value

    def _score_chat(self, text: str, probe: bool) -> Tuple[float, Dict]:
        payload = {"messages": [{"role": "user", "content": text}], "max_tokens": 1, "temperature": 0,
                   "logprobs": True, "top_logprobs": self.CHAT_TOP}
        top = self._tier_request("chat", "chat", payload, chat_top, probe)
        self._confirmed = True
        floor = min(lp for _, lp in top)
        yes = [lp for tok, lp in top if tok in YES_VARIANTS]
        no = [lp for tok, lp in top if tok in NO_VARIANTS]
        floors = [name for name, vals in (("yes", yes), ("no", no)) if not vals]
        lp_yes = _logsumexp(yes) if yes else floor
        lp_no = _logsumexp(no) if no else floor
        p_yes, mass = two_way_softmax(lp_yes, lp_no)
        extra = {"mass": mass, "lp_yes": lp_yes, "lp_no": lp_no}
        if floors:
            extra["floor"] = floors
        return p_yes, extra

    def _score_answer(self, text: str, probe: bool) -> Tuple[float, Dict]:
        endpoint = self._text_endpoint
        if endpoint == "chat":
            payload = {"messages": [{"role": "user", "content": text}], "max_tokens": self.TEXT_MAX_TOKENS,
                       "temperature": 0}
        else:
            payload = {"prompt": text, "max_tokens": self.TEXT_MAX_TOKENS, "temperature": 0}
        answer = self._tier_request(f"{endpoint} (text)", endpoint, payload, lambda d: answer_text(d, endpoint), probe)
        value = parse_answer(answer)
        extra = {"answer": one_line(answer, 24)}
        if value is None:
            extra["invalid"] = True
            value = 0.5
        return value, extra

    # -- scoring --------------------------------------------------------------------------
    def _tally(self, extra: Dict) -> None:
        with self._lock:
            self._counts["scored"] += 1
            floors = extra.get("floor") or []
            self._counts["floors"] += len(floors)
            self._counts["prompts_with_floor"] += int(bool(floors))
            self._counts["invalid_answers"] += int(bool(extra.get("invalid")))

    def score_detailed(self, requests: Sequence[PromptRequest],
                       on_result: Optional[OnResult] = None) -> Tuple[List[float], List[Dict]]:
        """P(Yes) per request; each distinct text is sent once, and on_result(index, score, extra)
        is called for every index the moment its answer arrives (from a worker thread)."""
        if self.tier is None:
            raise ConfigError("a --dry-run scorer sends nothing and cannot score")
        texts = [self.render(r).text for r in requests]
        where: Dict[str, List[int]] = {}
        for i, t in enumerate(texts):
            where.setdefault(t, []).append(i)
        scores: List[Optional[float]] = [None] * len(texts)
        extras: List[Optional[Dict]] = [None] * len(texts)

        def work(text: str) -> None:
            p, extra = self._score_text(text)
            self._tally(extra)
            for i in where[text]:
                scores[i], extras[i] = float(p), dict(extra)
                if on_result is not None and self._delivering():
                    on_result(i, float(p), dict(extra))

        try:
            self._parallel(list(where), work)
        except Unsupported as exc:
            raise ModelError(
                f"the server at {self.endpoint} refused a {self.tier} tier request for model '{self.model}' ({exc}); "
                "if it does not support this tier, use --api-tier auto, or --api-tier text for servers without logprobs"
            ) from None
        return scores, extras  # type: ignore[return-value]

    def dry_run_estimate(self, requests: Sequence) -> Dict:
        """Requests, estimated tokens and cost for these prompts; sends nothing."""
        texts = [self.render(r).text if isinstance(r, PromptRequest) else str(r) for r in requests]
        distinct = list(dict.fromkeys(texts))
        tier = self.tier or self.requested_tier
        overhead = CHAT_OVERHEAD_TOKENS if tier in ("chat", "text") else 0
        out_tokens = self.TEXT_MAX_TOKENS if tier == "text" else 1
        prompt_tokens = sum(pricing.estimate_tokens(t) + overhead for t in distinct)
        completion_tokens = out_tokens * len(distinct)
        cost = pricing.cost_usd(self._price, prompt_tokens, completion_tokens)
        est = {
            "model": self.model,
            "endpoint": self.endpoint,
            "tier": tier,
            "requests": len(distinct),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "estimated_cost_usd": round(cost, 6) if cost is not None else None,
            "price_source": self._price_source,
            "token_count": "estimate (about 4 characters per token; no tokenizer)",
        }
        if tier in ("auto", "completions"):
            est["note"] = ("the completions tier may send one extra echo request for a label missing from the "
                           f"top log-probs; auto also sends a tiny probe request (up to {PROBES} per tier)")
        return est
