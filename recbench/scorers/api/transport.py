"""One base class for OpenAI-compatible HTTP (OpenAI, vLLM, llama.cpp, TGI, Ollama, Azure).

It owns everything that is not a payload: the official `openai` client (made with
max_retries=0: retries are ours, see retry.py, because the client neither retries malformed
answers nor says how often it retried), the key (read from the environment, never written:
every message passes a Scrubber), URL checks, up to `concurrency` requests in flight on
daemon threads, token-usage and retry counters for diagnostics, stderr notices, and prompt
cancellation on Ctrl-C (nothing waits for requests in flight). Subclasses build payloads
and parse answers through `_request`.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from ... import pricing
from ...errors import ConfigError, ModelError, RecBenchError, require
from ...models import ModelSpec
from .endpoint import OPENAI_URL, Scrubber, check_base_url, public_url
from .replies import Malformed, Unsupported, as_dict
from .retry import Cancelled, Notices, Retryable, policy, retry_after

log = logging.getLogger("recbench.api")

DEFAULT_CONTEXT = 4096  # when neither --max-length, the server nor the price table says
BUDGET_SLACK = 0.85  # token counts are estimates: keep a margin below the context
_ENDPOINTS: Dict[str, Callable] = {
    "completions": lambda c: c.completions.create,
    "chat": lambda c: c.chat.completions.create,
    "embeddings": lambda c: c.embeddings.create,
}
_USAGE = ("requests", "retries", "prompt_tokens", "completion_tokens")


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Flight:
    """One parallel scoring call: `halt` stops its workers (a failure or Ctrl-C); after Ctrl-C
    (`interrupted`) late answers are dropped rather than handed to a runner that has moved on."""

    def __init__(self):
        self.halt = threading.Event()
        self.interrupted = False


_FINISHED = object()


class OpenAITransport:
    """HTTP, retries, concurrency, usage, notices and cancellation shared by both schemes."""

    backend = "openai"
    supports_dry_run = True
    RETRY_BASE_S = 0.5
    RETRY_CAP_S = 30.0
    MAX_WAIT_S = 120.0  # a longer Retry-After ends the run with a clear line instead
    PREFLIGHT_RETRIES = 2
    DEFAULT_LIMIT = DEFAULT_CONTEXT

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
        self._openai = require("openai", "api", "OpenAI-compatible endpoints")
        self.spec = spec
        self.model = spec.model_id
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env or ""):
            raise ConfigError(f"--api-key-env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "").strip()
        self._secret = key or None
        self._scrub = Scrubber([key])  # before the URL check: the key may have been pasted as the URL
        raw_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.custom_url = bool(raw_url)
        source = "--base-url" if base_url else "OPENAI_BASE_URL"
        self.base_url = check_base_url(raw_url, source, self._scrub) if raw_url else OPENAI_URL
        self.endpoint = public_url(self.base_url)
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
        if not key and not dry_run and (not self.custom_url or api_key_env != "OPENAI_API_KEY"):
            raise ConfigError(f"no API key: set the environment variable {api_key_env} "
                              "(or name another one with --api-key-env NAME)")
        self.notices = Notices()
        self._lock = threading.Lock()
        self._tls = threading.local()  # .flight: the parallel call a worker thread belongs to
        self._client = self._make_client()
        self._usage: Counter = Counter({k: 0 for k in _USAGE})
        self._reasons: Counter = Counter()  # retries by reason
        self._mark = (Counter(self._usage), Counter())
        self._degradations: List[str] = []
        self._served_context: Optional[int] = None
        if not dry_run:
            self._preflight(check_model)

    @staticmethod
    def _run_kwargs(run) -> Dict:
        """The transport's settings from a RunConfig."""
        return dict(base_url=run.base_url, api_key_env=run.api_key_env, concurrency=run.concurrency,
                    max_retries=run.max_retries, timeout=run.timeout, max_length=run.max_length, prices=run.prices,
                    dry_run=run.dry_run)

    def _make_client(self):
        return self._openai.OpenAI(api_key=self._secret or "no-key", base_url=self.base_url, max_retries=0,
                                   timeout=self.timeout)

    # -- run bookkeeping --------------------------------------------------------------------
    def begin_scenario(self) -> None:
        """Usage in diagnostics counts from here (one scenario); run totals keep counting."""
        with self._lock:
            self._mark = (Counter(self._usage), Counter(self._reasons))

    def count_tokens(self, text: str) -> int:
        return pricing.estimate_tokens(text)

    def _context(self) -> int:
        limits = [v for v in (self.max_length, self._served_context) if v]
        if not limits:
            limits = [pricing.context_window(self.model, self.prices) or self.DEFAULT_LIMIT]
        return int(min(limits))

    def _degrade(self, line: str) -> None:
        """A change that lowers what the run measures: one stderr line, kept for diagnostics."""
        with self._lock:
            if line in self._degradations:
                return
            self._degradations.append(line)
        log.info("%s", line)
        self.notices.say(f"warning: {line}")

    def efficiency_counters(self) -> Dict:
        return {"device": "api", "api": self._usage_diag()["usage"]}

    def _usage_diag(self) -> Dict:
        with self._lock:
            now, reasons = Counter(self._usage), Counter(self._reasons)
            mark, mark_reasons = self._mark
            degradations = list(self._degradations)

        def block(u: Dict, why: Dict) -> Dict:
            cost = pricing.cost_usd(self._price, u["prompt_tokens"], u["completion_tokens"])
            return {**{k: u[k] for k in _USAGE}, "retries_by_reason": {k: v for k, v in sorted(why.items()) if v},
                    "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
                    "cost_usd": round(cost, 6) if cost is not None else None}

        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "usage": block({k: now[k] - mark[k] for k in _USAGE}, {k: reasons[k] - mark_reasons[k] for k in reasons}),
            "usage_run_total": block(now, reasons),
            "degradations": degradations,
            "price_source": self._price_source,
        }

    def _base_identity(self) -> Dict:
        return {"model": self.spec.name, "model_id": self.model, "revision": None, "backend": self.backend,
                "endpoint": self.endpoint}

    # -- one request ----------------------------------------------------------------------
    def _request(self, what: str, endpoint: str, payload: Dict, parse: Callable[[dict], object], **retry_kw):
        """POST `payload` to `endpoint` and return parse(answer); failures retried (see `_call`).

        Tokens are counted for every answer, parsed or not: they were paid for."""

        def send():
            d = as_dict(_ENDPOINTS[endpoint](self._client)(model=self.model, **payload))
            usage = d.get("usage")
            if isinstance(usage, dict):
                with self._lock:
                    self._usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                    self._usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            return parse(d)

        return self._call(what, send, **retry_kw)

    def _call(self, what: str, fn: Callable, *, retries: Optional[int] = None, budget: Optional[Dict[str, int]] = None,
              fail: Optional[Callable[[str, int, str], Optional[Exception]]] = None, counted: bool = True):
        """fn() with retries (retry.policy); `budget` caps attempts per failure kind, `fail`
        may turn the last failure into a clearer error (None: the generic one)."""
        retries = self.max_retries if retries is None else retries
        flight: Optional[_Flight] = getattr(self._tls, "flight", None)
        tries = 0

        def attempt():
            nonlocal tries
            if flight is not None and flight.halt.is_set():
                raise Cancelled()
            tries += 1
            failure: Optional[BaseException] = None
            try:
                result = fn()
            except (Unsupported, RecBenchError, Cancelled):
                raise
            except Exception as exc:  # classified below, outside the handler, so that the errors we
                failure = exc  # raise carry no chained client exception (whose request holds headers)
            if failure is None:
                if counted:
                    with self._lock:
                        self._usage["requests"] += 1
                return result
            if flight is not None and flight.halt.is_set():
                raise Cancelled()  # the client was closed under us: no retry, no notice
            raise self._classify(failure)

        def too_long(exc: Retryable) -> Exception:
            return ModelError(f"{what} request to {self.endpoint}: the server asks to wait {exc.wait:.0f}s "
                              f"({exc.detail}); finished requests are cached: rerun the same command later")

        most = max([retries + 1, *(budget or {}).values()])
        retrying = policy(attempts=retries + 1, budget=budget, base=self.RETRY_BASE_S, cap=self.RETRY_CAP_S,
                          longest=self.MAX_WAIT_S, too_long=too_long, sleep=self._sleep,
                          before_sleep=lambda state: self._on_retry(what, state, most))
        try:
            return retrying(attempt)
        except Retryable as exc:
            last = exc
        error = fail(last.detail, tries, last.kind) if fail is not None else None
        raise (error or ModelError(
            f"{what} request to {self.endpoint} failed after {tries} attempt(s) ({last.detail}); "
            "finished requests are cached: rerun the same command to resume")) from None

    def _on_retry(self, what: str, state, most: int) -> None:
        exc: Retryable = state.outcome.exception()
        seconds = state.next_action.sleep if state.next_action is not None else 0.0
        with self._lock:
            self._usage["retries"] += 1
            self._reasons[exc.kind] += 1
        line = (f"{what} request to {self.endpoint}: {exc.detail}; retrying in {seconds:.1f}s "
                f"(attempt {state.attempt_number + 1} of at most {most})")
        log.info("retrying: %s", line)
        self.notices.say(f"waiting: {line}", rate_limited=True)

    def _sleep(self, seconds: float) -> None:
        flight: Optional[_Flight] = getattr(self._tls, "flight", None)
        if flight is None:
            time.sleep(seconds)  # the main thread: Ctrl-C interrupts it directly
        elif flight.halt.wait(seconds):
            raise Cancelled()

    def _delivering(self) -> bool:
        """Whether an answer that just arrived should still be handed on (not after Ctrl-C)."""
        flight: Optional[_Flight] = getattr(self._tls, "flight", None)
        return flight is None or not flight.interrupted

    def _classify(self, exc: BaseException) -> Retryable:
        """The Retryable for a transient failure; raises a final error for the rest."""
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return Retryable(f"no answer within {self.timeout:g}s", "timeout")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            why = f"{type(cause).__name__}: {cause}" if cause is not None and str(cause) else str(exc)
            return Retryable(self._scrub(one_line(why, 160)), "connection")
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
                return Retryable(detail, f"HTTP {status}", retry_after(headers))
            if status in (400, 404, 405, 415, 422):
                raise Unsupported(detail)
            raise ModelError(f"the server at {self.endpoint} refused the request ({detail})")
        if isinstance(exc, (Malformed, openai.APIResponseValidationError, ValueError, KeyError, TypeError)):
            detail = str(exc) if isinstance(exc, Malformed) else f"malformed answer: {exc}"
            return Retryable(self._scrub(one_line(detail, 160)), getattr(exc, "kind", "malformed answer"))
        raise exc

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
        return self._scrub(one_line(f"HTTP {status}" + (f": {msg}" if msg else ""), 240))

    def _model_missing(self, exc) -> bool:
        body = getattr(exc, "body", None)
        err = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("code") == "model_not_found":
            return True
        text = self._status_detail(exc).lower()
        signs = ("does not exist", "not found", "unknown model", "no such model")
        return "model" in text and any(s in text for s in signs)

    def _preflight(self, check_model: bool) -> None:
        """GET /models: reachability, the key, and (where listed) that the model is served."""

        def fail(detail: str, attempts: int, kind: str) -> Exception:
            if kind in ("connection", "timeout"):
                return ConfigError(f"cannot reach {self.endpoint} ({detail}); "
                                   "check --base-url and that the server is running")
            return ModelError(f"the server at {self.endpoint} is not answering properly ({detail})")

        try:
            page = self._call("GET /models", lambda: as_dict(self._client.models.list()),
                              retries=min(self.PREFLIGHT_RETRIES, self.max_retries), fail=fail, counted=False)
        except Unsupported:
            return  # no model list on this server: nothing to check
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

    # -- many requests ----------------------------------------------------------------------
    def _parallel(self, items: Sequence, work: Callable) -> Dict:
        """work(item) for each item with up to `concurrency` in flight; {item: result}.

        On the first failure nothing new is sent, requests in flight finish (their answers
        are handed on by `work`), then the failure is raised. On Ctrl-C nothing is waited
        for: the workers are told to stop, the HTTP client is replaced (the old one closed in
        the background) and KeyboardInterrupt goes on at once."""
        results: Dict = {}
        if not items:
            return results
        if self.concurrency == 1 or len(items) == 1:
            for it in items:  # in this thread: Ctrl-C interrupts the request itself
                results[it] = work(it)
            return results
        flight = _Flight()
        todo: "queue.SimpleQueue" = queue.SimpleQueue()
        done: "queue.SimpleQueue" = queue.SimpleQueue()
        for it in items:
            todo.put(it)

        def worker():
            self._tls.flight = flight
            try:
                while not flight.halt.is_set():
                    try:
                        it = todo.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        done.put((it, work(it), None))
                    except BaseException as exc:  # handed to the caller's thread
                        done.put((it, None, exc))
            finally:
                done.put(_FINISHED)

        # daemon threads: neither Ctrl-C nor the interpreter's exit waits for a hung request
        threads = [threading.Thread(target=worker, name=f"recbench-api-{i}", daemon=True)
                   for i in range(min(self.concurrency, len(items)))]
        first: Optional[BaseException] = None
        try:
            for t in threads:
                t.start()
            running = len(threads)
            while running:
                try:
                    msg = done.get(timeout=0.2)
                except queue.Empty:
                    continue
                if msg is _FINISHED:
                    running -= 1
                    continue
                it, result, exc = msg
                if exc is None:
                    results[it] = result
                elif first is None and not isinstance(exc, Cancelled):
                    first = exc
                    flight.halt.set()
        except BaseException:  # KeyboardInterrupt (or SystemExit) while waiting
            flight.interrupted = True
            flight.halt.set()
            self._reset_client()
            raise
        if first is not None:
            raise first
        return results

    def _reset_client(self) -> None:
        """A fresh client for later calls; the old one is closed without waiting on its requests."""
        old, self._client = self._client, self._make_client()
        threading.Thread(target=_close_quietly, args=(old,), name="recbench-api-close", daemon=True).start()

    def close(self) -> None:
        _close_quietly(self._client)


def _close_quietly(client) -> None:
    try:
        client.close()
    except Exception:  # pragma: no cover - closing is best effort
        pass
