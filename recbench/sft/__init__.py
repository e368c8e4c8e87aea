"""Supervised fine-tuning with LoRA (PROTOCOL §7).

    from recbench.sft import SFTConfig, finetune
    result = finetune(SFTConfig(model="smollm2-135m", train=["demo"]))
    result.adapter_path, result.best_valid_gauc

The adapter is then evaluated with the zero-shot machinery: `recbench zero-shot --adapter PATH`
or `RecBench(..., adapter=PATH)`. torch/peft load only when training or applying an adapter.
"""

from __future__ import annotations

from .config import SFTConfig, config_hash


def __getattr__(name):
    if name in ("finetune", "SFTResult", "finetune_from_bench"):
        from . import train

        return getattr(train, name)
    if name in ("apply_adapter", "adapter_hash", "read_adapter_folder"):
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module 'recbench.sft' has no attribute {name!r}")


__all__ = ["SFTConfig", "SFTResult", "adapter_hash", "apply_adapter", "config_hash", "finetune", "finetune_from_bench"]
