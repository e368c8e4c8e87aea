"""Multi-process SFT: the command line through `accelerate launch` and torchrun.

Real multi-GPU runs need GPUs; on CPU, torchrun starts two gloo processes that exercise
the same DDP code path (sharded steps, gradient averaging, gathered validation, one writer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_sft_helpers import tiny_llama, tiny_st  # noqa: F401  (fixtures)

pytest.importorskip("peft")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.slow  # each test launches two or three Python processes (about 30 s on a busy CPU)

ARGS = ["sft", "--train", "demo", "--quiet", "--max-length", "96", "--max-train-samples", "32",
        "--max-valid-samples", "30", "--batch-size", "4", "--grad-accum", "2", "--max-steps", "2",
        "--eval-every", "2", "--device", "cpu"]


def _run(cmd, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _meta(out: Path):
    runs = [p for p in (out / "adapters").iterdir() if p.is_dir()]
    assert len(runs) == 1 and not runs[0].name.endswith(".partial"), runs
    assert (runs[0] / "COMPLETE").is_file()
    return json.loads((runs[0] / "recbench_sft.json").read_text())


def test_accelerate_launch_passes_arguments_through(tiny_llama, tmp_path):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if not launcher:
        pytest.skip("the accelerate command is not installed")
    out = tmp_path / "out"
    proc = _run([launcher, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision",
                 "no", "--dynamo_backend", "no", "-m", "recbench", *ARGS, "--model", tiny_llama, "--output", str(out),
                 "--lora-r", "4", "--lora-alpha", "8", "--seed", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("adapter: ") == 1
    meta = _meta(out)
    assert meta["config"]["lora_r"] == 4 and meta["config"]["seed"] == 3
    assert meta["training"]["world_size"] == 1


def test_two_processes_train_one_adapter(tiny_llama, tmp_path):
    out = tmp_path / "out"
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                 "-m", "recbench", *ARGS, "--model", tiny_llama, "--output", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("adapter: ") == 1  # only the main process reports
    meta = _meta(out)
    t = meta["training"]
    assert t["world_size"] == 2 and t["effective_batch"] == 16 and t["steps"] == 2
    assert meta["hash_payload"]["config"]["effective_batch"] == 16
    assert [h["step"] for h in meta["history"]] == [0, 2]
    assert meta["data"]["valid"]["demo"]["samples"] == 30  # validation gathered from both processes


def test_two_processes_train_a_sentence_transformers_adapter(tiny_st, tmp_path):  # noqa: F811
    """Discriminative SFT of a sentence-transformers folder: DDP wraps the whole
    SentenceTransformer, whose Pooling/Dense/Normalize the loss runs as the scorer does."""
    from recbench.models import resolve_model
    from recbench.scorers.hf_embedding import HFEmbeddingScorer

    out = tmp_path / "out"
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
                 "-m", "recbench", *ARGS, "--model", tiny_st, "--scheme", "discriminative", "--lr", "0.01",
                 "--output", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("adapter: ") == 1
    meta = _meta(out)
    assert meta["training"]["world_size"] == 2 and meta["training"]["steps"] == 2
    assert meta["objective"]["pooling"] == "sentence-transformers"
    adapter = next(p for p in (out / "adapters").iterdir() if p.is_dir())
    tuned = HFEmbeddingScorer(resolve_model(tiny_st), adapter=str(adapter))  # refuses an adapter that changes nothing
    assert tuned.adapter_info["lora_tensors"] > 0
