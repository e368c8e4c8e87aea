"""Processed splits cached as Parquet, keyed by everything that shapes them.

The key covers protocol version, loader version, scenario, seed, sizes, loader options and
a fingerprint of the raw files (name, size, mtime and sha256 of the first and last MiB of
each), so a changed input or setting rebuilds and stale data is never reused. Each entry
is built in a private temporary folder and renamed into place in one step (meta.json, with
the sha256 of every file, written last), so a killed or concurrent build leaves no half
entry; every load checks the files against those checksums.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd

from ..hashing import json_sha256
from .base import PROTOCOL_VERSION, Scenario, samples_fingerprint

CHUNK = 1 << 20
META = "meta.json"


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
    return json_sha256(doc)


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
    return json_sha256(doc, 20)


SPLITS = ("items", "test", "finetune")
FORMAT = 2  # meta.json layout; entries of another format are rebuilt


def _read_samples(data: bytes) -> pd.DataFrame:
    df = pd.read_parquet(io.BytesIO(data))
    if "history" in df:
        df["history"] = [list(h) if h is not None else [] for h in df["history"]]
    if "label" in df:
        df["label"] = df["label"].astype("int64")
    return df


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(scenario: Scenario, folder: Path) -> bool:
    """Publish a built scenario at `folder`; True if this call's files are the ones there.

    Built in a private temporary folder (Parquet files, then meta.json with their sha256
    last) and renamed onto `folder` in one step, so readers never see a half-made entry and
    concurrent builders of the same key never fail: the first rename wins, the others
    find a complete entry and discard theirs. An invalid entry in the way (damaged, old
    format) is moved aside first."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        checksums = {}
        for split in SPLITS:
            buf = io.BytesIO()
            getattr(scenario, split).to_parquet(buf, index=False)
            data = buf.getvalue()
            (tmp / f"{split}.parquet").write_bytes(data)
            checksums[f"{split}.parquet"] = _sha256(data)
        meta = {
            "format": FORMAT,
            "name": scenario.name,
            "domain": scenario.domain,
            "item_noun": scenario.item_noun,
            "seed": scenario.seed,
            "info": scenario.info,
            "sha256": checksums,
        }
        (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
        for _ in range(5):
            try:
                os.rename(tmp, folder)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM, errno.EISDIR,
                                     errno.ENOTDIR) \
                        and not isinstance(exc, FileExistsError):
                    raise
            if _complete(folder):
                return False  # another build of the same key won: use it
            _move_aside(folder)
        return False  # a persistently contended entry: this run uses its own build
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_aside(folder: Path) -> None:
    """Take an invalid entry out of the way with one rename, then delete it."""
    trash = folder.parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, trash)
    except OSError:
        return  # someone else moved it (or cannot be moved: the caller gives up after a few tries)
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink()


def _verify(folder: Path) -> Tuple[dict, Dict[str, bytes]]:
    """(meta, file bytes) of a complete entry whose files all match their sha256; else
    ValueError saying what is wrong."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{META} unreadable: {exc}") from None
    sums = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(sums, dict) \
            or set(sums) != {f"{s}.parquet" for s in SPLITS}:
        raise ValueError("written by an older recbench, without checksums")
    blobs = {}
    for name in sorted(sums):
        try:
            blobs[name] = (folder / name).read_bytes()
        except OSError as exc:
            raise ValueError(f"{name} unreadable: {exc.strerror or exc}") from None
        if _sha256(blobs[name]) != sums[name]:
            raise ValueError(f"{name} does not match the checksum written with it")
    return meta, blobs


def _complete(folder: Path) -> bool:
    try:
        _verify(folder)
        return True
    except ValueError:
        return False


def load(folder: Path, progress: Optional[Callable[[str], None]] = None,
         fingerprint: Optional[Callable[[pd.DataFrame], str]] = None) -> Optional[Scenario]:
    """The cached scenario at `folder`, or None when there is none or it must be rebuilt.

    Every file is checked against the sha256 written with it and parsed from the very bytes
    checked. A damaged entry is rebuilt, and `progress` (else stderr) gets one line saying
    so. The data fingerprint is recomputed from the samples read, so it always describes the
    data actually used (`fingerprint`: the split's own function; default: the ctr samples')."""
    fingerprint = fingerprint or samples_fingerprint
    if not (folder / META).is_file():
        return None
    try:
        meta, blobs = _verify(folder)
        info = dict(meta["info"])
        test = _read_samples(blobs["test.parquet"])
        finetune = _read_samples(blobs["finetune.parquet"])
        info["data_fingerprint"] = fingerprint(test)
        info["finetune_fingerprint"] = fingerprint(finetune)
        return Scenario(
            name=meta["name"],
            domain=meta["domain"],
            item_noun=meta["item_noun"],
            items=pd.read_parquet(io.BytesIO(blobs["items.parquet"])),
            test=test,
            finetune=finetune,
            seed=meta["seed"],
            info=info,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        say = progress or (lambda m: print(m, file=sys.stderr))
        say(f"scenario cache {folder}: {str(exc).splitlines()[0][:160]}; rebuilding it")
        return None
