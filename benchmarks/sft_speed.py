"""How fast does `recbench sft` train, plain vs prefix-packed? Prints samples/s and peak memory.

Builds the demo scenario's training prompts exactly as `recbench sft` does, then times real
optimizer steps (LoRA, BCE on P(Yes)) on the plain path (every prompt in full) and on the
packed path (each user's prompt prefix once, its candidates behind it: recbench/sft/packing.py),
on the same samples, in two settings:

    default  the `recbench sft --model M --train demo` defaults: full-length prompts (the
             model's context budget), the alias's chat template, micro-batch 8 x grad-accum 4
    short    prompts cut to 128 tokens by the protocol's truncation, batch 8, no accumulation

    python benchmarks/sft_speed.py                                   # SmolLM2-135M on CPU, both settings
    python benchmarks/sft_speed.py --settings short --steps 5
    python benchmarks/sft_speed.py --model opt-large --device cuda --lora-layers 8

"peak MB" is the process's peak resident memory during the timed steps (Linux; the high-water
mark is reset before each path), plus peak CUDA memory on a GPU. Timings on a shared machine
are noisy: compare the ratios of one run. No output files are written.
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

SETTINGS = {
    "default": dict(max_length=None, batch_size="auto", grad_accum=4),
    "short": dict(max_length=128, batch_size=8, grad_accum=1),
}


def _reset_peak() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back first (glibc keeps it otherwise)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM (Linux)
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(args, setting: str):
    import torch

    from recbench.models import resolve_model
    from recbench.prompts import Template
    from recbench.sft.config import SFTConfig
    from recbench.sft.data import epoch_order, load_sft_scenarios
    from recbench.sft.train import GenerativeTrainer, make_accelerator

    kw = dict(SETTINGS[setting])
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    if args.grad_accum:
        kw["grad_accum"] = args.grad_accum
    probe = SFTConfig(model=args.model, train=["demo"], **kw)
    samples = probe.micro_batch() * probe.grad_accum * (args.steps + 1)
    cfg = SFTConfig(model=args.model, train=["demo"], max_train_samples=samples, max_valid_samples=10,
                    device=args.device, dtype=args.dtype, eval_at_start=False, progress=False,
                    lora_layers=args.lora_layers, gradient_checkpointing=args.gradient_checkpointing, **kw).validate()
    spec = resolve_model(cfg.model)
    acc = make_accelerator(cfg)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = GenerativeTrainer(cfg, spec, Template.load("generative"), load_sft_scenarios(cfg, progress=False),
                                    acc, Path(tmp) / "run", Path(tmp) / "run.partial", {}, "bench", progress=False)
        trainer.setup()
        supported, note = trainer.packed, trainer.pack_note
        n = len(trainer.data)
        per = trainer.per_step
        order = [int(i) for i in epoch_order(n, cfg.seed, 0, per, trainer.batch_groups())]
        tokens = [len(x) for x in trainer.data.train_ids]
        for path in args.paths.split(","):
            path = path.strip()
            if path == "packed" and not supported:
                print(f"{setting}: packing unavailable ({note})", file=sys.stderr)
                continue
            trainer.packed = path == "packed"
            steps = [order[s * per:(s + 1) * per] for s in range(args.steps + 1)]
            trainer.train_step(steps[0])  # warm-up (allocations, kernels)
            _reset_peak()
            if str(trainer.device).startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            done = toks = 0
            for idx in steps[1:]:
                trainer.train_step(idx)
                done += len(idx)
                toks += sum(tokens[i] for i in idx)
            if str(trainer.device).startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            cuda = torch.cuda.max_memory_allocated() / 2 ** 20 if str(trainer.device).startswith("cuda") else None
            print(f"{setting} {path}: {done / dt:.2f} samples/s", file=sys.stderr)
            rows.append({"setting": setting, "path": path, "samples_s": done / dt, "tokens_s": toks / dt,
                         "step_s": dt / args.steps, "mean_tokens": sum(tokens) / len(tokens),
                         "micro": trainer.micro, "accum": cfg.grad_accum, "peak_mb": _peak_rss_mb(),
                         "cuda_mb": cuda, "device": str(trainer.device), "note": note})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--settings", default="default,short", help="comma-separated: default, short")
    p.add_argument("--paths", default="plain,packed", help="comma-separated: plain, packed")
    p.add_argument("--steps", type=int, default=2, help="timed optimizer steps per path (after one warm-up step)")
    p.add_argument("--batch-size", type=int, help="override the setting's micro-batch")
    p.add_argument("--grad-accum", type=int, help="override the setting's accumulation")
    p.add_argument("--lora-layers", type=int)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device")
    p.add_argument("--dtype")
    args = p.parse_args(argv)
    import torch

    print(f"model {args.model}, {args.steps} timed steps per path, torch threads {torch.get_num_threads()}",
          file=sys.stderr)
    rows = []
    for s in args.settings.split(","):
        if s.strip() not in SETTINGS:
            raise SystemExit(f"unknown setting {s!r}; use {', '.join(SETTINGS)}")
        rows.extend(measure(args, s.strip()))
    print(f"{'setting':<8} {'path':<7} {'batch':>6} {'tokens':>7} {'samples/s':>10} {'tokens/s':>9} {'s/step':>7} "
          f"{'peak MB':>8} {'vs plain':>9}")
    for r in rows:
        base = next((b["samples_s"] for b in rows if b["setting"] == r["setting"] and b["path"] == "plain"), None)
        ratio = f"{r['samples_s'] / base:.2f}x" if base else "-"
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] else "-"
        if r["cuda_mb"] is not None:
            peak += f" ({r['cuda_mb']:.0f} cuda)"
        print(f"{r['setting']:<8} {r['path']:<7} {str(r['micro']) + 'x' + str(r['accum']):>6} {r['mean_tokens']:>7.0f} "
              f"{r['samples_s']:>10.2f} {r['tokens_s']:>9.0f} {r['step_s']:>7.1f} {peak:>8} {ratio:>9}")
    if rows:
        print(f"device: {rows[0]['device']}; packing: {rows[0]['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
