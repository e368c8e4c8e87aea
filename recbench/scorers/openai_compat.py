"""OpenAI-compatible API backends for both schemes (OpenAI, vLLM, llama.cpp, TGI, Ollama, Azure).

One base class owns the HTTP side: the official `openai` client (created with max_retries=0),
our own retry loop (exponential backoff with jitter, honouring Retry-After / retry-after-ms
on 408/409/429/5xx, timeouts, dropped connections and malformed bodies), a thread pool for
`concurrency` requests in flight, token-usage counters, and a per-request cache write as each
response arrives, so nothing is paid for twice. Subclasses only build payloads and parse
replies. (The client's own retries do honour Retry-After, see openai/_base_client.py, but
they do not retry malformed bodies and do not report how often they retried.)

Generative scoring comes in three tiers, chosen once per run and recorded in the results:

- ``completions``: /completions with ``max_tokens=1`` and ``logprobs=20`` (5 where the server
  allows no more, as OpenAI) on the raw prompt; P(Yes) is the two-way softmax of the label
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

``auto`` probes completions, then chat, then text with one tiny request when the scorer is
made. The key is read from the environment (OPENAI_API_KEY or --api-key-env NAME) and never
written anywhere: identities, diagnostics, logs and error messages hold the endpoint only.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from email.utils import parsedate_to_datetime
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .. import pricing
from ..cache import request_key
from ..errors import ConfigError, ModelError, RecBenchError, require
from ..models import ModelSpec
from ..prompts import PromptRequest
from .base import EmbeddingScorer, GenerativeScorer
from .hf_generative import LABEL_VARIANTS

log = logging.getLogger("recbench.api")

OPENAI_URL = "https://api.openai.com/v1"
TIERS = ("auto", "completions", "chat", "text")
PROBE_PROMPT = "Is the sky blue on a clear day? Answer (Yes/No):"
CHAT_OVERHEAD_TOKENS = 8  # role markers around one user message, per request
DEFAULT_CONTEXT = 4096  # when neither --max-length, the server nor the price table says
BUDGET_SLACK = 0.85  # token counts are estimates: keep a margin below the context
YES_VARIANTS = frozenset(v[0] for v in LABEL_VARIANTS)
NO_VARIANTS = frozenset(v[1] for v in LABEL_VARIANTS)
_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_KEYLIKE = re.compile(r"\b(sk|rk|pk|key)-[A-Za-z0-9_\-*.]{3,}")


class _Unsupported(Exception):
    """The server rejected an endpoint or parameter (400/404/422...) or gave no logprobs."""


class _Malformed(Exception):
    """A 200 answer that does not have the expected shape (retried like a transient error)."""


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _public_url(url: str) -> str:
    """scheme://host[:port]/path without credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url must look like http://host:port/v1, got '{_public_url(url) or url[:40]}'")
    return url.strip().rstrip("/")


def _retry_after(headers) -> Optional[float]:
    """Seconds asked for by retry-after-ms or Retry-After (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _two_way(lp_yes: float, lp_no: float) -> Tuple[float, float]:
    """P(Yes) over the two labels, and their probability mass over the vocabulary."""
    p_yes = 1.0 / (1.0 + math.exp(lp_no - lp_yes)) if lp_no - lp_yes < 700 else 0.0
    return p_yes, min(1.0, math.exp(lp_yes) + math.exp(lp_no))


def _label_pair(prompt: str) -> Tuple[str, str]:
    """The label text that naturally follows the prompt: ' Yes' after ':', 'Yes' after a space/newline."""
    return ("Yes", "No") if prompt.endswith((" ", "\n", "\t")) else (" Yes", " No")


def _dump(resp) -> dict:
    if isinstance(resp, dict):
        return resp
    try:
        return resp.model_dump(warnings=False)
    except Exception as exc:  # pydantic refuses a broken object
        raise _Malformed(f"unreadable response ({type(exc).__name__})") from None


def _first_choice(d: dict) -> dict:
    choices = d.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no choices in the response")
    return choices[0]


def _completion_top(d: dict) -> Optional[Dict[str, float]]:
    lp = _first_choice(d).get("logprobs") or {}
    tops = lp.get("top_logprobs") if isinstance(lp, dict) else None
    if not tops or not isinstance(tops[0], dict) or not tops[0]:
        return None
    return {str(k): float(v) for k, v in tops[0].items() if v is not None}


def _chat_top(d: dict) -> Optional[List[Tuple[str, float]]]:
    lp = _first_choice(d).get("logprobs") or {}
    content = lp.get("content") if isinstance(lp, dict) else None
    if not content or not isinstance(content[0], dict):
        return None
    tops = content[0].get("top_logprobs") or []
    out = [(str(t.get("token")), float(t["logprob"]))
           for t in tops if isinstance(t, dict) and t.get("logprob") is not None]
    if not out and content[0].get("logprob") is not None:
        out = [(str(content[0].get("token")), float(content[0]["logprob"]))]
    return out or None


def _echo_label_logprob(d: dict, prompt: str, label: str) -> Optional[float]:
    """Log-prob of the label's first token from an echo answer for prompt + label."""
    ch = _first_choice(d)
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


