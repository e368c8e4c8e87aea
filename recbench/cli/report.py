"""`recbench report`: results tree -> leaderboards (Markdown, CSV, LaTeX, HTML, figures)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional

DEFAULT_FORMATS = "md,csv,tex,html,png,svg"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="turn a results folder into leaderboards (Markdown, CSV, LaTeX, HTML, PNG/SVG)",
        description=(
            "Read <results>/<model>/<scheme>/<scenario>.json files and write one leaderboard "
            "per pipeline and scheme (zero-shot generative, zero-shot discriminative, SFT "
            "generative, ...): rows are models, columns the ten scenarios plus Overall. "
            "Published RecBench numbers and a random-scorer row are shown beside your runs. "
            "Each task gets its own leaderboard: seqrec results (<model>/<scheme>/seqrec/) are "
            "written to seqrec-leaderboard.<metric>.md, zero-shot-generative-seqrec.<metric>.csv, ..."
        ),
    )
    p.add_argument("--results", default="results", metavar="DIR",
                   help="folder holding the results files (default: results)")
    p.add_argument("--output", default=None, metavar="DIR",
                   help="folder to write the leaderboards to (default: <results>/leaderboard)")
    p.add_argument("--metric", default=None,
                   help="headline metric: gauc (ctr's default), auc, mrr, ndcg@1, ndcg@5, ndcg@10, "
                        "recall@k, hit@k, logloss; seqrec: ndcg@10 (its default), ndcg@k, recall@k, mrr, "
                        "mean_rank (a metric a task's results lack leaves that task at its default)")
    p.add_argument("--format", dest="formats", default=DEFAULT_FORMATS, metavar="LIST",
                   help=f"comma-separated output formats (default: {DEFAULT_FORMATS})")
    p.add_argument("--no-reference", action="store_true",
                   help="leave out the published RecBench rows")
    p.add_argument("--no-random", action="store_true",
                   help="leave out the random-scorer row")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a results file was skipped or rows are flagged")
    p.set_defaults(func=run)
    return p


def output_dir(results: str, output: Optional[str]) -> Path:
    """The report's folder: beside the results by default, so that running the command in a
    recbench checkout never overwrites the checkout's own published ``leaderboard/``."""
    from ..errors import ConfigError

    out = Path(output).expanduser() if output else Path(results).expanduser() / "leaderboard"
    own = Path(__file__).resolve().parents[2] / "leaderboard"  # a source checkout's tracked folder
    if (own / "reference").is_dir() and out.resolve() == own.resolve() \
            and Path(results).expanduser().resolve() != (own / "results").resolve():
        raise ConfigError(
            f"'{out}' is recbench's own published leaderboard (made from {own / 'results'}); "
            f"write your report elsewhere, e.g. --output {Path(results) / 'leaderboard'} (the default)")
    return out


def run(args: argparse.Namespace) -> int:
    from .. import report as rep

    formats = rep._parse_formats(args.formats)
    out = output_dir(args.results, args.output)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", rep.ResultsWarning)
            reports = rep.build_reports(args.results, args.metric,
                                        include_reference=not args.no_reference,
                                        include_random=not args.no_random,
                                        all_metrics="html" in formats)
            written = [p for report in reports for p in rep._write(report, out, formats)]
    finally:  # name skipped files even when nothing could be reported
        for w in caught:
            if issubclass(w.category, rep.ResultsWarning):
                print(f"recbench: warning: {w.message}", file=sys.stderr)
            else:  # pragma: no cover - unrelated library warnings
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for report in reports:
        print(rep.render_markdown(report, output_dir=out))
    print(f"Wrote {len(written)} file{'s' if len(written) != 1 else ''}:")
    for path in written:
        print(f"  {path}")
    flagged = sum(1 for report in reports for t in report.headline for r in t.rows if r.flags)
    skipped = reports[0].skipped
    if skipped:
        print(f"{len(skipped)} results file(s) skipped (see the warnings above).", file=sys.stderr)
    if flagged:
        print(f"{flagged} row(s) flagged for mixed run metadata (see Flags).", file=sys.stderr)
    if args.strict and (skipped or flagged):
        return 1
    return 0
