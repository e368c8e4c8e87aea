"""How fast does `recbench sft` train? Prints training samples/s (and tokens/s).

Builds the demo scenario's training prompts exactly as `recbench sft` does, then times
optimizer steps of the real training step (LoRA, BCE on P(Yes)) for a few variants and
prints their speed relative to the first:

    python benchmarks/sft_speed.py                          # SmolLM2-135M on CPU, 128 tokens
    python benchmarks/sft_speed.py --model opt-large --max-length 512 --batch-size 16
    python benchmarks/sft_speed.py --variants all,last8,ckpt --steps 5

Variants: all (LoRA on q/v of every layer, PROTOCOL §7), lastN (only the last N layers:
the backward pass stops there), ckpt (gradient checkpointing: less memory, more compute).
No output files are written (the run folder is a temporary directory).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def measure(args, variant: str):
    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.sft.config import SFTConfig
    from recbench.sft.data import load_sft_scenarios
    from recbench.sft.train import GenerativeTrainer, make_accelerator

    kw = {}
    if variant.startswith("last"):
        kw["lora_layers"] = int(variant[4:])
    elif variant == "ckpt":
        kw["gradient_checkpointing"] = True
    elif variant != "all":
        raise SystemExit(f"unknown variant {variant!r}; use all, lastN or ckpt")
    samples = args.batch_size * (args.steps + 1)
    cfg = SFTConfig(model=args.model, train=["demo"], max_length=args.max_length, max_train_samples=samples,
                    max_valid_samples=10, batch_size=args.batch_size, grad_accum=1, device=args.device,
                    dtype=args.dtype, eval_at_start=False, progress=False, **kw).validate()
    spec = resolve_model(cfg.model)
    acc = make_accelerator(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        final = Path(tmp) / "run"
        trainer = GenerativeTrainer(cfg, spec, Template.load("generative"), load_sft_scenarios(cfg, progress=False),
                                    acc, final, Path(tmp) / "run.partial", {}, "bench", progress=False)
        trainer.setup()
        n = len(trainer.data)
        order = list(range(n))
        tokens = [len(x) for x in trainer.data.train_ids]
        b = args.batch_size
        trainer.train_step(order[:b])  # warm-up (allocations, kernels)
        t0 = time.perf_counter()
        done = toks = 0
        for s in range(args.steps):
            idx = [order[(b * (s + 1) + j) % n] for j in range(b)]
            trainer.train_step(idx)
            done += len(idx)
            toks += sum(tokens[i] for i in idx)
        dt = time.perf_counter() - t0
        trainable = sum(p.numel() for p in trainer.params)
    return {"variant": variant, "samples_s": done / dt, "tokens_s": toks / dt, "step_s": dt / args.steps,
            "mean_tokens": sum(tokens) / len(tokens), "trainable": trainable, "device": str(trainer.device)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per variant (after one warm-up)")
    p.add_argument("--variants", default="all,last8", help="comma-separated: all, lastN, ckpt")
    p.add_argument("--device")
    p.add_argument("--dtype")
    args = p.parse_args(argv)
    import torch

    print(f"model {args.model}, max length {args.max_length}, batch {args.batch_size}, {args.steps} steps, "
          f"torch threads {torch.get_num_threads()}", file=sys.stderr)
    rows = [measure(args, v.strip()) for v in args.variants.split(",") if v.strip()]
    base = rows[0]["samples_s"]
    print(f"{'variant':<8} {'samples/s':>10} {'tokens/s':>10} {'s/step':>8} {'tokens':>7} {'trainable':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['variant']:<8} {r['samples_s']:>10.2f} {r['tokens_s']:>10.0f} {r['step_s']:>8.2f} "
              f"{r['mean_tokens']:>7.0f} {r['trainable']:>10,} {r['samples_s'] / base:>6.2f}")
    print(f"device: {rows[0]['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
