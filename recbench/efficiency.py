"""What a run cost: the efficiency record written into every results file (meta.efficiency).

The paper's efficiency table (latency and throughput; LLMs 10-1000x slower than conventional
models) is reproduced from these numbers: seconds, pairs/s, ms per pair, tokens actually run
through the model against the tokens in the prompts (what prefix reuse saved), peak memory,
device, dtype, world size, and on CUDA the model-FLOPs utilisation
(2 x parameters x tokens processed / (device peak FLOP/s x seconds)). API runs add requests/s,
tokens and cost from the scorer's usage counters.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

# Dense peak FLOP/s per GPU model and dtype (vendor datasheets, no sparsity), in TFLOP/s.
# Matched by substring of torch.cuda.get_device_name(); first match wins.
PEAK_TFLOPS = (
    ("H200", {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}),
    ("H100", {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}),
    ("A100", {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}),
    ("L40S", {"bfloat16": 362.0, "float16": 362.0, "float32": 91.6}),
    ("L4", {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3}),
    ("A10", {"bfloat16": 125.0, "float16": 125.0, "float32": 31.2}),
    ("4090", {"bfloat16": 165.0, "float16": 165.0, "float32": 82.6}),
    ("3090", {"bfloat16": 71.0, "float16": 71.0, "float32": 35.6}),
    ("V100", {"float16": 125.0, "float32": 15.7}),
    ("T4", {"float16": 65.0, "float32": 8.1}),
)


def peak_flops(device_name: Optional[str], dtype: Optional[str]) -> Optional[float]:
    """The device's dense peak FLOP/s for a dtype, or None when the table does not know it."""
    if not device_name or not dtype:
        return None
    for key, by_dtype in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            tf = by_dtype.get(dtype)
            return tf * 1e12 if tf else None
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def gpu_memory() -> Dict[str, Any]:
    """Peak CUDA memory and the device name, when torch is loaded and CUDA is in use."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "device_name": torch.cuda.get_device_name()}


@dataclass
class Efficiency:
    wall_s: float
    score_s: float
    model_load_s: float
    pairs: int
    computed: int  # pairs actually scored in this run (the rest came from the cache)
    pairs_per_s: Optional[float]
    ms_per_pair: Optional[float]
    tokens_in_prompts: Optional[int]
    tokens_processed: Optional[int]
    prefix_reuse_saving: Optional[float]  # 1 - processed / in_prompts
    peak_rss_mb: float
    peak_gpu_mem_mb: Optional[float]
    device: Optional[str]
    device_name: Optional[str]
    dtype: Optional[str]
    world_size: int
    parameters: Optional[int]
    mfu: Optional[float]
    requests_per_s: Optional[float] = None
    api_prompt_tokens: Optional[int] = None
    api_completion_tokens: Optional[int] = None
    cost_usd: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def measure(*, wall_s: float, score_s: float, model_load_s: float, pairs: int, computed: int,
            counters: Dict[str, Any], world_size: int = 1) -> Efficiency:
    """The efficiency record from the runner's timings and the scorer's counters.

    Throughput counts only pairs computed in this run: a run served from the cache has no
    throughput to report (None), rather than an inflated one."""
    rate = computed / score_s if computed and score_s > 0 else None
    tokens_prompt = counters.get("tokens_in_prompts")
    tokens_run = counters.get("tokens_processed")
    saving = (1.0 - tokens_run / tokens_prompt) if tokens_prompt and tokens_run is not None else None
    gpu = gpu_memory()
    device_name = gpu.get("device_name") or counters.get("device_name")
    params = counters.get("parameters")
    mfu = None
    peak = peak_flops(device_name, counters.get("dtype"))
    if peak and params and tokens_run and score_s > 0 and str(counters.get("device", "")).startswith("cuda"):
        mfu = round(2.0 * params * tokens_run / (peak * world_size * score_s), 4)
    usage = counters.get("api") or {}
    requests = usage.get("requests")
    return Efficiency(
        wall_s=round(wall_s, 3), score_s=round(score_s, 3), model_load_s=round(model_load_s, 3), pairs=pairs,
        computed=computed, pairs_per_s=round(rate, 3) if rate else None,
        ms_per_pair=round(1000.0 / rate, 3) if rate else None,
        tokens_in_prompts=tokens_prompt, tokens_processed=tokens_run,
        prefix_reuse_saving=round(saving, 4) if saving is not None else None,
        peak_rss_mb=peak_rss_mb(), peak_gpu_mem_mb=gpu.get("peak_gpu_mem_mb"), device=counters.get("device"),
        device_name=device_name, dtype=counters.get("dtype"), world_size=world_size, parameters=params, mfu=mfu,
        requests_per_s=round(requests / score_s, 3) if requests and score_s > 0 else None,
        api_prompt_tokens=usage.get("prompt_tokens"), api_completion_tokens=usage.get("completion_tokens"),
        cost_usd=usage.get("cost_usd"),
    )
