"""Results tree -> leaderboards (Markdown, CSV, LaTeX, HTML, figures).

The reporter only *reads* results files written by the evaluation commands::

    <results>/<model-slug>/<scheme>/<scenario>.json     {"metrics": {...}, "meta": {...}, ...}

and turns them into one table per (pipeline, scheme) -- ``zero-shot-generative``,
``zero-shot-discriminative``, ``sft-generative``, ... -- as the paper's tables do: one row
per model (and adapter hash when tuned), one column per scenario in the paper's order, and an
Overall column.

Python API::

    from recbench.report import collect_results, leaderboard_tables, write_report
    long = collect_results("results")                 # one row per results file
    tables = leaderboard_tables("results", metric="gauc")
    tables["zero-shot-generative"].loc["smollm2-135m", "mind"]
    write_report("results", "leaderboard")            # -> list of written paths

Honesty rules (see the issue): Overall is the mean over the ten benchmark scenarios only when
all ten are present; otherwise it is the mean of what the row has and the row is marked
incomplete (``complete`` False, ``n_scenarios`` < 10). Rows whose runs differ in protocol
version, seed, template or data fingerprint are flagged, never silently mixed. Every row
keeps the paths of its results files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd

from .errors import ConfigError, DataError, MissingDependencyError, suggest

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "BENCHMARK_SCENARIOS",
    "CITATION",
    "ResultsWarning",
    "collect_results",
    "available_metrics",
    "leaderboard",
    "leaderboard_tables",
    "load_reference",
    "render_markdown",
    "write_report",
]

# The ten benchmark scenarios, in the paper's column order.
BENCHMARK_SCENARIOS: Tuple[str, ...] = (
    "mind", "movielens", "microlens", "goodreads", "yelp",
    "steam", "cds", "hm", "electronics", "hotelrec",
)
SCENARIO_TITLES = {
    "mind": "MIND", "movielens": "MovieLens", "microlens": "MicroLens",
    "goodreads": "Goodreads", "yelp": "Yelp", "steam": "Steam", "cds": "CDs", "hm": "H&M",
    "electronics": "Electronics", "hotelrec": "HotelRec",
}
PIPELINES = ("zero-shot", "sft")
SCHEMES = ("generative", "discriminative")
TABLE_TITLES = {
    "zero-shot-generative": "Zero-shot, generative",
    "zero-shot-discriminative": "Zero-shot, discriminative",
    "sft-generative": "Fine-tuned (SFT), generative",
    "sft-discriminative": "Fine-tuned (SFT), discriminative",
}
FORMATS = ("md", "csv", "tex", "html", "png", "svg")

CITATION = (
    'Qijiong Liu et al., "Benchmarking Recommendation Ability of Foundation Models", '
    "KDD 2024 tutorial; arXiv:2503.05493"
)
CITATION_URL = "https://arxiv.org/abs/2503.05493"

# Reference files (the package's own copy; leaderboard/reference/ is the human-facing one).
REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"
REFERENCE_FILES = {
    "zero-shot-generative": "zero_shot_generative.csv",
    "zero-shot-discriminative": "zero_shot_discriminative.csv",
    "sft-generative": "sft_generative.csv",
}
# The published numbers are the paper's "AUC", computed per user and averaged: our gauc.
REFERENCE_METRIC = "gauc"

# Counts and rates in "metrics" that are not quality metrics (never a leaderboard metric).
COUNT_KEYS = ("n", "users", "positive_rate", "gauc_users", "gauc_skipped_users")
LOWER_IS_BETTER = frozenset({"logloss"})
METRIC_ORDER = (
    "gauc", "auc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10",
    "recall@1", "recall@5", "recall@10", "hit@1", "hit@5", "hit@10", "logloss",
)
METRIC_DESCRIPTIONS = {
    "gauc": "per-user ROC AUC averaged over users with both labels (the paper's headline \"AUC\")",
    "auc": "global ROC AUC over all samples",
    "mrr": "mean over users of 1/rank of the first positive",
    "logloss": "binary cross-entropy of P(Yes) (generative only; lower is better)",
}
# Expected value of a random scorer. For auc and gauc it is exactly 0.5 whatever the data
# (every positive/negative pair is ordered correctly with probability 1/2). For mrr, ndcg@k,
# recall@k and hit@k the expectation depends on each user's numbers of positive and negative
# candidates, which the results files do not record, so no random row is shown for them.
RANDOM_EXPECTED = {"auc": 0.5, "gauc": 0.5}

RANDOM_LABEL = "random scorer (expected)"
PUBLISHED_SUFFIX = " (published)"
_MAX_STRAY_JSON_BYTES = 5_000_000  # JSON files outside <scheme>/ folders larger than this are not read


class ResultsWarning(UserWarning):
    """A results file was skipped (corrupt, unreadable or missing keys) or rows disagree."""


# --------------------------------------------------------------------------------------
# Reading the results tree
# --------------------------------------------------------------------------------------


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
    if not isinstance(obj, dict):
        raise _BadFile(f"not a JSON object (found {type(obj).__name__})")
    missing = [k for k in ("model", "scheme", "scenario", "metrics", "meta") if k not in obj]
    if missing:
        raise _BadFile("missing key" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing))
    metrics, meta = obj["metrics"], obj["meta"]
    if not isinstance(metrics, dict):
        raise _BadFile("'metrics' is not a JSON object")
    if not isinstance(meta, dict):
        raise _BadFile("'meta' is not a JSON object")
    for key in ("model", "scheme", "scenario"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise _BadFile(f"'{key}' is not a non-empty string")
    adapter = _adapter_hash(meta.get("adapter"))
    pipeline = obj.get("pipeline") or meta.get("pipeline") or ("sft" if adapter else "zero-shot")
    rec: Dict[str, Any] = {
        "model": obj["model"].strip(),
        "adapter": adapter,
        "label": row_label(obj["model"].strip(), adapter),
        "pipeline": _norm_pipeline(pipeline),
        "scheme": obj["scheme"].strip().lower(),
        "scenario": obj["scenario"].strip().lower(),
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
        "protocol_version": _str_or_none(obj.get("protocol_version", meta.get("protocol_version"))),
        "recbench_version": _str_or_none(obj.get("recbench_version", meta.get("recbench_version"))),
        "model_id": meta.get("model_id"),
        "model_revision": meta.get("model_revision"),
        "backend": meta.get("backend"),
        "created": _str_or_none(meta.get("created", obj.get("created"))),
        "path": str(path),
        "file": path.relative_to(root).as_posix(),
    })
    return rec


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
        in_scheme_dir = path.parent.name.lower() in SCHEMES
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


_ID_COLUMNS = ["model", "adapter", "label", "pipeline", "scheme", "scenario"]
_META_COLUMNS = ["seed", "template_id", "template_sha256", "data_fingerprint", "protocol_version",
                 "recbench_version", "model_id", "model_revision", "backend", "created", "file", "path"]


def _records_frame(records: List[Dict[str, Any]]) -> pd.DataFrame:
    metric_cols = set()
    for rec in records:
        metric_cols.update(k for k in rec if k not in _ID_COLUMNS and k not in _META_COLUMNS)
    ordered = [c for c in ("n", "users", "positive_rate") if c in metric_cols]
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


# --------------------------------------------------------------------------------------
# Reference rows
# --------------------------------------------------------------------------------------


def load_reference(table_key: Optional[str] = None) -> Dict[str, pd.DataFrame]:
    """The published RecBench GAUC tables, keyed like the leaderboards.

    Each frame is indexed by the published model name and has the ten scenario columns and
    ``overall`` (as published). Read from the package's copy (``recbench/data/reference``).
    """
    out: Dict[str, pd.DataFrame] = {}
    for key, name in REFERENCE_FILES.items():
        if table_key is not None and key != table_key:
            continue
        path = REFERENCE_DIR / name
        if not path.is_file():  # pragma: no cover - broken installation
            warnings.warn(f"published reference file {path} is missing; reference rows left out",
                          ResultsWarning, stacklevel=2)
            continue
        df = pd.read_csv(path)
        out[key] = df.set_index("model")
    return out


# --------------------------------------------------------------------------------------
# Building tables
# --------------------------------------------------------------------------------------


@dataclass
class Cell:
    value: float
    n: Optional[float] = None
    users: Optional[float] = None
    ci: Optional[Tuple[float, float]] = None
    file: Optional[str] = None
    path: Optional[str] = None
    flags: List[str] = field(default_factory=list)
    best: bool = False


@dataclass
class Row:
    label: str
    source: str  # "run", "published" or "random"
    model: str
    adapter: Optional[str]
    cells: Dict[str, Cell]
    overall: float
    complete: bool
    n_scenarios: int
    n: Optional[float] = None
    flags: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)  # relative to the results folder
    paths: List[str] = field(default_factory=list)  # as found (results folder joined)
    overall_best: bool = False


@dataclass
class Table:
    key: str
    pipeline: str
    scheme: str
    metric: str
    columns: List[str]  # scenario columns: the ten, then any others (e.g. demo)
    rows: List[Row]
    notes: List[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TABLE_TITLES.get(self.key, f"{self.pipeline}, {self.scheme}")

    @property
    def has_flags(self) -> bool:
        return any(r.flags for r in self.rows)

    @property
    def has_incomplete(self) -> bool:
        return any(not r.complete for r in self.rows)


@dataclass
class Report:
    root: Path
    records: List[Dict[str, Any]]
    skipped: List[Skipped]
    metric: str
    metrics: List[str]
    tables: Dict[str, List[Table]]  # metric -> tables
    include_reference: bool = True
    include_random: bool = True

    @property
    def headline(self) -> List[Table]:
        return self.tables[self.metric]


def _table_key(pipeline: str, scheme: str) -> str:
    return f"{pipeline}-{scheme}"


def _table_sort_key(key: str) -> Tuple[int, str]:
    order = list(TABLE_TITLES)
    return (order.index(key) if key in order else len(order), key)


def _short(value: Any) -> str:
    text = str(value)
    return text[:8] if len(text) > 12 and all(c in "0123456789abcdef" for c in text.lower()) else text


_FIELD_NAMES = {
    "protocol_version": "protocol",
    "seed": "seed",
    "template_sha256": "template",
    "data_fingerprint": "data fingerprint",
}


def _metadata_flags(recs: List[Dict[str, Any]]) -> Tuple[Dict[str, List[str]], Dict[Tuple[str, str], List[str]], List[str]]:
    """Flags for rows whose runs disagree with the rest of the table.

    protocol version and seed must agree across the whole table; template sha and data
    fingerprint within each scenario column (they differ between scenarios by design).
    The reference value is the most common one; with a tie, every file is flagged.
    """
    row_flags: Dict[str, List[str]] = {}
    cell_flags: Dict[Tuple[str, str], List[str]] = {}
    notes: List[str] = []

    def check(group: List[Dict[str, Any]], fieldname: str, where: str) -> None:
        values = Counter(r[fieldname] for r in group if r.get(fieldname) is not None)
        if len(values) <= 1:
            return
        ranked = values.most_common()
        ref = ranked[0][0] if ranked[0][1] > ranked[1][1] else None
        name = _FIELD_NAMES[fieldname]
        listing = ", ".join(f"{_short(v)} ({c} file{'s' if c > 1 else ''})" for v, c in ranked)
        notes.append(f"{where} mixes {name}s: {listing}.")
        per_row: Dict[Tuple[str, Any], List[str]] = {}
        for r in group:
            v = r.get(fieldname)
            if v is None or v == ref:
                continue
            cell_flags.setdefault((r["label"], r["scenario"]), []).append(
                f"{name} {_short(v)}" + (f" (others: {_short(ref)})" if ref is not None else "")
            )
            per_row.setdefault((r["label"], v), []).append(r["scenario"])
        for (label, v), scens in per_row.items():
            other = f"≠ {_short(ref)} in the rest of the table" if ref is not None else "differs from other rows"
            row_flags.setdefault(label, []).append(f"{name} {_short(v)} {other} ({', '.join(scens)})")

    for fieldname in ("protocol_version", "seed"):
        check(recs, fieldname, "This table")
    by_scenario: Dict[str, List[Dict[str, Any]]] = {}
    for r in recs:
        by_scenario.setdefault(r["scenario"], []).append(r)
    for scen in sorted(by_scenario):
        for fieldname in ("template_sha256", "data_fingerprint"):
            check(by_scenario[scen], fieldname, f"Column {scen}")
    return row_flags, cell_flags, notes


def _dedupe(recs: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Dict[str, List[str]], List[Dict[str, Any]]]:
    """One record per (row, scenario): the newest by meta.created; duplicates are flagged."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault((r["label"], r["scenario"]), []).append(r)
    kept, flags, dropped = [], {}, []
    for (label, scen), group in groups.items():
        group = sorted(group, key=lambda r: (r.get("created") or "", r["file"]))
        kept.append(group[-1])
        if len(group) > 1:
            dropped.extend(group[:-1])
            flags.setdefault(label, []).append(
                f"{len(group)} results files for {scen} (newest shown: {group[-1]['file']})"
            )
    return kept, flags, dropped


