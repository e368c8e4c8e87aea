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
    # converted model weights (a GGUF de-quantised once) are shared by the whole session
    monkeypatch.setenv("RECBENCH_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "models"))
    monkeypatch.delenv("RECBENCH_DATA", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random llama / opt / bert folders (built once per session, no downloads)."""
    from recbench.testing import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: build_tiny_model(root / arch, arch=arch) for arch in ("llama", "opt", "bert")}
