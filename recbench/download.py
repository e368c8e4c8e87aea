"""Fetch a scenario's raw files from their public links (`recbench data download`).

Only the standard library talks to the network (urllib.request). A transfer:

- writes to ``<file>.part`` and renames it into place only when complete (atomic), so a
  killed download never leaves a file that looks finished;
- resumes: a rerun (or a retry after a dropped connection) asks for ``Range: bytes=N-``;
  a 206 reply appends, a 200 reply (server ignores Range) starts again from zero, a 416
  reply means the part is already complete (or stale, then it starts again);
- retries connection errors, timeouts and 5xx replies with exponential backoff;
- checks the sha256 when it is known (mismatch: the part is deleted, DataError);
- unpacks .zip / .tar(.gz) archives safely (no absolute paths, no '..', no links out of
  the folder) and flattens a single top-level folder (ml-latest-small/ratings.csv ->
  ROOT/movielens/ratings.csv).

User-fixable failures raise :class:`~recbench.errors.DataError` with one line saying what
failed, where, and what to do.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import List, Optional, Union

from .errors import DataError

PathLike = Union[str, os.PathLike]

USER_AGENT = "recbench-downloader (+https://arxiv.org/abs/2503.05493)"
BACKOFF_S = 1.0  # first retry waits this long, then doubles (tests set it to 0)
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT = (
    urllib.error.URLError,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    ConnectionError,
    socket.timeout,
    TimeoutError,
)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSAT = re.compile(r"bytes\s+\*/(\d+)")


class _Transient(Exception):
    """A failure worth retrying (connection dropped, 5xx, short body)."""


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _progress_bar(total: Optional[int], initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal.
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, file=sys.stderr, disable=None if enabled else True, leave=True)


def _http_error(url: str, dest: Path, code: int, reason: str) -> DataError:
    hint = {
        401: "the server asks for a login: download the file by hand from the dataset's site",
        403: "access denied: the link may need a login or accepted terms; download it by hand",
        404: "the file is no longer at this address: check the dataset's site for a new link",
        410: "the file was removed: check the dataset's site for a new link",
    }.get(code, "try again later, or download the file by hand")
    return DataError(
        f"download of {url} failed: HTTP {code} {reason}; {hint} and put it at {dest}"
    )


def _attempt(url: str, dest: Path, part: Path, *, timeout: float, chunk: int,
             progress: bool, size_hint: Optional[int]) -> bool:
    """One request. Returns True when the .part holds the whole file.

    Raises _Transient for failures worth retrying and DataError for the others.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        code = exc.code
        if code == 416 and offset:
            crange = exc.headers.get("Content-Range", "") if exc.headers else ""
            m = _CONTENT_RANGE_UNSAT.search(crange)
            total = int(m.group(1)) if m else size_hint
            exc.close()
            if total is not None and total == offset:
                return True  # the part already holds the whole file
            part.unlink()  # stale or oversized part: start again from zero
            raise _Transient(f"HTTP 416 for a {offset}-byte partial file; restarting from zero")
        exc.close()
        if code in RETRY_STATUS:
            raise _Transient(f"HTTP {code} {exc.reason}") from None
        raise _http_error(url, dest, code, str(exc.reason)) from None

    with response:
        status = getattr(response, "status", None) or response.getcode()
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        mode = "ab"
        if status == 206:
            m = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                # A range we did not ask for: safest is to start again from zero.
                part.unlink(missing_ok=True)
                raise _Transient("server answered with an unexpected byte range; restarting")
            total = int(m.group(3)) if m.group(3) != "*" else (offset + length if length is not None else None)
        else:  # 200: a full body (the server ignored Range, or there was no part)
            if offset:
                offset = 0
            mode = "wb"
            total = length if length is not None else size_hint
        expected_end = total
        received = offset
        bar = _progress_bar(total, offset, dest.name, progress)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(chunk)
                    except (*_TRANSIENT, OSError) as exc:
                        raise _Transient(f"connection lost after {received} bytes ({exc})") from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if expected_end is not None and received < expected_end:
            raise _Transient(f"connection closed after {received} of {expected_end} bytes")
        if expected_end is not None and received > expected_end:
            part.unlink(missing_ok=True)
            raise _Transient(f"received {received} bytes but expected {expected_end}; restarting")
        return True


