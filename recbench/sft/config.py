"""Typed settings of a supervised fine-tuning run (PROTOCOL §7).

One dataclass holds every knob, each declared once with `recbench.settings.setting` (help,
type, choices, bounds, CLI group); the CLI builds its options from those declarations,
`validate` checks the bounds through `settings.validate`, and the run folder is named by a short hash of the fields that change
the trained weights (`hashed()`), so rerunning the same config finds the finished run.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import ConfigError
from ..hashing import json_sha256
from ..schemes import get_scheme, scheme_names
from ..settings import DEFAULT_SEED, setting
from ..settings import validate as validate_settings

# the training recipe version is per scheme: Scheme.sft_recipe_version (recbench/schemes/)
PACKING = ("auto", "off")
SCHEDULERS = ("linear", "constant")
DEFAULT_BATCH = 8  # micro-batch when batch_size is "auto" (halved on out-of-memory)


def split_names(value: Union[None, str, Sequence[str]]) -> List[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (lower-cased, stripped, de-duplicated)."""
    if value is None:
        return []
    names = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return list(dict.fromkeys(n.strip().lower() for n in names if n and n.strip()))


def split_modules(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out = [n.strip() for n in names if n and n.strip()]
    return out or None


@dataclass
class SFTConfig:
    """Everything an SFT run needs. Defaults follow PROTOCOL §7."""

    model: str = setting(None, "model to tune: alias, HF id, local folder or .gguf file", cli=False, group="training")
    train: List[str] = setting(None, "training scenarios, comma-separated (their fine-tuning sets are joined)",
                               cli=False, group="training")
    valid: Optional[List[str]] = setting(None, "validation scenarios (default: the training ones); valid gauc is "
                                         "averaged over them", cli=False, group="training")
    scheme: str = setting(scheme_names()[0], "generative: LoRA on the LM, BCE on P(Yes); discriminative: LoRA on the "
                          "encoder, similarity objective", choices=scheme_names(), group="data")
    output_dir: str = setting("results", "output folder; the adapter goes to <output>/adapters/<model>-<scheme>-<hash>/",
                              flag="--output", hashed=False, group="data")
    raw_dir: Optional[str] = setting(None, "folder with one sub-folder per scenario (default: $RECBENCH_DATA)",
                                     hashed=False, metavar="ROOT", group="data")
    data_seed: int = setting(DEFAULT_SEED, "scenario sampling seed; use the evaluation's --seed so that fine-tuning users "
                             f"stay disjoint from test users (default {DEFAULT_SEED})", type=int, group="data")
    num_finetune: Optional[int] = setting(None, "fine-tuning samples to build per scenario (default: the scenario's; "
                                          "needed for scenarios without a default fine-tuning set)", type=int,
                                          metavar="N", minimum=1, group="data")
    max_train_samples: Optional[int] = setting(None, "use at most N training samples per scenario (whole users, seeded)",
                                               type=int, metavar="N", minimum=1, group="data")
    max_valid_samples: Optional[int] = setting(None, "use at most N validation samples per scenario (whole users)",
                                               type=int, metavar="N", minimum=1, group="data")
    template: Optional[str] = setting(None, "prompt template id or .txt path (evaluate with the same --template)", group="data")
    chat_template: Optional[bool] = setting(None, "wrap prompts in the model's chat template (None: the model "
                                            "alias's default, as zero-shot)", cli=False, group="training")
    max_length: Optional[int] = setting(None, "context budget in tokens (evaluate with the same --max-length)",
                                        cli=False, minimum=1, group="training")
    # LoRA
    lora_r: int = setting(32, "LoRA rank (default 32)", type=int, minimum=1, group="LoRA")
    lora_alpha: float = setting(128, "LoRA alpha (default 128)", type=float, minimum=0, exclusive_minimum=True, group="LoRA")
    lora_dropout: float = setting(0.1, "LoRA dropout (default 0.1)", type=float, minimum=0, group="LoRA")
    target_modules: Optional[List[str]] = setting(None, "comma-separated module names to adapt (default: the "
                                                  "attention query/value projections of the architecture)",
                                                  type=split_modules, metavar="A,B", group="LoRA")
    lora_layers: Optional[int] = setting(None, "adapt only the last N transformer layers (default: all); cheaper "
                                         "backward pass", type=int, metavar="N", minimum=1, group="LoRA")
    # optimisation
    lr: float = setting(1e-4, "AdamW learning rate (default 1e-4)", type=float, minimum=0, exclusive_minimum=True, group="training")
    weight_decay: float = setting(0.0, "AdamW weight decay (default 0)", type=float, minimum=0, group="training")
    batch_size: Union[int, str] = setting("auto", "samples per forward pass, or 'auto' (8, halved on out-of-memory "
                                          "with --grad-accum doubled)", cli=False, group="training")
    grad_accum: int = setting(4, "forward passes per optimizer step; batch-size x grad-accum x GPUs is the "
                              "effective batch (default 8 x 4 = 32)", type=int, minimum=1, group="training")
    epochs: int = setting(3, "maximum epochs (default 3)", type=int, minimum=1, group="training")
    max_steps: Optional[int] = setting(None, "stop after N optimizer steps", type=int, metavar="N", minimum=1, group="training")
    warmup_ratio: float = setting(0.05, "share of steps with linear warm-up (default 0.05)", type=float, minimum=0, group="training")
    scheduler: str = setting("linear", "learning-rate schedule after warm-up", choices=SCHEDULERS, group="training")
    eval_every: Optional[int] = setting(None, "validate every N optimizer steps (default: once per epoch)",
                                        type=int, metavar="N", minimum=1, group="training")
    patience: int = setting(2, "stop after N validations without a better valid gauc (default 2; 0: never)",
                            type=int, minimum=0, group="training")
    seed: int = setting(DEFAULT_SEED, f"training seed: LoRA init, batch order, dropout (default {DEFAULT_SEED})", type=int, group="training")
    max_grad_norm: float = setting(1.0, "gradient clipping norm (0: off)", type=float, minimum=0, group="training")
    eval_at_start: bool = setting(True, "validate the untuned model first (the zero-shot reference)", cli=False,
                                  hashed=False, group="training")
    # discriminative objective
    loss: str = setting("auto", "objective: bce (generative; discriminative: logistic on cos/temperature), cosine "
                        "(MSE of cosine to the label) or contrastive (margin); auto: bce",
                        choices=("auto", "bce", "cosine", "contrastive"), group="training")
    temperature: float = setting(0.05, "discriminative bce: cosine / temperature is the logit", type=float, minimum=0, exclusive_minimum=True, group="training")
    margin: float = setting(0.5, "discriminative contrastive: margin on cosine distance", type=float, group="training")
    # hardware
    packing: str = setting("auto", "generative: run each user's shared prompt prefix once with all its candidates "
                           "(block attention mask; same loss and gradients); auto: where the model's attention "
                           "accepts it, else the plain path; off: always the plain path", choices=PACKING,
                           hashed=False, group="training")
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass (less memory)",
                                           hashed=False, group="training")
    quantization: Optional[str] = setting(None, "4bit: QLoRA (bitsandbytes, CUDA)", cli=False, group="training")
    dtype: Optional[str] = setting(None, "float32 | bfloat16 | float16 (default: bf16 on CUDA)", cli=False, group="training")
    device: Optional[str] = setting(None, "device", cli=False, hashed=False, group="training")
    device_map: Optional[str] = setting(None, "device map", cli=False, hashed=False, group="training")
    trust_remote_code: bool = setting(False, "allow model code", cli=False, hashed=False, group="training")
    revision: Optional[str] = setting(None, "model revision", cli=False, group="training")
    eval_batch_size: Optional[int] = setting(None, "batch size for validation scoring (default: 2 x batch size)",
                                             type=int, hashed=False, metavar="N", minimum=1, group="training")
    # bookkeeping
    save_every: int = setting(50, "write a resumable checkpoint every N optimizer steps (and at every validation)",
                              type=int, hashed=False, minimum=1, group="training")
    overwrite: bool = setting(False, "retrain even if this config's adapter exists", hashed=False, group="training")
    resume: bool = setting(True, "resume an interrupted run from its last checkpoint", cli=False, hashed=False, group="training")
    progress: bool = setting(True, "progress bars", cli=False, hashed=False, group="training")
    use_cache: bool = setting(True, "use the processed-scenario cache", cli=False, hashed=False, group="training")
    strict: bool = setting(False, "fail on the first malformed raw row", hashed=False, group="data")
    scenario_options: Dict[str, Dict] = field(default_factory=dict, metadata={"cli": False, "hashed": True})

    def __post_init__(self) -> None:
        self.train = split_names(self.train)
        self.valid = split_names(self.valid) or None
        self.target_modules = split_modules(self.target_modules)

    # -- checks --------------------------------------------------------------------------
    def validate(self) -> "SFTConfig":
        """Raise ConfigError (one line) on impossible settings; returns self."""
        if not self.model or not str(self.model).strip():
            raise ConfigError("no model given; pass --model NAME")
        if not self.train:
            raise ConfigError("no training scenario given; pass --train a,b (scenarios with a fine-tuning set)")
        # types, choices and bounds as declared (checked on a copy: values keep their spelling,
        # so config hashes do not move)
        checked = copy.copy(self)
        for f in fields(checked):  # None from a flag not given (shared model options) means the default
            if getattr(checked, f.name) is None and f.default is not MISSING and f.default is not None:
                setattr(checked, f.name, f.default)
        validate_settings(checked)
        losses = get_scheme(self.scheme).sft_losses
        if not losses:
            raise ConfigError(f"the {self.scheme} scheme has no fine-tuning objective")
        if self.loss != "auto" and self.loss not in losses:
            raise ConfigError(f"--loss {self.loss} does not apply to the {self.scheme} scheme "
                              f"(choose from {', '.join(losses)})")
        self.micro_batch()  # validates batch_size
        if not (self.lora_dropout < 1.0):
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not (self.warmup_ratio < 1.0):
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.quantization not in (None, "4bit", "8bit"):
            raise ConfigError("--quantization must be 4bit (QLoRA) or 8bit")
        if self.target_modules is not None and not self.target_modules:
            raise ConfigError("--target-modules is empty")
        return self

    def micro_batch(self) -> int:
        """The samples per forward pass ('auto' -> 8)."""
        if self.batch_size in (None, "auto"):
            return DEFAULT_BATCH
        try:
            n = int(self.batch_size)
        except (TypeError, ValueError):
            raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {self.batch_size!r}") from None
        if n < 1 or str(n) != str(self.batch_size).strip():
            raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {self.batch_size!r}")
        return n

    @property
    def auto_batch(self) -> bool:
        return self.batch_size in (None, "auto")

    @property
    def valid_scenarios(self) -> List[str]:
        return list(self.valid or self.train)

    def effective_loss(self) -> str:
        return "bce" if self.loss == "auto" else self.loss

    # -- identity -------------------------------------------------------------------------
    def public(self) -> Dict[str, Any]:
        """All settings, as written into recbench_sft.json."""
        return asdict(self)

    def hashed(self) -> Dict[str, Any]:
        """The settings that change the trained weights (the micro-batch split does not:
        only the effective batch enters)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("hashed", True)}
        out.pop("batch_size", None)
        out.pop("grad_accum", None)
        out["effective_batch"] = self.micro_batch() * self.grad_accum
        out["loss"] = self.effective_loss()
        out["valid"] = self.valid_scenarios
        for name in ("temperature", "margin"):  # only objectives that declare them use them
            if name not in get_scheme(self.scheme).sft_settings:
                out.pop(name, None)
        out["format"] = get_scheme(self.scheme).sft_recipe_version
        return out


def config_hash(payload: Dict[str, Any], length: int = 8) -> str:
    """Short sha256 of a JSON-able dict (keys sorted)."""
    return json_sha256(payload, length)


def cli_fields():
    """(field, metadata) of the options `recbench sft` exposes from this dataclass."""
    return [f for f in fields(SFTConfig) if f.metadata.get("cli", True)]