def _finite(x: Any) -> bool:
    return _is_number(x) and not math.isnan(x)


def _build_table(key: str, pipeline: str, scheme: str, recs: List[Dict[str, Any]], metric: str,
                 include_reference: bool, include_random: bool,
                 reference: Dict[str, pd.DataFrame]) -> Optional[Table]:
    recs = [r for r in recs if _finite(r.get(metric))]
    if not recs:
        return None
    all_recs = recs
    recs, dup_flags, dropped = _dedupe(recs)
    row_flags, cell_flags, notes = _metadata_flags(recs)
    extras = sorted({r["scenario"] for r in recs} - set(BENCHMARK_SCENARIOS))
    columns = list(BENCHMARK_SCENARIOS) + extras
    rows: List[Row] = []
    by_label: Dict[str, List[Dict[str, Any]]] = {}
    for r in recs:
        by_label.setdefault(r["label"], []).append(r)
    for label, group in by_label.items():
        cells: Dict[str, Cell] = {}
        for r in group:
            lo, hi = r.get(f"{metric}_ci_lo"), r.get(f"{metric}_ci_hi")
            cells[r["scenario"]] = Cell(
                value=float(r[metric]),
                n=r.get("n") if _finite(r.get("n")) else None,
                users=r.get("users") if _finite(r.get("users")) else None,
                ci=(lo, hi) if _finite(lo) and _finite(hi) else None,
                file=r["file"], path=r["path"],
                flags=cell_flags.get((label, r["scenario"]), []),
            )
        bench = [cells[s].value for s in BENCHMARK_SCENARIOS if s in cells]
        overall = sum(bench) / len(bench) if bench else math.nan
        ns = [c.n for c in cells.values() if c.n is not None]
        files = sorted(r["file"] for r in all_recs if r["label"] == label)
        paths = sorted(r["path"] for r in all_recs if r["label"] == label)
        rows.append(Row(
            label=label, source="run", model=group[0]["model"], adapter=group[0]["adapter"],
            cells=cells, overall=overall, complete=len(bench) == len(BENCHMARK_SCENARIOS),
            n_scenarios=len(bench), n=sum(ns) if ns else None,
            flags=dup_flags.get(label, []) + row_flags.get(label, []),
            files=files, paths=paths,
        ))
    if dropped:
        notes.append(f"{len(dropped)} older duplicate results file(s) not shown; see the flags.")
    if include_reference and metric == REFERENCE_METRIC and key in reference:
        ref = reference[key]
        for name, values in ref.iterrows():
            cells = {s: Cell(value=float(values[s])) for s in BENCHMARK_SCENARIOS
                     if s in values and _finite(float(values[s]))}
            overall = float(values["overall"]) if "overall" in values and _finite(float(values["overall"])) \
                else (sum(c.value for c in cells.values()) / len(cells) if cells else math.nan)
            rows.append(Row(label=f"{name}{PUBLISHED_SUFFIX}", source="published", model=str(name),
                            adapter=None, cells=cells, overall=overall,
                            complete=len(cells) == len(BENCHMARK_SCENARIOS), n_scenarios=len(cells)))
    if include_random and metric in RANDOM_EXPECTED:
        v = RANDOM_EXPECTED[metric]
        rows.append(Row(label=RANDOM_LABEL, source="random", model="random", adapter=None,
                        cells={s: Cell(value=v) for s in columns}, overall=v, complete=True,
                        n_scenarios=len(BENCHMARK_SCENARIOS)))
    lower = metric in LOWER_IS_BETTER
    # Complete rows first, ranked by Overall; incomplete rows after them (most scenarios
    # first): a mean over a few scenarios must not outrank a mean over all ten.
    rows.sort(key=lambda r: (not r.complete, -r.n_scenarios if not r.complete else 0,
                             math.isnan(r.overall),
                             (r.overall if lower else -r.overall) if not math.isnan(r.overall) else 0.0,
                             r.source != "run", r.label))
    # Best per column (the random row never counts as best; for Overall only complete rows).
    for col in columns + ["overall"]:
        vals = []
        for r in rows:
            if r.source == "random" or (col == "overall" and not r.complete):
                continue
            v = r.overall if col == "overall" else (r.cells[col].value if col in r.cells else math.nan)
            if _finite(v):
                vals.append(v)
        if not vals:
            continue
        best = min(vals) if lower else max(vals)
        for r in rows:
            if r.source == "random" or (col == "overall" and not r.complete):
                continue
            if col == "overall":
                r.overall_best = _finite(r.overall) and r.overall == best
            elif col in r.cells and r.cells[col].value == best:
                r.cells[col].best = True
    return Table(key=key, pipeline=pipeline, scheme=scheme, metric=metric, columns=columns,
                 rows=rows, notes=notes)


