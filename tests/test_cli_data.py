"""`recbench data list|prepare|info|download`, called in-process (plus one subprocess run)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from recbench.cli import main
from recbench.scenarios import SCENARIOS, RemoteFile
from recbench.scenarios.base import Event, RawSource

from test_download import LocalServer, make_zip  # noqa: E402  (tests/ is on sys.path)

ML_LATEST = Path(__file__).parent / "fixtures" / "movielens" / "ml-latest"


def _importable(name: str) -> bool:
    from recbench.scenarios import get_source

    try:
        get_source(name)
        return True
    except Exception:
        return False


# -- fake scenarios registered for a test through a module in sys.modules ----------------


class ManualSource(RawSource):
    name = "fakemanual"
    domain = "testing"
    expected_files = "a.tsv + b.tsv"
    source_url = "https://example.org/get-the-data"

    def raw_files(self):
        raise self.missing("a.tsv")

    def load_items(self):
        return {}

    def iter_events(self, items):
        return iter(())


class OptionSource(RawSource):
    """Records the options the CLI passed (stands in for the custom loader)."""

    name = "fakecustom"
    domain = "testing"
    needs_raw_dir = False
    seen: dict = {}

    @classmethod
    def option_names(cls):
        return ("interactions", "items", "user_col", "item_col", "time_col", "label_col",
                "rating_col", "text_col", "positive_threshold")

    def raw_files(self):
        OptionSource.seen = dict(self.options)
        return []

    def load_items(self):
        return {f"i{k}": f"Item {k}" for k in range(30)}

    def iter_events(self, items):
        for u in range(6):
            for k in range(8):
                yield Event(f"u{u}", f"i{(u * 3 + k) % 30}", float(k), int(k % 3 != 0))


@pytest.fixture
def fakes(monkeypatch):
    mod = types.ModuleType("recbench_test_fakes")
    mod.ManualSource = ManualSource
    mod.OptionSource = OptionSource
    monkeypatch.setitem(sys.modules, "recbench_test_fakes", mod)
    monkeypatch.setitem(SCENARIOS, "fakemanual", "recbench_test_fakes:ManualSource")
    monkeypatch.setitem(SCENARIOS, "fakecustom", "recbench_test_fakes:OptionSource")
    monkeypatch.setitem(SCENARIOS, "fakebroken", "recbench_test_no_such_module:Nope")


# -- list -----------------------------------------------------------------------------


def test_list_shows_every_scenario_and_broken_ones(capsys, fakes, tmp_path):
    (tmp_path / "movielens").mkdir()
    for f in ("ratings.csv", "movies.csv"):
        (tmp_path / "movielens" / f).write_bytes((ML_LATEST / f).read_bytes())
    rc = main(["data", "list", "--raw-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    for name in SCENARIOS:
        assert name in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "unavailable: ModuleNotFoundError" in lines["fakebroken"]
    assert "found" in lines["movielens"] and "auto" in lines["movielens"]
    assert "movies" in lines["movielens"] and "20,000" in lines["movielens"]
    assert "manual" in lines["fakemanual"] and "missing" in lines["fakemanual"]


def test_list_json(capsys, fakes):
    assert main(["data", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by = {s["name"]: s for s in doc["scenarios"]}
    assert by["movielens"]["download"] == "auto" and by["movielens"]["num_test"] == 20000
    assert by["fakebroken"]["available"] is False


# -- prepare --------------------------------------------------------------------------


def test_prepare_summary_shows_skip_reasons(capsys):
    rc = main(["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST)])
    cap = capsys.readouterr()
    assert rc == 0
    out = cap.out
    assert "movielens (movies): built" in out
    assert "rows read        82" in out
    assert "wrong number of columns  (first: ratings.csv:100" in out
    assert "non-numeric rating or timestamp  (first: ratings.csv:99)" in out
    assert "empty title  (first: movies.csv:42)" in out
    assert "rating of exactly 3" in out
    assert "data fingerprint" in out and "cache key" in out
    assert "reading interactions (duckdb)" in cap.err  # progress goes to stderr


def test_prepare_json_and_cache_reuse(capsys, tmp_path):
    args = ["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST), "--json", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["cache"]["state"] == "built"
    assert first["rows_read"] == 82 and first["rows_skipped"] == 4 and first["rows_dropped"] == 15
    assert first["skipped_examples"]["wrong number of columns"].startswith("ratings.csv:100")
    assert 0 < first["test"]["positive_rate"] < 1
    assert Path(first["cache"]["path"]).is_dir()
    assert Path(first["cache"]["path"]).parent.parent.parent == tmp_path
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cache"]["state"] == "loaded"
    assert second["data_fingerprint"] == first["data_fingerprint"]
    assert main(args + ["--seed", "7"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert third["cache"]["key"] != first["cache"]["key"]


def test_prepare_no_cache_and_sizes(capsys):
    rc = main(["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST), "--no-cache", "--num-test", "10", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cache"]["state"] == "disabled" and 0 < doc["test"]["samples"] <= 10


def test_prepare_strict_stops_at_first_bad_row(capsys):
    rc = main(["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST), "--strict", "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "movies.csv:42" in err and "Traceback" not in err


def test_prepare_missing_raw_dir_is_one_line(capsys, tmp_path):
    rc = main(["data", "prepare", "movielens", "--raw-dir", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("recbench: error:")]
    assert len(errors) == 1 and "does not exist" in errors[0]
    assert "Traceback" not in err


def test_prepare_without_raw_dir_says_how(capsys):
    rc = main(["data", "prepare", "movielens"])
    err = capsys.readouterr().err
    assert rc == 2 and "--raw-dir" in err and "RECBENCH_DATA" in err


def test_unknown_scenario_suggests(capsys):
    rc = main(["data", "prepare", "movielense", "--raw-dir", str(ML_LATEST)])
    err = capsys.readouterr().err
    assert rc == 2 and "did you mean 'movielens'" in err


def test_custom_options_are_passed_through(capsys, fakes, tmp_path):
    rc = main(["data", "prepare", "fakecustom", "--interactions", "inter.csv", "--items", "items.csv",
               "--user-col", "uid", "--rating-col", "stars", "--threshold", "3.5", "--no-cache", "--json"])
    assert rc == 0, capsys.readouterr().err
    assert OptionSource.seen == {"interactions": "inter.csv", "items": "items.csv", "user_col": "uid",
                                 "rating_col": "stars", "positive_threshold": 3.5}
    json.loads(capsys.readouterr().out)


def test_custom_options_rejected_for_other_scenarios(capsys):
    rc = main(["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST), "--user-col", "u"])
    err = capsys.readouterr().err
    assert rc == 2 and "--user-col" in err


@pytest.mark.skipif(not _importable("custom"), reason="custom loader not importable yet")
def test_prepare_custom_with_real_loader(capsys, tmp_path):
    rows = ["uid,iid,stars,ts"]
    for u in range(8):
        for k in range(9):
            rows.append(f"u{u},i{(u * 5 + k) % 40},{[5, 4, 1, 5, 2, 4, 5, 3, 1][k]},{1000 + k}")
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("iid,name\n" + "".join(f"i{k},Item {k}\n" for k in range(40)))
    rc = main(["data", "prepare", "custom", "--interactions", str(tmp_path / "inter.csv"),
               "--items", str(tmp_path / "items.csv"), "--user-col", "uid", "--item-col", "iid",
               "--time-col", "ts", "--rating-col", "stars", "--text-col", "name", "--threshold", "4",
               "--no-cache", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(cap.out)
    assert doc["test"]["samples"] > 0 and doc["rows_dropped"] == 8  # the 3-star rows


@pytest.mark.skipif(not _importable("demo"), reason="demo loader not importable yet")
def test_prepare_demo_needs_no_raw_dir(capsys):
    rc = main(["data", "prepare", "demo", "--no-cache", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert json.loads(cap.out)["test"]["samples"] > 0


# -- info -----------------------------------------------------------------------------


def test_info_movielens(capsys, tmp_path):
    rc = main(["data", "info", "movielens"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ratings.csv + movies.csv" in out and "grouplens.org" in out
    assert "auto: recbench data download movielens" in out
    assert "last 2 positives" in out and "20,000 test" in out
    assert "cached build     none (no raw folder configured" in out

    assert main(["data", "prepare", "movielens", "--raw-dir", str(ML_LATEST)]) == 0
    capsys.readouterr()
    assert main(["data", "info", "movielens", "--raw-dir", str(ML_LATEST)]) == 0
    out = capsys.readouterr().out
    assert "loaded from cache" in out and "wrong number of columns" in out


def test_info_json(capsys):
    assert main(["data", "info", "movielens", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["domain"] == "movies" and doc["downloads"][0]["unpack"] is True
    assert doc["policy"]["heldout_positives"] == 2


# -- download -------------------------------------------------------------------------


def test_download_manual_prints_instructions(capsys, fakes, tmp_path):
    rc = main(["data", "download", "fakemanual", "--raw-dir", str(tmp_path)])
    cap = capsys.readouterr()
    assert rc == 1
    assert "https://example.org/get-the-data" in cap.out
    assert str((tmp_path / "fakemanual").resolve()) in cap.out
    assert "a.tsv + b.tsv" in cap.out
    assert "Traceback" not in cap.err


@pytest.mark.skipif(not _importable("mind"), reason="mind loader not importable yet")
def test_download_mind_prints_instructions(capsys):
    from recbench.scenarios import get_source

    rc = main(["data", "download", "mind"])
    out = capsys.readouterr().out
    assert rc == 1
    src = get_source("mind")
    assert src.source_url in out and "mind" in out and "ROOT" in out


def test_download_movielens_from_local_server(capsys, monkeypatch, tmp_path):
    from recbench import download as dl
    from recbench.scenarios.movielens import MovieLensSource

    monkeypatch.setattr(dl, "BACKOFF_S", 0.0)
    srv = LocalServer()
    try:
        data = make_zip({f"ml-latest-small/{f}": (ML_LATEST / f).read_bytes() for f in ("ratings.csv", "movies.csv")})
        url = srv.add("/ml-latest-small.zip", data)
        srv.httpd.drop_after["/ml-latest-small.zip"] = 500  # and it resumes
        monkeypatch.setattr(MovieLensSource, "downloads", (
            RemoteFile(url, "ml-latest-small.zip", sha256=hashlib.sha256(data).hexdigest(), unpack=True),))
        rc = main(["data", "download", "movielens", "--raw-dir", str(tmp_path)])
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        assert (tmp_path / "movielens" / "ratings.csv").read_bytes() == (ML_LATEST / "ratings.csv").read_bytes()
        assert srv.requests[-1]["range"] == "bytes=500-"
        assert "next: recbench data prepare movielens" in cap.out

        srv.httpd.status["/ml-latest-small.zip"] = 404
        rc = main(["data", "download", "movielens", "--raw-dir", str(tmp_path), "--force"])
        err = capsys.readouterr().err
        assert rc == 2 and "HTTP 404" in err and url in err and "Traceback" not in err
    finally:
        srv.close()
    assert main(["data", "prepare", "movielens", "--raw-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_read"] == 82


def test_download_needs_root(capsys):
    rc = main(["data", "download", "movielens"])
    err = capsys.readouterr().err
    assert rc == 2 and "--raw-dir" in err and "RECBENCH_DATA" in err


# -- one real process: no traceback on a user error ---------------------------------------


def test_subprocess_error_has_no_traceback(tmp_path):
    env = dict(os.environ, RECBENCH_CACHE=str(tmp_path / "cache"))
    env.pop("RECBENCH_DATA", None)
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "recbench", "data", "prepare", "movielens", "--raw-dir", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=root, env=env, timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("recbench: error:")]
    assert len(errors) == 1 and "does not exist" in errors[0]
