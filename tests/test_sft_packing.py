"""Prefix packing for generative SFT (recbench/sft/packing.py): one user's prompt prefix runs
once with all its candidate suffixes behind it. The loss and its gradients must equal the
plain computation, unsupported models must fall back, and the adapter must serve the
unchanged zero-shot scorer. Also: the untuned baseline (beat_untuned), peak memory in the
run record and progress bars on validation passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_sft_helpers import tiny_llama  # noqa: F401  (fixture)

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from recbench.sft import SFTConfig  # noqa: E402
from recbench.sft import packing  # noqa: E402

FAST = dict(max_length=96, max_train_samples=48, max_valid_samples=40, batch_size=8, grad_accum=1, epochs=1,
            lr=1e-3, warmup_ratio=0.0)


def cfg_for(model, out, **kw):
    args = dict(FAST)
    args.update(kw)
    return SFTConfig(model=str(model), train=["demo"], output_dir=str(out), progress=args.pop("progress", False),
                     **args)


def make_trainer(model, tmp_path, **kw):
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.sft.data import load_sft_scenarios
    from recbench.sft.train import GenerativeTrainer, make_accelerator

    cfg = cfg_for(model, tmp_path, **kw).validate()
    trainer = GenerativeTrainer(cfg, resolve_model(cfg.model), Template.load("generative"),
                                load_sft_scenarios(cfg, progress=False), make_accelerator(cfg), tmp_path / "run",
                                tmp_path / "run.partial", {}, "test", progress=False)
    trainer.setup()
    return trainer


# -- the pure packing functions ---------------------------------------------------------------


def test_packs_split_under_the_token_budget_and_share_the_prefix():
    ids = [[1, 2, 3, 10, 11], [1, 2, 3, 12], [1, 2, 3, 13, 14, 15], [7, 8, 20], [5, 6, 7]]
    prefix_len = [3, 3, 3, 2, 0]
    groups = [0, 0, 0, 1, 2]
    packs = packing.make_packs(range(5), ids, prefix_len, groups, max_tokens=7)
    # user 0: prefix (3) + 2 + 1 = 6 fits, + 3 would be 9 > 7 -> a second pack with the prefix again
    assert [(p.prefix, p.samples) for p in packs] == [([1, 2, 3], [0, 1]), ([1, 2, 3], [2]), ([7, 8], [3]),
                                                      ([], [4])]
    assert packs[0].suffixes == [[10, 11], [12]] and packs[0].tokens == 6
    # short packs share a row: 6 | 6 | 3 + 3
    rows = packing.fill_rows(packs, 7)
    assert [[p.samples for p in row] for row in rows] == [[[0, 1]], [[2]], [[3], [4]]]
    # forward passes of whole rows under (rows x widest row) <= budget
    chunks = packing.plan_chunks(range(5), ids, prefix_len, groups, max_tokens=7, budget=12)
    assert chunks == [[0, 1, 2], [3, 4]]
    assert [[p.samples for p in row] for row in packing.pack_rows(chunks[1], ids, prefix_len, groups, 7)] == \
        [[[3], [4]]]


def test_block_mask_and_positions():
    row0 = [packing.Pack([1, 2], [0, 1], [[3, 4], [5]]), packing.Pack([], [2], [[9]])]
    row1 = [packing.Pack([7], [3], [[8]])]
    b = packing.packed_inputs(torch, [row0, row1], pad_id=0, dtype=torch.float32, device="cpu")
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5, 9], [7, 8, 0, 0, 0, 0]]
    # each suffix continues from its prefix's length; every pack restarts at 0
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 2, 0], [0, 1, 0, 0, 0, 0]]
    allowed = (b.attention_mask[:, 0] == 0).int().tolist()
    assert allowed[0] == [[1, 0, 0, 0, 0, 0],   # prefix: causal
                          [1, 1, 0, 0, 0, 0],
                          [1, 1, 1, 0, 0, 0],   # suffix 1: prefix + itself
                          [1, 1, 1, 1, 0, 0],
                          [1, 1, 0, 0, 1, 0],   # suffix 2: prefix + itself, never suffix 1
                          [0, 0, 0, 0, 0, 1]]   # the next pack (no prefix): itself only
    assert allowed[1][:3] == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]  # padding: itself
    assert (b.rows.tolist(), b.cols.tolist(), b.samples) == ([0, 0, 0, 1], [3, 4, 5, 1], [0, 1, 2, 3])


def test_prefix_length_follows_the_scorer_rule():
    assert packing.prefix_length([1, 2, 3], [1, 2]) == 2
    assert packing.prefix_length([1, 2], [1, 2]) == 0  # nothing after the prefix
    assert packing.prefix_length([1, 9, 3], [1, 2]) == 0  # tokenization differs at the boundary
    assert packing.prefix_length([1, 2, 3], []) == 0


def test_epoch_order_keeps_groups_together():
    from recbench.sft.data import epoch_order

    groups = [0] * 4 + [1] * 3 + [2] * 5
    a = epoch_order(12, 5, 0, 4, groups)
    assert len(a) == 12 and sorted(a) == list(range(12))
    runs = [groups[i] for i in a]
    assert sum(1 for k in range(1, 12) if runs[k] != runs[k - 1]) == 2  # three contiguous blocks
    assert (a == epoch_order(12, 5, 0, 4, groups)).all() and not (a == epoch_order(12, 5, 1, 4, groups)).all()


# -- equality with the plain computation ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_opt(tmp_path_factory):
    from recbench.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-opt") / "tiny-opt", arch="opt"))


@pytest.mark.parametrize("arch", ["llama", "llama-eager", "opt"])
def test_packed_loss_and_gradients_equal_plain(arch, tiny_llama, tiny_opt, tmp_path):
    model = tiny_opt if arch == "opt" else tiny_llama
    tr = make_trainer(model, tmp_path, lora_dropout=0.0, max_train_samples=40, eval_at_start=False)
    if arch.endswith("eager"):
        tr.net.set_attn_implementation("eager")
        tr.packed, tr.pack_keep, tr.pack_note = tr.packing_support()
        assert "'eager'" in tr.pack_note
    assert tr.packed, tr.pack_note
    d = tr.data
    with torch.no_grad():  # LoRA B starts at zero: make the adapter matter
        gen = torch.Generator().manual_seed(0)
        for name, p in tr.peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    tr.net.eval()  # the models' own dropout (OPT) is random; the computation is what is compared
    idx = list(range(7, 32))  # the end of one user, two whole users, the start of another
    d.train_prefix[21] = 0  # one sample whose prompt does not split: packed as an independent sequence
    # small rows and passes: users split over rows, several rows per pass, several passes
    tr.pack_limits = lambda: (sum(len(d.train_ids[i]) for i in range(3)), 2 * tr.max_len * 2)
    rows = packing.pack_rows(idx, d.train_ids, d.train_prefix, d.train_groups, tr.pack_limits()[0])
    chunks = tr.chunks(idx)
    assert len(rows) > 4 and any(p.prefix == [] for row in rows for p in row) and len(chunks) > 1
    assert any(len(row) > 1 for row in rows)  # some rows hold several packs
    assert sorted(i for c in chunks for i in c) == idx

    def run(packed):
        tr.packed = packed
        tr.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for chunk in (tr.chunks(idx) if packed else [idx]):
            loss = tr.loss_on(chunk) * (len(chunk) / len(idx))
            loss.backward()
            total += float(loss.detach())
        return total, [p.grad.detach().clone() for p in tr.params]

    loss_p, grads_p = run(True)
    loss_u, grads_u = run(False)
    assert loss_p == pytest.approx(loss_u, rel=1e-5, abs=1e-6)
    scale = max(float(g.abs().max()) for g in grads_u)
    diff = max(float((a - b).abs().max()) for a, b in zip(grads_p, grads_u))
    assert scale > 1e-4 and diff <= 1e-4 * scale, (diff, scale)


def test_packed_and_plain_training_give_the_same_adapter_and_it_serves_the_scorer(tiny_llama, tmp_path):
    """Same config trained packed and plain (no dropout): the same adapter within float error;
    the unchanged zero-shot scorer reproduces the packed run's validation gauc."""
    from safetensors.torch import load_file

    from recbench.metrics import gauc
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.scorers.hf_common import LoadOptions
    from recbench.scorers.hf_generative import HFGenerativeScorer
    from recbench.sft import finetune
    from recbench.sft.data import build_data, load_sft_scenarios

    kw = dict(lora_dropout=0.0, max_steps=3, eval_every=3, batch_size=4, grad_accum=2)
    packed = finetune(cfg_for(tiny_llama, tmp_path / "p", **kw))
    plain = finetune(cfg_for(tiny_llama, tmp_path / "u", packing="off", **kw))
    assert packed.hash == plain.hash  # packing does not change what is trained
    mp = json.loads((Path(packed.adapter_path) / "recbench_sft.json").read_text())["training"]
    mu = json.loads((Path(plain.adapter_path) / "recbench_sft.json").read_text())["training"]
    assert mp["packing"] is True and "probe matched" in mp["packing_note"]
    assert mu["packing"] is False and "--packing off" in mu["packing_note"]
    a = load_file(str(Path(packed.adapter_path) / "adapter_model.safetensors"))
    b = load_file(str(Path(plain.adapter_path) / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-5), k
    assert packed.best_valid_gauc == pytest.approx(plain.best_valid_gauc, abs=1e-6)

    spec = resolve_model(tiny_llama)
    scorer = HFGenerativeScorer(spec, LoadOptions(max_length=96), adapter=packed.adapter_path)
    cfg = cfg_for(tiny_llama, tmp_path / "p", **kw)
    vs = build_data(cfg, load_sft_scenarios(cfg, progress=False), Template.load("generative"), scorer).valid[0]
    assert gauc(vs.users, vs.labels, scorer.score(vs.requests)).value == pytest.approx(packed.best_valid_gauc,
                                                                                       abs=1e-9)


# -- fallback -----------------------------------------------------------------------------------


def test_probe_detects_a_model_that_ignores_the_mask(tiny_llama, tmp_path):
    tr = make_trainer(tiny_llama, tmp_path, eval_at_start=False)
    assert tr.packed
    net = tr.net
    real = net.forward

    def no_mask(*args, attention_mask=None, **kw):  # an attention that drops custom masks
        return real(*args, **kw)

    net.forward = no_mask
    ok, keep, why = tr.packing_support()
    assert not ok and "ignores the block attention mask" in why
    net.forward = real
    net.config._attn_implementation = "flash_attention_2"
    try:
        ok, _, why = tr.packing_support()
    finally:
        net.config._attn_implementation = "sdpa"
    assert not ok and "flash_attention_2" in why
    ok, _, why = packing.check_support(torch, net, takes_pos=False, takes_keep=True, masked=False, pad_id=0,
                                       probe_ids=tr.data.train_ids[:2])
    assert not ok and "position_ids" in why


def test_unsupported_model_trains_on_the_plain_path_and_says_so(tiny_llama, tmp_path, monkeypatch, capsys):
    from recbench.sft import finetune, train

    monkeypatch.setattr(train.GenerativeTrainer, "packing_support",
                        lambda self: (False, False, "the model ignores the block attention mask (test)"))
    calls = {"plain": 0}
    real = train.GenerativeTrainer.plain_loss

    def plain(self, idx):
        calls["plain"] += 1
        return real(self, idx)

    monkeypatch.setattr(train.GenerativeTrainer, "plain_loss", plain)
    res = finetune(cfg_for(tiny_llama, tmp_path, max_steps=2, eval_at_start=False, progress=True))
    err = capsys.readouterr().err
    assert "prefix packing: off: the model ignores the block attention mask (test)" in err
    t = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())["training"]
    assert t["packing"] is False and "ignores the block attention mask" in t["packing_note"]
    assert calls["plain"] == 2  # one micro-batch per step


