"""Cached splits are verified before use, and concurrent builders never crash or tear them."""

import io
import json
import multiprocessing as mp
import random
import shutil

import pandas as pd
import pytest

from recbench.scenarios import cache as split_cache
from recbench.scenarios import load_scenario
from recbench.scenarios.base import samples_fingerprint


@pytest.fixture(scope="module")
def demo():
    return load_scenario("demo", use_cache=False, num_finetune=200)


def entry_of(cache_dir):
    [entry] = [p for p in (cache_dir / "scenarios" / "demo").iterdir() if not p.name.startswith(".")]
    return entry


def load(cache_dir, messages=None):
    return load_scenario("demo", cache_dir=cache_dir, num_finetune=200,
                         progress=(messages.append if messages is not None else None))


def test_entries_carry_checksums_and_a_cached_load_is_the_build(tmp_path, demo):
    built = load(tmp_path)
    meta = json.loads((entry_of(tmp_path) / "meta.json").read_text())
    assert set(meta["sha256"]) == {"items.parquet", "test.parquet", "finetune.parquet"}
    messages = []
    cached = load(tmp_path, messages)
    assert messages == []  # no rebuild
    assert cached.fingerprint == built.fingerprint == demo.fingerprint
    pd.testing.assert_frame_equal(cached.test, demo.test)


def cache_lines(messages):
    return [m for m in messages if m.startswith("scenario cache")]


def test_bit_flips_in_a_cached_split_are_caught_and_rebuilt(tmp_path, demo):
    load(tmp_path)
    entry = entry_of(tmp_path)
    path = entry / "test.parquet"
    original = path.read_bytes()
    rng = random.Random(0)
    for _ in range(200):  # any single-bit flip (before: about half loaded other data silently)
        data = bytearray(original)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        messages = []
        assert split_cache.load(entry, progress=messages.append) is None
        assert len(messages) == 1 and "test.parquet does not match" in messages[0] and "rebuilding" in messages[0]
    messages = []
    sc = load(tmp_path, messages)  # through load_scenario: rebuilt, repaired, said once
    assert sc.fingerprint == demo.fingerprint
    pd.testing.assert_frame_equal(sc.test, demo.test)
    assert len(cache_lines(messages)) == 1
    assert (entry_of(tmp_path) / "test.parquet").read_bytes() == original


def flipped_labels(path):
    df = pd.read_parquet(path)
    df["label"] = 1 - df["label"]
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def test_a_valid_parquet_with_other_labels_is_not_trusted(tmp_path, demo):
    load(tmp_path)
    entry = entry_of(tmp_path)
    (entry / "test.parquet").write_bytes(flipped_labels(entry / "test.parquet"))
    messages = []
    sc = load(tmp_path, messages)
    assert (sc.test["label"] == demo.test["label"]).all() and sc.fingerprint == demo.fingerprint
    assert len(cache_lines(messages)) == 1


def test_the_reported_fingerprint_describes_the_data_read(tmp_path, demo):
    """Even with matching checksums (the meta rewritten too) the fingerprint is the data's."""
    load(tmp_path)
    entry = entry_of(tmp_path)
    data = flipped_labels(entry / "test.parquet")
    (entry / "test.parquet").write_bytes(data)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sha256"]["test.parquet"] = split_cache._sha256(data)
    (entry / "meta.json").write_text(json.dumps(meta))
    sc = load(tmp_path)
    assert (sc.test["label"] != demo.test["label"]).all()
    assert sc.fingerprint == samples_fingerprint(sc.test) != demo.fingerprint


def test_entries_of_the_old_format_are_rebuilt(tmp_path, demo):
    load(tmp_path)
    entry = entry_of(tmp_path)
    meta = json.loads((entry / "meta.json").read_text())
    del meta["sha256"], meta["format"]
    (entry / "meta.json").write_text(json.dumps(meta))
    messages = []
    assert load(tmp_path, messages).fingerprint == demo.fingerprint
    assert len(cache_lines(messages)) == 1 and "older recbench" in messages[0]
    assert "sha256" in json.loads((entry_of(tmp_path) / "meta.json").read_text())


# -- concurrent builders ---------------------------------------------------------------------


def _racer(scenario, root, rounds, barrier, out):
    errors, torn = [], 0
    for r in range(rounds):
        entry = root / f"round{r}" / "demo" / "key"
        try:
            barrier.wait(timeout=60)
            seen = []
            got = split_cache.load(entry, progress=seen.append)
            torn += len(seen)  # a half-made entry seen by a reader
            if got is None:
                split_cache.save(scenario, entry)
                seen = []
                got = split_cache.load(entry, progress=seen.append)
                torn += len(seen)
            if got is None or got.fingerprint != scenario.fingerprint:
                errors.append(f"round {r}: no valid entry after save")
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(f"round {r}: {type(exc).__name__}: {exc}")
    out.put((errors, torn))


def test_three_processes_building_the_same_key_never_fail(tmp_path, demo):
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    rounds, procs = 30, 3
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_racer, args=(demo, tmp_path, rounds, barrier, out)) for _ in range(procs)]
    for w in workers:
        w.start()
    results = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    errors = [e for errs, _ in results for e in errs]
    assert errors == []
    assert sum(torn for _, torn in results) == 0
    for r in range(rounds):
        folder = tmp_path / f"round{r}" / "demo"
        assert [p.name for p in folder.iterdir()] == ["key"]  # no temporary or moved-aside leftovers
        split_cache._verify(folder / "key")


def test_an_invalid_entry_in_the_way_is_replaced(tmp_path, demo):
    entry = tmp_path / "demo" / "key"
    entry.mkdir(parents=True)
    (entry / "junk").write_text("half a build from an old version")
    assert split_cache.save(demo, entry) is True
    assert split_cache.load(entry).fingerprint == demo.fingerprint
    assert sorted(p.name for p in entry.parent.iterdir()) == ["key"]
    shutil.rmtree(entry)
