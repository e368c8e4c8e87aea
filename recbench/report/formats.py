"""Rendering and writing leaderboards: Markdown, CSV, LaTeX, the HTML page's payload, and
``write_report`` (every file written to a temporary name and renamed)."""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import quote

import pandas as pd

from ..results import atomic_write_bytes, current_umask
from ..errors import ConfigError, MissingDependencyError, suggest
from .collect import PathLike, ResultsWarning, _records_frame
from .efficiency import efficiency_frame, model_means, quality_vs_throughput_figure, render_efficiency_markdown
from .figures import _heatmap, _overall_bars, position_bias_entries, position_bias_figure
from .tables import (
    BENCHMARK_SCENARIOS,
    CITATION,
    CITATION_URL,
    LOWER_IS_BETTER,
    RANDOM_EXPECTED,
    RANDOM_LABEL,
    SCENARIO_TITLES,
    Report,
    Row,
    Table,
    _finite,
    _table_frame,
    build_reports,
)
from ..tasks import DEFAULT_TASK

FORMATS = ("md", "csv", "tex", "html", "png", "svg")
METRIC_DESCRIPTIONS = {
    "gauc": "per-user ROC AUC averaged over users with both labels (the paper's headline \"AUC\")",
    "auc": "global ROC AUC over all samples",
    "mrr": "mean over users of 1/rank of the first positive",
    "logloss": "binary cross-entropy of P(Yes) (generative only; lower is better)",
    "mean_rank": "mean rank of the target among the user's candidates (seqrec; lower is better)",
}


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


def _rel(target: str, start: Path) -> Optional[str]:
    """`target` as a relative POSIX path from `start`, safe as a link target: a first
    segment that looks like a URL scheme ('javascript:...') gets a './' in front; None
    when no relative path exists (another drive on Windows): then there is no link."""
    try:
        rel = Path(os.path.relpath(Path(target).resolve(), start.resolve())).as_posix()
    except ValueError:  # pragma: no cover - different drives on Windows
        return None
    if rel.startswith("/") or ":" in rel.split("/", 1)[0]:
        rel = "./" + rel.lstrip("/")
    return rel


def _md_href(rel: str) -> str:
    """A Markdown link target: percent-encoded, so no character of a folder name (':',
    spaces, parentheses, '<') can end the link or turn it into a script URL."""
    return quote(rel, safe="/")