# -- the untuned baseline, memory, progress ---------------------------------------------------------


def test_tuning_below_the_untuned_model_is_not_called_best(tiny_llama, tmp_path, monkeypatch, capsys):
    from recbench.sft import finetune, train

    values = iter([0.5840, 0.5760])
    monkeypatch.setattr(train._Trainer, "validate",
                        lambda self: {"valid_gauc": next(values), "valid": {}, "valid_s": 0.0})
    res = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, progress=True))
    err = capsys.readouterr().err
    assert "(best)" not in err
    assert "valid gauc 0.5760 (below the untuned 0.5840" in err and "did not beat the untuned model" in err
    meta = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())
    assert meta["beat_untuned"] is False and res.beat_untuned is False
    assert meta["history"][1]["beat_untuned"] is False
    assert res.best_valid_gauc == 0.5760 and res.zero_shot_valid_gauc == 0.5840
    from recbench.cli import main  # the command line says it too (the finished run, read back)

    assert main(["sft", "--model", tiny_llama, "--train", "demo", "--output", str(tmp_path), "--quiet",
                 "--max-length", "96", "--max-train-samples", "48", "--max-valid-samples", "40", "--batch-size", "8",
                 "--grad-accum", "1", "--epochs", "1", "--lr", "1e-3", "--warmup-ratio", "0", "--max-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "[found" in out and "tuning did not beat the untuned model" in out


def test_tuning_above_the_untuned_model(tiny_llama, tmp_path, monkeypatch, capsys):
    from recbench.sft import finetune, train

    values = iter([0.5, 0.6])
    monkeypatch.setattr(train._Trainer, "validate",
                        lambda self: {"valid_gauc": next(values), "valid": {}, "valid_s": 0.0})
    res = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, progress=True))
    err = capsys.readouterr().err
    assert "valid gauc 0.6000 (best)" in err and "did not beat" not in err
    assert res.beat_untuned is True
    again = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1))
    assert again.reused and again.beat_untuned is True  # read back from recbench_sft.json


