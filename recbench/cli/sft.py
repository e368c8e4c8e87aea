"""`recbench sft`: LoRA fine-tuning on the scenarios' fine-tuning sets (PROTOCOL §7).

The options come from the SFTConfig fields (one list, in recbench/sft/config.py) plus the
model-loading options shared with `zero-shot`. Multi-GPU: `accelerate launch -m recbench sft ...`.
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
    from ..settings import choices_of, cli_type, flag_name
    from ..sft import config as sft_config
    from ..sft.config import cli_fields

    SFTConfig = sft_config.SFTConfig
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
    add_model_options(p)
    p.add_argument("--train", required=True, help="training scenarios, comma-separated (e.g. mind,goodreads)")
    p.add_argument("--valid", help="validation scenarios (default: the training ones)")
    groups = {"data": p.add_argument_group("data and prompts"), "LoRA": p.add_argument_group("LoRA"),
              "training": p.add_argument_group("training")}
    g_data, g_opt = groups["data"], groups["training"]
    for f in cli_fields():  # each SFTConfig field's declaration (recbench.settings.setting)
        meta = f.metadata
        kw = {"dest": f.name, "help": meta["help"]}
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw["default"] = f.default
            kw["type"] = cli_type(SFTConfig, f)
            if choices_of(f):
                kw["choices"] = choices_of(f)
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
        groups[meta.get("group") or "training"].add_argument(flag_name(f), **kw)
    chat = g_data.add_mutually_exclusive_group()
    chat.add_argument("--chat-template", dest="chat_template", action="store_true", default=None,
                      help="wrap prompts in the model's chat template (default: the alias's choice, as zero-shot; "
                      "evaluate with the same setting)")
    chat.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="send raw prompts")
    g_opt.add_argument("--no-resume", action="store_true", help="discard an interrupted run of this config")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_custom_options(p)
    p.set_defaults(func=run)


def config_from_args(args):
    """argparse namespace -> SFTConfig."""
    from ..sft.config import SFTConfig, cli_fields

    from .custom_options import custom_options, custom_raw_dir

    values = {f.name: getattr(args, f.name) for f in cli_fields()}
    custom = custom_options(args)
    if custom:  # the custom scenario's tables, named on the command line
        values["scenario_options"] = {"custom": custom}
        values["raw_dir"] = custom_raw_dir(custom, values.get("raw_dir"))
    return SFTConfig(
        model=args.model, train=args.train, valid=args.valid, batch_size=args.batch_size,
        max_length=args.max_length, chat_template=args.chat_template, quantization=args.quantization, dtype=args.dtype, device=args.device,
        device_map=args.device_map, trust_remote_code=args.trust_remote_code, revision=args.revision,
        resume=not args.no_resume, progress=not args.quiet, **values,
    )


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
