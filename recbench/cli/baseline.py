"""`recbench baseline`: train and score a conventional recommender on the LLMs' samples.

Its options are RunConfig's data, evaluation and output settings plus BaselineConfig's
training settings (recbench/baselines/config.py), each declared once; this module adds only
--model, --item-embeddings and --scenario.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..baselines import BaselineConfig, baseline_names
from ..config import GROUPS, RunConfig
from ..settings import add_arguments, from_namespace

RUN_SETTINGS = ("task", "history_len", "candidates", "limit", "bootstrap", "raw_dir", "seed", "num_test", "strict", "device", "output_dir",
                "log_samples", "cache_dir", "use_cache", "progress")

EPILOG = """examples:
  recbench baseline --model popularity                       # demo scenario, built in, seconds
  recbench baseline --model itemknn --scenario movielens --raw-dir ~/recdata
  recbench baseline --model din                              # pip install 'recbench[baselines]'
  recbench baseline --model din --item-embeddings minilm     # LLM-for-RS: frozen MiniLM item vectors
  recbench baseline --model sasrec --task seqrec             # next-item ranking (100 candidates per user)
  recbench baseline --model sasrec --task seqrec --candidates all   # rank the whole catalogue
  recbench report                                            # baselines beside the LLM rows
"""


def register(sub) -> None:
    p = sub.add_parser(
        "baseline",
        help="train and score a conventional recommender (random, popularity, itemknn, DIN, DCNv2, DeepFM, BST, "
        "SASRec, GRU4Rec)",
        description="Train a conventional model on each scenario's fine-tuning split (train users; early "
        "stopping on its valid users), score exactly the test samples the LLMs see and write the same metrics "
        "to <output>/<model>/<scheme>/<scenario>.json (pipeline: baseline). The trained model is kept in "
        "<output>/baselines/<model>-<scenario>-<hash>/; rerunning the same settings reuses it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="NAME",
                   help=f"one of {', '.join(baseline_names())}")
    p.add_argument("--item-embeddings", metavar="MODEL",
                   help="LLM-for-RS: feed the deep model frozen item-text vectors from this embedding model "
                   "(minilm, e5, openai:<model>, an HF id); results as <model>+<MODEL>")
    p.add_argument("--scenario", help="comma-separated scenario names, or 'all' (default: those found under "
                   "--raw-dir, else demo)")
    add_arguments(p, RunConfig, include=RUN_SETTINGS, groups=GROUPS)
    add_arguments(p, BaselineConfig, groups={"training": "training (deep models)"})
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..evaluate import RecBench

    if args.model.lower().split("+", 1)[0] not in baseline_names():
        raise ConfigError(f"'{args.model}' is not a conventional model; choose from {', '.join(baseline_names())} "
                          "(LLMs: recbench zero-shot)")
    model = args.model + (f"+{args.item_embeddings}" if args.item_embeddings else "")
    training = from_namespace(BaselineConfig, args)
    cfg = from_namespace(RunConfig, args)
    settings = {f.name: getattr(cfg, f.name) for f in fields(RunConfig)
                if f.name in RUN_SETTINGS and f.name not in ("limit", "output_dir", "log_samples")}
    bench = RecBench(model=model, scenarios=args.scenario, limit=cfg.limit, output_dir=cfg.output_dir,
                     log_samples=cfg.log_samples, baseline=training.public(), **settings)
    table = bench.evaluate()
    if table.empty:
        raise ConfigError("nothing was scored")
    cols = [c for c in ["scenario", "n", *bench.task.table_columns] if c in table.columns]
    print(f"model: {model}  task: {bench.task.name}  pipeline: baseline")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for r in bench.runs:
        b = r.meta["baseline"]
        fit = b.get("fit") or {}
        valid = fit.get("valid_gauc")
        verb = "trained" if fit.get("epochs") else "fitted"  # the counting models have no epochs
        how = "reused" if b.get("reused") else f"{verb} in {b.get('train_s')}s"
        trained_on = (f"{b['train_pairs']} train pairs" if b.get("train_pairs") is not None
                      else f"{b.get('train_sequences')} train sequences")
        print(f"{r.scenario}: model {how} ({trained_on}"
              + (f", {fit.get('epochs')} epochs, best {fit.get('best_epoch')}" if fit.get("epochs") else "")
              + (f", valid gauc {valid:.4f}" if isinstance(valid, float) else "") + f"): {b['trained_model']}")
        print(f"{r.scenario}: scored {r.meta['timings']['requests']} pairs at {b['pairs_per_s']} pairs/s")
        print(f"results: {r.path}")
    return 0
