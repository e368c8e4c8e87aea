"""The whole `recbench zero-shot` command against the model's raw forward passes, in one run.

Runs the command in-process on the demo (fresh caches) and times, with forward hooks, every
forward pass the model makes during it. tokens/s of the whole command (prompt building,
tokenising, scoring, caching, metrics, results) divided by tokens/s inside the forward
passes on the same token count is the share of time spent in the model: target >= 0.8
(overheads under 20%). Model loading is reported apart (it does not scale with the data).

    python benchmarks/end_to_end.py [--limit 120] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=120, help="demo samples to score")
    args = ap.parse_args()

    from recbench.cli import main as cli
    from recbench.scorers import hf_generative

    forward_s = [0.0]
    real_init = hf_generative.HFGenerativeScorer.__init__

    def timed_init(self, *a, **k):
        real_init(self, *a, **k)
        starts = []
        self.model.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        self.model.register_forward_hook(lambda *_: forward_s.__setitem__(0, forward_s[0] + time.perf_counter()
                                                                            - starts.pop()))

    hf_generative.HFGenerativeScorer.__init__ = timed_init
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RECBENCH_CACHE"] = str(Path(tmp) / "cache")
        cli(["data", "prepare", "demo"])  # the scenario build is cached work, not per-run overhead
        out = Path(tmp) / "res"
        start = time.perf_counter()
        rc = cli(["zero-shot", "--model", args.model, "--limit", str(args.limit), "--output", str(out), "--quiet"])
        total = time.perf_counter() - start
        assert rc == 0
        [path] = list(out.glob("**/demo.json"))
        eff = json.loads(path.read_text())["meta"]["efficiency"]
    load = eff["model_load_s"]
    tokens = eff["tokens_processed"]
    command_s = total - load
    print(f"model {args.model}; {args.limit} pairs; {tokens} tokens run through the model "
          f"({eff['tokens_in_prompts']} in the prompts: prefix reuse saved {eff['prefix_reuse_saving']:.0%})")
    print(f"model load: {load:.1f} s (apart)")
    print(f"whole command: {command_s:.2f} s -> {tokens / command_s:9.1f} tokens/s")
    print(f"forward passes: {forward_s[0]:.2f} s -> {tokens / forward_s[0]:9.1f} tokens/s")
    ratio = forward_s[0] / command_s
    print(f"ratio command / raw forward tokens/s: {ratio:.2f}")
    print("target ratio >= 0.8:", "PASS" if ratio >= 0.8 else "FAIL")


if __name__ == "__main__":
    main()
