"""SFTConfig declared once (recbench.settings): `recbench sft`'s flags, validation and the
adapter folder names all derive from the declarations, and moving them there renamed nothing."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import fields

import pytest

from recbench.cli import build_parser, main
from recbench.cli.zero_shot import MODEL_LOADING
from recbench.config import RunConfig
from recbench.errors import ConfigError
from recbench.settings import flag_name, setting
from recbench.sft import config as sft_config
from recbench.sft.config import SFTConfig, config_hash

# -- hashes pinned (computed on the code before the move: hand-written _opt fields and CLI) --

PY_CONFIGS = [
    (dict(model="smollm2-135m", train="demo"), "1c08529a"),
    (dict(model="minilm", train="demo,mind", scheme="discriminative", loss="cosine", lora_r=8, lr=3e-4,
          batch_size=4, grad_accum=2, target_modules="q,v"), "01b02f77"),
    (dict(model="x", train="demo", max_steps=5, eval_every=2, patience=0, packing="off", data_seed=7), "5f1f3654"),
    # lora_alpha given as an int stays an int (128 and 128.0 are different JSON)
    (dict(model="x", train="demo", lora_alpha=64, max_length=256, template="plain", chat_template=False,
          scheme="discriminative", loss="bce", temperature=0.1), "34324dee"),
    (dict(model="x", train="demo", lora_alpha=64.0, quantization="4bit", dtype="bfloat16", revision="main",
          scheme="discriminative", loss="contrastive", margin=0.3,
          scenario_options={"custom": {"items": "i.csv"}}), "7dee68ff"),
    (dict(model="x", train="mind", valid="demo", weight_decay=0.01, warmup_ratio=0.1, scheduler="constant",
          max_grad_norm=0, lora_layers=2, num_finetune=100, max_train_samples=50, max_valid_samples=20, seed=3),
     "e7b35326"),
]

CLI_CONFIGS = [
    (["--model", "smollm2-135m", "--train", "demo"], "1c08529a"),
    (["--model", "opt-large", "--train", "mind,goodreads", "--valid", "mind", "--lora-r", "8", "--lora-alpha", "16",
      "--lora-dropout", "0.05", "--target-modules", "q_proj,k_proj", "--lr", "3e-4", "--batch-size", "4",
      "--grad-accum", "8", "--epochs", "5", "--eval-every", "100", "--patience", "3", "--seed", "7",
      "--gradient-checkpointing", "--quantization", "4bit", "--dtype", "bfloat16", "--output", "out", "--overwrite",
      "--no-resume", "--quiet", "--max-length", "512", "--lora-layers", "4", "--data-seed", "2024",
      "--num-finetune", "1000", "--loss", "bce", "--save-every", "10"], "29107dba"),
    (["--model", "x", "--train", "demo", "--scheme", "discriminative", "--loss", "contrastive", "--margin", "0.25",
      "--temperature", "0.1", "--weight-decay", "0.01", "--warmup-ratio", "0.1", "--scheduler", "constant",
      "--max-grad-norm", "0.5", "--no-chat-template", "--template", "plain", "--revision", "abc",
      "--interactions", "/tmp/x/inter.csv", "--items", "/tmp/x/items.csv", "--strict"], "5b7b1089"),
    # --lora-alpha 128 parses to 128.0: not the default's hash (as before)
    (["--model", "x", "--train", "demo", "--chat-template", "--lora-alpha", "128", "--max-steps", "9",
      "--trust-remote-code", "--device", "cpu", "--batch-size", "auto", "--eval-batch-size", "16"], "4e9f6b0a"),
]

PUBLIC_KEYS = sorted([
    "model", "train", "valid", "scheme", "output_dir", "raw_dir", "data_seed", "num_finetune", "max_train_samples",
    "max_valid_samples", "template", "chat_template", "max_length", "lora_r", "lora_alpha", "lora_dropout",
    "target_modules", "lora_layers", "lr", "weight_decay", "batch_size", "grad_accum", "epochs", "max_steps",
    "warmup_ratio", "scheduler", "eval_every", "patience", "seed", "max_grad_norm", "eval_at_start", "loss",
    "temperature", "margin", "packing", "gradient_checkpointing", "quantization", "dtype", "device", "device_map",
    "trust_remote_code", "revision", "eval_batch_size", "save_every", "overwrite", "resume", "progress",
    "use_cache", "strict", "scenario_options"])


def _cli_config(argv):
    from recbench.cli.sft import config_from_args

    return config_from_args(build_parser().parse_args(["sft", *argv]))


def test_sft_config_hashes_are_pinned():
    """Adapter folders are named by these hashes: moving the declarations onto
    recbench.settings (or validating) must not rename anyone's trained adapters."""
    for kw, digest in PY_CONFIGS:
        c = SFTConfig(**kw).validate()
        assert config_hash(c.hashed()) == digest, kw
        assert sorted(c.public()) == PUBLIC_KEYS
    for argv, digest in CLI_CONFIGS:
        c = _cli_config(argv).validate()
        assert config_hash(c.hashed()) == digest, argv
        assert sorted(c.public()) == PUBLIC_KEYS


