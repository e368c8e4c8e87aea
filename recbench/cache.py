"""Per-request score cache in SQLite (the lm-evaluation-harness idea, made crash-safe).

Every score or embedding is committed as soon as its batch is computed, keyed by a hash of
everything that determines it (model identity incl. revision and adapter, scheme, template
sha, the exact request text). A killed run restarted with the same command finds them and
recomputes (or re-pays) nothing. Keys never contain secrets: identities hold no API keys.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .hashing import json_sha256

from .errors import RecBenchError


def namespace(identity: Mapping, **extra) -> str:
    """A short stable hash of what the scores depend on besides the request text."""
    return json_sha256({**identity, **extra}, 24)


def request_key(ns: str, text: str) -> str:
    return hashlib.sha256(f"{ns}\x00{text}".encode("utf-8")).hexdigest()


class CacheError(RecBenchError):
    """The score cache file cannot be used (not a database, damaged, not a file)."""


QUICK_CHECK_MAX = 256 << 20  # full page check at open for caches up to this size (~0.5 s)


def _fix_hint(path: Path) -> str:
    return (f"move or delete {path} (its cached scores are lost; they are recomputed), "
            "or set RECBENCH_CACHE to another folder")


OPEN_TIMEOUT_S = 60.0  # how long opening waits for another process's first-open lock


class ScoreCache:
    """Two tables: scalar scores and float32 vectors. Safe across threads of one process.

    Opening checks the file (a database, readable schema, pages intact when small enough to
    check quickly), so a damaged cache is one clear CacheError before any model loads;
    damage found later, on a read or write, raises the same error."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise CacheError(f"score cache {self.path} is a folder, not a file; "
                             "point RECBENCH_CACHE (or --cache-dir) at a folder where scores.sqlite can be created")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the score cache folder {self.path.parent}: {exc.strerror or exc}; "
                             "set RECBENCH_CACHE to a writable folder") from None
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            try:
                self._open()
                return
            except sqlite3.OperationalError as exc:
                self._close_quietly()
                # switching a new file to WAL takes an exclusive lock and SQLite answers BUSY at
                # once (no busy handler) when another process (a second rank) opens it too
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error(exc) from None
                time.sleep(random.uniform(0.01, 0.1))
            except sqlite3.Error as exc:
                self._close_quietly()
                raise self._error(exc) from None

    def _open(self) -> None:
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL, extra TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, value BLOB NOT NULL)")
            self._db.commit()
            self._check_schema()
            if self.path.stat().st_size <= QUICK_CHECK_MAX:
                rows = [r[0] for r in self._db.execute("PRAGMA quick_check(3)")]
                if rows != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(str(r) for r in rows)[:160])

    def _check_schema(self) -> None:
        for table, want in (("scores", ["key", "value", "extra"]), ("vectors", ["key", "dim", "value"])):
            cols = [r[1] for r in self._db.execute(f"PRAGMA table_info({table})")]  # type: ignore[union-attr]
            if cols != want:
                raise sqlite3.DatabaseError(f"table '{table}' has columns {cols}, expected {want}")

    def _error(self, exc: BaseException) -> CacheError:
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and "locked" in what:
            return CacheError(f"score cache {self.path} is locked by another process ({what}); "
                              "wait for it to finish or set RECBENCH_CACHE to another folder")
        return CacheError(f"score cache {self.path} is unusable ({what}); {_fix_hint(self.path)}")

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _run(self, fn):
        """fn(db) under the lock; SQLite errors become one CacheError line."""
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    @classmethod
    def default(cls) -> "ScoreCache":
        from .scenarios.cache import default_cache_dir

        return cls(default_cache_dir() / "scores.sqlite")

    def _select(self, table: str, keys: Sequence[str]) -> List[tuple]:
        cols = "key, value, extra" if table == "scores" else "key, dim, value"

        def go(db) -> List[tuple]:
            rows: List[tuple] = []
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows.extend(db.execute(f"SELECT {cols} FROM {table} WHERE key IN ({marks})", chunk))
            return rows

        return self._run(go)

    def get_scores(self, keys: Sequence[str]) -> Dict[str, float]:
        return {k: v for k, v, _ in self._select("scores", keys)}

    def get_extras(self, keys: Sequence[str]) -> Dict[str, Optional[dict]]:
        return {k: (json.loads(e) if e else None) for k, _, e in self._select("scores", keys)}

    def put_scores(self, items: Mapping[str, float], extras: Optional[Mapping[str, dict]] = None) -> None:
        extras = extras or {}
        rows = [(k, float(v), json.dumps(extras[k]) if k in extras else None) for k, v in items.items()]
        self._run(lambda db: (db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows), db.commit()))

    def get_vectors(self, keys: Sequence[str]) -> Dict[str, np.ndarray]:
        return {k: np.frombuffer(b, dtype=np.float32, count=d).copy() for k, d, b in self._select("vectors", keys)}

    def put_vectors(self, items: Mapping[str, np.ndarray]) -> None:
        rows = [(k, int(v.shape[-1]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        self._run(lambda db: (db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows), db.commit()))

    def merge_from(self, other: Path) -> Dict[str, int]:
        """Copy every entry of another cache file that this one lacks (the merge step of
        sharded runs on nodes without a shared file system); returns rows added per table."""
        other = Path(other)
        if not other.is_file():
            from .errors import DataError

            raise DataError(f"score cache {other} does not exist")
        added = {}

        def go(db) -> None:
            db.execute("ATTACH DATABASE ? AS src", (str(other),))
            try:
                for table in ("scores", "vectors"):
                    before = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM src.{table}")
                    added[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - before
                db.commit()
            finally:
                try:
                    db.execute("DETACH DATABASE src")
                except sqlite3.Error:
                    pass

        with self._lock:
            try:
                go(self._db)
            except sqlite3.Error as exc:
                what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise CacheError(f"cannot merge score cache {other} into {self.path} ({what}); check that {other} "
                                 "is a recbench scores.sqlite, or move the damaged file aside") from None
        return added

    def count(self, table: str = "scores") -> int:
        return int(self._run(lambda db: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            self._close_quietly()
