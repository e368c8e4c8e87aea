"""A damaged score cache is one clear error line at open, never a traceback."""

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from recbench.cache import CacheError, ScoreCache
from recbench.errors import RecBenchError


def good_cache(path):
    c = ScoreCache(path)
    c.put_scores({f"k{i}": i / 10 for i in range(2000)})
    c.put_vectors({"v": np.ones(4, dtype=np.float32)})
    c.close()
    return path


def assert_one_line(err, path):
    msg = str(err.value)
    assert isinstance(err.value, RecBenchError)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_a_good_cache_opens_and_reads(tmp_path):
    c = ScoreCache(good_cache(tmp_path / "scores.sqlite"))
    assert c.get_scores(["k3"]) == {"k3": pytest.approx(0.3)}
    assert c.count("vectors") == 1
    c.close()


def test_not_a_database(tmp_path):
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CacheError) as err:
        ScoreCache(path)
    msg = assert_one_line(err, path)
    assert "move or delete" in msg and "RECBENCH_CACHE" in msg


def test_damaged_pages(tmp_path):
    path = good_cache(tmp_path / "scores.sqlite")
    for suffix in ("-wal", "-shm"):
        assert not os.path.exists(str(path) + suffix)
    data = bytearray(path.read_bytes())
    page = 4096
    for k in range(page + 100, len(data) - 1, page):  # scribble over every page but the header
        data[k : k + 64] = os.urandom(64)
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError) as err:
        c = ScoreCache(path)
        c.get_scores([f"k{i}" for i in range(2000)])  # (if the open check let it through)
    assert_one_line(err, path)


def test_path_is_a_folder(tmp_path):
    path = tmp_path / "scores.sqlite"
    path.mkdir()
    with pytest.raises(CacheError) as err:
        ScoreCache(path)
    assert "is a folder" in assert_one_line(err, path)


def test_wrong_schema(tmp_path):
    path = tmp_path / "scores.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE scores (key TEXT PRIMARY KEY, something TEXT)")
    db.commit()
    db.close()
    with pytest.raises(CacheError) as err:
        ScoreCache(path)
    assert "scores" in assert_one_line(err, path)


def test_damage_found_later_is_the_same_one_line_error(tmp_path):
    c = ScoreCache(good_cache(tmp_path / "scores.sqlite"))
    c._db.close()  # the connection fails under it
    with pytest.raises(CacheError) as err:
        c.get_scores(["k1"])
    assert_one_line(err, c.path)


def test_cli_prints_one_line_for_a_damaged_cache(tmp_path, tiny_models, monkeypatch, capsys):
    from recbench.cli import main

    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "scores.sqlite").write_bytes(b"garbage" * 1000)
    rc = main(["zero-shot", "--model", str(tiny_models["llama"]), "--scenario", "demo", "--limit", "4",
               "--output", str(tmp_path / "results"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("recbench: error: score cache") and "scores.sqlite" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_merging_a_damaged_cache_is_one_line(tmp_path):
    bad = tmp_path / "other.sqlite"
    bad.write_bytes(b"garbage" * 1000)
    c = ScoreCache(good_cache(tmp_path / "scores.sqlite"))
    with pytest.raises(CacheError) as err:
        c.merge_from(bad)
    assert_one_line(err, bad)
    assert c.count() == 2000  # the destination is untouched and still usable
    c.close()


def test_a_busy_first_open_is_retried_not_fatal(tmp_path, monkeypatch):
    """Two ranks opening a new cache at once: SQLite answers the loser's switch to WAL with BUSY
    at once (no busy handler); the open waits and retries instead of failing the run."""
    import recbench.cache as cache_mod

    real_open, calls = ScoreCache._open, []

    def busy_twice(self):
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        real_open(self)

    monkeypatch.setattr(ScoreCache, "_open", busy_twice)
    c = ScoreCache(tmp_path / "scores.sqlite")
    c.put_scores({"k": 0.5})
    assert c.get_scores(["k"]) == {"k": 0.5} and len(calls) == 3
    c.close()
    monkeypatch.setattr(cache_mod, "OPEN_TIMEOUT_S", 0.0)
    calls.clear()
    with pytest.raises(CacheError, match="locked by another process"):
        ScoreCache(tmp_path / "other.sqlite")


def _open_and_write(path: str, n: int) -> str:
    try:
        c = ScoreCache(Path(path))
        c.put_scores({f"{n}": float(n)})
        c.close()
        return "ok"
    except Exception as exc:  # reported to the parent, which asserts on it
        return repr(exc)


def test_processes_opening_a_new_cache_together_all_succeed(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(4) as pool:
        for round_ in range(30):
            path = str(tmp_path / f"r{round_}" / "scores.sqlite")
            Path(path).parent.mkdir()
            outcomes = pool.starmap(_open_and_write, [(path, n) for n in range(4)])
            assert outcomes == ["ok"] * 4, outcomes
            c = ScoreCache(Path(path))
            assert len(c.get_scores([str(n) for n in range(4)])) == 4
            c.close()
