"""Prefix reuse vs the plain batched path, in one run (issue: target ratio >= 4).

On the demo scenario (10 candidates per user) with SmolLM2-135M on CPU, scores the same
requests twice, once with every prompt run in full (length-sorted batches) and once with
each user's shared prefix computed once and its KV cache reused for the candidates.
Prints pairs/s for both, their ratio, and the largest score difference.

    python benchmarks/prefix_reuse.py [--users 6] [--model smollm2-135m] [--batch-size 10]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--users", type=int, default=6, help="demo users to score (10 candidates each)")
    ap.add_argument("--batch-size", type=int, default=10)
    args = ap.parse_args()

    import numpy as np

    import recbench
    from recbench.models import resolve_model
    from recbench.prompts import PromptBuilder, Template
    from recbench.scorers.hf_generative import HFGenerativeScorer

    demo = recbench.load_scenario("demo")
    texts = demo.item_text()
    scorer = HFGenerativeScorer(resolve_model(args.model), batch_size=args.batch_size)
    builder = PromptBuilder(Template.load("generative"), demo.item_noun, scorer.count_tokens, scorer.context_budget)
    requests = []
    users = list(dict.fromkeys(demo.test["user_id"]))[: args.users]
    for user in users:
        rows = demo.test[demo.test["user_id"] == user]
        requests += builder.user_prompts([texts[h] for h in rows["history"].iloc[0]], [texts[i] for i in rows["item_id"]])
    per_user = len(requests) / len(users)
    print(f"model {args.model}; {len(users)} users, {len(requests)} pairs ({per_user:.1f} candidates per user), "
          f"batch size {args.batch_size}, torch threads {__import__('torch').get_num_threads()}")

    scorer.score(requests[:2])  # warm-up
    timings = {}
    scores = {}
    for name, reuse in (("plain batched", False), ("prefix reuse", True)):
        scorer.prefix_reuse = reuse
        scorer._prefix_cache.clear()
        start = time.perf_counter()
        scores[name] = np.array(scorer.score(requests))
        timings[name] = time.perf_counter() - start
        print(f"{name:>14}: {len(requests) / timings[name]:8.2f} pairs/s  ({timings[name]:.1f} s)")
    ratio = timings["plain batched"] / timings["prefix reuse"]
    diff = float(np.abs(scores["plain batched"] - scores["prefix reuse"]).max())
    print(f"ratio (prefix reuse / plain): {ratio:.2f}x   max |score difference|: {diff:.2e}")
    print("target ratio >= 4:", "PASS" if ratio >= 4 else "FAIL")


if __name__ == "__main__":
    main()