class OpenAICompatBase:
    """HTTP, retries, concurrency, usage and cache writes shared by both schemes."""

    backend = "openai"
    supports_dry_run = True
    RETRY_BASE_S = 0.5
    RETRY_CAP_S = 30.0
    MAX_WAIT_S = 120.0  # a longer Retry-After ends the run with a clear line instead

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: Optional[str] = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 60.0,
        max_length: Optional[int] = None,
        prices: Optional[str] = None,
        dry_run: bool = False,
        check_model: bool = True,
    ):
        openai = require("openai", "api", "OpenAI-compatible endpoints")
        self.spec = spec
        self.model = spec.model_id
        self.custom_url = bool(base_url or os.environ.get("OPENAI_BASE_URL"))
        self.base_url = _check_url(base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL)
        self.endpoint = _public_url(self.base_url)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env or ""):
            raise ConfigError(f"--api-key-env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        for name, value, low in (("--concurrency", concurrency, 1), ("--max-retries", max_retries, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not timeout or timeout <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout!r}")
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, float(timeout)
        self.max_length = max_length
        self.prices = prices
        self.dry_run = dry_run
        self._price, self._price_source = pricing.price_for(self.model, self.base_url if self.custom_url else None,
                                                            prices)
        key = os.environ.get(api_key_env, "").strip()
        if not key and not dry_run and (not self.custom_url or api_key_env != "OPENAI_API_KEY"):
            raise ConfigError(f"no API key: set the environment variable {api_key_env} "
                              "(or name another one with --api-key-env NAME)")
        self._secret = key or None
        self._client = openai.OpenAI(api_key=key or "no-key", base_url=self.base_url, max_retries=0,
                                     timeout=self.timeout)
        self._lock = threading.Lock()
        self._usage = {"requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0, "cache_hits": 0}
        self._mark = dict(self._usage)
        self._cache = None
        self._ns: Optional[str] = None
        self._served_context: Optional[int] = None
        if not dry_run:
            self._preflight(check_model)

    # -- shared helpers -------------------------------------------------------------------
    def begin_scenario(self) -> None:
        with self._lock:
            self._mark = dict(self._usage)  # usage in diagnostics counts from here (one scenario)

    def attach_cache(self, cache, ns: str) -> None:
        """Write every response into `cache` under `ns` the moment it arrives (optional)."""
        self._cache, self._ns = cache, ns
        with self._lock:
            self._mark = dict(self._usage)  # usage in diagnostics counts from here (one scenario)

    def count_tokens(self, text: str) -> int:
        return pricing.estimate_tokens(text)

    def _context(self) -> int:
        limits = [v for v in (self.max_length, self._served_context) if v]
        if not limits:
            limits = [pricing.context_window(self.model, self.prices) or DEFAULT_CONTEXT]
        return int(min(limits))

    def _scrub(self, text: str) -> str:
        text = str(text)
        if self._secret:
            text = text.replace(self._secret, "***")
        text = _KEYLIKE.sub(lambda m: m.group(1) + "-***", text)
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)

    def _status_detail(self, exc) -> str:
        status = getattr(exc, "status_code", None)
        body = getattr(exc, "body", None)
        msg = None
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                msg = err.get("message") or err.get("detail")
            elif isinstance(err, str):
                msg = err
            msg = msg or body.get("detail") or body.get("message")
        elif isinstance(body, str):
            msg = body
        if msg is not None and not isinstance(msg, str):
            msg = str(msg)
        return self._scrub(_one_line(f"HTTP {status}" + (f": {msg}" if msg else ""), 240))

    def _model_missing(self, exc) -> bool:
        body = getattr(exc, "body", None)
        err = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("code") == "model_not_found":
            return True
        text = self._status_detail(exc).lower()
        signs = ("does not exist", "not found", "unknown model", "no such model")
        return "model" in text and any(s in text for s in signs)

    def _classify(self, exc: BaseException) -> Tuple[Optional[float], str, str]:
        """(Retry-After seconds, detail, kind) for a retryable failure; raises for the rest."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return None, f"no answer within {self.timeout:g}s", "timeout"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            why = f"{type(cause).__name__}: {cause}" if cause is not None and str(cause) else str(exc)
            return None, self._scrub(_one_line(why, 160)), "connection"
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._status_detail(exc)
            if status in (401, 403):
                if self._secret:
                    raise ConfigError(
                        f"the server at {self.endpoint} rejected the API key from {self.api_key_env} "
                        f"(HTTP {status}); check the key, or name another variable with --api-key-env NAME")
                raise ConfigError(f"the server at {self.endpoint} needs an API key (HTTP {status}); "
                                  f"set the environment variable {self.api_key_env} (or --api-key-env NAME)")
            if status == 404 and self._model_missing(exc):
                raise ModelError(f"the server at {self.endpoint} does not serve model '{self.model}' ({detail}); "
                                 "check the name after openai:")
            if status in (408, 409, 429) or status >= 500:
                headers = getattr(getattr(exc, "response", None), "headers", None)
                return _retry_after(headers), detail, "status"
            if status in (400, 404, 405, 415, 422):
                raise _Unsupported(detail)
            raise ModelError(f"the server at {self.endpoint} refused the request ({detail})")
        if isinstance(exc, (_Malformed, openai.APIResponseValidationError, ValueError, KeyError, TypeError)):
            return None, self._scrub(_one_line(f"malformed response: {exc}", 160)), "malformed"
        raise exc

    def _call(self, what: str, fn: Callable, *, retries: Optional[int] = None,
              fail: Optional[Callable[[str, int, str], Exception]] = None):
        """fn() with retries: backoff with jitter, or exactly the server's Retry-After."""
        retries = self.max_retries if retries is None else retries
        attempt = 0
        while True:
            failure: Optional[BaseException] = None
            try:
                result = fn()
                with self._lock:
                    self._usage["requests"] += 1
                return result
            except (_Unsupported, RecBenchError):
                raise
            except Exception as exc:  # classified below, outside the handler: the errors we raise
                failure = exc  # carry no chained client exception (whose request holds headers)
            wait, detail, kind = self._classify(failure)
            if attempt >= retries:
                if fail is not None:
                    raise fail(detail, attempt + 1, kind) from None
                raise ModelError(
                    f"{what} request to {self.endpoint} failed after {attempt + 1} attempt(s) ({detail}); "
                    "finished requests are cached: rerun the same command to resume"
                ) from None
            if wait is None:
                wait = min(self.RETRY_CAP_S, self.RETRY_BASE_S * (2 ** attempt)) * (0.5 + random.random() / 2)
            elif wait > self.MAX_WAIT_S:
                raise ModelError(
                    f"{what} request to {self.endpoint}: the server asks to wait {wait:.0f}s ({detail}); "
                    "finished requests are cached: rerun the same command later"
                ) from None
            attempt += 1
            with self._lock:
                self._usage["retries"] += 1
            log.info("retrying %s request in %.2fs (%s) [attempt %d of %d]", what, wait, detail, attempt + 1,
                     retries + 1)
            time.sleep(wait)

    def _record_usage(self, d: dict) -> None:
        usage = d.get("usage") if isinstance(d, dict) else None
        if not isinstance(usage, dict):
            return
        with self._lock:
            self._usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self._usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)

    def _preflight(self, check_model: bool) -> None:
        """GET /models: reachability, the key, and (where listed) that the model is served."""

        def fail(detail: str, attempts: int, kind: str) -> Exception:
            if kind in ("connection", "timeout"):
                return ConfigError(f"cannot reach {self.endpoint} ({detail}); "
                                   "check --base-url and that the server is running")
            return ModelError(f"the server at {self.endpoint} is not answering properly ({detail})")

        try:
            page = self._call("GET /models", lambda: _dump(self._client.models.list()),
                              retries=min(2, self.max_retries), fail=fail)
        except _Unsupported:
            return  # no model list on this server: nothing to check
        with self._lock:
            self._usage["requests"] -= 1  # the free listing is not a scoring request
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            return
        ids = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
        for m in data:
            if isinstance(m, dict) and str(m.get("id")) == self.model and m.get("max_model_len"):
                try:
                    self._served_context = int(m["max_model_len"])  # vLLM says
                except (TypeError, ValueError):
                    pass
        host = (urlsplit(self.base_url).hostname or "").lower()
        if check_model and ids and self.model not in ids and "azure" not in host:
            shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
            raise ModelError(f"model '{self.model}' is not served at {self.endpoint} (it serves: {shown}); "
                             "pass --model openai:<one of these>")

    def _parallel(self, items: Sequence, work: Callable) -> Dict:
        """work(item) for each item with up to `concurrency` in flight; {item: result}.

        On the first failure nothing new is sent; requests in flight finish (and are cached by
        `work`), then the failure is raised."""
        results: Dict = {}
        if not items:
            return results
        if self.concurrency == 1 or len(items) == 1:
            for it in items:
                results[it] = work(it)
            return results
        stop = threading.Event()

        def task(it):
            if not stop.is_set():
                results[it] = work(it)

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="recbench-api")
        futures = [pool.submit(task, it) for it in items]
        first: Optional[BaseException] = None
        try:
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is not None and first is None:
                    first = exc
                    stop.set()
                    for other in futures:
                        other.cancel()
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if first is not None:
            raise first
        return results

    def _usage_diag(self) -> Dict:
        with self._lock:
            now = dict(self._usage)
            since = {k: now[k] - self._mark.get(k, 0) for k in now}

        def block(u):
            cost = pricing.cost_usd(self._price, u["prompt_tokens"], u["completion_tokens"])
            return {**u, "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
                    "cost_usd": round(cost, 6) if cost is not None else None}

        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "usage": block(since),
            "usage_run_total": block(now),
            "price_source": self._price_source,
        }

    def _base_identity(self) -> Dict:
        return {"model": self.spec.name, "model_id": self.model, "revision": None, "backend": self.backend,
                "endpoint": self.endpoint}

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass


