"""The efficiency record in results, the efficiency table and the quality-vs-throughput figure."""

from __future__ import annotations

import json

import pytest

from recbench.cli import main
from recbench.efficiency import measure, peak_flops
from recbench.report.efficiency import efficiency_frame, model_means, pareto_front


def test_measure_counts_only_computed_pairs_and_mfu_needs_cuda():
    eff = measure(wall_s=2.0, score_s=1.0, model_load_s=0.5, pairs=100, computed=50,
                  counters={"device": "cpu", "dtype": "float32", "parameters": 10, "tokens_in_prompts": 1000,
                            "tokens_processed": 250})
    assert eff.pairs_per_s == 50 and eff.ms_per_pair == 20 and eff.prefix_reuse_saving == 0.75
    assert eff.mfu is None and eff.peak_rss_mb > 0
    cached = measure(wall_s=1, score_s=1, model_load_s=0, pairs=100, computed=0, counters={})
    assert cached.pairs_per_s is None  # a run served from the cache has no throughput
    on_gpu = measure(wall_s=1, score_s=2.0, model_load_s=0, pairs=10, computed=10,
                     counters={"device": "cuda:0", "dtype": "bfloat16", "parameters": 1e9, "tokens_processed": 1e6,
                               "device_name": "NVIDIA H100 80GB HBM3"})
    assert on_gpu.mfu == pytest.approx(2 * 1e9 * 1e6 / (989e12 * 2.0), rel=1e-3)
    assert peak_flops("Tesla T4", "bfloat16") is None and peak_flops("NVIDIA A100-SXM4-80GB", "bfloat16") == 312e12
    api = measure(wall_s=1, score_s=2.0, model_load_s=0, pairs=4, computed=4,
                  counters={"device": "api", "api": {"requests": 8, "prompt_tokens": 100, "completion_tokens": 4,
                                                     "cost_usd": 0.01}})
    assert api.requests_per_s == 4 and api.cost_usd == 0.01


def test_pareto_front():
    pts = [(10, 0.6), (100, 0.55), (5, 0.5), (100, 0.6)]
    assert pareto_front(pts) == [False, False, False, True]
    assert pareto_front([(1, 0.9), (10, 0.5)]) == [True, True]
    assert pareto_front([(1, 0.2), (10, 0.5)], lower_is_better=True) == [True, True]


@pytest.mark.slow  # several seconds; the quick suite stays under 5 minutes
def test_results_hold_efficiency_and_report_writes_the_table(tmp_path, capsys):
    res = tmp_path / "res"
    for scheme in ("generative", "discriminative"):
        assert main(["zero-shot", "--model", "dummy", "--scheme", scheme, "--limit", "40", "--output", str(res),
                     "--quiet"]) == 0
    doc = json.loads((res / "dummy" / "generative" / "demo.json").read_text())
    eff = doc["meta"]["efficiency"]
    assert eff["pairs"] == 40 and eff["computed"] == 40 and eff["pairs_per_s"] > 0 and eff["world_size"] == 1
    out = tmp_path / "board"
    assert main(["report", "--results", str(res), "--output", str(out), "--format", "md,csv,png"]) == 0
    table = (out / "efficiency.gauc.md").read_text()
    assert "pairs/s" in table and "dummy" in table and table.count("| demo |") == 2
    assert (out / "quality_vs_throughput.gauc.png").stat().st_size > 1000
    from recbench.report import collect_results

    df = collect_results(res)
    frame = efficiency_frame(df.to_dict("records"), "gauc")
    assert len(frame) == 2 and (frame["pairs_per_s"] > 0).all()
    means = model_means(frame, "gauc")
    assert means["pareto"].any()
