"""Typed settings of a supervised fine-tuning run (PROTOCOL §7).

One dataclass holds every knob; the CLI builds its options from the fields' metadata (one
list, never copied), and the run folder is named by a short hash of the fields that change
the trained weights (`hashed()`), so rerunning the same config finds the finished run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import ConfigError, suggest
from ..hashing import json_sha256
from ..schemes import get_scheme, scheme_names
from ..settings import DEFAULT_SEED

# the training recipe version is per scheme: Scheme.sft_recipe_version (recbench/schemes/)
PACKING = ("auto", "off")
SCHEDULERS = ("linear", "constant")
DEFAULT_BATCH = 8  # micro-batch when batch_size is "auto" (halved on out-of-memory)


def _opt(default: Any, help: str, *, flag: Optional[str] = None, type: Any = None, cli: bool = True,
         hashed: bool = True, choices: Optional[Sequence[str]] = None, metavar: Optional[str] = None):
    """A config field with what the CLI needs to expose it, and whether it enters the hash."""
    meta = {"help": help, "flag": flag, "type": type, "cli": cli, "hashed": hashed, "choices": choices,
            "metavar": metavar}
    return field(default=default, metadata=meta)


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

    model: str = _opt(None, "model to tune: alias, HF id, local folder or .gguf file", cli=False)
    train: List[str] = _opt(None, "training scenarios, comma-separated (their fine-tuning sets are joined)",
                            cli=False)
    valid: Optional[List[str]] = _opt(None, "validation scenarios (default: the training ones); valid gauc is "
                                      "averaged over them", cli=False)
    scheme: str = _opt(scheme_names()[0], "generative: LoRA on the LM, BCE on P(Yes); discriminative: LoRA on the "
                       "encoder, similarity objective", choices=scheme_names())
    output_dir: str = _opt("results", "output folder; the adapter goes to <output>/adapters/<model>-<scheme>-<hash>/",
                           flag="--output", hashed=False)
    raw_dir: Optional[str] = _opt(None, "folder with one sub-folder per scenario (default: $RECBENCH_DATA)",
                                  hashed=False, metavar="ROOT")
    data_seed: int = _opt(DEFAULT_SEED, "scenario sampling seed; use the evaluation's --seed so that fine-tuning users "
                          f"stay disjoint from test users (default {DEFAULT_SEED})", type=int)
    num_finetune: Optional[int] = _opt(None, "fine-tuning samples to build per scenario (default: the scenario's; "
                                       "needed for scenarios without a default fine-tuning set)", type=int,
                                       metavar="N")
    max_train_samples: Optional[int] = _opt(None, "use at most N training samples per scenario (whole users, seeded)",
                                            type=int, metavar="N")
    max_valid_samples: Optional[int] = _opt(None, "use at most N validation samples per scenario (whole users)",
                                            type=int, metavar="N")
    template: Optional[str] = _opt(None, "prompt template id or .txt path (evaluate with the same --template)")
    chat_template: Optional[bool] = _opt(None, "wrap prompts in the model's chat template (None: the model "
                                         "alias's default, as zero-shot)", cli=False)
    max_length: Optional[int] = _opt(None, "context budget in tokens (evaluate with the same --max-length)",
                                     cli=False)
    # LoRA
    lora_r: int = _opt(32, "LoRA rank (default 32)", type=int)
    lora_alpha: float = _opt(128, "LoRA alpha (default 128)", type=float)
    lora_dropout: float = _opt(0.1, "LoRA dropout (default 0.1)", type=float)
    target_modules: Optional[List[str]] = _opt(None, "comma-separated module names to adapt (default: the "
                                               "attention query/value projections of the architecture)",
                                               type=split_modules, metavar="A,B")
    lora_layers: Optional[int] = _opt(None, "adapt only the last N transformer layers (default: all); cheaper "
                                      "backward pass", type=int, metavar="N")
    # optimisation
    lr: float = _opt(1e-4, "AdamW learning rate (default 1e-4)", type=float)
    weight_decay: float = _opt(0.0, "AdamW weight decay (default 0)", type=float)
    batch_size: Union[int, str] = _opt("auto", "samples per forward pass, or 'auto' (8, halved on out-of-memory "
                                       "with --grad-accum doubled)", cli=False)
    grad_accum: int = _opt(4, "forward passes per optimizer step; batch-size x grad-accum x GPUs is the "
                           "effective batch (default 8 x 4 = 32)", type=int)
    epochs: int = _opt(3, "maximum epochs (default 3)", type=int)
    max_steps: Optional[int] = _opt(None, "stop after N optimizer steps", type=int, metavar="N")
    warmup_ratio: float = _opt(0.05, "share of steps with linear warm-up (default 0.05)", type=float)
    scheduler: str = _opt("linear", "learning-rate schedule after warm-up", choices=SCHEDULERS)
    eval_every: Optional[int] = _opt(None, "validate every N optimizer steps (default: once per epoch)",
                                     type=int, metavar="N")
    patience: int = _opt(2, "stop after N validations without a better valid gauc (default 2; 0: never)",
                         type=int)
    seed: int = _opt(DEFAULT_SEED, f"training seed: LoRA init, batch order, dropout (default {DEFAULT_SEED})", type=int)
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0: off)", type=float)
    eval_at_start: bool = _opt(True, "validate the untuned model first (the zero-shot reference)", cli=False,
                               hashed=False)
    # discriminative objective
    loss: str = _opt("auto", "objective: bce (generative; discriminative: logistic on cos/temperature), cosine "
                     "(MSE of cosine to the label) or contrastive (margin); auto: bce",
                     choices=("auto", "bce", "cosine", "contrastive"))
    temperature: float = _opt(0.05, "discriminative bce: cosine / temperature is the logit", type=float)
    margin: float = _opt(0.5, "discriminative contrastive: margin on cosine distance", type=float)
    # hardware
    packing: str = _opt("auto", "generative: run each user's shared prompt prefix once with all its candidates "
                        "(block attention mask; same loss and gradients); auto: where the model's attention "
                        "accepts it, else the plain path; off: always the plain path", choices=PACKING,
                        hashed=False)
    gradient_checkpointing: bool = _opt(False, "recompute activations in the backward pass (less memory)",
                                        hashed=False)
    quantization: Optional[str] = _opt(None, "4bit: QLoRA (bitsandbytes, CUDA)", cli=False)
    dtype: Optional[str] = _opt(None, "float32 | bfloat16 | float16 (default: bf16 on CUDA)", cli=False)
    device: Optional[str] = _opt(None, "device", cli=False, hashed=False)
    device_map: Optional[str] = _opt(None, "device map", cli=False, hashed=False)
    trust_remote_code: bool = _opt(False, "allow model code", cli=False, hashed=False)
    revision: Optional[str] = _opt(None, "model revision", cli=False)
    eval_batch_size: Optional[int] = _opt(None, "batch size for validation scoring (default: 2 x batch size)",
                                          type=int, hashed=False, metavar="N")
    # bookkeeping
    save_every: int = _opt(50, "write a resumable checkpoint every N optimizer steps (and at every validation)",
                           type=int, hashed=False)
    overwrite: bool = _opt(False, "retrain even if this config's adapter exists", hashed=False)
    resume: bool = _opt(True, "resume an interrupted run from its last checkpoint", cli=False, hashed=False)
    progress: bool = _opt(True, "progress bars", cli=False, hashed=False)
    use_cache: bool = _opt(True, "use the processed-scenario cache", cli=False, hashed=False)
    strict: bool = _opt(False, "fail on the first malformed raw row", hashed=False)
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
        losses = get_scheme(self.scheme).sft_losses
        if not losses:
            raise ConfigError(f"the {self.scheme} scheme has no fine-tuning objective")
        if self.loss != "auto" and self.loss not in losses:
            raise ConfigError(f"--loss {self.loss} does not apply to the {self.scheme} scheme "
                              f"(choose from {', '.join(losses)})")
        positive_ints = {"lora_r": self.lora_r, "grad_accum": self.grad_accum, "epochs": self.epochs,
                         "save_every": self.save_every}
        for name, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("max_steps", "eval_every", "lora_layers", "num_finetune", "max_train_samples",
                     "max_valid_samples", "eval_batch_size", "max_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        self.micro_batch()  # validates batch_size
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ConfigError(f"--patience must be >= 0, got {self.patience!r}")
        if not (self.lr > 0):
            raise ConfigError(f"--lr must be > 0, got {self.lr!r}")
        if not (self.lora_alpha > 0):
            raise ConfigError(f"--lora-alpha must be > 0, got {self.lora_alpha!r}")
        if not (0.0 <= self.lora_dropout < 1.0):
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("--weight-decay and --max-grad-norm must be >= 0")
        if not (self.temperature > 0):
            raise ConfigError(f"--temperature must be > 0, got {self.temperature!r}")
        if self.packing not in PACKING:
            raise ConfigError(f"unknown --packing '{self.packing}'" + suggest(str(self.packing), PACKING))
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown --scheduler '{self.scheduler}'" + suggest(self.scheduler, SCHEDULERS))
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