def _common_kwargs(run) -> Dict:
    return dict(base_url=run.base_url, api_key_env=run.api_key_env, concurrency=run.concurrency,
                max_retries=run.max_retries, timeout=run.timeout, max_length=run.max_length, prices=run.prices,
                dry_run=run.dry_run)


class OpenAIGenerativeScorer(OpenAICompatBase, GenerativeScorer):
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
        self._counts = {"scored": 0, "floors": 0, "prompts_with_floor": 0, "echo_requests": 0, "invalid_answers": 0}
        super().__init__(spec, **kwargs)
        if self.tier is None and not self.dry_run:
            self.tier = self._detect_tier(prefer_chat=chat_template)

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "OpenAIGenerativeScorer":
        return cls(spec, tier=run.api_tier, chat_template=run.chat_template, **_common_kwargs(run))

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

    def diagnostics(self) -> Dict:
        with self._lock:
            c = dict(self._counts)
        n = max(1, c["scored"])
        tier = self.tier or self.requested_tier
        d = {"api": self._usage_diag(), "tier": tier, "scored": c["scored"]}
        if tier in ("completions", "chat"):
            d.update({"label_floors": c["floors"], "prompts_with_floor": c["prompts_with_floor"],
                      "floor_rate": c["prompts_with_floor"] / n})
        if tier == "completions":
            d["echo_requests"] = c["echo_requests"]
            d["echo_supported"] = self._echo
        if tier == "text":
            d.update({"binary": True, "invalid_answers": c["invalid_answers"],
                      "invalid_answer_rate": c["invalid_answers"] / n, "text_endpoint": self._text_endpoint})
        return d

    # -- tiers ----------------------------------------------------------------------------
    def _detect_tier(self, prefer_chat: bool) -> str:
        order = ("chat", "completions") if prefer_chat else ("completions", "chat")
        reasons = []
        for tier in order:
            try:
                self._score_text(PROBE_PROMPT, tier, probe=True)
                log.info("%s: scoring through the %s tier", self.endpoint, tier)
                return tier
            except _Unsupported as exc:
                reasons.append(f"{tier}: {exc}")
        for endpoint in ("chat", "completions"):
            self._text_endpoint = endpoint
            try:
                self._score_text(PROBE_PROMPT, "text", probe=True)
                log.warning("%s gives no logprobs: scoring parsed Yes/No answers (binary scores)", self.endpoint)
                return "text"
            except _Unsupported as exc:
                reasons.append(f"text via {endpoint}: {exc}")
        raise ModelError(
            f"the server at {self.endpoint} cannot score with model '{self.model}' ({'; '.join(reasons)}); "
            "check --base-url (it usually ends in /v1) and the model name"
        )

    def _score_text(self, text: str, tier: Optional[str] = None, probe: bool = False) -> Tuple[float, Dict]:
        tier = tier or self.tier
        if tier == "completions":
            return self._score_completions(text, probe)
        if tier == "chat":
            return self._score_chat(text)
        return self._score_answer(text)

    def _completions_top(self, text: str) -> Tuple[dict, Optional[Dict[str, float]]]:
        """One /completions call for the answer position's top log-probs (k=20, else 5)."""
        while True:
            k = self._top_k

            def call():
                d = _dump(self._client.completions.create(model=self.model, prompt=text, max_tokens=1,
                                                          temperature=0, logprobs=k))
                return d, _completion_top(d)

            try:
                d, top = self._call("completions", call)
            except _Unsupported:
                if k <= self.COMPLETIONS_TOP_MIN:
                    raise
                self._top_k = self.COMPLETIONS_TOP_MIN  # e.g. OpenAI: logprobs must be <= 5
                continue
            self._record_usage(d)
            return d, top

    def _score_completions(self, text: str, probe: bool = False) -> Tuple[float, Dict]:
        _, top = self._completions_top(text)
        if not top:
            raise _Unsupported("the completions endpoint answered without logprobs")
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
        p_yes, mass = _two_way(lps["yes"], lps["no"])
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
        def call():
            return _dump(self._client.completions.create(model=self.model, prompt=text + label, max_tokens=1,
                                                         temperature=0, logprobs=1, echo=True))

        try:
            d = self._call("completions (echo)", call)
        except _Unsupported:
            return None
        self._record_usage(d)
        with self._lock:
            self._counts["echo_requests"] += 1
        return _echo_label_logprob(d, text, label)

    def _score_chat(self, text: str) -> Tuple[float, Dict]:
        def call():
            d = _dump(self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": text}], max_tokens=1, temperature=0,
                logprobs=True, top_logprobs=self.CHAT_TOP))
            return d, _chat_top(d)

        d, top = self._call("chat", call)
        self._record_usage(d)
        if not top:
            raise _Unsupported("the chat endpoint answered without logprobs")
        floor = min(lp for _, lp in top)
        yes = [lp for tok, lp in top if tok in YES_VARIANTS]
        no = [lp for tok, lp in top if tok in NO_VARIANTS]
        floors = [name for name, vals in (("yes", yes), ("no", no)) if not vals]
        lp_yes = _logsumexp(yes) if yes else floor
        lp_no = _logsumexp(no) if no else floor
        p_yes, mass = _two_way(lp_yes, lp_no)
        extra = {"mass": mass, "lp_yes": lp_yes, "lp_no": lp_no}
        if floors:
            extra["floor"] = floors
        return p_yes, extra

    def _score_answer(self, text: str) -> Tuple[float, Dict]:
        if self._text_endpoint == "chat":
            def call():
                d = _dump(self._client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": text}],
                    max_tokens=self.TEXT_MAX_TOKENS, temperature=0))
                return d, (_first_choice(d).get("message") or {}).get("content")
        else:
            def call():
                d = _dump(self._client.completions.create(model=self.model, prompt=text,
                                                          max_tokens=self.TEXT_MAX_TOKENS, temperature=0))
                return d, _first_choice(d).get("text")

        d, answer = self._call(f"{self._text_endpoint} (text)", call)
        self._record_usage(d)
        value = parse_answer(answer)
        extra = {"answer": _one_line(answer or "", 24)}
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

    def score_detailed(self, requests: Sequence[PromptRequest], on_result=None) -> Tuple[List[float], List[Dict]]:
        if self.tier is None:
            raise ConfigError("a --dry-run scorer sends nothing and cannot score")
        texts = [self.render(r).text for r in requests]
        done: Dict[str, Tuple[float, Dict]] = {}
        positions: Dict[str, List[int]] = {}
        for i, t in enumerate(texts):
            positions.setdefault(t, []).append(i)
        if self._cache is not None:
            keys = {t: request_key(self._ns, t) for t in dict.fromkeys(texts)}
            hits = self._cache.get_scores(list(keys.values()))
            extras = self._cache.get_extras([k for k in keys.values() if k in hits])
            for t, k in keys.items():
                if k in hits:
                    done[t] = (hits[k], extras.get(k) or {})
            with self._lock:
                self._usage["cache_hits"] += len(done)

        def work(text: str) -> Tuple[float, Dict]:
            p, extra = self._score_text(text)
            if self._cache is not None:
                key = request_key(self._ns, text)
                self._cache.put_scores({key: p}, {key: extra})
            self._tally(extra)
            if on_result is not None:
                for i in positions[text]:
                    on_result(i, p, extra)
            return p, extra

        todo = [t for t in dict.fromkeys(texts) if t not in done]
        try:
            done.update(self._parallel(todo, work))
        except _Unsupported as exc:
            raise ModelError(
                f"the server at {self.endpoint} does not support the {self.tier} tier for model '{self.model}' "
                f"({exc}); use --api-tier auto, or --api-tier text for servers without logprobs"
            ) from None
        return [float(done[t][0]) for t in texts], [dict(done[t][1]) for t in texts]

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
                           "top log-probs; auto also sends one tiny probe request")
        return est


