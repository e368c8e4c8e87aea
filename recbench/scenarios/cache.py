"""Processed splits cached as Parquet, keyed by everything that shapes them.

The key covers protocol version, loader version, scenario, seed, sizes, loader options and
a fingerprint of the raw files (name, size, mtime and sha256 of the first and last MiB of
each), so a changed input or setting rebuilds and stale data is never reused. Writes go to
a temporary folder that is renamed into place, so a killed build leaves no half cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional

import pandas as pd

from .base import PROTOCOL_VERSION, Scenario

CHUNK = 1 << 20


def default_cache_dir() -> Path:
    env = os.environ.get("RECBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "recbench"


def file_fingerprint(path: Path) -> dict:
    """Cheap but content-sensitive: a full hash of a 50 GB file on every load is too slow."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(CHUNK))
        if st.st_size > 2 * CHUNK:
            fh.seek(-CHUNK, os.SEEK_END)
            h.update(fh.read(CHUNK))
        elif st.st_size > CHUNK:
            h.update(fh.read())
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_tail_sha256": h.hexdigest()}


def raw_fingerprint(files: List[Path]) -> str:
    doc = [file_fingerprint(Path(p)) for p in sorted(files, key=lambda p: Path(p).name)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cache_key(name: str, loader_version: str, seed: int, num_test: int, num_finetune: int,
              options: dict, raw_fp: str) -> str:
    doc = {
        "protocol": PROTOCOL_VERSION,
        "loader": loader_version,
        "scenario": name,
        "seed": seed,
        "num_test": num_test,
        "num_finetune": num_finetune,
        "options": {k: str(v) for k, v in sorted(options.items())},
        "raw": raw_fp,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False)


def _read_samples(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    if "history" in df:
        df["history"] = [list(h) if h is not None else [] for h in df["history"]]
    if "label" in df:
        df["label"] = df["label"].astype("int64")
    return df


def save(scenario: Scenario, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        _write_frame(scenario.items, tmp / "items.parquet")
        _write_frame(scenario.test, tmp / "test.parquet")
        _write_frame(scenario.finetune, tmp / "finetune.parquet")
        meta = {
            "name": scenario.name,
            "domain": scenario.domain,
            "item_noun": scenario.item_noun,
            "seed": scenario.seed,
            "info": scenario.info,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(folder: Path) -> Optional[Scenario]:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        return Scenario(
            name=meta["name"],
            domain=meta["domain"],
            item_noun=meta["item_noun"],
            items=pd.read_parquet(folder / "items.parquet"),
            test=_read_samples(folder / "test.parquet"),
            finetune=_read_samples(folder / "finetune.parquet"),
            seed=meta["seed"],
            info=meta["info"],
        )
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache entry: rebuild
