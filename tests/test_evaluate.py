"""RecBench and `recbench zero-shot` end to end on tiny random models and the demo scenario."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import recbench
from recbench.cli import main
from recbench.errors import ConfigError
from recbench.evaluate import RecBench
from recbench.scorers.hf_generative import HFGenerativeScorer


def test_cli_zero_shot_writes_results_and_samples(tiny_models, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["zero-shot", "--model", str(tiny_models["llama"]), "--scheme", "generative", "--limit", "30",
               "--output", str(out), "--log-samples", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "demo" in printed and "gauc" in printed
    [path] = list(out.glob("*/generative/demo.json"))
    doc = json.loads(path.read_text())
    assert doc["scenario"] == "demo" and doc["scheme"] == "generative" and doc["pipeline"] == "zero-shot"
    m, meta = doc["metrics"], doc["meta"]
    assert m["n"] == 30 and 0 <= m["gauc"] <= 1 and "logloss" in m
    for key in ("model_id", "model_revision", "backend", "seed", "template_id", "template_sha256", "label_token_ids",
                "data_fingerprint", "n", "truncation", "timings", "packages", "protocol_version"):
        assert key in meta, key
    assert meta["label_token_ids"]["yes"] != meta["label_token_ids"]["no"]
    assert meta["packages"]["recbench"] == recbench.__version__
    assert 0 < meta["label_mass_mean"] <= 1
    lines = [json.loads(x) for x in path.with_name("demo.samples.jsonl").read_text().splitlines()]
    assert len(lines) == 30
    assert set(lines[0]) >= {"user_id", "item_id", "label", "score", "prompt"}
    assert lines[0]["prompt"].endswith("Answer (Yes/No):")
    # scores in the samples file are the unrounded ones the metrics came from
    from recbench.metrics import compute_metrics

    df = pd.DataFrame(lines)
    again = compute_metrics(df.user_id, df.label, df.score, probabilities=True)
    assert again["gauc"] == pytest.approx(m["gauc"], abs=1e-12)


def test_python_api_returns_dataframe_and_both_schemes(tiny_models, tmp_path):
    gen = RecBench(model=str(tiny_models["llama"]), scheme="generative", scenarios=["demo"], limit=20,
                   output_dir=str(tmp_path), progress=False).evaluate()
    assert list(gen.columns[:10]) == ["scenario", "model", "scheme", "n", "auc", "gauc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10"]
    assert gen.loc[0, "n"] == 20
    disc = RecBench(model=str(tiny_models["bert"]), scheme="discriminative", scenarios="demo", limit=20,
                    output_dir=str(tmp_path), progress=False, log_samples=True)
    table = disc.evaluate()
    assert table.loc[0, "scheme"] == "discriminative" and "logloss" not in table.columns
    doc = json.loads(disc.runs[0].path.read_text())
    assert doc["meta"]["similarity"] == "cosine"
    sample = json.loads(disc.runs[0].path.with_name("demo.samples.jsonl").read_text().splitlines()[0])
    assert sample["user_text"].startswith("User behavior sequence:") and sample["item_text"].startswith("Candidate item:")


def test_killed_run_resumes_without_recomputing(tiny_models, tmp_path, monkeypatch):
    calls = {"n": 0, "requests": 0}
    real = HFGenerativeScorer.score_detailed

    def dies_after_first_chunk(self, requests, on_result=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
        calls["requests"] += len(requests)
        return real(self, requests, on_result)

    monkeypatch.setattr(HFGenerativeScorer, "score_detailed", dies_after_first_chunk)
    args = dict(model=str(tiny_models["llama"]), scheme="generative", scenarios=["demo"], limit=200,
                output_dir=str(tmp_path), progress=False)
    with pytest.raises(KeyboardInterrupt):
        RecBench(**args).evaluate()
    assert not list(tmp_path.glob("**/demo.json"))  # nothing half-written that looks complete
    first = calls["requests"]
    assert 0 < first < 200
    calls["n"] = 10  # no more interruptions
    bench = RecBench(**args)
    bench.evaluate()
    timings = bench.runs[0].meta["timings"]
    assert timings["cached"] == first and timings["computed"] == 200 - first
    assert calls["requests"] == 200  # every request scored exactly once over both runs
    # a third run scores nothing at all
    bench = RecBench(**args)
    bench.evaluate()
    assert bench.runs[0].meta["timings"]["computed"] == 0


def test_scores_identical_with_and_without_prefix_reuse(tiny_models, tmp_path):
    common = dict(model=str(tiny_models["opt"]), scheme="generative", scenarios=["demo"], limit=40, progress=False)
    a = RecBench(output_dir=str(tmp_path / "a"), cache_dir=str(tmp_path / "c1"), **common)
    a.evaluate()
    b = RecBench(output_dir=str(tmp_path / "b"), cache_dir=str(tmp_path / "c2"), prefix_reuse=False, **common)
    b.evaluate()
    diff = (a.runs[0].samples["score"] - b.runs[0].samples["score"]).abs().max()
    assert diff < 1e-4


def test_bad_input_is_one_clear_line(tiny_models, tmp_path, capsys):
    cases = [
        (["zero-shot", "--model", "lama-3"], "did you mean 'llama-3'"),
        (["zero-shot", "--model", "e5", "--scheme", "generative"], "cannot serve the generative scheme"),
        (["zero-shot", "--model", str(tiny_models["llama"]), "--scenario", "demo,moviez"], "did you mean 'movielens'"),
        (["zero-shot", "--model", str(tiny_models["llama"]), "--scenario", "mind"], "no raw data folder"),
        (["zero-shot", "--model", str(tiny_models["llama"]), "--limit", "0"], "--limit"),
        (["zero-shot", "--model", str(tiny_models["llama"]), "--template", "nope"], "unknown generative template"),
        (["zero-shot", "--model", str(tiny_models["llama"]), "--max-length", "20", "--limit", "5", "--quiet",
          "--output", str(tmp_path)], "too small"),
        (["zero-shot", "--model", str(tmp_path / "missing.gguf")], "GGUF file not found"),
    ]
    for argv, expected in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, argv
        assert expected in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_setting_in_python_api():
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        RecBench(model="minilm", scheme="discriminative", batchsize=4)


def test_cli_help_and_no_traceback_in_subprocess(tmp_path):
    for cmd in (["--help"], ["zero-shot", "--help"], ["models"]):
        res = subprocess.run([sys.executable, "-m", "recbench", *cmd], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    assert "smollm2-135m" in res.stdout and "llama-3" in res.stdout
    res = subprocess.run([sys.executable, "-m", "recbench", "zero-shot", "--model", "nonexistent-model"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "unknown model" in res.stderr
