"""Data parallelism on CPU: two processes (torchrun, gloo) shard the users; rank 0 writes the
same results a single process writes. --shard i/N jobs plus an unsharded rerun do the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recbench.cli import main
from recbench.distributed import Shard, parse_shard
from recbench.errors import ConfigError

pytest.importorskip("torch")


def _run(args, env_extra=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def _why(proc) -> str:
    """The ranks' own error lines first (torchrun's summary buries them), then the tail."""
    lines = [x for x in proc.stderr.splitlines() if "recbench: error" in x or "Error" in x]
    return "\n".join(lines[:10]) + "\n...\n" + proc.stderr[-1500:]


def _single_and_two_ranks(common, tmp_path) -> None:
    """The same command in this process (-> single/) and under torchrun with 2 ranks (-> dp/),
    each with its own score cache."""
    assert main(common + ["--output", str(tmp_path / "single"), "--cache-dir", str(tmp_path / "c1")]) == 0
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "-m", "recbench", *common, "--output", str(tmp_path / "dp"), "--cache-dir", str(tmp_path / "c2")])
    assert proc.returncode == 0, _why(proc)


def _result(out: Path, model_dir: str, scheme: str) -> dict:
    return json.loads((out / model_dir / scheme / "demo.json").read_text())


def _scores(out: Path, model_dir: str, scheme: str) -> list:
    path = out / model_dir / scheme / "demo.samples.jsonl"
    return [json.loads(x)["score"] for x in path.read_text().splitlines()]


def test_shard_parsing_and_split():
    s = parse_shard("1/3")
    assert (s.rank, s.world, s.sharded_only) == (1, 3, True)
    assert s.take(list(range(7))) == [1, 4]
    assert Shard().take([1, 2]) == [1, 2]
    for bad in ("3/3", "a/b", "1-2", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


@pytest.mark.slow  # launches torchrun processes
@pytest.mark.parametrize("scheme", ["generative", "discriminative"])
def test_torchrun_two_ranks_equal_one_process(tmp_path, scheme, capsys):
    common = ["zero-shot", "--model", "dummy", "--scheme", scheme, "--limit", "80", "--log-samples", "--quiet"]
    _single_and_two_ranks(common, tmp_path)
    single, dp = tmp_path / "single", tmp_path / "dp"
    a, b = _result(single, "dummy", scheme), _result(dp, "dummy", scheme)
    assert a["metrics"] == b["metrics"]
    assert max(abs(x - y) for x, y in zip(_scores(single, "dummy", scheme), _scores(dp, "dummy", scheme))) <= 1e-6
    assert b["meta"]["efficiency"]["world_size"] == 2
    assert b["meta"]["timings"]["computed"] == a["meta"]["timings"]["computed"] > 0


def test_slurm_style_shards_then_merge_by_rerun(tmp_path, capsys):
    common = ["zero-shot", "--model", "dummy", "--limit", "60", "--quiet", "--cache-dir", str(tmp_path / "c")]
    out = tmp_path / "res"
    for i in range(2):
        assert main(common + ["--shard", f"{i}/2", "--output", str(out)]) == 0
    assert not list(out.glob("**/demo.json"))  # shards write no results
    assert main(common + ["--output", str(out)]) == 0
    merged = _result(out, "dummy", "generative")
    assert merged["meta"]["timings"]["computed"] == 0  # every score came from the shards
    assert main(["zero-shot", "--model", "dummy", "--limit", "60", "--quiet", "--output", str(tmp_path / "one"),
                 "--cache-dir", str(tmp_path / "c3")]) == 0
    assert _result(tmp_path / "one", "dummy", "generative")["metrics"] == merged["metrics"]


@pytest.mark.slow  # launches torchrun processes
def test_torchrun_with_a_real_local_model(tiny_models, tmp_path):
    """The HF scorer under two ranks (each its own process and model copy) gives the same numbers."""
    model = str(tiny_models["llama"])
    common = ["zero-shot", "--model", model, "--limit", "40", "--log-samples", "--quiet"]
    _single_and_two_ranks(common, tmp_path)
    slug = next((tmp_path / "single").iterdir()).name
    a, b = _result(tmp_path / "single", slug, "generative"), _result(tmp_path / "dp", slug, "generative")
    assert a["metrics"]["gauc"] == pytest.approx(b["metrics"]["gauc"], abs=1e-9)
    diffs = [abs(x - y) for x, y in zip(_scores(tmp_path / "single", slug, "generative"),
                                        _scores(tmp_path / "dp", slug, "generative"))]
    assert max(diffs) <= 1e-6


def test_per_node_caches_merge_then_rerun(tmp_path, capsys):
    """Shards on nodes without a shared file system: one cache each, merged before the rerun."""
    out = tmp_path / "res"
    for i in range(2):
        assert main(["zero-shot", "--model", "dummy", "--limit", "50", "--quiet", "--shard", f"{i}/2",
                     "--cache-dir", str(tmp_path / f"node{i}"), "--output", str(out)]) == 0
    assert main(["cache", "merge", str(tmp_path / "node0"), str(tmp_path / "node1" / "scores.sqlite"),
                 "--cache-dir", str(tmp_path / "merged")]) == 0
    assert "scores" in capsys.readouterr().err
    assert main(["zero-shot", "--model", "dummy", "--limit", "50", "--quiet", "--cache-dir", str(tmp_path / "merged"),
                 "--output", str(out)]) == 0
    assert _result(out, "dummy", "generative")["meta"]["timings"]["computed"] == 0


@pytest.mark.slow  # launches torchrun processes
def test_torchrun_conventional_model_trains_once_on_rank_zero(tmp_path, capsys):
    """A baseline under two ranks: one training (rank 0), every pair scored, same metrics."""
    common = ["zero-shot", "--model", "itemknn", "--limit", "60", "--quiet"]
    _single_and_two_ranks(common, tmp_path)
    single, dp = tmp_path / "single", tmp_path / "dp"
    a, b = _result(single, "itemknn", "conventional"), _result(dp, "itemknn", "conventional")
    assert a["metrics"] == b["metrics"]
    assert b["meta"]["timings"]["computed"] == a["meta"]["timings"]["computed"] == 60
    assert len(list((dp / "baselines").iterdir())) == 1
    assert b["meta"]["baseline"]["reused"] is False  # trained in the pass that scores, not in a share pass
