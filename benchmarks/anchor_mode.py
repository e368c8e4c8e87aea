"""recbench's generative scoring vs the reference implementation's mode, in one run.

The reference code scores one (user, candidate) prompt per forward pass at batch 1 with no
reuse. recbench length-sorts, batches, and runs each user's shared prompt prefix once
(KV-cache reuse). Same model (SmolLM2-135M by default), same prompts (chat template as the
alias sets it), same requests; prints pairs/s of both, their ratio and the largest score
difference. Target on CPU on the demo: >= 5x.

    python benchmarks/anchor_mode.py [--users 6] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def demo_requests(users: int, scorer, chat: bool):
    import recbench
    from recbench.prompts import PromptBuilder
    from recbench.schemes import get_scheme

    demo = recbench.load_scenario("demo")
    texts = demo.item_text()
    scheme = get_scheme("generative")
    builder = PromptBuilder(scheme.template(None), demo.item_noun, scorer.count_tokens, scorer.context_budget)
    scheme.prepare(scorer, builder)
    requests = []
    for user in list(dict.fromkeys(demo.test["user_id"]))[:users]:
        rows = demo.test[demo.test["user_id"] == user]
        requests += builder.user_prompts([texts[h] for h in rows["history"].iloc[0]],
                                         [texts[i] for i in rows["item_id"]])
    return requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--users", type=int, default=6, help="demo users (about 10 candidates each)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from recbench.models import resolve_model
    from recbench.scorers.hf_generative import HFGenerativeScorer

    spec = resolve_model(args.model)
    scorer = HFGenerativeScorer(spec, chat_template=spec.chat_default)
    requests = demo_requests(args.users, scorer, spec.chat_default)
    print(f"model {args.model}; {len(requests)} pairs from {args.users} demo users; torch threads "
          f"{torch.get_num_threads()} (a shared machine makes both numbers noisy; the ratio is what counts)")
    scorer.score(requests[:2])  # warm-up
    modes = {
        "reference (batch 1, no reuse)": dict(batch_size=1, auto_batch=False, prefix_reuse=False),
        "recbench (batched, prefix reuse)": dict(batch_size=scorer.batch_size, auto_batch=scorer.auto_batch,
                                                 prefix_reuse=True),
    }
    seconds, scores, tokens = {}, {}, {}
    for name, attrs in modes.items():
        for k, v in attrs.items():
            setattr(scorer, k, v)
        scorer._prefix_cache.clear()
        before = dict(scorer.efficiency_counters())
        start = time.perf_counter()
        scores[name] = np.array(scorer.score(requests))
        seconds[name] = time.perf_counter() - start
        run = {k: v - before.get(k, 0) for k, v in scorer.efficiency_counters().items() if isinstance(v, (int, float))}
        tokens[name] = run.get("tokens_processed", 0)
        print(f"{name:>34}: {len(requests) / seconds[name]:8.2f} pairs/s  ({seconds[name]:.1f} s, "
              f"{tokens[name]} tokens run)")
    ref, ours = list(seconds)
    ratio = seconds[ref] / seconds[ours]
    diff = float(np.abs(scores[ref] - scores[ours]).max())
    print(f"ratio recbench / reference mode: {ratio:.2f}x   max |score difference|: {diff:.2e}")
    if tokens[ours]:  # what prefix reuse can give at most: the ratio of tokens run
        print(f"tokens run, reference / recbench: {tokens[ref] / tokens[ours]:.2f}x (the bound on the speed-up "
              "from prefix reuse at this many candidates per user)")
    print("target ratio >= 5:", "PASS" if ratio >= 5 else "FAIL")


if __name__ == "__main__":
    main()
