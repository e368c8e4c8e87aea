"""Per-request score cache in SQLite (the lm-evaluation-harness idea, made crash-safe).

Every score or embedding is committed as soon as its batch is computed, keyed by a hash of
everything that determines it (model identity incl. revision and adapter, scheme, template
sha, the exact request text). A killed run restarted with the same command finds them and
recomputes (or re-pays) nothing. Keys never contain secrets: identities hold no API keys.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


def namespace(identity: Mapping, **extra) -> str:
    """A short stable hash of what the scores depend on besides the request text."""
    doc = json.dumps({**identity, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:24]


def request_key(ns: str, text: str) -> str:
    return hashlib.sha256(f"{ns}\x00{text}".encode("utf-8")).hexdigest()


class ScoreCache:
    """Two tables: scalar scores and float32 vectors. Safe across threads of one process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL, extra TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, value BLOB NOT NULL)")
            self._db.commit()

    @classmethod
    def default(cls) -> "ScoreCache":
        from .scenarios.cache import default_cache_dir

        return cls(default_cache_dir() / "scores.sqlite")

    def _select(self, table: str, keys: Sequence[str]) -> List[tuple]:
        rows: List[tuple] = []
        cols = "key, value, extra" if table == "scores" else "key, dim, value"
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows.extend(self._db.execute(f"SELECT {cols} FROM {table} WHERE key IN ({marks})", chunk))
        return rows

    def get_scores(self, keys: Sequence[str]) -> Dict[str, float]:
        return {k: v for k, v, _ in self._select("scores", keys)}

    def get_extras(self, keys: Sequence[str]) -> Dict[str, Optional[dict]]:
        return {k: (json.loads(e) if e else None) for k, _, e in self._select("scores", keys)}

    def put_scores(self, items: Mapping[str, float], extras: Optional[Mapping[str, dict]] = None) -> None:
        extras = extras or {}
        rows = [(k, float(v), json.dumps(extras[k]) if k in extras else None) for k, v in items.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)
            self._db.commit()

    def get_vectors(self, keys: Sequence[str]) -> Dict[str, np.ndarray]:
        return {k: np.frombuffer(b, dtype=np.float32, count=d).copy() for k, d, b in self._select("vectors", keys)}

    def put_vectors(self, items: Mapping[str, np.ndarray]) -> None:
        rows = [(k, int(v.shape[-1]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
            self._db.commit()

    def merge_from(self, other: Path) -> Dict[str, int]:
        """Copy every entry of another cache file that this one lacks (the merge step of
        sharded runs on nodes without a shared file system); returns rows added per table."""
        other = Path(other)
        if not other.is_file():
            from .errors import DataError

            raise DataError(f"score cache {other} does not exist")
        added = {}
        with self._lock:
            self._db.execute("ATTACH DATABASE ? AS src", (str(other),))
            try:
                for table in ("scores", "vectors"):
                    before = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    self._db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM src.{table}")
                    added[table] = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - before
                self._db.commit()
            finally:
                self._db.execute("DETACH DATABASE src")
        return added

    def count(self, table: str = "scores") -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
