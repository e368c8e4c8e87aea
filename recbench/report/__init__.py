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
    write_report("results", "results/leaderboard")    # -> list of written paths

Honesty rules (see the issue): Overall is the mean over the ten benchmark scenarios only when
all ten are present; otherwise it is the mean of what the row has and the row is marked
incomplete (``complete`` False, ``n_scenarios`` < 10). Rows whose runs differ in protocol
version, seed, template or data fingerprint are flagged, never silently mixed. Every row
keeps the paths of its results files.

Modules: :mod:`.collect` reads the results tree, :mod:`.tables` builds the leaderboards,
:mod:`.formats` renders and writes them (Markdown, CSV, LaTeX, HTML payload),
:mod:`.figures` draws the matplotlib figures and :mod:`.html` the self-contained page.
"""

from __future__ import annotations

from .collect import (
    COUNT_KEYS,
    METRIC_ORDER,
    PathLike,
    ResultsWarning,
    Skipped,
    available_metrics,
    collect_results,
    row_label,
)
from .formats import (
    _UMASK,  # noqa: F401 - private; read by tests/test_report.py
    FORMATS,
    METRIC_DESCRIPTIONS,
    _parse_formats,  # noqa: F401 - private; used by recbench.cli.report
    _write,  # noqa: F401 - private; used by recbench.cli.report
    render_latex,
    render_markdown,
    write_report,
)
from .tables import (
    BENCHMARK_SCENARIOS,
    CITATION,
    CITATION_URL,
    LOWER_IS_BETTER,
    PUBLISHED_SUFFIX,
    RANDOM_EXPECTED,
    RANDOM_LABEL,
    REFERENCE_DIR,
    REFERENCE_FILES,
    REFERENCE_METRIC,
    SCENARIO_TITLES,
    TABLE_TITLES,
    Cell,
    Report,
    Row,
    Table,
    build_report,
    build_reports,
    leaderboard,
    leaderboard_tables,
    load_reference,
)

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
    # also public, as they were in the single-module recbench.report
    "COUNT_KEYS", "FORMATS", "LOWER_IS_BETTER", "METRIC_DESCRIPTIONS", "METRIC_ORDER",
    "PUBLISHED_SUFFIX", "RANDOM_EXPECTED", "RANDOM_LABEL", "REFERENCE_DIR", "REFERENCE_FILES",
    "REFERENCE_METRIC", "SCENARIO_TITLES", "TABLE_TITLES", "CITATION_URL",
    "Cell", "PathLike", "Report", "Row", "Skipped", "Table",
    "build_report", "build_reports", "render_latex", "row_label",
]
