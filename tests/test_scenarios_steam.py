"""Steam scenario on tiny files in the RecBench layout and the UCSD (Python-literal) layout."""

from __future__ import annotations

import ast
import csv
import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from recbench.errors import DataError
from recbench.scenarios import load_scenario
from recbench.scenarios.io import BuildReport, iter_jsonl
from recbench.scenarios.steam import SteamSource, repair_mojibake

FIX = Path(__file__).parent / "fixtures" / "steam"
RECBENCH, UCSD = FIX / "recbench", FIX / "ucsd"

PLANTED = {
    "recbench": {"empty title": 1, "missing user id": 1, "unknown item id": 2},
    "ucsd": {"bad Python literal": 1, "empty title": 1, "missing app id": 1, "unknown item id": 1},
}


# -- an independent reading of the raw fixture --------------------------------------------
def _text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")


def raw_truth(layout: str):
    """(game ids with a title, user -> games in file order incl. unknown ones)."""
    games, owned = set(), {}
    if layout == "recbench":
        for row in csv.reader(_text(RECBENCH / "App_ID_Info.txt").splitlines()):
            if len(row) >= 2 and row[1].strip():
                games.add(row[0])
        for line in _text(RECBENCH / "train_game.txt").splitlines():
            user, *items = line.split(",")
            if user:
                owned[user] = items
    else:
        for line in _text(UCSD / "steam_games.json").splitlines():
            g = ast.literal_eval(line)
            if "id" in g and (g.get("app_name") or g.get("title")):
                games.add(g["id"])
        for line in _text(UCSD / "australian_users_items.json.gz").splitlines():
            try:
                u = ast.literal_eval(line)
            except ValueError:
                continue
            owned[u["user_id"]] = [i["item_id"] for i in u["items"]]
    return games, owned


def check_samples(df: pd.DataFrame, games, owned) -> None:
    for user, rows in df.groupby("user_id", sort=False):
        pos = [i for i in owned[user] if i in games]
        assert len(pos) >= 3
        held = pos[-2:]
        for item, label, hist in zip(rows["item_id"], rows["label"], rows["history"]):
            assert list(hist) == pos[:-2]  # file order = time order
            assert item not in hist
            if label == 1:
                assert item in held
            else:
                assert item in games and item not in owned[user]  # sampled from unseen games
        assert (rows["label"] == 0).sum() <= 2


# -- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,folder", [("recbench", RECBENCH), ("ucsd", UCSD)])
def test_samples_follow_the_protocol(layout, folder):
    sc = load_scenario("steam", folder, num_test=40, num_finetune=40, use_cache=False)
    games, owned = raw_truth(layout)
    assert len(sc.test) == 40 and len(sc.finetune) == 40
    check_samples(sc.test, games, owned)
    check_samples(sc.finetune, games, owned)
    assert set(sc.test["user_id"]).isdisjoint(sc.finetune["user_id"])
    per_user = sc.test.groupby("user_id", sort=False)["label"].agg(["sum", "size"])
    assert (per_user.iloc[:-1]["sum"] == 2).all() and (per_user.iloc[:-1]["size"] == 4).all()
    assert sc.info["skipped"] == PLANTED[layout]
    assert sc.info["dropped_by_rule"] == {}
    assert (sc.domain, sc.item_noun) == ("games", "game")


def test_user_with_unknown_game_keeps_the_rest():
    sc = load_scenario("steam", RECBENCH, num_test=10000, num_finetune=0, use_cache=False)
    games, owned = raw_truth("recbench")
    assert "999999" in owned["5"]
    rows = sc.test[sc.test["user_id"] == "5"]
    assert "999999" not in set(rows["item_id"]).union(*map(set, rows["history"]))
    assert "777" not in set(sc.test["user_id"])  # only 2 games


def test_item_texts_recbench_layout():
    items = SteamSource(RECBENCH, BuildReport()).load_items()
    assert items["10"] == "Counter-Strike"
    assert items["20"] == "Warhammer 40,000: Dawn of War"  # quoted comma
    assert items["30"] == "Café Owner Simulator"  # UTF-8 read as Latin-1, repaired
    assert items["40"] == "Café Racer"
    assert "9990" not in items  # blank title