def test_adapter_folder_names_are_pinned(monkeypatch):
    """The folder `finetune` trains into (config hash + base model + template + data + dtype),
    reached up to the trainer, which is replaced by a stub: no weights are loaded."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from recbench.sft import train

    seen = []

    class Stub:
        def __init__(self, cfg, spec, template, scenarios, acc, final, *rest):
            seen.append(final.name)

        def run(self):
            return None

    monkeypatch.setattr(train, "GenerativeTrainer", Stub)
    monkeypatch.setattr(train, "DiscriminativeTrainer", Stub)
    runs = [dict(model="smollm2-135m"),
            dict(model="smollm2-135m", lora_alpha=64, lr=3e-4, max_length=256, chat_template=False,
                 max_train_samples=50),
            dict(model="minilm", scheme="discriminative", loss="cosine", target_modules="query,value", batch_size=4,
                 grad_accum=2)]
    for kw in runs:
        train.finetune(SFTConfig(train="demo", output_dir="unused", progress=False, device="cpu", **kw))
    assert seen == ["smollm2-135m-generative-4a3bb108", "smollm2-135m-generative-2979b0ba",
                    "minilm-discriminative-00611f58"]


# -- one line naming the flag, from the CLI and from Python ---------------------------------


@pytest.mark.parametrize("flag, value, words", [
    ("--lora-r", "0", "--lora-r (lora_r) must be >= 1"),
    ("--lr", "0", "--lr (lr) must be > 0"),
    ("--lora-dropout", "1.0", "--lora-dropout must be in [0, 1)"),
    ("--lora-dropout", "-0.1", "--lora-dropout (lora_dropout) must be >= 0"),
    ("--lora-alpha", "0", "--lora-alpha (lora_alpha) must be > 0"),
    ("--warmup-ratio", "1", "--warmup-ratio must be in [0, 1)"),
    ("--weight-decay", "-1", "--weight-decay (weight_decay) must be >= 0"),
    ("--patience", "-1", "--patience (patience) must be >= 0"),
    ("--max-steps", "0", "--max-steps (max_steps) must be >= 1"),
    ("--temperature", "0", "--temperature (temperature) must be > 0"),
    ("--max-length", "4", "--max-length (max_length) must be >= 8"),  # RunConfig's bound, declared once
])
def test_bad_sft_setting_is_one_line_from_the_cli_and_from_python(flag, value, words, capsys):
    assert main(["sft", "--model", "dummy", "--train", "demo", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recbench: error:") and words in err and "\n" not in err
    name = flag[2:].replace("-", "_")
    kind = int if isinstance(getattr(SFTConfig(), name), int) or name == "max_length" else float
    with pytest.raises(ConfigError, match=re.escape(words)) as exc:
        SFTConfig(model="dummy", train="demo", **{name: kind(value)}).validate()
    assert "\n" not in str(exc.value)


def test_text_values_from_python_are_parsed_and_checked():
    c = SFTConfig(model="m", train="demo", lora_r="8", lr="3e-4", batch_size="4").validate()
    assert (c.lora_r, c.lr, c.batch_size) == (8, 3e-4, 4)
    with pytest.raises(ConfigError, match=re.escape("--lora-r (lora_r): ")):
        SFTConfig(model="m", train="demo", lora_r="eight").validate()
    with pytest.raises(ConfigError, match="--dtype"):  # the choices of zero-shot's --dtype
        SFTConfig(model="m", train="demo", dtype="float8").validate()


# -- the flags are the declarations ------------------------------------------------------


def _sft_parser(parser=None):
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["sft"]


def test_every_cli_setting_is_a_flag_and_shared_ones_are_runconfigs():
    p = _sft_parser()
    by_flag = {opt: a for a in p._actions for opt in a.option_strings}
    run = {f.name: f for f in fields(RunConfig)}
    for f in fields(SFTConfig):
        if f.metadata.get("cli"):
            action = by_flag[f.metadata.get("negate") or flag_name(f)]
            assert action.dest == f.name and f.metadata["help"] in action.help
        elif f.name in MODEL_LOADING:
            # model-loading settings: zero-shot's flags, read back into SFTConfig by name
            assert by_flag[flag_name(run[f.name])].dest == f.name
    for name in ("max_length", "dtype", "quantization", "raw_dir", "strict", "chat_template"):
        mine = SFTConfig.__dataclass_fields__[name].metadata
        theirs = run[name].metadata
        assert (mine["type"], mine["choices"], mine["minimum"]) == (theirs["type"], theirs["choices"],
                                                                     theirs["minimum"])
        assert mine["help"].startswith(theirs["help"])
    assert SFTConfig().data_seed == RunConfig().seed
    titles = [g.title for g in p._action_groups]
    assert titles.index("model loading") < titles.index("data and prompts") < titles.index("LoRA") \
        < titles.index("training") < titles.index("custom scenario")


def test_flags_not_given_keep_the_declared_defaults():
    c = _cli_config(["--model", "m", "--train", "demo"])
    assert c == SFTConfig(model="m", train="demo")
    c = _cli_config(["--model", "m", "--train", "demo", "--quiet", "--no-resume", "--no-chat-template"])
    assert (c.progress, c.resume, c.chat_template) == (False, False, False)


def test_a_new_sft_field_becomes_a_cli_flag_with_its_group(monkeypatch, capsys):
    """Declaring a field is all it takes: the flag, its help, its group, its bound and its
    way into the config follow."""
    from recbench.cli import sft as sft_cli

    extra = dataclasses.make_dataclass(
        "SFTConfig", [("zz_probe", int, setting(3, "a throw-away knob", minimum=1, group="LoRA"))],
        bases=(SFTConfig,))
    monkeypatch.setattr(sft_config, "SFTConfig", extra)
    parser = argparse.ArgumentParser()
    sft_cli.register(parser.add_subparsers())
    sub = _sft_parser(parser)
    lora = next(g for g in sub._action_groups if g.title == "LoRA")
    [action] = [a for a in lora._group_actions if "--zz-probe" in a.option_strings]
    assert action.help == "a throw-away knob (default: 3)"
    args = parser.parse_args(["sft", "--model", "m", "--train", "demo", "--zz-probe", "5"])
    cfg = sft_cli.config_from_args(args).validate()
    assert cfg.zz_probe == 5 and cfg.hashed()["zz_probe"] == 5 and cfg.public()["zz_probe"] == 5
    assert sft_cli.config_from_args(parser.parse_args(["sft", "--model", "m", "--train", "demo"])).zz_probe == 3
    assert main(["sft", "--model", "dummy", "--train", "demo", "--zz-probe", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recbench: error:") and "--zz-probe (zz_probe) must be >= 1" in err
