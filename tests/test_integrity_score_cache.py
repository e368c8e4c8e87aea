"""A damaged score cache is one clear error line at open, never a traceback."""

import os
import sqlite3

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
