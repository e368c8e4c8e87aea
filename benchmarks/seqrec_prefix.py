"""SeqRec generative scoring: prefix reuse vs one pair per forward pass (issue target >= 8x).

On the demo's seqrec split (each user: up to 19 history items, the target + 99 negatives =
100 candidates), scores the same requests twice with SmolLM2-135M on CPU, in one run:
- "one pair per pass": every prompt run in full, batch size 1 (the reference implementation's
  mode: one forward pass per (user, candidate) pair);
- "prefix reuse": what `recbench zero-shot --task seqrec --scheme generative` does: each user's
  shared prompt prefix (instructions + history) run once, its KV cache reused for the
  candidates' suffixes, in batches.
Prints pairs/s for both, their ratio and the largest score difference.

    python benchmarks/seqrec_prefix.py [--users 2] [--model smollm2-135m] [--batch-size 50]
                                       [--reference-pairs N]

--reference-pairs N times the one-pair-per-pass mode on the first N of the same requests only
(its pairs/s does not depend on how many pairs are timed: every pass is one full prompt of
about the same length), for a shared or slow machine; the ratio is then of pairs/s.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--users", type=int, default=2, help="demo users to score (100 candidates each)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=50, help="suffixes per forward pass with prefix reuse")
    ap.add_argument("--reference-pairs", type=int, default=None,
                    help="time one pair per pass on the first N requests only (default: all)")
    args = ap.parse_args()

    import numpy as np
    import torch

    import recbench
    from recbench.models import resolve_model
    from recbench.prompts import PromptBuilder
    from recbench.schemes import get_scheme
    from recbench.scorers.hf_generative import HFGenerativeScorer

    sc = recbench.load_scenario("demo", task="seqrec", num_test=args.users, num_finetune=0,
                                candidates=args.candidates)
    texts = sc.item_text()
    spec = resolve_model(args.model)
    scheme = get_scheme("generative")
    scorer = HFGenerativeScorer(spec, batch_size=args.batch_size, chat_template=bool(spec.chat_default))
    builder = PromptBuilder(scheme.template(None), sc.item_noun, scorer.count_tokens, scorer.context_budget)
    scheme.prepare(scorer, builder)
    requests = []
    for row in sc.test.itertuples():
        requests += builder.user_prompts([texts[h] for h in row.history], [texts[c] for c in row.candidates])
    prefix_tokens = np.mean([len(scorer._encode(scorer.render(q).prefix)) for q in requests])
    full_tokens = np.mean([len(scorer._encode(scorer.render(q).text)) for q in requests])
    print(f"model {args.model} (chat template {scorer.chat}); {len(sc.test)} users, {len(requests)} pairs "
          f"({len(requests) / len(sc.test):.0f} candidates per user); prompt {full_tokens:.0f} tokens of which "
          f"{prefix_tokens:.0f} shared prefix; torch threads {torch.get_num_threads()}")

    scorer.score(requests[:2])  # warm-up
    subset = {"one pair per pass": requests[: args.reference_pairs] if args.reference_pairs else requests,
              "prefix reuse": requests}
    modes = (("prefix reuse", True, args.batch_size), ("one pair per pass", False, 1))
    rate, scores = {}, {}
    for name, reuse, batch in modes:
        scorer.prefix_reuse, scorer.batch_size = reuse, batch
        scorer._prefix_cache.clear()
        reqs = subset[name]
        start = time.perf_counter()
        scores[name] = np.array(scorer.score(reqs))
        took = time.perf_counter() - start
        rate[name] = len(reqs) / took
        print(f"{name:>18} (batch {batch:>3}): {rate[name]:8.2f} pairs/s  ({len(reqs)} pairs in {took:.1f} s)",
              flush=True)
    ratio = rate["prefix reuse"] / rate["one pair per pass"]
    n = len(scores["one pair per pass"])
    diff = float(np.abs(scores["one pair per pass"] - scores["prefix reuse"][:n]).max())
    print(f"ratio (prefix reuse / one pair per pass, pairs/s): {ratio:.2f}x   "
          f"max |score difference| over {n} pairs: {diff:.2e}")
    print("target ratio >= 8:", "PASS" if ratio >= 8 else "FAIL")


if __name__ == "__main__":
    main()
