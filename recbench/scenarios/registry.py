"""The one place that names every scenario: add a dataset = one file + one line here."""

from __future__ import annotations

import importlib
from typing import Dict, List, Type

from ..errors import ConfigError, suggest
from .base import RawSource

# name -> "module:Class" (imported lazily so that `recbench data list` stays fast)
SCENARIOS: Dict[str, str] = {
    "mind": "recbench.scenarios.mind:MindSource",
    "movielens": "recbench.scenarios.movielens:MovieLensSource",
    "microlens": "recbench.scenarios.microlens:MicroLensSource",
    "goodreads": "recbench.scenarios.goodreads:GoodreadsSource",
    "cds": "recbench.scenarios.amazon:CdsSource",
    "electronics": "recbench.scenarios.amazon:ElectronicsSource",
    "hm": "recbench.scenarios.hm:HMSource",
    "steam": "recbench.scenarios.steam:SteamSource",
    "yelp": "recbench.scenarios.yelp:YelpSource",
    "hotelrec": "recbench.scenarios.hotelrec:HotelRecSource",
    "custom": "recbench.scenarios.custom:CustomSource",
    "demo": "recbench.scenarios.demo:DemoSource",
}

# The ten benchmark domains, in the paper's column order.
BENCHMARK_SCENARIOS = (
    "mind", "movielens", "microlens", "goodreads", "yelp",
    "steam", "cds", "hm", "electronics", "hotelrec",
)


def list_scenarios() -> List[str]:
    """Names of all scenarios (the ten benchmark domains, custom and demo)."""
    return sorted(SCENARIOS)


def get_source(name: str) -> Type[RawSource]:
    """The RawSource class of a scenario; unknown names get a suggestion."""
    key = name.strip().lower()
    if key not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{name}'" + suggest(key, SCENARIOS))
    module, _, cls = SCENARIOS[key].partition(":")
    source = getattr(importlib.import_module(module), cls)
    if source.name != key:  # a registry line pointing at the wrong class
        raise RuntimeError(f"registry entry {key!r} points at scenario {source.name!r}")
    return source
