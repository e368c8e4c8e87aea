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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

RESULTS_SCHEMA_VERSION = 2  # 1: files before the task axis (no schema_version, no task: ctr)

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


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename: readers see the old or the new
    file, never half of one. The file gets the usual permissions (0644 under umask 022),
    not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_lines(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows))


def results_path(output_dir, model_slug: str, scheme: str, scenario: str) -> Path:
    """The ctr layout; other tasks add a folder (recbench.tasks.Task.results_dir)."""
    return Path(output_dir) / model_slug / scheme / f"{scenario}.json"


class ResultsFormatError(ValueError):
    """A results file that does not hold a results record (the message says what is wrong)."""


@dataclass
class RunResult:
    """One results file: one model x scheme x task x scenario. Written by the runner (and the
    SFT/baseline pipelines), read by the reporter; files of older schema versions load."""

    scenario: str
    model: str
    scheme: str
    metrics: Dict[str, Any]
    meta: Dict[str, Any]
    task: str = "ctr"
    pipeline: str = "zero-shot"
    recbench_version: Optional[str] = None
    protocol_version: Optional[str] = None
    schema_version: int = RESULTS_SCHEMA_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept on rewrite

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    @classmethod
    def from_dict(cls, obj: Any) -> "RunResult":
        if not isinstance(obj, dict):
            raise ResultsFormatError(f"not a JSON object (found {type(obj).__name__})")
        missing = [k for k in ("model", "scheme", "scenario", "metrics", "meta") if k not in obj]
        if missing:
            raise ResultsFormatError("missing key" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing))
        if not isinstance(obj["metrics"], dict):
            raise ResultsFormatError("'metrics' is not a JSON object")
        if not isinstance(obj["meta"], dict):
            raise ResultsFormatError("'meta' is not a JSON object")
        for key in ("model", "scheme", "scenario"):
            if not isinstance(obj[key], str) or not obj[key].strip():
                raise ResultsFormatError(f"'{key}' is not a non-empty string")
        meta = obj["meta"]
        known = {"scenario", "model", "scheme", "metrics", "meta", "task", "pipeline", "recbench_version",
                 "protocol_version", "schema_version"}
        version = obj.get("schema_version", 1)
        if not isinstance(version, int) or version < 1:
            raise ResultsFormatError(f"'schema_version' is not a positive integer: {version!r}")

        def text(key):
            value = obj.get(key, meta.get(key))
            return None if value is None else str(value)

        return cls(
            scenario=obj["scenario"].strip(), model=obj["model"].strip(), scheme=obj["scheme"].strip(),
            metrics=obj["metrics"], meta=meta, task=str(obj.get("task") or meta.get("task") or "ctr"),
            pipeline=str(obj.get("pipeline") or meta.get("pipeline") or "zero-shot"),
            recbench_version=text("recbench_version"), protocol_version=text("protocol_version"),
            schema_version=version, extra={k: v for k, v in obj.items() if k not in known},
        )

    def write(self, path: Path) -> None:
        write_results(path, self.to_dict())

    @classmethod
    def read(cls, path: Path) -> "RunResult":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def write_results(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(_clean(doc), indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_results(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
