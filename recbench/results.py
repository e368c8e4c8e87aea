"""Results files: one JSON per model/scheme/scenario, written atomically (mteb-style cache).

Layout: <output>/<model-slug>/<scheme>/<scenario>.json (+ <scenario>.samples.jsonl with
--log-samples). The leaderboard only reads these files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, Optional

TRACKED_PACKAGES = ("recbench", "torch", "transformers", "numpy", "pandas", "pyarrow", "scikit-learn",
                    "sentence-transformers", "peft", "accelerate", "openai", "gguf", "vllm", "bitsandbytes")


def package_versions() -> Dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(value):
    """JSON without NaN (written as null): strict parsers reject NaN."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_lines(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows))


def results_path(output_dir, model_slug: str, scheme: str, scenario: str) -> Path:
    return Path(output_dir) / model_slug / scheme / f"{scenario}.json"


def write_results(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(_clean(doc), indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_results(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
