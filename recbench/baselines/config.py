"""Training settings of the conventional baselines, declared once (recbench.settings).

They are the flags of `recbench baseline`, the `baseline={...}` keyword of `RecBench`,
validated before any data or model work, recorded in every results file, and the hashed
ones name the trained model's folder (`<output>/baselines/<model>-<scenario>-<hash>/`), so a
rerun with the same settings reuses the trained model instead of training again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Union

from ..errors import ConfigError
from ..settings import check_keywords, setting, validate

FORMAT_VERSION = "1"  # bump when a model's training recipe changes what a config produces
DEFAULT_FINETUNE = 100_000  # PROTOCOL §3's fine-tuning size, for scenarios that define none


@dataclass
class BaselineConfig:
    """How a conventional model is trained on a scenario's fine-tuning split."""

    num_finetune: Optional[int] = setting(None, "fine-tuning samples to build and train on (default: the scenario's "
                                          f"fine-tuning size, or {DEFAULT_FINETUNE} where it has none)", minimum=1,
                                          metavar="N", group="training")
    epochs: int = setting(20, "most training epochs (deep models)", minimum=1, group="training")
    patience: int = setting(2, "stop after this many epochs without a better valid gauc", minimum=1,
                            group="training")
    lr: float = setting(1e-3, "Adam learning rate", minimum=0, exclusive_minimum=True, group="training")
    weight_decay: float = setting(0.0, "Adam weight decay", minimum=0, group="training")
    train_batch_size: int = setting(256, "training pairs per optimizer step", minimum=2, metavar="N",
                                    group="training")
    embedding_dim: int = setting(32, "item-id embedding size (and the size item-text vectors are projected to)",
                                 minimum=4, metavar="N", group="training")
    mlp_dims: str = setting("128,64", "hidden layer sizes of the models' MLP, comma-separated", metavar="N,N",
                            group="training")
    dropout: float = setting(0.2, "dropout in the MLP", minimum=0, group="training")
    max_history: int = setting(50, "most recent history items a model reads", minimum=1, metavar="N",
                               group="training")
    negatives: int = setting(4, "negatives drawn per positive where the task's fine-tuning rows are sequences "
                             "(seqrec), and per position for the sequence models (sasrec, gru4rec)", minimum=1,
                             metavar="N", group="training")
    train_seed: Optional[int] = setting(None, "seed of initialisation and batch order (default: the run's --seed)",
                                        group="training")
    retrain: bool = setting(False, "train again even when this configuration's trained model exists", hashed=False,
                            group="training")

    @classmethod
    def from_any(cls, value: Union[None, "BaselineConfig", Mapping[str, Any]]) -> "BaselineConfig":
        """From RunConfig.baseline (a dict of field values, or an instance), validated."""
        if isinstance(value, cls):
            cfg = cls(**asdict(value))
        else:
            value = dict(value or {})
            check_keywords(cls, value, "baseline")
            cfg = cls(**value)
        validate(cfg)
        cfg.hidden()  # parses mlp_dims
        if cfg.dropout >= 1:
            raise ConfigError(f"--dropout must be < 1, got {cfg.dropout!r}")
        return cfg

    def hidden(self) -> List[int]:
        try:
            dims = [int(x) for x in str(self.mlp_dims).split(",") if x.strip()]
        except ValueError:
            dims = []
        if not dims or any(d < 1 for d in dims):
            raise ConfigError(f"--mlp-dims must be positive integers separated by commas, got {self.mlp_dims!r}")
        return dims

    def public(self) -> Dict[str, Any]:
        return asdict(self)

    def hashed(self) -> Dict[str, Any]:
        """The settings that change what is trained."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("hashed", True)}
        out["format"] = FORMAT_VERSION
        return out


def config_hash(payload: Mapping[str, Any], length: int = 8) -> str:
    """Short sha256 of a JSON-able dict (keys sorted)."""
    text = json.dumps(dict(payload), sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
