"""`recbench sft`: LoRA fine-tuning on the scenarios' fine-tuning sets (PROTOCOL §7).

The options are the SFTConfig fields (declared once in recbench/sft/config.py, built with
`settings.add_arguments`) plus the model-loading options shared with `zero-shot`. Multi-GPU: `accelerate launch -m recbench sft ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EPILOG = """examples:
  recbench sft --model opt-large --train mind,goodreads --valid mind
  recbench sft --model smollm2-135m --train demo --max-length 128 --epochs 1
  accelerate launch --num_processes 4 -m recbench sft --model llama-3 --train mind --quantization 4bit
then evaluate the adapter with the zero-shot machinery:
  recbench zero-shot --model opt-large --scenario mind --adapter results/adapters/<name>
"""


def register(sub) -> None:
    from ..settings import add_arguments
    from ..sft import config as sft_config
    from .custom_options import add_custom_options
    from .zero_shot import add_model_options

    p = sub.add_parser(
        "sft",
        help="fine-tune a model with LoRA on scenarios' fine-tuning sets",
        description="Supervised fine-tuning with LoRA (PROTOCOL §7): train on the fine-tuning sets of --train "
        "scenarios (joined), validate on the valid users of --valid scenarios (gauc, averaged), keep the best "
        "adapter in <output>/adapters/<model>-<scheme>-<confighash>/ (peft format + recbench_sft.json). "
        "Rerunning a finished config reports it; an interrupted one resumes from its last checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)  # --model and RunConfig's model-loading flags (SFTConfig shares those fields)
    p.add_argument("--train", required=True, help="training scenarios, comma-separated (e.g. mind,goodreads)")
    p.add_argument("--valid", help="validation scenarios (default: the training ones)")
    add_arguments(p, sft_config.SFTConfig, groups=sft_config.GROUPS)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_custom_options(p)
    p.set_defaults(func=run)


def config_from_args(args):
    """argparse namespace -> SFTConfig (a flag not given keeps the field's default)."""
    from ..settings import from_namespace
    from ..sft import config as sft_config
    from .custom_options import custom_options, custom_raw_dir

    overrides = {}
    custom = custom_options(args)
    if custom:  # the custom scenario's tables, named on the command line
        overrides["scenario_options"] = {"custom": custom}
        overrides["raw_dir"] = custom_raw_dir(custom, getattr(args, "raw_dir", None))
    return from_namespace(sft_config.SFTConfig, args, **overrides)


def run(args) -> int:
    from ..sft.train import finetune

    cfg = config_from_args(args)
    result = finetune(cfg, progress=cfg.progress)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return 0  # under accelerate launch / torchrun only the main process reports
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0
    status = "found (this config was trained before; --overwrite retrains)" if result.reused else "trained"
    print(f"adapter: {result.adapter_path}  [{status}]")

    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    print(f"valid gauc: untuned {fmt(result.zero_shot_valid_gauc)} -> tuned {fmt(result.best_valid_gauc)} "
          f"(best at step {result.best_step}; stopped: {result.stopped})")
    if result.beat_untuned is False:
        print("tuning did not beat the untuned model: the untuned model is the better one (beat_untuned: false)")
    if result.train_samples_per_s:
        print(f"training speed: {result.train_samples_per_s:.2f} samples/s")
    meta_cmd = None
    try:
        from pathlib import Path

        from ..sft.adapter import META_FILE

        meta_cmd = json.loads((Path(result.adapter_path) / META_FILE).read_text(encoding="utf-8")).get("evaluate_with")
    except (OSError, ValueError):
        pass
    if meta_cmd:
        print(f"evaluate: {meta_cmd}")
    sys.stdout.flush()
    return 0