def test_run_record_has_peak_memory(tiny_llama, tmp_path):
    from recbench.sft import finetune

    res = finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, eval_at_start=False))
    mem = json.loads((Path(res.adapter_path) / "recbench_sft.json").read_text())["memory"]
    assert mem["peak_rss_mb"] > 50 and "peak_cuda_mb" not in mem  # CPU run
    assert res.memory == mem


@pytest.mark.parametrize("progress", [True, False])
def test_validation_passes_show_progress(tiny_llama, tmp_path, capsys, progress):
    from recbench.sft import finetune

    finetune(cfg_for(tiny_llama, tmp_path, max_steps=1, progress=progress))
    err = capsys.readouterr().err
    assert ("valid demo" in err) == progress


# -- the plain path pads as the scorer does -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_masked_bert(tmp_path_factory):
    from recbench.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-mlm") / "tiny-mlm", arch="bert"))


def test_pad_batch_layouts():
    from recbench.scorers.hf_batch import pad_batch

    ids, mask = pad_batch(torch, [[5, 6, 7], [8]], 0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch(torch, [[5, 6, 7], [8]], 0, left=False)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("arch", ["llama", "masked-bert"])
def test_plain_loss_reads_each_prompt_as_the_scorer_does(arch, tiny_llama, tiny_masked_bert, tmp_path):
    """A batch of prompts of different lengths gives each prompt the P(Yes) the scorer gives it
    alone. (SFT once left-padded BERT-style masked LMs, whose absolute positions then shifted
    with the padding: they trained on inputs they were never scored on.)"""
    model = tiny_masked_bert if arch == "masked-bert" else tiny_llama
    tr = make_trainer(model, tmp_path, packing="off", max_train_samples=24, eval_at_start=False)
    assert tr.scorer.masked == (arch == "masked-bert")
    tr.net.eval()  # no dropout: the computation is what is compared
    d = tr.data
    idx = sorted(range(len(d.train_ids)), key=lambda i: len(d.train_ids[i]))[::5][:5]
    assert len({len(d.train_ids[i]) for i in idx}) > 1  # padding happens
    with torch.no_grad():
        batch = float(tr.plain_loss(idx))
        alone = [float(tr.plain_loss([i])) for i in idx]
        p_yes = [tr.scorer._score_full(None, [d.train_ids[i]])[0][0] for i in idx]
    assert batch == pytest.approx(float(np.mean(alone)), rel=1e-5, abs=1e-6)
    # each single-sample loss is the BCE of the scorer's own P(Yes)
    labels = d.labels[idx]
    expect = [-np.log(p) if y else -np.log(1 - p) for p, y in zip(p_yes, labels)]
    assert alone == pytest.approx(expect, rel=1e-4, abs=1e-5)