def _md_escape(text: str) -> str:
    """Data as Markdown text: HTML-escaped (Markdown renders inline HTML) and with the
    characters that would make a table cell, emphasis, code or a link escaped."""
    out = html.escape(str(text), quote=False)
    for ch in ("\\", "|", "*", "_", "`", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return out.replace("\r", " ").replace("\n", " ")


def _md_code(text: str) -> str:
    """An inline code span holding `text` verbatim (HTML is not interpreted inside one)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A spreadsheet-safe cell: text starting like a formula gets a leading quote, so
    opening the CSV never runs it; numbers (also negative ones written as text) stay."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def _csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])):
            out[col] = out[col].map(_csv_cell)
    if not pd.api.types.is_numeric_dtype(out.index):
        out.index = out.index.map(_csv_cell)
    out.columns = [_csv_cell(c) for c in out.columns]
    return out


def _row_dir(row: Row) -> Optional[str]:
    if not row.paths:
        return None
    dirs = {str(Path(p).parent) for p in row.paths}
    return os.path.commonpath(sorted(dirs)) if len(dirs) > 1 else dirs.pop()


def _versus_markdown(report: Report, metric: str) -> List[str]:
    """The "LLMs vs conventional" section (report/versus.py), when baselines were run."""
    from .versus import build_versus, render_versus_markdown

    versus = build_versus(report, metric)
    return [render_versus_markdown(versus)] if versus else []


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
        what = "RecBench" if report.task == DEFAULT_TASK else f"RecBench {report.task}"
        lines += [f"# {what} leaderboard: {_metric_title(metric)}", ""]
        desc = METRIC_DESCRIPTIONS.get(metric)
        lines += [f"Metric: `{metric}`" + (f", {desc}." if desc else ".")
                  + f" Results read from {_md_code(report.root.as_posix())}"
                  + f" ({len(report.records)} file{'s' if len(report.records) != 1 else ''}).", ""]
    any_incomplete = any_flags = any_published = any_ci = False
    for t in report.tables[metric]:
        lines += [f"## {_md_escape(t.title)} ({_md_code(t.key)})", ""]
        header = ["Model"] + [_md_escape(SCENARIO_TITLES.get(c, c)) for c in t.columns] + ["Overall", "Scenarios", "n", "Flags"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 2) + [":---"]) + "|")
        for r in t.rows:
            label = _md_escape(r.label)
            rdir = _row_dir(r) if r.source == "run" and output_dir is not None else None
            target = _rel(rdir, output_dir) if rdir else None  # type: ignore[arg-type]
            if target:
                label = f"[{label}]({_md_href(target)})"
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
            lines.append(f"- ⚑ {_md_escape(note)}")
        if t.notes:
            lines.append("")
    lines += _versus_markdown(report, metric)
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
    elif report.include_random and any(r.source == "random" for t in report.tables[metric] for r in t.rows):
        foot.append(f"{RANDOM_LABEL}: the {metric} of a scorer that ranks the candidates at random, "
                    "given the number of candidates per user of the table's runs.")
    if any_published:
        foot.append(f"Rows marked (published) are the numbers published by {CITATION} "
                    f"(<{CITATION_URL}>); see leaderboard/reference/.")
    lines += ["Notes:", ""] + [f"- {f}" for f in foot] + [""]
    if report.skipped:
        lines += [f"Skipped {len(report.skipped)} results file(s):", ""]
        lines += [f"- {_md_code(s.path)}: {_md_escape(s.reason)}" for s in report.skipped]
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
    from .. import __version__

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
                    href = _rel(cell.path, output_dir) if cell.path else None
                    if href:
                        d["href"] = href
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
                    "hrefs": [h for h in (_rel(p, output_dir) for p in r.paths) if h],
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
        **({} if report.task == DEFAULT_TASK else {
            "task": report.task,
            "random_note": ": the expected value of a scorer that ranks each user's candidates at random "
                           "(shown when all runs of a table ranked the same number of candidates)."}),
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "citation": CITATION,
        "citation_url": CITATION_URL,
        "tables": tables,
    }



# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


_UMASK = current_umask()


def _atomic_write(path: Path, data: Union[str, bytes]) -> Path:
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
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


def write_report(results_dir: PathLike, output_dir: PathLike, metric: Optional[str] = None,
                 formats: Union[str, Sequence[str]] = FORMATS, include_reference: bool = True,
                 include_random: bool = True) -> List[Path]:
    """Write the leaderboards under ``output_dir`` and return the written paths.

    Files (``<m>`` is the metric): ``leaderboard.<m>.md``; per table ``<table>.<m>.csv`` and
    ``<table>.<m>.tex``; ``results.csv`` (every file, every metric, CIs and metadata);
    ``index.html`` (all metrics, sortable); figures ``<table>.<m>.heatmap.png|svg`` and
    ``<table>.<m>.overall.png|svg``. Each file is written to a temporary name and renamed.

    One leaderboard per task: ctr's files are named as above; another task's start with its name
    (``seqrec-leaderboard.ndcg@10.md``, ``seqrec-results.csv``, ``seqrec-index.html``) and its
    tables' keys end in it (``zero-shot-generative-seqrec.ndcg@10.csv``). metric None: each
    task's headline (gauc, ndcg@10); a metric applies to the tasks whose results hold it.
    """
    formats = _parse_formats(formats)
    reports = build_reports(results_dir, metric, include_reference, include_random, all_metrics="html" in formats)
    written: List[Path] = []
    for report in reports:
        written += _write(report, Path(output_dir), formats)
    return written


def _prefix(report: Report) -> str:
    """File-name prefix of a task's whole-report files (none for ctr: its names are unchanged)."""
    return "" if report.task == DEFAULT_TASK else f"{_safe_name(report.task)}-"


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
    pre = _prefix(report)
    eff = efficiency_frame(report.records, report.metric)
    if not eff.empty:  # the paper's latency table: quality beside pairs/s and ms per pair
        if "md" in formats:
            written.append(_atomic_write(out / f"{pre}efficiency.{m}.md", render_efficiency_markdown(eff, report.metric)))
        if "csv" in formats:
            written.append(_atomic_write(out / f"{pre}efficiency.{m}.csv", _csv_safe(eff).to_csv(index=False)))
        if fig_formats:
            fig = quality_vs_throughput_figure(model_means(eff, report.metric), report.metric)
            for f in fig_formats:
                written.append(_atomic_savefig(fig, out / f"{pre}quality_vs_throughput.{m}.{f}", f))
    bias = position_bias_entries(report.records) if fig_formats else []
    if bias:  # generated rankings: the target's rank by the position it was shown at
        fig = position_bias_figure(bias)
        for f in fig_formats:
            written.append(_atomic_savefig(fig, out / f"{pre}position_bias.{f}", f))
    if "md" in formats:
        written.append(_atomic_write(out / f"{pre}leaderboard.{m}.md", render_markdown(report, output_dir=out)))
    if "csv" in formats:
        for t in report.headline:
            df = _table_frame(t)
            written.append(_atomic_write(out / f"{t.key}.{m}.csv", _csv_safe(df).to_csv(float_format="%.6g")))
        long = _records_frame(report.records)
        written.append(_atomic_write(out / f"{pre}results.csv", _csv_safe(long).to_csv(index=False)))
    if "tex" in formats:
        for t in report.headline:
            written.append(_atomic_write(out / f"{t.key}.{m}.tex", render_latex(t, report)))
    from .versus import write_versus

    written += write_versus(report, out, formats)
    if "html" in formats:
        from .html import render_html

        written.append(_atomic_write(out / f"{pre}index.html", render_html(_payload(report, out, figures))))
    return written
