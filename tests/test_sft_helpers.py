"""Tiny local models for the SFT tests: a byte-level BPE tokenizer trained on the demo
catalog and the prompt templates, a 2-layer random Llama (generative) and a 2-layer random
BERT (discriminative). Built once per session in a temporary folder; no network."""

from __future__ import annotations

from pathlib import Path

import pytest

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def _corpus():
    from recbench.prompts import templates_root
    from recbench.scenarios.demo import item_text, read_catalog

    texts = [item_text(r) for r in read_catalog()]
    for path in templates_root().rglob("*.txt"):
        texts.append(path.read_text(encoding="utf-8"))
    texts += ["Answer (Yes/No): Yes", "Answer (Yes/No): No"] * 50
    texts += [f"({i}) " for i in range(1, 30)]
    return texts


def build_tokenizer(folder: Path, vocab_size: int = 3000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=512)
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                     num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=512,
                     pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama"))


@pytest.fixture(scope="session")
def other_llama(tmp_path_factory) -> str:
    """Another tiny Llama with a different width: an adapter of one does not fit the other."""
    return str(build_tiny_llama(tmp_path_factory.mktemp("other-llama") / "other-llama", hidden=48))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert"))


# -- SFTConfig declared once (recbench.settings) ----------------------------------------------
def _sft_configs():
    from recbench.sft.config import SFTConfig

    return [SFTConfig(model="smollm2-135m", train="demo"),
            SFTConfig(model="minilm", train="demo,mind", scheme="discriminative", loss="cosine", lora_r=8, lr=3e-4,
                      batch_size=4, grad_accum=2, target_modules="q,v"),
            SFTConfig(model="x", train="demo", max_steps=5, eval_every=2, patience=0, packing="off", data_seed=7)]


def test_sft_config_hashes_are_pinned():
    """Adapter folders are named by these hashes: moving the declarations onto
    recbench.settings (or validating) must not rename anyone's trained adapters."""
    from recbench.sft.config import config_hash

    cfgs = _sft_configs()
    for c in cfgs:
        c.validate()
    assert [config_hash(c.hashed()) for c in cfgs] == ["1c08529a", "01b02f77", "5f1f3654"]


@pytest.mark.parametrize("flag, value, words", [
    ("--lora-r", "0", "--lora-r (lora_r) must be >= 1"),
    ("--lr", "0", "--lr (lr) must be > 0"),
    ("--lora-dropout", "1.0", "--lora-dropout must be in [0, 1)"),
    ("--patience", "-1", "--patience (patience) must be >= 0"),
    ("--max-steps", "0", "--max-steps (max_steps) must be >= 1"),
])
def test_bad_sft_setting_is_one_line_from_the_cli_and_from_python(flag, value, words, capsys):
    from recbench.cli import main
    from recbench.errors import ConfigError
    from recbench.sft.config import SFTConfig

    assert main(["sft", "--model", "dummy", "--train", "demo", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recbench: error:") and words in err and "\n" not in err
    name = flag[2:].replace("-", "_")
    kind = float if name in ("lr", "lora_dropout") else int
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SFTConfig(model="dummy", train="demo", **{name: kind(value)}).validate()


def test_a_new_sft_field_becomes_a_cli_flag_with_its_group(monkeypatch):
    """Declaring a field is all it takes: the flag, its help, its group and its bound follow."""
    import argparse
    import dataclasses

    import recbench.sft.config as sft_config
    from recbench.cli import sft as sft_cli
    from recbench.settings import setting

    base = sft_config.SFTConfig
    extra = dataclasses.make_dataclass(
        "SFTConfig", [("warmup_steps_x", int, setting(3, "a throw-away knob", minimum=1, group="LoRA"))], bases=(base,))
    monkeypatch.setattr(sft_config, "SFTConfig", extra)
    parser = argparse.ArgumentParser()
    sft_cli.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["sft"]  # type: ignore[union-attr]
    lora = next(g for g in sub._action_groups if g.title == "LoRA")
    assert any("--warmup-steps-x" in a.option_strings for a in lora._group_actions)
    args = parser.parse_args(["sft", "--model", "m", "--train", "demo", "--warmup-steps-x", "5"])
    assert args.warmup_steps_x == 5
