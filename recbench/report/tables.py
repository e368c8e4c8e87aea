"""Leaderboard tables: one per (pipeline, scheme), with metadata flags, duplicate handling,
Overall aggregation, best-per-column marks, published reference rows and the random row.

Each task (ctr, seqrec) gets its own Report, with its own headline metric: ctr tables keep
their keys (``zero-shot-generative``); another task's add its name (``zero-shot-generative-seqrec``)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from ..errors import ConfigError, DataError, suggest
from ..tasks import DEFAULT_TASK
from .collect import METRIC_ORDER, PathLike, ResultsWarning, Skipped, _is_number, _scan, available_metrics

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
TABLE_TITLES = {
    "zero-shot-generative": "Zero-shot, generative",
    "zero-shot-discriminative": "Zero-shot, discriminative",
    "sft-generative": "Fine-tuned (SFT), generative",
    "sft-discriminative": "Fine-tuned (SFT), discriminative",
    "baseline-conventional": "Conventional recommenders (baselines, not LLMs)",
}

CITATION = (
    'Qijiong Liu et al., "Benchmarking Recommendation Ability of Foundation Models", '
    "KDD 2024 tutorial; arXiv:2503.05493"
)
CITATION_URL = "https://arxiv.org/abs/2503.05493"

# Reference files (the package's own copy; leaderboard/reference/ is the human-facing one).
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"
REFERENCE_FILES = {
    "zero-shot-generative": "zero_shot_generative.csv",
    "zero-shot-discriminative": "zero_shot_discriminative.csv",
    "sft-generative": "sft_generative.csv",
}
# The published numbers are the paper's "AUC", computed per user and averaged: our gauc.
REFERENCE_METRIC = "gauc"

LOWER_IS_BETTER = frozenset({"logloss", "mean_rank"})
# Expected value of a random scorer. For auc and gauc it is exactly 0.5 whatever the data
# (every positive/negative pair is ordered correctly with probability 1/2). For mrr, ndcg@k,
# recall@k and hit@k the expectation depends on each user's numbers of positive and negative
# candidates, which the results files do not record, so no random row is shown for them.
RANDOM_EXPECTED = {"auc": 0.5, "gauc": 0.5}

RANDOM_LABEL = "random scorer (expected)"
PUBLISHED_SUFFIX = " (published)"


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
    task: str = DEFAULT_TASK

    @property
    def title(self) -> str:
        base = TABLE_TITLES.get(_table_key(self.pipeline, self.scheme), f"{self.pipeline}, {self.scheme}")
        return base if self.task == DEFAULT_TASK else f"{base} ({self.task})"


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
    task: str = DEFAULT_TASK

    @property
    def headline(self) -> List[Table]:
        return self.tables[self.metric]


def _table_key(pipeline: str, scheme: str, task: str = DEFAULT_TASK) -> str:
    return f"{pipeline}-{scheme}" + ("" if task == DEFAULT_TASK else f"-{task}")


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
    v = _random_value(metric, recs) if include_random else None
    if v is not None:
        rows.append(Row(label=RANDOM_LABEL, source="random", model="random", adapter=None,
                        cells={s: Cell(value=v) for s in columns}, overall=v, complete=True,
                        n_scenarios=len(BENCHMARK_SCENARIOS)))
    lower = metric in LOWER_IS_BETTER
    # The user's own runs first (they are what the user came to see), then the published and
    # random rows. Within each group: complete rows ranked by Overall, incomplete rows after
    # them (most scenarios first), so that a mean over a few scenarios never outranks a mean
    # over all ten.
    rows.sort(key=lambda r: (r.source != "run", not r.complete, -r.n_scenarios if not r.complete else 0,
                             math.isnan(r.overall),
                             (r.overall if lower else -r.overall) if not math.isnan(r.overall) else 0.0,
                             r.label))
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


def _random_value(metric: str, recs: List[Dict[str, Any]]) -> Optional[float]:
    """A random scorer's expected value: 0.5 for auc/gauc; for ranking metrics (seqrec) when
    every run of the table ranked the same number of candidates per user."""
    if metric in RANDOM_EXPECTED:
        return RANDOM_EXPECTED[metric]
    counts = {r.get("candidates") for r in recs}
    if len(counts) != 1:
        return None
    c = counts.pop()
    if not _finite(c) or float(c) != int(c) or c < 1:
        return None
    from ..metrics import random_ranking_expectation

    try:
        return random_ranking_expectation([int(c)], metric)
    except ValueError:
        return None


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


def _headline_of(task: str, metrics: List[str]) -> str:
    from ..tasks import get_task

    try:
        return get_task(task).headline
    except ConfigError:  # results of a task this version does not know
        return metrics[0] if metrics else "gauc"


def _nothing_to_report(root: Path, skipped: List[Skipped]) -> DataError:
    if skipped:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        return DataError(f"no readable results in '{root}': {len(skipped)} file(s) skipped: {shown}{more}")
    return DataError(
        f"no results files in '{root}' (expected <model>/<scheme>/<scenario>.json); "
        "run `recbench zero-shot ...` first or pass --results DIR"
    )


def build_report(results_dir: PathLike, metric: Optional[str] = None, include_reference: bool = True,
                 include_random: bool = True, all_metrics: bool = True, task: str = DEFAULT_TASK) -> Report:
    """Read the results tree and build every table of one task (for every metric when
    ``all_metrics``); metric None: the task's headline (gauc for ctr, ndcg@10 for seqrec).

    Raises DataError when there is nothing to report and ConfigError for an unknown metric.
    """
    records, skipped, root = _scan(results_dir)
    if not records:
        raise _nothing_to_report(root, skipped)
    mine = [r for r in records if r["task"] == task]
    if not mine:
        found = sorted({r["task"] for r in records})
        raise DataError(f"no {task} results in '{root}' (it holds results of task(s): {', '.join(found)}); "
                        f"pass task={found[0]!r}")
    return _report(root, mine, skipped, metric, include_reference, include_random, all_metrics, task)


def build_reports(results_dir: PathLike, metric: Optional[str] = None, include_reference: bool = True,
                  include_random: bool = True, all_metrics: bool = True) -> List[Report]:
    """One Report per task found in the results tree (ctr first). `metric` applies to every task
    whose results hold it; a task without it keeps its headline; a metric no task has is an error."""
    records, skipped, root = _scan(results_dir)
    if not records:
        raise _nothing_to_report(root, skipped)
    by_task: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    order = sorted(by_task, key=lambda t: (t != DEFAULT_TASK, t))
    if metric is not None:
        _check_metric(metric, available_metrics(records), root)
    reports = []
    for task in order:
        recs = by_task[task]
        m = str(metric).strip().lower() if metric is not None else None
        if m is not None and m not in available_metrics(recs):
            m = None
        reports.append(_report(root, recs, skipped, m, include_reference, include_random, all_metrics, task))
    return reports


def _report(root: Path, records: List[Dict[str, Any]], skipped: List[Skipped], metric: Optional[str],
            include_reference: bool, include_random: bool, all_metrics: bool, task: str) -> Report:
    metrics = available_metrics(records)
    metric = _check_metric(metric if metric is not None else _headline_of(task, metrics), metrics, root)
    reference = load_reference() if include_reference else {}
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["pipeline"], r["scheme"]), []).append(r)
    tables: Dict[str, List[Table]] = {}
    for m in (metrics if all_metrics else [metric]):
        built = []
        for (pipeline, scheme), recs in groups.items():
            t = _build_table(_table_key(pipeline, scheme, task), pipeline, scheme, recs, m,
                             include_reference, include_random, reference)
            if t is not None:
                t.task = task
                built.append(t)
        built.sort(key=lambda t: _table_sort_key(t.key))
        tables[m] = built
    return Report(root=root, records=records, skipped=skipped, metric=metric, metrics=metrics,
                  tables=tables, include_reference=include_reference, include_random=include_random, task=task)


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
                     "metric": table.metric, "notes": list(table.notes), "task": table.task})
    if any(r.source == "published" for r in table.rows):
        df.attrs["citation"] = CITATION
    return df


def leaderboard_tables(results_dir: PathLike, metric: Optional[str] = None, include_reference: bool = True,
                       include_random: bool = True, task: str = DEFAULT_TASK) -> Dict[str, pd.DataFrame]:
    """One DataFrame per (pipeline, scheme) of one task, keyed like ``"zero-shot-generative"``
    (other tasks: ``"zero-shot-generative-seqrec"``); metric None: the task's headline.

    Index: row label (``model`` or ``model +lora:<hash>``; published rows end in
    ``" (published)"``). Columns: source ("run", "published", "random"), adapter, the ten
    scenarios in the paper's order (then any other scenario, e.g. demo, not counted in
    Overall), overall, complete, n_scenarios, n (test samples summed over the row's files),
    flags (metadata disagreements, "" if none) and files (the row's results files relative to
    ``results_dir``, ";"-separated). Your runs come first, then the published and random rows;
    each group sorted by Overall, best first (complete rows before incomplete ones).
    """
    report = build_report(results_dir, metric, include_reference, include_random, all_metrics=False, task=task)
    return {t.key: _table_frame(t) for t in report.headline}


# The name RecBench.leaderboard(...) delegates to.
leaderboard = leaderboard_tables
