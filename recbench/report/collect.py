"""Reading the results tree: scan ``<results>/<model>/<scheme>/<scenario>.json``, parse each
file into a flat record, and skip (with a :class:`ResultsWarning`) what cannot be read."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import pandas as pd

from ..errors import DataError
from ..results import ResultsFormatError, RunResult
from ..schemes import scheme_names

PathLike = Union[str, "os.PathLike[str]"]

# Counts and rates in "metrics" that are not quality metrics (never a leaderboard metric).
COUNT_KEYS = ("n", "users", "positive_rate", "gauc_users", "gauc_skipped_users", "valid_output_rate",
              "candidates")
METRIC_ORDER = (
    "gauc", "auc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20",
    "recall@1", "recall@5", "recall@10", "recall@20", "hit@1", "hit@5", "hit@10", "logloss", "mean_rank",
)
_MAX_STRAY_JSON_BYTES = 5_000_000  # JSON files outside <scheme>/ folders larger than this are not read


class ResultsWarning(UserWarning):
    """A results file was skipped (corrupt, unreadable or missing keys) or rows disagree."""


@dataclass
class Skipped:
    path: str
    reason: str


class _BadFile(Exception):
    pass


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _norm_pipeline(value: Any) -> str:
    text = str(value).strip().lower().replace("_", "-").replace(" ", "-")
    return {"zeroshot": "zero-shot", "zero": "zero-shot", "finetune": "sft", "fine-tune": "sft",
            "fine-tuned": "sft", "lora": "sft"}.get(text, text)


def _adapter_hash(adapter: Any) -> Optional[str]:
    if adapter in (None, "", False):
        return None
    if isinstance(adapter, Mapping):
        for key in ("hash", "config_hash", "sha256"):
            if adapter.get(key):
                return str(adapter[key])[:12]
        if adapter.get("path"):
            return Path(str(adapter["path"])).name or str(adapter["path"])
        return "unknown"
    return Path(str(adapter)).name or str(adapter)


def row_label(model: str, adapter: Optional[str]) -> str:
    """``smollm2-135m`` or, when tuned, ``smollm2-135m +lora:a1b2c3d4``."""
    return f"{model} +lora:{adapter}" if adapter else str(model)


def _parse_result(obj: Any, path: Path, root: Path) -> Dict[str, Any]:
    try:
        result = RunResult.from_dict(obj)
    except ResultsFormatError as exc:
        raise _BadFile(str(exc)) from None
    metrics, meta = result.metrics, result.meta
    adapter = _adapter_hash(meta.get("adapter"))
    pipeline = obj.get("pipeline") or meta.get("pipeline") or ("sft" if adapter else "zero-shot")
    rec: Dict[str, Any] = {
        "model": result.model,
        "adapter": adapter,
        "label": row_label(result.model, adapter),
        "pipeline": _norm_pipeline(pipeline),
        "task": result.task.strip().lower(),
        "scheme": result.scheme.lower(),
        "scenario": result.scenario.lower(),
    }
    n_metrics = 0
    for key, value in metrics.items():
        key = str(key).strip().lower()
        if key.endswith("_ci"):
            if (isinstance(value, (list, tuple)) and len(value) == 2
                    and all(_is_number(v) for v in value)):
                rec[f"{key}_lo"], rec[f"{key}_hi"] = float(value[0]), float(value[1])
            continue
        if value is None:
            rec[key] = math.nan
        elif _is_number(value):
            rec[key] = float(value)
            if key not in COUNT_KEYS:
                n_metrics += 1
    if n_metrics == 0:
        raise _BadFile("'metrics' holds no numeric metric")
    rec.update({
        "seed": meta.get("seed", obj.get("seed")),
        "template_id": meta.get("template_id"),
        "template_sha256": meta.get("template_sha256"),
        "data_fingerprint": meta.get("data_fingerprint"),
        "protocol_version": result.protocol_version,
        "recbench_version": result.recbench_version,
        "model_id": meta.get("model_id"),
        "model_revision": meta.get("model_revision"),
        "backend": meta.get("backend"),
        "item_embeddings": meta.get("item_embeddings"),  # baselines: the LLM-for-RS text features
        "created": _str_or_none(meta.get("created", obj.get("created"))),
        **_efficiency(meta),
        "path": str(path),
        "file": path.relative_to(root).as_posix(),
    })
    return rec


def _efficiency(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """Throughput from meta.efficiency (None for files before it, or runs served from the cache)."""
    eff = meta.get("efficiency")
    eff = eff if isinstance(eff, Mapping) else {}
    return {k: (float(eff[k]) if _is_number(eff.get(k)) else None) for k in EFFICIENCY_COLUMNS}


def _str_or_none(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _scan(results_dir: PathLike) -> Tuple[List[Dict[str, Any]], List[Skipped], Path]:
    root = Path(results_dir).expanduser()
    if not root.exists():
        raise DataError(
            f"results folder '{root}' does not exist; run `recbench zero-shot ...` first "
            "or pass --results DIR"
        )
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder; pass the folder that holds "
                        "<model>/<scheme>/<scenario>.json")
    records: List[Dict[str, Any]] = []
    skipped: List[Skipped] = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue  # hidden files and folders (temporary files of a writer in progress)
        # The contract puts results in <model>/<scheme>/; other JSON files (adapter configs,
        # tokenizer files, ...) are only taken when they look like results files.
        # (a task other than ctr adds a folder: <model>/<scheme>/<task>/<scenario>.json)
        schemes = scheme_names()
        in_scheme_dir = path.parent.name.lower() in schemes or (
            len(rel.parts) >= 4 and path.parent.parent.name.lower() in schemes)
        if not in_scheme_dir:
            try:
                if path.stat().st_size > _MAX_STRAY_JSON_BYTES:
                    continue
            except OSError:
                continue
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if in_scheme_dir:
                reason = f"not valid JSON ({_short_exc(exc)})"
                skipped.append(Skipped(str(path), reason))
            continue
        if not in_scheme_dir and not (isinstance(obj, dict) and "metrics" in obj and "scenario" in obj):
            continue
        try:
            records.append(_parse_result(obj, path, root))
        except _BadFile as exc:
            skipped.append(Skipped(str(path), str(exc)))
    for s in skipped:
        warnings.warn(f"skipped results file {s.path}: {s.reason}", ResultsWarning, stacklevel=3)
    return records, skipped, root


def _short_exc(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


_ID_COLUMNS = ["model", "adapter", "label", "pipeline", "task", "scheme", "scenario"]
EFFICIENCY_COLUMNS = ("pairs_per_s", "ms_per_pair")
_META_COLUMNS = ["seed", "template_id", "template_sha256", "data_fingerprint", "protocol_version",
                 "recbench_version", "model_id", "model_revision", "backend", "item_embeddings", "created",
                 *EFFICIENCY_COLUMNS, "file", "path"]


def _records_frame(records: List[Dict[str, Any]]) -> pd.DataFrame:
    metric_cols = set()
    for rec in records:
        metric_cols.update(k for k in rec if k not in _ID_COLUMNS and k not in _META_COLUMNS)
    ordered = [c for c in ("n", "users", "positive_rate", "candidates") if c in metric_cols]
    for m in METRIC_ORDER:
        for c in (m, f"{m}_ci_lo", f"{m}_ci_hi"):
            if c in metric_cols and c not in ordered:
                ordered.append(c)
    ordered += sorted(metric_cols - set(ordered))
    df = pd.DataFrame.from_records(records, columns=_ID_COLUMNS + ordered + _META_COLUMNS)
    for col in ("n", "users", "gauc_users", "gauc_skipped_users"):
        if col in df.columns:
            values = df[col]
            if values.dropna().apply(lambda v: float(v).is_integer()).all():
                df[col] = values.round().astype("Int64")
    return df


def collect_results(results_dir: PathLike) -> pd.DataFrame:
    """All results files under ``results_dir`` in long format: one row per file.

    Columns: model, adapter (hash or None), label, pipeline, scheme, scenario, every metric
    in the files (``<metric>_ci_lo``/``_ci_hi`` for confidence intervals), seed, template_id,
    template_sha256, data_fingerprint, protocol_version, recbench_version, model_id,
    model_revision, backend, created, file (relative to ``results_dir``) and path.

    Corrupt files or files missing required keys are skipped with a :class:`ResultsWarning`
    naming them; the list is in ``df.attrs["skipped"]`` as (path, reason) pairs. A missing
    folder raises :class:`~recbench.errors.DataError`; an empty one gives an empty frame.
    """
    records, skipped, _ = _scan(results_dir)
    df = _records_frame(records)
    df.attrs["skipped"] = [(s.path, s.reason) for s in skipped]
    return df


def available_metrics(records: Union[pd.DataFrame, Iterable[Mapping[str, Any]]]) -> List[str]:
    """Metrics with at least one value, headline first (gauc, auc, mrr, ndcg@k, ...)."""
    if isinstance(records, pd.DataFrame):
        records = records.to_dict("records")
    found = set()
    for rec in records:
        for key, value in rec.items():
            if key in _ID_COLUMNS or key in _META_COLUMNS or key in COUNT_KEYS:
                continue
            if key.endswith("_ci_lo") or key.endswith("_ci_hi"):
                continue
            if _is_number(value) and not math.isnan(value):
                found.add(key)
    ordered = [m for m in METRIC_ORDER if m in found]
    return ordered + sorted(found - set(ordered))
