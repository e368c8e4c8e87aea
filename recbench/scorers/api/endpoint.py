"""Where API requests go, and what of it may be shown.

The key, and any user:password typed into --base-url, never reach a message, a log line or a
result: every text shown passes a `Scrubber`, and a base URL that does not parse is
described, never echoed (it may be the key itself, pasted into the wrong flag).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional
from urllib.parse import urlsplit, urlunsplit

from ...errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"
_KEYLIKE = re.compile(r"\b(sk|rk|pk|key)-[A-Za-z0-9_\-*.]{3,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]*@")
_HOST_PORT = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?):(\d{1,5})(?:/[^\s@]*)?")
EXAMPLE = "http://localhost:8000/v1"


class Scrubber:
    """Removes secrets from any text before it is shown: the key itself, key-like tokens,
    bearer headers and user:password@ in URLs."""

    def __init__(self, secrets: Iterable[Optional[str]] = ()):
        self._secrets = [re.compile(re.escape(s), re.IGNORECASE) for s in secrets if s and len(s) >= 4]

    def __call__(self, text) -> str:
        text = str(text)
        for pattern in self._secrets:
            text = pattern.sub("***", text)
        text = _USERINFO.sub(r"\1***@", text)
        text = _KEYLIKE.sub(lambda m: m.group(1) + "-***", text)
        return _BEARER.sub(r"\1***", text)


def public_url(url: str) -> str:
    """scheme://host[:port]/path without credentials, query or fragment (never raises; a URL
    without scheme and host is never echoed: it may be a pasted key)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def check_base_url(url: str, source: str = "--base-url", scrub: Optional[Scrubber] = None) -> str:
    """The URL without trailing slash, or a one-line ConfigError that shows none of its secrets."""
    scrub = scrub or Scrubber()
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        hint = ""
        m = _HOST_PORT.fullmatch(text)
        if m and not _KEYLIKE.search(m.group(1)):  # host:port without scheme: safe to show host and port
            hint = f"; did you mean http://{scrub(m.group(1))}:{m.group(2)}/v1?"
        raise ConfigError(f"{source} must be a URL like {EXAMPLE} (starting with http:// or https://); the value "
                          f"given is not shown in case it holds a key{hint}")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        raise ConfigError(f"{source} has a bad port after {scheme}://{scrub(host)}: it must be a number from 1 to "
                          f"65535, like {EXAMPLE}")
    return text.rstrip("/")
