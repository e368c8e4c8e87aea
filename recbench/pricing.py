"""Price table for hosted models and cost estimates (for --dry-run and the results).

Prices are USD per 1 million tokens, in recbench/data/prices.json; a user's JSON file given
with --prices (same layout, or a flat {model: {...}}) extends and overrides it. A model is
found by its exact name, else by the longest table name that prefixes it followed by '-'
(dated snapshots: gpt-4o-2024-08-06 -> gpt-4o). Models served from this machine or a private
network cost nothing; any other unknown model has no estimate (None) and a hint.

Token counts without the model's tokenizer are estimates (`estimate_tokens`): about four
characters per token for ASCII text, one token per other character. tiktoken is not used.
"""

from __future__ import annotations

import ipaddress
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

from .errors import ConfigError

BUILTIN = Path(__file__).resolve().parent / "data" / "prices.json"
FIELDS = ("input", "output", "context")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate: ~4 ASCII characters per token, 1 per other char."""
    if not text:
        return 0
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    return max(1, math.ceil(ascii_chars / 4) + (len(text) - ascii_chars))


def _entries(doc, where: str) -> Dict[str, dict]:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a price table is a JSON object of model -> {{input, output}}")
    models = doc.get("models", None)
    if models is None:
        models = {k: v for k, v in doc.items() if not k.startswith("_") and k != "as_of"}
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: 'models' must map model names to {{input, output}} prices")
    out: Dict[str, dict] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or "input" not in entry:
            raise ConfigError(f"{where}: the entry for '{name}' needs at least an 'input' price (USD per 1M tokens)")
        clean = {}
        for key in FIELDS:
            if key in entry and entry[key] is not None:
                try:
                    val = float(entry[key])
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: '{name}'.{key} must be a number, got {entry[key]!r}") from None
                if val < 0 or not math.isfinite(val):
                    raise ConfigError(f"{where}: '{name}'.{key} must be a non-negative number")
                clean[key] = val
        clean.setdefault("output", clean["input"])
        out[str(name)] = clean
    return out


@lru_cache(maxsize=1)
def _builtin() -> Dict[str, dict]:
    return _entries(json.loads(BUILTIN.read_text(encoding="utf-8")), str(BUILTIN))


def load_prices(extra: Optional[str] = None) -> Dict[str, dict]:
    """The built-in table, extended (and overridden) by the user's JSON file."""
    table = dict(_builtin())
    if extra:
        path = Path(extra).expanduser()
        if not path.is_file():
            raise ConfigError(f"price table not found: {path}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the price table {path}: {str(exc).splitlines()[0]}") from None
        table.update(_entries(doc, str(path)))
    return table


def lookup(model: str, table: Dict[str, dict]) -> Tuple[Optional[dict], Optional[str]]:
    """(entry, matched name) for a model: exact, else the longest 'name-' prefix."""
    if model in table:
        return table[model], model
    lower = {k.lower(): k for k in table}
    if model.lower() in lower:
        key = lower[model.lower()]
        return table[key], key
    best = None
    for key in table:
        if model.lower().startswith(key.lower() + "-") and (best is None or len(key) > len(best)):
            best = key
    return (table[best], best) if best else (None, None)


def is_local(base_url: Optional[str]) -> bool:
    """True for endpoints on this machine or a private network (no per-token price)."""
    if not base_url:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "host.docker.internal") or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


def price_for(model: str, base_url: Optional[str] = None, extra: Optional[str] = None) -> Tuple[Optional[dict], str]:
    """(entry or None, where the price came from) for a model at an endpoint."""
    table = load_prices(extra)
    entry, name = lookup(model, table)
    if entry is not None:
        src = f"--prices {extra}" if extra and name in _entries_of(extra) else f"built-in table ({name})"
        return entry, src
    if is_local(base_url):
        return {"input": 0.0, "output": 0.0}, "local endpoint (no per-token price)"
    return None, f"no price known for '{model}'; add it to a JSON file passed with --prices"


def _entries_of(extra: str) -> Dict[str, dict]:
    try:
        return _entries(json.loads(Path(extra).expanduser().read_text(encoding="utf-8")), extra)
    except (OSError, ValueError, ConfigError):
        return {}


def cost_usd(entry: Optional[dict], prompt_tokens: int, completion_tokens: int = 0) -> Optional[float]:
    if entry is None:
        return None
    return (prompt_tokens * entry["input"] + completion_tokens * entry.get("output", entry["input"])) / 1e6


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int = 0, *, base_url: Optional[str] = None,
                  extra: Optional[str] = None) -> Tuple[Optional[float], str]:
    """(USD or None, price source) for a number of input and output tokens."""
    entry, source = price_for(model, base_url, extra)
    return cost_usd(entry, prompt_tokens, completion_tokens), source


def context_window(model: str, extra: Optional[str] = None) -> Optional[int]:
    entry, _ = lookup(model, load_prices(extra))
    ctx = (entry or {}).get("context")
    return int(ctx) if ctx else None
