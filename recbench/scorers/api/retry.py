"""Retry policy for API requests: which failures retry, how long to wait, and saying so.

tenacity runs the loop (`policy`). The wait is exactly the server's Retry-After (or
retry-after-ms) when it sends one, else exponential backoff with jitter; a Retry-After
longer than the transport's MAX_WAIT_S ends the run with one clear line instead of a
silent long sleep. Each failure kind has its own attempt budget (e.g. 3 tier probes
without logprobs). Waits are shown on stderr through `Notices`, rate-limited so that a
storm of 429s prints a line every few seconds, not one per request.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from typing import Callable, Dict, Optional

from ...errors import require

NOTICE_EVERY_S = 3.0  # at most one rate-limited stderr line per this many seconds


class Retryable(Exception):
    """A failure worth another attempt: why, after how long (None: backoff), and its kind."""

    def __init__(self, detail: str, kind: str, wait: Optional[float] = None):
        super().__init__(detail)
        self.detail, self.kind, self.wait = detail, kind, wait


class Cancelled(Exception):
    """The scoring call was interrupted (Ctrl-C): stop without sending anything more."""


class Notices:
    """One-line messages on stderr ('recbench: ...'); `rate_limited` ones at most every few seconds."""

    def __init__(self, every_s: float = NOTICE_EVERY_S):
        self.every_s = every_s
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._skipped = 0

    def say(self, line: str, rate_limited: bool = False) -> bool:
        with self._lock:
            if rate_limited:
                now = time.monotonic()
                if now - self._last < self.every_s:
                    self._skipped += 1
                    return False
                self._last = now
                if self._skipped:
                    line += f" (+{self._skipped} similar not shown)"
                    self._skipped = 0
            print(f"recbench: {line}", file=sys.stderr, flush=True)
        return True


def retry_after(headers) -> Optional[float]:
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
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _ServerWait:
    """The server's Retry-After if it sent one (refused above `longest`), else jittered backoff."""

    def __init__(self, backoff: Callable, longest: float, too_long: Callable[[Retryable], Exception]):
        self.backoff, self.longest, self.too_long = backoff, longest, too_long

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception()
        if exc.wait is None:
            return self.backoff(retry_state)
        if exc.wait > self.longest:
            raise self.too_long(exc)
        return exc.wait


class _KindBudget:
    """Stop once one failure kind used its attempts (default: `attempts`; per kind: `budget`)."""

    def __init__(self, attempts: int, budget: Dict[str, int]):
        self.attempts, self.budget = attempts, budget
        self.seen: Counter = Counter()

    def __call__(self, retry_state) -> bool:
        kind = retry_state.outcome.exception().kind
        self.seen[kind] += 1
        return (self.seen[kind] >= self.budget.get(kind, self.attempts)
                or retry_state.attempt_number >= max(self.attempts, *self.budget.values(), 1))


def policy(*, attempts: int, budget: Optional[Dict[str, int]], base: float, cap: float, longest: float,
           too_long: Callable[[Retryable], Exception], before_sleep: Callable, sleep: Callable):
    """A tenacity Retrying that retries `Retryable` only and re-raises the last one when out of attempts."""
    tenacity = require("tenacity", "api", "retrying API requests")
    backoff = tenacity.wait_random_exponential(multiplier=base, max=cap, min=base / 2)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=_KindBudget(attempts, dict(budget or {})),
        wait=_ServerWait(backoff, longest, too_long),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
