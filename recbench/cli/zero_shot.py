"""`recbench zero-shot`: score scenarios with one model under one scheme."""

from __future__ import annotations

import argparse

from ..config import SCHEMES


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads a model (zero-shot, sft)."""
    g = p.add_argument_group("model loading")
    g.add_argument("--model", required=True, help="alias (see `recbench models`), HF id, local folder, .gguf file, or openai:<model>")
    g.add_argument("--revision", help="model revision (branch, tag or commit) on the hub")
    g.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cuda when available)")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: bf16 on CUDA, fp32 on CPU")
    g.add_argument("--quantization", choices=["8bit", "4bit"], help="bitsandbytes loading (CUDA only)")
    g.add_argument("--device-map", help="'auto' spreads a model larger than one GPU over several")
    g.add_argument("--max-length", type=int, help="cap the context budget in tokens")
    g.add_argument("--trust-remote-code", action="store_true", help="allow models that ship their own code (GLM-4)")
    g.add_argument("--batch-size", default="auto", help="requests per forward pass, or 'auto' (shrinks on OOM)")


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--raw-dir", help="folder with one sub-folder per scenario (default: $RECBENCH_DATA)")
    g.add_argument("--seed", type=int, default=2024, help="sampling seed (default 2024)")
    g.add_argument("--strict", action="store_true", help="fail on the first malformed raw row")
    g.add_argument("--no-cache", action="store_true", help="rebuild scenarios and rescore; ignore caches")


def register(sub) -> None:
    p = sub.add_parser(
        "zero-shot",
        help="score scenarios with a model (zero-shot) and write results",
        description="Score every test sample of the chosen scenarios with one model and write metrics to "
        "<output>/<model>/<scheme>/<scenario>.json. With no --scenario and no raw data, runs the bundled demo.",
    )
    add_model_options(p)
    p.add_argument("--scheme", choices=SCHEMES, default="generative")
    p.add_argument("--scenario", help="comma-separated scenario names, or 'all' (default: those found under --raw-dir, else demo)")
    add_data_options(p)
    p.add_argument("--limit", type=int, help="score at most N test samples per scenario")
    p.add_argument("--num-test", type=int, help="test-set size (default: the scenario's, 20000 for the ten domains)")
    p.add_argument("--output", default="results", help="results folder (default: results)")
    p.add_argument("--log-samples", action="store_true", help="also write <scenario>.samples.jsonl with every prompt and score")
    p.add_argument("--template", help="template id in prompts/ or path to your own .txt")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat-template", dest="chat_template", action="store_true", default=None,
                      help="wrap prompts in the model's chat template (default: the alias's choice, see `recbench models`)")
    chat.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="send raw prompts")
    p.add_argument("--no-prefix-reuse", action="store_true", help="score every prompt in full (slower; for checking)")
    p.add_argument("--similarity", choices=["cosine", "dot"], default="cosine", help="discriminative score")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for gauc/auc confidence intervals")
    p.add_argument("--adapter", help="LoRA adapter folder from `recbench sft`")
    g = p.add_argument_group("OpenAI-compatible endpoints")
    g.add_argument("--base-url", help="e.g. http://localhost:8000/v1 (vLLM, llama.cpp, TGI, Ollama)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    g.add_argument("--concurrency", type=int, default=8)
    g.add_argument("--max-retries", type=int, default=6)
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    g.add_argument("--api-tier", choices=["auto", "completions", "chat", "text"], default="auto")
    g.add_argument("--dry-run", action="store_true", help="count tokens and estimate cost; send nothing")
    g.add_argument("--prices", help="JSON file extending the price table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluate import RecBench
    from ..errors import ConfigError

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be a positive number of samples")
    bench = RecBench(
        model=args.model,
        scheme=args.scheme,
        scenarios=args.scenario,
        limit=args.limit,
        output_dir=args.output,
        log_samples=args.log_samples,
        adapter=args.adapter,
        raw_dir=args.raw_dir,
        seed=args.seed,
        num_test=args.num_test,
        template=args.template,
        chat_template=args.chat_template,
        batch_size=args.batch_size,
        prefix_reuse=not args.no_prefix_reuse,
        similarity=args.similarity,
        bootstrap=args.bootstrap,
        device=args.device,
        dtype=args.dtype,
        quantization=args.quantization,
        device_map=args.device_map,
        max_length=args.max_length,
        trust_remote_code=args.trust_remote_code,
        revision=args.revision,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        timeout=args.timeout,
        api_tier=args.api_tier,
        dry_run=args.dry_run,
        prices=args.prices,
        strict=args.strict,
        use_cache=not args.no_cache,
        progress=not args.quiet,
    )
    table = bench.evaluate()
    if args.dry_run:
        return 0
    if table.empty:
        raise ConfigError("nothing was scored")
    cols = [c for c in ["scenario", "n", "auc", "gauc", "mrr", "ndcg@1", "ndcg@5", "ndcg@10", "logloss"] if c in table.columns]
    print(f"model: {args.model}  scheme: {args.scheme}")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for r in bench.runs:
        print(f"results: {r.path}")
    return 0
