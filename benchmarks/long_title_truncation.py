"""Truncating a prompt with one 20,000-character title (issue 14, item 16).

Builds one user's prompt (19 short history items + the long title as the newest item, and
the long title as a candidate) with the model's real token counter, twice: with
PromptBuilder (binary search, each long text counted about once) and with the old
step-by-step loop (one count of the whole head per item dropped and per shortening step).
Prints seconds and token counter calls for both, and their ratio; the prompts must be equal.

    python benchmarks/long_title_truncation.py [--model smollm2-135m] [--chars 20000] [--spaces]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def step_by_step(builder, count, history, candidates):
    """The loop recbench used before: drop one item / shorten one step, recount all."""
    from recbench.prompts import shorten

    half, suffixes, longest = builder.budget // 2, [], 0
    for cand in candidates:
        suffix = builder._suffix(cand)
        n = count(suffix)
        while n > half:
            shorter = shorten(cand)
            if shorter == cand:
                break
            cand = shorter
            suffix = builder._suffix(cand)
            n = count(suffix)
        suffixes.append(suffix)
        longest = max(longest, n)
    limit = builder.budget - longest - builder.margin
    hist = list(history[-builder.shown:])
    head = builder._head(hist)
    while count(head) > limit:
        if len(hist) > 1:
            hist.pop(0)
        else:
            hist[0] = shorten(hist[0])
        head = builder._head(hist)
    return [head + s for s in suffixes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--chars", type=int, default=20_000)
    ap.add_argument("--spaces", action="store_true", help="a title of words (default: one unbroken run)")
    args = ap.parse_args()

    from recbench.models import resolve_model
    from recbench.prompts import PromptBuilder, Template
    from recbench.scorers.hf_common import LoadOptions, count_plain, load_tokenizer

    tok = load_tokenizer(resolve_model(args.model), LoadOptions())
    title = ("word " * args.chars)[: args.chars] if args.spaces else "x" * args.chars
    history = [f"Short title {i} (1999)" for i in range(19)] + [title]
    candidates = [title, "Heat (1995)"]
    calls = {"n": 0}

    def count(text: str) -> int:
        calls["n"] += 1
        return count_plain(tok, text)

    results = {}
    for name in ("new", "old"):
        calls["n"] = 0
        builder = PromptBuilder(Template.load("generative"), "item", count, budget=2048 - 4)
        t0 = time.perf_counter()
        if name == "new":
            texts = [r.text for r in builder.user_prompts(history, candidates)]
        else:
            texts = step_by_step(builder, count, history, candidates)
        results[name] = (time.perf_counter() - t0, calls["n"], texts)
        print(f"{name}: {results[name][0]:.2f} s, {calls['n']} token counts")
    assert results["new"][2] == results["old"][2], "the two ways built different prompts"
    print(f"same prompts; old/new time ratio {results['old'][0] / results['new'][0]:.1f}x, "
          f"count calls {results['old'][1]} -> {results['new'][1]}")


if __name__ == "__main__":
    main()