def download_file(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    *,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60,
    chunk: int = 1 << 20,
    size: Optional[int] = None,
) -> Path:
    """Download url to dest (resumable, verified, atomic) and return dest.

    A ``<dest>.part`` left by an earlier run is resumed. ``retries`` is the number of tries
    in a row that may fail without receiving any data; a try that made progress resets it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    restarts = 0
    last_error = ""
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            if _attempt(url, dest, part, timeout=timeout, chunk=chunk, progress=progress, size_hint=size):
                break
        except _Transient as exc:
            last_error = str(exc)
            after = part.stat().st_size if part.exists() else 0
            if after > before:
                failures = 0  # progress was made: keep going
                restarts += 1
                if restarts > 1000:
                    raise DataError(f"download of {url} kept failing ({last_error}); try again later") from None
            else:
                failures += 1
            if failures >= max(1, retries):
                raise DataError(
                    f"download of {url} failed after {failures} tries ({last_error}); check your "
                    f"connection and rerun the same command to resume (partial file kept at {part})"
                    if part.exists() else
                    f"download of {url} failed after {failures} tries ({last_error}); check your "
                    "connection and try again"
                ) from None
            time.sleep(BACKOFF_S * (2 ** max(0, failures - 1)))
        except _TRANSIENT as exc:  # could not connect at all
            last_error = f"{getattr(exc, 'reason', exc)}"
            failures += 1
            if failures >= max(1, retries):
                raise DataError(
                    f"could not download {url} after {failures} tries ({last_error}); check your "
                    f"connection, or download it by hand and put it at {dest}"
                ) from None
            time.sleep(BACKOFF_S * (2 ** (failures - 1)))

    if sha256:
        actual = _sha256_file(part)
        if actual.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            raise DataError(
                f"{dest.name}: sha256 mismatch (expected {sha256.lower()}, got {actual}); the "
                f"download from {url} is corrupt or the file changed upstream; the partial file "
                "was deleted, run the command again"
            )
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------------------
# Archives
# ----------------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")
_JUNK = {"__MACOSX", ".DS_Store"}


def _safe_member(name: str, archive: Path) -> Optional[PurePosixPath]:
    """The member's relative path, or DataError when it would land outside the folder."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or _DRIVE.match(norm) or ".." in path.parts:
        raise DataError(
            f"{archive.name}: refusing to unpack member {name!r} (absolute path or '..' would "
            "write outside the target folder); the archive is unsafe or corrupt"
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        return None
    return PurePosixPath(*parts)


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = [(info, _safe_member(info.filename, archive)) for info in zf.infolist()]
        for info, rel in members:
            if rel is None:
                continue
            target = into.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            # A zip entry with the symlink bit is extracted as a plain file holding the
            # link text by zipfile, which is harmless; still, refuse it for clarity.
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{archive.name}: refusing to unpack symbolic link {info.filename!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            rel = _safe_member(member.name, archive)
            if rel is None:
                continue
            if member.issym() or member.islnk() or member.isdev() or member.isfifo():
                raise DataError(
                    f"{archive.name}: refusing to unpack link or special file {member.name!r}"
                )
            target = into.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            src = tf.extractfile(member)
            if src is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def unpack_archive(archive: PathLike, target: PathLike, flatten: bool = True) -> List[Path]:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into target; return the top-level paths placed.

    Members with absolute paths, '..' or links are refused (zip-slip). When everything
    sits in one top-level folder, its contents are moved up into target.
    """
    archive = Path(archive)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if _is_zip(archive):
        extract = _extract_zip
    elif _is_tar(archive):
        extract = _extract_tar
    else:
        raise DataError(f"{archive}: not a zip or tar archive; delete it and download again")
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target))
    try:
        try:
            extract(archive, staging)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise DataError(f"{archive}: corrupt archive ({exc}); delete it and download again") from None
        entries = [p for p in staging.iterdir() if p.name not in _JUNK]
        root = staging
        if flatten and len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
            entries = [p for p in root.iterdir() if p.name not in _JUNK]
        placed = []
        for entry in sorted(entries):
            final = target / entry.name
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            elif final.exists() or final.is_symlink():
                final.unlink()
            os.replace(entry, final)
            placed.append(final)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------


def resolve_root(root: Optional[PathLike]) -> Path:
    """The data root: the given folder, else $RECBENCH_DATA, else a DataError."""
    if root is None or str(root) == "":
        env = os.environ.get("RECBENCH_DATA")
        if not env:
            raise DataError(
                "no data folder given; pass --raw-dir ROOT (files go to ROOT/<scenario>/) "
                "or set RECBENCH_DATA=ROOT"
            )
        root = env
    return Path(root).expanduser().resolve()


def manual_instructions(name: str, root: Optional[PathLike] = None) -> str:
    """Where to get a scenario's files by hand and where to put them."""
    from .scenarios import get_source

    src = get_source(name)
    if root is not None:
        where = str(Path(root).expanduser().resolve() / src.name)
    else:
        env = os.environ.get("RECBENCH_DATA")
        where = (str(Path(env).expanduser().resolve() / src.name) if env
                 else f"ROOT/{src.name}  (ROOT: the folder you pass as --raw-dir or set as RECBENCH_DATA)")
    lines = [
        f"{src.name}: no direct download link (the files need a login, accepted terms, or a "
        "manual step).",
        f"  1. get the files from: {src.source_url or '(see the dataset documentation)'}",
        f"  2. put them in:        {where}",
        f"     expected files:     {src.expected_files or '(see the dataset documentation)'}",
        f"  3. then run:           recbench data prepare {src.name} --raw-dir "
        + (str(Path(root).expanduser().resolve()) if root is not None else "ROOT"),
    ]
    return "\n".join(lines)


def _unpacked_marker(target: Path, filename: str) -> Path:
    return target / f".{filename}.unpacked"


def download_scenario(
    name: str,
    root: Optional[PathLike] = None,
    force: bool = False,
    progress: bool = True,
    *,
    retries: int = 3,
    timeout: float = 60,
    log=None,
) -> List[Path]:
    """Download (and unpack) a scenario's public files into ROOT/<name>/.

    Returns the files now in place: each downloaded file, or for an archive the top-level
    paths it unpacked. Files already present (and matching their sha256 when known) are
    kept unless force=True. Scenarios without direct links raise DataError with the
    manual instructions.
    """
    from .scenarios import get_source

    say = log or (lambda msg: print(msg, file=sys.stderr))
    src = get_source(name)
    base = resolve_root(root)
    if not src.downloads:
        raise DataError(manual_instructions(src.name, base).replace("\n", " "))
    target = base / src.name
    target.mkdir(parents=True, exist_ok=True)
    placed: List[Path] = []
    for rf in src.downloads:
        dest = target / rf.filename
        fresh = False
        if dest.exists() and not force:
            if rf.sha256 and _sha256_file(dest).lower() != rf.sha256.lower():
                say(f"{dest}: sha256 does not match, downloading again")
                dest.unlink()
            else:
                say(f"{dest}: already present (use --force to download again)")
        if force:
            for stale in (dest, dest.with_name(dest.name + ".part")):
                if stale.exists():
                    stale.unlink()
        if not dest.exists():
            say(f"downloading {rf.url} -> {dest}")
            download_file(rf.url, dest, rf.sha256, progress=progress, retries=retries,
                          timeout=timeout, size=rf.size)
            fresh = True
        if rf.unpack:
            marker = _unpacked_marker(target, rf.filename)
            if fresh or force or not marker.exists():
                say(f"unpacking {dest.name} into {target}")
                entries = unpack_archive(dest, target)
                marker.write_text("".join(p.name + "\n" for p in entries))
                placed.extend(entries)
            else:
                placed.extend(target / n for n in marker.read_text().splitlines() if n and (target / n).exists())
        else:
            placed.append(dest)
    return placed


__all__ = ["download_file", "download_scenario", "manual_instructions", "resolve_root", "unpack_archive"]
