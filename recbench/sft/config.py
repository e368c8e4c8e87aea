"""Typed settings of a supervised fine-tuning run (PROTOCOL §7).

One dataclass holds every knob, each declared once with `recbench.settings.setting` (help,
type, choices, bounds, CLI group) or, for the settings shared with evaluation runs, taken
from RunConfig's declaration (`RunConfig.inherit`). `recbench sft` builds its flags from
them (`settings.add_arguments`), `validate` checks them (`settings.validate`, plus the
cross-field rules), and the run folder is named by a short hash of the fields that change
the trained weights (`hashed()`), so rerunning the same config finds the finished run.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Union

from ..config import RunConfig
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


def _shared(name: str, note: str = "", **changes) -> Any:
    """A setting SFT shares with evaluation runs, declared once in RunConfig (help, type,
    choices, bounds, default); `note` adds what it means for fine-tuning to the help."""
    if note:
        help_text = next(f.metadata["help"] for f in fields(RunConfig) if f.name == name)
        changes["help"] = help_text + note
    return RunConfig.inherit(name, **changes)


# --help groups of `recbench sft` (setting group= -> title)
GROUPS = {"data": "data and prompts", "LoRA": "LoRA", "training": "training"}


@dataclass
class SFTConfig:
    """Everything an SFT run needs. Defaults follow PROTOCOL §7.

    Model-loading settings (max_length, dtype, quantization, device, ...) are RunConfig's
    declarations (`_shared`); their flags come from `recbench zero-shot`'s model-loading
    group, so they are not CLI fields here (cli=False) but are read back by name."""

    model: str = setting(None, "model to tune: alias, HF id, local folder or .gguf file", cli=False)
    train: List[str] = setting(None, "training scenarios, comma-separated (their fine-tuning sets are joined)",
                               cli=False)
    valid: Optional[List[str]] = setting(None, "validation scenarios (default: the training ones); valid gauc is "
                                         "averaged over them", cli=False)
    # data and prompts
    scheme: str = setting(scheme_names()[0], "generative: LoRA on the LM, BCE on P(Yes); discriminative: LoRA on the "
                          "encoder, similarity objective", choices=scheme_names, group="data")
    output_dir: str = setting("results", "output folder; the adapter goes to <output>/adapters/<model>-<scheme>-"
                              "<hash>/", flag="--output", hashed=False, group="data")
    raw_dir: Optional[str] = _shared("raw_dir", hashed=False, group="data")
    data_seed: int = _shared("seed", help="scenario sampling seed; use the evaluation's --seed so that fine-tuning "
                             "users stay disjoint from test users", group="data")
    num_finetune: Optional[int] = setting(None, "fine-tuning samples to build per scenario (default: the scenario's; "
                                          "needed for scenarios without a default fine-tuning set)", metavar="N",
                                          minimum=1, group="data")
    max_train_samples: Optional[int] = setting(None, "use at most N training samples per scenario (whole users, "
                                               "seeded)", metavar="N", minimum=1, group="data")
    max_valid_samples: Optional[int] = setting(None, "use at most N validation samples per scenario (whole users)",
                                               metavar="N", minimum=1, group="data")
    template: Optional[str] = _shared("template", "; evaluate the adapter with the same --template", group="data")
    strict: bool = _shared("strict", hashed=False, group="data")
    chat_template: Optional[bool] = _shared("chat_template", "; evaluate the adapter with the same setting",
                                            group="data")
    max_length: Optional[int] = _shared("max_length", "; evaluate the adapter with the same --max-length", cli=False)
    # LoRA
    lora_r: int = setting(32, "LoRA rank", minimum=1, group="LoRA")
    lora_alpha: float = setting(128, "LoRA alpha", minimum=0, exclusive_minimum=True, group="LoRA")
    lora_dropout: float = setting(0.1, "LoRA dropout", minimum=0, group="LoRA")
    target_modules: Optional[List[str]] = setting(None, "comma-separated module names to adapt (default: the "
                                                  "attention query/value projections of the architecture)",
                                                  type=split_modules, metavar="A,B", group="LoRA")
    lora_layers: Optional[int] = setting(None, "adapt only the last N transformer layers (default: all); cheaper "
                                         "backward pass", metavar="N", minimum=1, group="LoRA")
    # training
    lr: float = setting(1e-4, "AdamW learning rate", minimum=0, exclusive_minimum=True, group="training")
    weight_decay: float = setting(0.0, "AdamW weight decay", minimum=0, group="training")
    batch_size: Union[int, str] = _shared("batch_size", help="samples per forward pass, or 'auto' (8, halved on "
                                          "out-of-memory with --grad-accum doubled)", cli=False)
    grad_accum: int = setting(4, "forward passes per optimizer step; batch-size x grad-accum x GPUs is the "
                              "effective batch (8 x 4 = 32 with the defaults)", minimum=1, group="training")
    epochs: int = setting(3, "maximum epochs", minimum=1, group="training")
    max_steps: Optional[int] = setting(None, "stop after N optimizer steps", metavar="N", minimum=1, group="training")
    warmup_ratio: float = setting(0.05, "share of steps with linear warm-up", minimum=0, group="training")
    scheduler: str = setting("linear", "learning-rate schedule after warm-up", choices=SCHEDULERS, group="training")
    eval_every: Optional[int] = setting(None, "validate every N optimizer steps (default: once per epoch)",
                                        metavar="N", minimum=1, group="training")
    patience: int = setting(2, "stop after N validations without a better valid gauc (0: never)", minimum=0,
                            group="training")
    seed: int = setting(DEFAULT_SEED, "training seed: LoRA init, batch order, dropout", group="training")
    max_grad_norm: float = setting(1.0, "gradient clipping norm (0: off)", minimum=0, group="training")
    eval_at_start: bool = setting(True, "validate the untuned model first (the zero-shot reference)", cli=False,
                                  hashed=False)
    # discriminative objective
    loss: str = setting("auto", "objective: bce (generative; discriminative: logistic on cos/temperature), cosine "
                        "(MSE of cosine to the label) or contrastive (margin); auto: bce",
                        choices=("auto", "bce", "cosine", "contrastive"), group="training")
    temperature: float = setting(0.05, "discriminative bce: cosine / temperature is the logit", minimum=0,
                                 exclusive_minimum=True, group="training")
    margin: float = setting(0.5, "discriminative contrastive: margin on cosine distance", group="training")
    # hardware
    packing: str = setting("auto", "generative: run each user's shared prompt prefix once with all its candidates "
                           "(block attention mask; same loss and gradients); auto: where the model's attention "
                           "accepts it, else the plain path; off: always the plain path", choices=PACKING,
                           hashed=False, group="training")
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass (less memory)",
                                           hashed=False, group="training")
    quantization: Optional[str] = _shared("quantization", "; 4bit: QLoRA", cli=False)
    dtype: Optional[str] = _shared("dtype", cli=False)
    device: Optional[str] = _shared("device", cli=False, hashed=False)
    device_map: Optional[str] = _shared("device_map", cli=False, hashed=False)
    trust_remote_code: bool = _shared("trust_remote_code", cli=False, hashed=False)
    revision: Optional[str] = _shared("revision", cli=False)
    eval_batch_size: Optional[int] = setting(None, "batch size for validation scoring (default: 2 x batch size)",
                                             hashed=False, metavar="N", minimum=1, group="training")
    # bookkeeping
    save_every: int = setting(50, "write a resumable checkpoint every N optimizer steps (and at every validation)",
                              hashed=False, minimum=1, group="training")
    overwrite: bool = setting(False, "retrain even if this config's adapter exists", hashed=False, group="training")
    resume: bool = setting(True, "discard an interrupted run of this config", negate="--no-resume", hashed=False,
                           group="training")
    progress: bool = _shared("progress", hashed=False)
    use_cache: bool = _shared("use_cache", cli=False, hashed=False)
    scenario_options: Dict[str, Dict] = setting(default_factory=dict, cli=False,
                                                help="per-scenario loader options (custom files, columns)")

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
        self._check_declared()
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
        if self.target_modules is not None and not self.target_modules:
            raise ConfigError("--target-modules is empty")
        return self

    def _check_declared(self) -> None:
        """Types, choices and bounds as declared (`recbench.settings.validate`), checked on a
        copy where None means the default. A value given as text (as the CLI would) takes its
        parsed form; other values keep their spelling, so an int given for a float setting stays
        an int: 128 and 128.0 hash differently, and adapter folders must not be renamed."""
        checked = copy.copy(self)
        for f in fields(checked):
            if getattr(checked, f.name) is None and f.default is not MISSING and f.default is not None:
                setattr(checked, f.name, f.default)
        validate_settings(checked)
        for f in fields(self):
            given, parsed = getattr(self, f.name), getattr(checked, f.name)
            if isinstance(given, str) and not isinstance(parsed, str):
                setattr(self, f.name, parsed)

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

