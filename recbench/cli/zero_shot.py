"""`recbench zero-shot`: score scenarios with one model under one task and scheme.

Its options are the fields of RunConfig (recbench/config.py), declared once there with their
help, type, choices and defaults; this module adds only --model and --scenario.
"""

from __future__ import annotations

import argparse

from ..config import GROUPS, RunConfig
from ..settings import add_arguments, from_namespace
from .custom_options import add_custom_options, custom_options, custom_raw_dir

MODEL_HELP = "alias (see `recbench models`), HF id, local folder, .gguf file, openai:<model>, or dummy"
MODEL_LOADING = ("revision", "device", "dtype", "quantization", "device_map", "max_length", "trust_remote_code",
                 "batch_size")

EPILOG = """examples:
  recbench zero-shot --model smollm2-135m                      # demo scenario, generative
  recbench zero-shot --model minilm                            # the model's only scheme: discriminative
  recbench zero-shot --model llama-3 --raw-dir ~/recdata --scenario all
  recbench zero-shot --model openai:gpt-3.5-turbo --scenario mind --dry-run
"""


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model and the model-loading settings (shared with `recbench sft`)."""
    g = p.add_argument_group("model loading")
    g.add_argument("--model", required=True, help=MODEL_HELP)
    add_arguments(g, RunConfig, include=MODEL_LOADING)


def register(sub) -> None:
    p = sub.add_parser(
        "zero-shot",
        help="score scenarios with a model (zero-shot) and write results",
        description="Score every test sample of the chosen scenarios with one model and write metrics to "
        "<output>/<model>/<scheme>/<scenario>.json (other tasks: <output>/<model>/<scheme>/<task>/). "
        "With no --scenario and no raw data, runs the bundled demo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--scenario", help="comma-separated scenario names, or 'all' (default: those found under "
                   "--raw-dir, else demo)")
    add_arguments(p, RunConfig, groups=GROUPS)
    add_custom_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..evaluate import RecBench

    cfg = from_namespace(RunConfig, args)
    custom = custom_options(args)
    if custom:  # the custom scenario's tables, named on the command line
        cfg.scenario_options = {**cfg.scenario_options, "custom": custom}
        cfg.raw_dir = custom_raw_dir(custom, cfg.raw_dir)
        if args.scenario is None:
            args.scenario = "custom"
    settings = {k: v for k, v in vars(cfg).items() if k not in ("scheme", "limit", "output_dir", "log_samples",
                                                                  "adapter")}
    bench = RecBench(model=args.model, scheme=cfg.scheme, scenarios=args.scenario, limit=cfg.limit,
                     output_dir=cfg.output_dir, log_samples=cfg.log_samples, adapter=cfg.adapter, **settings)
    table = bench.evaluate()
    if bench.config.dry_run or bench.shard.sharded_only or not bench.shard.is_main:
        return 0  # a --shard job or a rank other than 0: rank 0 / the merge run reports
    if table.empty:
        raise ConfigError("nothing was scored")
    cols = [c for c in ["scenario", "n", *bench.task.table_columns] if c in table.columns]
    print(f"model: {args.model}  task: {bench.task.name}  scheme: {bench.scheme.name}")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for r in bench.runs:
        t = r.meta["timings"]
        note = "; the model's weights were not loaded" if t.get("weights_loaded") is False else ""
        print(f"{r.scenario}: {t['requests']} requests, {t['cached']} from the cache, {t['computed']} computed{note}")
        print(f"results: {r.path}")
    return 0
