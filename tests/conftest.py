"""Shared test setup: no network, a private cache, fixture paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache so that no test sees another's processed splits."""
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("RECBENCH_DATA", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