def test_item_texts_ucsd_layout():
    items = SteamSource(UCSD, BuildReport()).load_items()
    assert items["10"] == "Counter-Strike" and items["20"] == "Warhammer 40,000: Dawn of War"
    assert items["50"] == "Game 50"  # only a 'title' key
    assert items["60"] == "Lost Summoner Kitty"
    assert "9990" not in items and "None" not in items


def test_repair_mojibake():
    assert repair_mojibake("PokÃ©mon") == "Pokémon"
    assert repair_mojibake("Pokémon") == "Pokémon"
    assert repair_mojibake("東方") == "東方"
    assert repair_mojibake("Half-Life") == "Half-Life"


def test_python_literals_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    shutil.copy(UCSD / "steam_games.json", tmp_path)
    good = [line for line in _text(UCSD / "australian_users_items.json.gz").splitlines() if line.startswith("{")]
    evil = [
        f"__import__('os').system('touch {marker}')",
        f"{{'user_id': 'x', 'items': [__import__('os').system('touch {marker}')]}}",
        f"(lambda: open('{marker}', 'w'))()",
    ]
    (tmp_path / "australian_users_items.json").write_text("\n".join(good[:5] + evil + good[5:]) + "\n")
    sc = load_scenario("steam", tmp_path, num_test=20, num_finetune=0, use_cache=False)
    assert not marker.exists()
    assert sc.info["skipped"]["bad Python literal"] == 3
    report = BuildReport()
    assert len(list(iter_jsonl(tmp_path / "australian_users_items.json", report, literal=True))) == len(good)
    assert not marker.exists()


def test_fixture_malicious_line_has_no_effect():
    target = Path("/tmp/recbench_steam_pwned")  # what the planted line in the fixture would touch
    if target.exists():
        pytest.skip("marker left by something else")
    load_scenario("steam", UCSD, num_test=20, num_finetune=0, use_cache=False)
    assert not target.exists()


def test_deterministic_for_a_seed_and_different_for_another():
    a = load_scenario("steam", UCSD, seed=1, num_test=40, num_finetune=20, use_cache=False)
    b = load_scenario("steam", UCSD, seed=1, num_test=40, num_finetune=20, use_cache=False)
    c = load_scenario("steam", UCSD, seed=2, num_test=40, num_finetune=20, use_cache=False)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.finetune, b.finetune)
    assert a.fingerprint != c.fingerprint


@pytest.mark.parametrize("folder,where", [
    (RECBENCH, r"(App_ID_Info\.txt|train_game\.txt):\d+"),
    (UCSD, r"(steam_games\.json|australian_users_items\.json\.gz):\d+"),
])
def test_strict_mode_names_file_and_line(folder, where):
    with pytest.raises(DataError, match=where):
        load_scenario("steam", folder, num_test=20, num_finetune=0, strict=True, use_cache=False)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"App_ID_Info\.txt"):
        load_scenario("steam", tmp_path, use_cache=False)
    shutil.copy(RECBENCH / "App_ID_Info.txt", tmp_path)
    with pytest.raises(DataError, match=r"train_game\.txt"):
        load_scenario("steam", tmp_path, use_cache=False)
    other = tmp_path / "u"
    other.mkdir()
    shutil.copy(UCSD / "steam_games.json", other)
    with pytest.raises(DataError, match=r"australian_users_items\.json"):
        load_scenario("steam", other, use_cache=False)


def test_wrong_format_names_file_and_line(tmp_path):
    shutil.copy(RECBENCH / "App_ID_Info.txt", tmp_path)
    (tmp_path / "train_game.txt").write_text("{'user_id': 'x', 'items': []}\n")
    with pytest.raises(DataError, match=r"train_game\.txt line 1: expected"):
        load_scenario("steam", tmp_path, use_cache=False)
    (tmp_path / "train_game.txt").write_text("1,10,20,30\n")
    (tmp_path / "App_ID_Info.txt").write_text("title;type;price\n")
    with pytest.raises(DataError, match=r"App_ID_Info\.txt line 1: expected"):
        load_scenario("steam", tmp_path, use_cache=False)
    ucsd = tmp_path / "ucsd"
    ucsd.mkdir()
    shutil.copy(UCSD / "australian_users_items.json.gz", ucsd)
    (ucsd / "steam_games.json").write_text("id,title\n1,x\n")
    with pytest.raises(DataError, match=r"steam_games\.json line 1: expected"):
        load_scenario("steam", ucsd, use_cache=False)
