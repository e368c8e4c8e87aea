"""Conventional baselines beside LLM rows on one scenario, in one run.

Runs every conventional model (and the LLM-for-RS variant din+minilm) and the LLM rows
(dummy, minilm) on the same test samples of one scenario (default: the demo), through the
same runner, into a throw-away results folder, and prints per row: test gauc, valid gauc,
training seconds and scoring throughput (test pairs per second, training excluded; for the
LLM rows, the runner's whole scoring time with a cold score cache). Then the report's
"LLMs vs conventional" table for that folder.

    python benchmarks/baselines.py [--scenario demo] [--models random,popularity,...] [--epochs 20]
    python benchmarks/baselines.py --task seqrec      # next-item ranking: NDCG@10, SASRec and GRU4Rec too

Timings on a shared machine are noisy; compare ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASELINES = "random,popularity,itemknn,din,dcnv2,deepfm,bst,din+minilm"
SEQ_BASELINES = "random,popularity,itemknn,din,sasrec,gru4rec,din+minilm"
LLMS = "dummy,minilm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--raw-dir", default=None)
    ap.add_argument("--task", default="ctr", choices=["ctr", "seqrec"])
    ap.add_argument("--models", default=None,
                    help=f"conventional models (default: {BASELINES}; seqrec: {SEQ_BASELINES})")
    ap.add_argument("--llms", default=LLMS, help=f"LLM rows (default: {LLMS})")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--output", default=None, help="results folder (default: a temporary one)")
    args = ap.parse_args()
    models = args.models or (SEQ_BASELINES if args.task == "seqrec" else BASELINES)

    from recbench.evaluate import RecBench
    from recbench.report import build_report
    from recbench.report.versus import build_versus, render_versus_markdown

    out = args.output or tempfile.mkdtemp(prefix="recbench-baselines-")
    cache = tempfile.mkdtemp(prefix="recbench-bench-cache-")  # cold score cache: LLM rows really score
    common = dict(scenarios=args.scenario, raw_dir=args.raw_dir, output_dir=out, progress=False, cache_dir=cache,
                  task=args.task)
    from recbench.tasks import get_task

    metric = get_task(args.task).headline
    rows = []
    for model in [m for m in args.llms.split(",") if m]:
        t0 = time.perf_counter()
        bench = RecBench(model=model, **common)
        table = bench.evaluate()
        run = bench.runs[0]
        score_s = run.meta["timings"]["score_s"]
        rows.append((f"{model} ({bench.scheme.name}, LLM row)", table.loc[0, metric], None, None,
                     run.metrics["n"] / score_s if score_s else None, time.perf_counter() - t0))
    for model in [m for m in models.split(",") if m]:
        t0 = time.perf_counter()
        bench = RecBench(model=model, baseline={"epochs": args.epochs}, **common)
        table = bench.evaluate()
        base = bench.runs[0].meta["baseline"]
        rows.append((f"{model} (baseline)", table.loc[0, metric], (base.get("fit") or {}).get("valid_gauc"),
                     base.get("train_s"), base.get("pairs_per_s"), time.perf_counter() - t0))
        print(f"done: {model}", file=sys.stderr, flush=True)

    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    print(f"scenario: {args.scenario}  task: {args.task}  results: {out}")
    print(f"{'row':<36} {'test ' + metric:>12} {'valid gauc':>10} {'train s':>8} {'pairs/s':>10} {'wall s':>7}")
    for name, gauc, valid, train_s, pps, wall in rows:
        print(f"{name:<36} {gauc:>12.4f} {num(valid, '.4f'):>10} {num(train_s, '.1f'):>8} {num(pps, ',.0f'):>10} "
              f"{wall:>7.1f}")
    report = build_report(out, include_reference=False, task=args.task)
    print()
    print(render_versus_markdown(build_versus(report)))


if __name__ == "__main__":
    main()