def _check_metric(metric: str, metrics: List[str], root: Path) -> str:
    m = str(metric).strip().lower()
    known = set(METRIC_ORDER) | set(metrics)
    if m not in known:
        raise ConfigError(f"unknown metric '{metric}'{suggest(m, metrics or METRIC_ORDER)}")
    if m not in metrics:
        raise ConfigError(
            f"metric '{m}' is not in any results file under {root} "
            f"(available: {', '.join(metrics)})"
        )
    return m


def build_report(results_dir: PathLike, metric: str = "gauc", include_reference: bool = True,
                 include_random: bool = True, all_metrics: bool = True) -> Report:
    """Read the results tree and build every table (for every metric when ``all_metrics``).

    Raises DataError when there is nothing to report and ConfigError for an unknown metric.
    """
    records, skipped, root = _scan(results_dir)
    if not records:
        if skipped:
            shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
            more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
            raise DataError(f"no readable results in '{root}': {len(skipped)} file(s) skipped: {shown}{more}")
        raise DataError(
            f"no results files in '{root}' (expected <model>/<scheme>/<scenario>.json); "
            "run `recbench zero-shot ...` first or pass --results DIR"
        )
    metrics = available_metrics(records)
    metric = _check_metric(metric, metrics, root)
    reference = load_reference() if include_reference else {}
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["pipeline"], r["scheme"]), []).append(r)
    tables: Dict[str, List[Table]] = {}
    for m in (metrics if all_metrics else [metric]):
        built = []
        for (pipeline, scheme), recs in groups.items():
            t = _build_table(_table_key(pipeline, scheme), pipeline, scheme, recs, m,
                             include_reference, include_random, reference)
            if t is not None:
                built.append(t)
        built.sort(key=lambda t: _table_sort_key(t.key))
        tables[m] = built
    return Report(root=root, records=records, skipped=skipped, metric=metric, metrics=metrics,
                  tables=tables, include_reference=include_reference, include_random=include_random)


