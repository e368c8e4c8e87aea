"""Typed settings of an evaluation run: every field declared once (recbench.settings).

The CLI flags of `recbench zero-shot`, the keyword arguments of `RecBench`, validation and
the `settings` block of every results file all derive from these declarations; SFT reuses
the shared ones (`RunConfig.inherit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Literal, Optional, Union

from .errors import ConfigError
from .settings import DEFAULT_SEED, public_dict, setting


def _schemes():
    from .schemes import scheme_names

    return scheme_names()


def _tasks():
    from .tasks import task_names

    return task_names()


def int_or_all(value: Any) -> Union[int, Literal["all"]]:
    """A candidate count (>= 2: the target and a negative) or 'all'."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        if text.lstrip("+").isdigit():
            value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return value
    raise ValueError(f"expected an integer >= 2 (the target and at least one negative) or 'all', got {value!r}")


GROUPS = {
    "data": "data",
    "run": "evaluation",
    "model": "model loading",
    "api": "OpenAI-compatible endpoints",
    "vllm": "vLLM engine",
    "ranking": "list-wise scheme (a generated ranking)",
    "output": "output and caching",
}


@dataclass
class RunConfig:
    """Everything a zero-shot run needs besides the model name and scenarios."""

    # evaluation
    task: str = setting("ctr", "what is measured: ctr (click prediction: per-pair labels, gauc) or seqrec "
                        "(rank the next item among candidates, ndcg@10)", choices=_tasks, group="run")
    scheme: Optional[str] = setting(None, "how the model scores: generative (P(Yes) from the label logits), "
                                    "discriminative (embedding similarity), listwise (a generated ranking); "
                                    "default: generative, or the model's only scheme", choices=_schemes, group="run")
    limit: Optional[int] = setting(None, "score at most N test samples (users for seqrec) per scenario",
                                   minimum=1, metavar="N", group="run")
    template: Optional[str] = setting(None, "template id in prompts/<scheme>/ or path to your own .txt",
                                      group="run")
    chat_template: Optional[bool] = setting(None, "wrap prompts in the model's chat template (--no-chat-template: "
                                            "raw prompts; default: the alias's choice, see `recbench models`)",
                                            group="run")
    prefix_reuse: bool = setting(True, "score every prompt in full instead of reusing each user's prompt "
                                 "prefix (slower; for checking)", negate="--no-prefix-reuse", group="run")
    similarity: str = setting("cosine", "discriminative score: cosine or dot product", choices=("cosine", "dot"),
                              group="run")
    bootstrap: int = setting(0, "bootstrap resamples for confidence intervals of the headline metrics",
                             minimum=0, metavar="N", group="run")
    history_len: int = setting(19, "seqrec: positives before the target given as the user's history (prompts "
                               "show the last 20 at most)", minimum=1, metavar="N", group="run")
    candidates: Union[int, Literal["all"]] = setting(
        100, "seqrec: candidates per user, the target plus N-1 sampled negatives, or 'all' to rank the whole "
        "catalogue (embedding models: one matrix product per batch of users)", type=int_or_all,
        metavar="N|all", group="run")
    force: bool = setting(False, "seqrec: run --candidates all even with a scheme that scores every (user, item) "
                          "pair separately", group="run")
    shard: Optional[str] = setting(None, "score only share i of N of the users (one job of a SLURM array); "
                                   "rerun without --shard to write the results from the cache "
                                   "(torchrun/accelerate launch shard by rank on their own)", metavar="i/N",
                                   group="run")
    # the list-wise scheme
    listwise_k: int = setting(20, "candidates shown per prompt (the first K of a user's candidates: for seqrec the "
                              "target and K-1 negatives); the rest rank below them", minimum=2, metavar="K",
                              group="ranking")
    permutations: int = setting(1, "ask each user P times, each in another seeded order, and combine the rankings "
                                "(Borda count): less position bias, P times the cost", minimum=1, metavar="P",
                                group="ranking")
    explain: bool = setting(False, "also ask for a one-line reason for the top item (kept with --log-samples)",
                            group="ranking")
    max_new_tokens: Optional[int] = setting(None, "most tokens an answer may take (default: 6 per shown candidate, "
                                            "+48 with --explain)", minimum=1, metavar="N", group="ranking")
    # data
    raw_dir: Optional[str] = setting(None, "folder with one sub-folder per scenario (default: $RECBENCH_DATA)",
                                     metavar="ROOT", group="data")
    seed: int = setting(DEFAULT_SEED, "sampling seed", group="data")
    num_test: Optional[int] = setting(None, "test-set size: samples for ctr (default: the scenario's, 20000 for "
                                      "the ten domains), users for seqrec", minimum=1, metavar="N", group="data")
    strict: bool = setting(False, "fail on the first malformed raw row", group="data")
    # local models
    batch_size: Union[int, str] = setting("auto", "requests per forward pass, or 'auto' (shrinks on out-of-memory)",
                                          metavar="N|auto", group="model")
    device: Optional[str] = setting(None, "cpu, cuda, cuda:1, mps (default: cuda when available)", group="model")
    dtype: Optional[str] = setting(None, "default: bf16 on CUDA, fp32 on CPU",
                                   choices=("float32", "bfloat16", "float16"), group="model")
    quantization: Optional[str] = setting(None, "bitsandbytes loading (CUDA only)", choices=("8bit", "4bit"),
                                          group="model")
    device_map: Optional[str] = setting(None, "'auto' spreads a model larger than one GPU over several",
                                        group="model")
    max_length: Optional[int] = setting(None, "cap the context budget in tokens", minimum=8, group="model")
    trust_remote_code: bool = setting(False, "allow models that ship their own code (GLM-4)", group="model")
    revision: Optional[str] = setting(None, "model revision (branch, tag or commit) on the hub", group="model")
    adapter: Optional[str] = setting(None, "LoRA adapter folder from `recbench sft`", metavar="PATH", group="model")
    # OpenAI-compatible endpoints
    base_url: Optional[str] = setting(None, "e.g. http://localhost:8000/v1 (vLLM, llama.cpp, TGI, Ollama)",
                                      metavar="URL", group="api")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the key", metavar="NAME", group="api")
    concurrency: int = setting(8, "requests in flight", minimum=1, group="api")
    max_retries: int = setting(6, "retries per request (429, 5xx, timeouts)", minimum=0, group="api")
    timeout: float = setting(60.0, "seconds per request", minimum=0, exclusive_minimum=True, group="api")
    api_tier: str = setting("auto", "how P(Yes) is read: completions logprobs, chat top logprobs, or the text "
                            "answer only", choices=("auto", "completions", "chat", "text"), group="api")
    dry_run: bool = setting(False, "count tokens and estimate cost; send nothing", group="api")
    prices: Optional[str] = setting(None, "JSON file extending the price table", metavar="PATH", group="api")
    # vLLM
    tensor_parallel_size: int = setting(1, "GPUs one vLLM engine spreads the model over", minimum=1, group="vllm")
    data_parallel_size: int = setting(1, "vLLM engine replicas (data parallel)", minimum=1, group="vllm")
    gpu_memory_utilization: float = setting(0.9, "share of GPU memory vLLM may take", minimum=0,
                                            exclusive_minimum=True, group="vllm")
    # output and caching
    output_dir: str = setting("results", "results folder", flag="--output", metavar="DIR", group="output")
    log_samples: bool = setting(False, "also write <scenario>.samples.jsonl with every prompt and score",
                                group="output")
    cache_dir: Optional[str] = setting(None, "folder of the score cache (default: $RECBENCH_CACHE or "
                                       "~/.cache/recbench)", metavar="DIR", group="output")
    use_cache: bool = setting(True, "rebuild scenarios and rescore; ignore caches", negate="--no-cache",
                              group="output")
    progress: bool = setting(True, "no progress bars", negate="--quiet", group="output")
    scenario_options: Dict[str, Dict[str, Any]] = setting(default_factory=dict, cli=False,
                                                          help="per-scenario loader options (custom files, columns)")
    baseline: Dict[str, Any] = setting(default_factory=dict, cli=False,
                                       help="training settings of conventional models (recbench.baselines."
                                       "BaselineConfig fields; `recbench baseline` flags)")

    def __post_init__(self) -> None:
        try:
            self.candidates = int_or_all(self.candidates)
        except ValueError as exc:
            raise ConfigError(f"--candidates (candidates): {exc}") from None

    def public(self) -> Dict:
        """The settings as written into results (no secrets are ever held here)."""
        d = public_dict(self)
        d.pop("scenario_options", None)
        if d.get("base_url"):  # credentials typed into the URL never reach results
            from .scorers.api.endpoint import public_url

            d["base_url"] = public_url(d["base_url"])
        return d

    @classmethod
    def inherit(cls, name: str, **changes) -> Any:
        """The declaration of one of these settings, for another config that shares it (SFT)."""
        f = next(f for f in fields(cls) if f.name == name)
        meta = dict(f.metadata)
        meta.pop("group", None)  # the other config's CLI groups differ; pass group= to place it
        default = changes.pop("default", f.default)
        meta.update(changes)
        return field(default=default, metadata=meta)

