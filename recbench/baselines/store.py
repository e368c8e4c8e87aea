"""Trained baselines on disk: `<output>/baselines/<model>-<scenario>-<hash>/`.

The hash covers everything that changes what is trained (architecture, item-embedding
model, hashed settings, seed, the fine-tuning and test fingerprints), like SFT adapters, so
rerunning the same configuration finds the trained model and reports it instead of training
again. A folder is written under a temporary name and renamed: it is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import DataError
from ..results import atomic_write_text
from .data import Vocab

META = "recommender.json"
VOCAB = "vocab.json"


def model_folder(output_dir: str, slug: str, scenario: str, digest: str) -> Path:
    return Path(output_dir) / "baselines" / f"{slug}-{scenario}-{digest}"


def read_meta(folder: Path) -> Optional[Dict[str, Any]]:
    """The folder's record, or None when there is no complete trained model there."""
    path = folder / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); delete the folder or rerun with --retrain") from None
    return meta if isinstance(meta, dict) else None


def read_vocab(folder: Path) -> Vocab:
    return Vocab(json.loads((folder / VOCAB).read_text(encoding="utf-8")))


def write_folder(folder: Path, recommender, vocab: Vocab, meta: Dict[str, Any]) -> None:
    """Save the model, its vocabulary and its record; replace an older folder atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        recommender.save(tmp)
        atomic_write_text(tmp / VOCAB, json.dumps(vocab.items))
        atomic_write_text(tmp / META, json.dumps(meta, indent=2, default=str) + "\n")
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