def _table_frame(table: Table) -> pd.DataFrame:
    data = []
    for r in table.rows:
        rec: Dict[str, Any] = {"model": r.label, "source": r.source, "adapter": r.adapter}
        for col in table.columns:
            rec[col] = r.cells[col].value if col in r.cells else math.nan
        rec.update({
            "overall": r.overall, "complete": r.complete, "n_scenarios": r.n_scenarios,
            "n": r.n if r.n is not None else math.nan,
            "flags": "; ".join(r.flags), "files": ";".join(r.files),
        })
        data.append(rec)
    df = pd.DataFrame(data, columns=["model", "source", "adapter", *table.columns, "overall",
                                     "complete", "n_scenarios", "n", "flags", "files"])
    df = df.set_index("model")
    df.attrs.update({"table": table.key, "pipeline": table.pipeline, "scheme": table.scheme,
                     "metric": table.metric, "notes": list(table.notes)})
    if any(r.source == "published" for r in table.rows):
        df.attrs["citation"] = CITATION
    return df


def leaderboard_tables(results_dir: PathLike, metric: str = "gauc", include_reference: bool = True,
                       include_random: bool = True) -> Dict[str, pd.DataFrame]:
    """One DataFrame per (pipeline, scheme), keyed like ``"zero-shot-generative"``.

    Index: row label (``model`` or ``model +lora:<hash>``; published rows end in
    ``" (published)"``). Columns: source ("run", "published", "random"), adapter, the ten
    scenarios in the paper's order (then any other scenario, e.g. demo, not counted in
    Overall), overall, complete, n_scenarios, n (test samples summed over the row's files),
    flags (metadata disagreements, "" if none) and files (the row's results files relative to
    ``results_dir``, ";"-separated). Rows are sorted by Overall, best first.
    """
    report = build_report(results_dir, metric, include_reference, include_random, all_metrics=False)
    return {t.key: _table_frame(t) for t in report.headline}


