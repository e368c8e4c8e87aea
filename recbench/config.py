"""Typed settings of an evaluation run (one object, passed down; no k=v strings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Union


@dataclass
class RunConfig:
    """Everything a zero-shot run needs besides the model name and scenarios."""

    scheme: str = "generative"
    seed: int = 2024
    limit: Optional[int] = None  # score at most N test samples per scenario
    num_test: Optional[int] = None  # test-set size (default: the scenario's)
    raw_dir: Optional[str] = None
    output_dir: str = "results"
    log_samples: bool = False
    template: Optional[str] = None  # template id or path to a .txt file
    chat_template: Optional[bool] = None  # None: the model alias default (on for smollm2-135m)
    batch_size: Union[int, str] = "auto"
    prefix_reuse: bool = True
    similarity: str = "cosine"  # cosine | dot (discriminative)
    bootstrap: int = 0  # bootstrap resamples for gauc/auc confidence intervals
    # local models
    device: Optional[str] = None
    dtype: Optional[str] = None
    quantization: Optional[str] = None
    device_map: Optional[str] = None
    max_length: Optional[int] = None
    trust_remote_code: bool = False
    revision: Optional[str] = None
    adapter: Optional[str] = None
    # vLLM engines (vllm:<model>): GPUs per engine, engine replicas, share of each GPU's memory
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    # OpenAI-compatible endpoints
    base_url: Optional[str] = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 6
    timeout: float = 60.0
    api_tier: str = "auto"  # auto | completions | chat | text
    dry_run: bool = False
    prices: Optional[str] = None  # path of a JSON price table extending the built-in one
    # bookkeeping
    cache_dir: Optional[str] = None
    use_cache: bool = True
    progress: bool = True
    strict: bool = False
    scenario_options: Dict[str, Dict] = field(default_factory=dict)

    def public(self) -> Dict:
        """The settings as written into results (no secrets are ever held here)."""
        d = asdict(self)
        d.pop("scenario_options", None)
        if d.get("base_url"):  # credentials typed into the URL never reach results
            from urllib.parse import urlsplit, urlunsplit

            parts = urlsplit(d["base_url"])
            host = parts.hostname or ""
            netloc = host + (f":{parts.port}" if parts.port else "")
            d["base_url"] = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return d


SCHEMES: List[str] = ["generative", "discriminative"]