class OpenAIEmbeddingScorer(OpenAICompatBase, EmbeddingScorer):
    """Vectors from an OpenAI-compatible /embeddings endpoint; each distinct text sent once."""

    DEFAULT_BATCH = 64  # texts per request
    DEFAULT_LIMIT = 2048  # input tokens, when nothing else says (OpenAI's models: 8191, from the table)

    def __init__(self, spec: ModelSpec, *, batch_size="auto", **kwargs):
        if batch_size in (None, "auto"):
            self.batch = self.DEFAULT_BATCH
        else:
            try:
                self.batch = int(batch_size)
            except (TypeError, ValueError):
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}") from None
            if self.batch < 1:
                raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
        self.dim: Optional[int] = None
        self._truncated = 0
        self._embedded = 0
        super().__init__(spec, **kwargs)

    @classmethod
    def from_run(cls, spec: ModelSpec, run) -> "OpenAIEmbeddingScorer":
        return cls(spec, batch_size=run.batch_size, **_common_kwargs(run))

    def identity(self) -> Dict:
        return {**self._base_identity(), "kind": "embeddings"}

    def _context(self) -> int:
        limits = [v for v in (self.max_length, self._served_context) if v]
        if not limits:
            limits = [pricing.context_window(self.model, self.prices) or self.DEFAULT_LIMIT]
        return int(min(limits))

    @property
    def context_budget(self) -> int:
        return max(32, int(self._context() * BUDGET_SLACK))

    def diagnostics(self) -> Dict:
        api = self._usage_diag()
        with self._lock:
            embedded, truncated = self._embedded, self._truncated
        return {"api": api, "embedding_dim": self.dim, "texts_embedded": embedded, "inputs_truncated": truncated,
                "input_limit_tokens": self.context_budget}

    def _truncate(self, text: str) -> str:
        """Cut a text to the model's input limit (keeps the beginning); counted."""
        limit = self.context_budget
        n = pricing.estimate_tokens(text)
        if n <= limit:
            return text
        while n > limit and text:
            text = text[: max(1, int(len(text) * limit / n * 0.98))]
            n = pricing.estimate_tokens(text)
        with self._lock:
            self._truncated += 1
        return text

    def _vectors(self, d: dict, n: int) -> np.ndarray:
        data = d.get("data")
        if not isinstance(data, list) or len(data) != n:
            raise _Malformed(f"expected {n} embeddings, got {len(data) if isinstance(data, list) else 'none'}")
        rows = sorted(data, key=lambda e: e.get("index", 0) if isinstance(e, dict) else 0)
        vecs = []
        for e in rows:
            v = e.get("embedding") if isinstance(e, dict) else None
            if isinstance(v, list) and v and isinstance(v[0], list):
                raise ModelError(
                    f"the server at {self.endpoint} returned one vector per token for model '{self.model}' (no "
                    "pooling); start it with a pooling type (llama.cpp: pooling mean) or use another model"
                )
            if not isinstance(v, list) or not v:
                raise _Malformed("an embedding is missing")
            vecs.append(v)
        arr = np.asarray(vecs, dtype=np.float32)
        if arr.ndim != 2 or not np.isfinite(arr).all():
            raise _Malformed("embeddings of different sizes or not finite")
        return arr

    def embed(self, texts: Sequence[str], role: str) -> np.ndarray:
        texts = list(texts)
        distinct = list(dict.fromkeys(texts))
        found: Dict[str, np.ndarray] = {}
        keys = {t: request_key(self._ns, f"{role}\x00{t}") for t in distinct} if self._cache is not None else {}
        if keys:
            hits = self._cache.get_vectors(list(keys.values()))
            found = {t: hits[k] for t, k in keys.items() if k in hits}
            with self._lock:
                self._usage["cache_hits"] += len(found)
        todo = [t for t in distinct if t not in found]
        chunks = [tuple(todo[i : i + self.batch]) for i in range(0, len(todo), self.batch)]

        def work(chunk: Tuple[str, ...]) -> np.ndarray:
            inputs = [self._truncate(t) for t in chunk]

            def call():
                d = _dump(self._client.embeddings.create(model=self.model, input=inputs, encoding_format="float"))
                return d, self._vectors(d, len(inputs))

            d, arr = self._call("embeddings", call)
            self._record_usage(d)
            if self._cache is not None:
                self._cache.put_vectors({keys[t]: v for t, v in zip(chunk, arr)})
            with self._lock:
                self._embedded += len(chunk)
            return arr

        try:
            results = self._parallel(chunks, work)
        except _Unsupported as exc:
            raise ModelError(f"the server at {self.endpoint} cannot embed with model '{self.model}' ({exc}); "
                             "is it an embedding model, and does the server serve /embeddings?") from None
        for chunk, arr in results.items():
            found.update(zip(chunk, arr))
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out = np.stack([np.asarray(found[t], dtype=np.float32) for t in texts])
        dims = {v.shape[-1] for v in found.values()}
        if len(dims) != 1:
            raise ModelError(f"the server at {self.endpoint} returned embeddings of different sizes {sorted(dims)}")
        self.dim = out.shape[1]
        return out

    def dry_run_estimate(self, requests: Iterable) -> Dict:
        texts = [r.text if isinstance(r, PromptRequest) else str(r) for r in requests]
        distinct = list(dict.fromkeys(texts))
        tokens = sum(min(pricing.estimate_tokens(t), self.context_budget) for t in distinct)
        cost = pricing.cost_usd(self._price, tokens, 0)
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "requests": math.ceil(len(distinct) / self.batch),
            "texts": len(distinct),
            "prompt_tokens": tokens,
            "estimated_cost_usd": round(cost, 6) if cost is not None else None,
            "price_source": self._price_source,
            "token_count": "estimate (about 4 characters per token; no tokenizer)",
        }