# The name RecBench.leaderboard(...) delegates to.
leaderboard = leaderboard_tables


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _fmt(v: Optional[float], digits: int = 4) -> str:
    return "—" if v is None or not _finite(v) else f"{v:.{digits}f}"


def _fmt_n(n: Optional[float]) -> str:
    if n is None or not _finite(n):
        return "—"
    n = int(round(n))
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def _rel(target: str, start: Path) -> str:
    try:
        return Path(os.path.relpath(Path(target).resolve(), start.resolve())).as_posix()
    except ValueError:  # pragma: no cover - different drives on Windows
        return Path(target).resolve().as_posix()


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _row_dir(row: Row) -> Optional[str]:
    if not row.paths:
        return None
    dirs = {str(Path(p).parent) for p in row.paths}
    return os.path.commonpath(sorted(dirs)) if len(dirs) > 1 else dirs.pop()


def _metric_title(metric: str) -> str:
    return metric.upper() if metric in ("auc", "gauc", "mrr") else metric


def render_markdown(report: Report, metric: Optional[str] = None, output_dir: Optional[Path] = None,
                    heading: bool = True) -> str:
    """The leaderboards of one metric as a Markdown document.

    With ``output_dir``, model names link to their results folder relative to it.
    """
    metric = metric or report.metric
    lines: List[str] = []
    if heading:
        lines += [f"# RecBench leaderboard: {_metric_title(metric)}", ""]
        desc = METRIC_DESCRIPTIONS.get(metric)
        lines += [f"Metric: `{metric}`" + (f", {desc}." if desc else ".")
                  + f" Results read from `{report.root.as_posix()}`"
                  + f" ({len(report.records)} file{'s' if len(report.records) != 1 else ''}).", ""]
    any_incomplete = any_flags = any_published = any_ci = False
    for t in report.tables[metric]:
        lines += [f"## {t.title} (`{t.key}`)", ""]
        header = ["Model"] + [SCENARIO_TITLES.get(c, c) for c in t.columns] + ["Overall", "Scenarios", "n", "Flags"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 2) + [":---"]) + "|")
        for r in t.rows:
            label = _md_escape(r.label)
            if r.source == "run" and output_dir is not None and _row_dir(r):
                label = f"[{label}]({_rel(_row_dir(r), output_dir)})"
            cells = [label]
            for c in t.columns:
                cell = r.cells.get(c)
                if cell is None:
                    cells.append("—")
                    continue
                text = _fmt(cell.value)
                if cell.best:
                    text = f"**{text}**"
                if cell.ci:
                    any_ci = True
                    text += f" [{cell.ci[0]:.3f}, {cell.ci[1]:.3f}]"
                if cell.flags:
                    text += " ⚑"
                cells.append(text)
            ov = _fmt(r.overall)
            if r.overall_best:
                ov = f"**{ov}**"
            if not r.complete:
                ov = f"*{ov}*†" if _finite(r.overall) else "—†"
                any_incomplete = True
            cells.append(ov)
            cells.append(f"{r.n_scenarios}/{len(BENCHMARK_SCENARIOS)}")
            cells.append(_fmt_n(r.n))
            if r.flags:
                any_flags = True
            any_published |= r.source == "published"
            cells.append(_md_escape("⚑ " + "; ".join(r.flags)) if r.flags else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for note in t.notes:
            lines.append(f"- ⚑ {note}")
        if t.notes:
            lines.append("")
    foot = []
    foot.append("Bold: best in its column (the random row excluded). Overall: mean over the ten "
                "scenarios; other scenarios (e.g. demo) are shown but not counted.")
    if any_incomplete:
        foot.append("† Incomplete row: Overall is the mean over the scenarios the row has, not all "
                    "ten; do not compare it with complete rows.")
    if any_ci:
        foot.append("[lo, hi]: bootstrap confidence interval from the results file.")
    if any_flags:
        foot.append("⚑ The row's runs differ from the rest of the table in protocol version, seed, "
                    "template or data fingerprint (or a scenario has several results files); "
                    "its numbers are not directly comparable.")
    if metric in RANDOM_EXPECTED and report.include_random:
        foot.append(f"{RANDOM_LABEL}: a scorer that ranks at random has an expected {metric} of "
                    "exactly 0.5 in every scenario.")
    if any_published:
        foot.append(f"Rows marked (published) are the numbers published by {CITATION} "
                    f"(<{CITATION_URL}>); see leaderboard/reference/.")
    lines += ["Notes:", ""] + [f"- {f}" for f in foot] + [""]
    if report.skipped:
        lines += [f"Skipped {len(report.skipped)} results file(s):", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in report.skipped]
        lines.append("")
    return "\n".join(lines)


_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def render_latex(table: Table, report: Report) -> str:
    """One leaderboard as a LaTeX table (needs \\usepackage{booktabs})."""
    cols = table.columns
    out = [
        f"% recbench report: {table.key}, metric {table.metric}, from {_tex(report.root.as_posix())}",
        "% requires \\usepackage{booktabs}",
        "\\begin{table*}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{_tex(table.title)}: {_tex(table.metric)} per scenario. "
        "Best per column in bold.}",
        f"\\label{{tab:recbench-{table.key}-{_tex(table.metric).replace(chr(92), '')}}}",
        "\\begin{tabular}{l" + "r" * (len(cols) + 1) + "c}",
        "\\toprule",
        "Model & " + " & ".join(_tex(SCENARIO_TITLES.get(c, c)) for c in cols) + " & Overall & \\#Sc. \\\\",
        "\\midrule",
    ]
    marks_used = set()
    for r in table.rows:
        label = _tex(r.label)
        if r.flags:
            label += "$^{\\ddagger}$"
            marks_used.add("flag")
        cells = [label]
        for c in cols:
            cell = r.cells.get(c)
            if cell is None:
                cells.append("--")
                continue
            v = _fmt(cell.value)
            cells.append(f"\\textbf{{{v}}}" if cell.best else v)
        ov = "--" if not _finite(r.overall) else _fmt(r.overall)
        if r.overall_best and _finite(r.overall):
            ov = f"\\textbf{{{ov}}}"
        if not r.complete:
            ov = f"\\textit{{{ov}}}$^\\dagger$"
            marks_used.add("incomplete")
        cells += [ov, f"{r.n_scenarios}/{len(BENCHMARK_SCENARIOS)}"]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    notes = []
    if "incomplete" in marks_used:
        notes.append("$^\\dagger$Mean over the scenarios present only (incomplete row).")
    if "flag" in marks_used:
        notes.append("$^{\\ddagger}$Runs differ from the rest of the table in protocol, seed, "
                     "template or data fingerprint.")
    if any(r.source == "published" for r in table.rows):
        notes.append("(published): numbers from Liu et al., arXiv:2503.05493.")
    if notes:
        out += ["\\par\\smallskip\\footnotesize " + " ".join(notes)]
    out += ["\\end{table*}", ""]
    return "\n".join(out)


def _payload(report: Report, output_dir: Path, figures: Dict[str, Dict[str, str]]) -> Dict[str, Any]:
    from . import __version__

    def num(v: Optional[float]) -> Optional[float]:
        return float(v) if v is not None and _finite(v) else None

    tables: Dict[str, List[Dict[str, Any]]] = {}
    for m, ts in report.tables.items():
        tables[m] = []
        for t in ts:
            rows = []
            for r in t.rows:
                cells = {}
                for c, cell in r.cells.items():
                    d: Dict[str, Any] = {"v": num(cell.value)}
                    if cell.best:
                        d["best"] = True
                    if cell.n is not None:
                        d["n"] = int(cell.n)
                    if cell.users is not None:
                        d["users"] = int(cell.users)
                    if cell.ci:
                        d["ci"] = [num(cell.ci[0]), num(cell.ci[1])]
                    if cell.path:
                        d["href"] = _rel(cell.path, output_dir)
                        d["file"] = cell.file
                    if cell.flags:
                        d["flags"] = cell.flags
                    cells[c] = d
                rdir = _row_dir(r)
                rows.append({
                    "label": r.label, "source": r.source, "model": r.model, "adapter": r.adapter,
                    "cells": cells, "overall": num(r.overall), "overall_best": r.overall_best,
                    "complete": r.complete, "count": r.n_scenarios, "n": num(r.n),
                    "flags": r.flags, "files": r.files,
                    "hrefs": [_rel(p, output_dir) for p in r.paths],
                    "dir": _rel(rdir, output_dir) if rdir else None,
                })
            tables[m].append({
                "key": t.key, "title": t.title, "columns": t.columns, "rows": rows,
                "notes": t.notes, "figures": figures.get(t.key, {}) if m == report.metric else {},
            })
    return {
        "version": __version__,
        "generated": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "results_dir": _rel(str(report.root), output_dir),
        "n_files": len(report.records),
        "headline": report.metric,
        "metrics": list(report.tables),
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "descriptions": METRIC_DESCRIPTIONS,
        "benchmark": list(BENCHMARK_SCENARIOS),
        "titles": SCENARIO_TITLES,
        "random_label": RANDOM_LABEL,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "citation": CITATION,
        "citation_url": CITATION_URL,
        "tables": tables,
    }


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def _figure_rows(table: Table) -> List[Row]:
    return [r for r in table.rows if r.source != "random"]


def _heatmap(table: Table):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rows = _figure_rows(table)
    cols = table.columns
    data = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if c in r.cells:
                data[i, j] = r.cells[c].value
    finite = data[np.isfinite(data)]
    if table.metric in RANDOM_EXPECTED and finite.size:
        d = max(0.02, float(np.max(np.abs(finite - 0.5))))
        norm, cmap = Normalize(0.5 - d, 0.5 + d), "RdYlGn"
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.01, hi + 0.01
        norm, cmap = Normalize(lo, hi), ("RdYlGn_r" if table.metric in LOWER_IS_BETTER else "RdYlGn")
    fig = Figure(figsize=(1.6 + 0.78 * len(cols), 1.3 + 0.36 * len(rows)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("#eeeeee")
    masked = np.ma.masked_invalid(data)
    im = ax.imshow(masked, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([SCENARIO_TITLES.get(c, c) for c in cols], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.label + ("" if r.complete else " †") + (" ⚑" if r.flags else "")
                        for r in rows], fontsize=8)
    if data.size <= 600:
        cm = im.get_cmap()
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                v = data[i, j]
                color = "#333333"
                if np.isfinite(v):
                    r_, g_, b_, _ = cm(norm(v))
                    if 0.299 * r_ + 0.587 * g_ + 0.114 * b_ < 0.5:
                        color = "white"  # dark cell
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.3f}", ha="center", va="center",
                        fontsize=6.5, color=color)
    ax.set_title(f"{table.title}: {table.metric}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig


def _overall_bars(table: Table):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = [r for r in _figure_rows(table) if _finite(r.overall)]
    fig = Figure(figsize=(7.5, 1.2 + 0.32 * max(1, len(rows))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rows = list(reversed(rows))  # best at the top
    values = [r.overall for r in rows]
    colors = ["#9aa0a6" if r.source == "published" else "#1a73e8" for r in rows]
    bars = ax.barh(range(len(rows)), values, color=colors, edgecolor="#333333", linewidth=0.4)
    for bar, r in zip(bars, rows):
        if not r.complete:
            bar.set_hatch("///")
            bar.set_alpha(0.7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.label + ("" if r.complete else " †") + (" ⚑" if r.flags else "")
                        for r in rows], fontsize=8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=7)
    handles = [Patch(color="#1a73e8", label="your runs"), Patch(color="#9aa0a6", label="published")]
    if any(not r.complete for r in rows):
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="///", label="incomplete †"))
    if table.metric in RANDOM_EXPECTED:
        rv = RANDOM_EXPECTED[table.metric]
        ax.axvline(rv, color="#d93025", linestyle="--", linewidth=1)
        handles.append(Patch(color="#d93025", label=f"random ({rv})"))
    if values:
        lo, hi = min(values + [RANDOM_EXPECTED.get(table.metric, min(values))]), max(values)
        span = max(hi - lo, 0.02)
        ax.set_xlim(max(0.0, lo - 0.15 * span) if lo >= 0 else lo - 0.15 * span, hi + 0.25 * span)
    ax.set_xlabel(f"Overall {table.metric}" + (" (lower is better)" if table.metric in LOWER_IS_BETTER else ""))
    ax.set_title(f"{table.title}: Overall", fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1 - 1.2 / fig.get_figheight() * 0.1),
              ncol=len(handles), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, data: Union[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _atomic_savefig(fig, path: Path, fmt: str) -> Path:
    import io

    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buf, format=fmt, metadata=meta or None, bbox_inches="tight")
    return _atomic_write(path, buf.getvalue())


def _parse_formats(formats: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(formats, str):
        formats = formats.split(",")
    out = []
    for f in formats:
        f = str(f).strip().lower().lstrip(".")
        if not f:
            continue
        f = {"markdown": "md", "latex": "tex", "htm": "html"}.get(f, f)
        if f not in FORMATS:
            raise ConfigError(f"unknown report format '{f}'{suggest(f, FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ConfigError(f"no report format given (choose from {', '.join(FORMATS)})")
    return out


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def write_report(results_dir: PathLike, output_dir: PathLike, metric: str = "gauc",
                 formats: Union[str, Sequence[str]] = FORMATS, include_reference: bool = True,
                 include_random: bool = True) -> List[Path]:
    """Write the leaderboards under ``output_dir`` and return the written paths.

    Files (``<m>`` is the metric): ``leaderboard.<m>.md``; per table ``<table>.<m>.csv`` and
    ``<table>.<m>.tex``; ``results.csv`` (every file, every metric, CIs and metadata);
    ``index.html`` (all metrics, sortable); figures ``<table>.<m>.heatmap.png|svg`` and
    ``<table>.<m>.overall.png|svg``. Each file is written to a temporary name and renamed.
    """
    report = build_report(results_dir, metric, include_reference, include_random,
                          all_metrics="html" in _parse_formats(formats))
    return _write(report, Path(output_dir), _parse_formats(formats))


def _write(report: Report, out: Path, formats: List[str]) -> List[Path]:
    out = out.expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    m = _safe_name(report.metric)
    written: List[Path] = []
    figures: Dict[str, Dict[str, str]] = {}
    fig_formats = [f for f in formats if f in ("png", "svg")]
    if fig_formats:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            if all(f in ("png", "svg") for f in formats):
                raise MissingDependencyError("matplotlib", "report", "figures") from None
            warnings.warn("matplotlib is not installed; figures skipped "
                          "(pip install 'recbench[report]')", ResultsWarning, stacklevel=3)
            fig_formats = []
    for t in report.headline:
        for kind, maker in (("heatmap", _heatmap), ("overall", _overall_bars)):
            if not fig_formats:
                break
            fig = maker(t)
            for f in fig_formats:
                path = out / f"{t.key}.{m}.{kind}.{f}"
                written.append(_atomic_savefig(fig, path, f))
                figures.setdefault(t.key, {})[f"{kind}_{f}"] = path.name
    if "md" in formats:
        written.append(_atomic_write(out / f"leaderboard.{m}.md", render_markdown(report, output_dir=out)))
    if "csv" in formats:
        for t in report.headline:
            df = _table_frame(t)
            written.append(_atomic_write(out / f"{t.key}.{m}.csv", df.to_csv(float_format="%.6g")))
        long = _records_frame(report.records)
        written.append(_atomic_write(out / "results.csv", long.to_csv(index=False)))
    if "tex" in formats:
        for t in report.headline:
            written.append(_atomic_write(out / f"{t.key}.{m}.tex", render_latex(t, report)))
    if "html" in formats:
        from .report_html import render_html

        written.append(_atomic_write(out / "index.html", render_html(_payload(report, out, figures))))
    return written
