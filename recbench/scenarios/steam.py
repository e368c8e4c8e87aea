"""Steam (games): the RecBench layout or the UCSD (McAuley lab) layout.

RecBench layout: `App_ID_Info.txt` (CSV without header: appid,title,type,price,release_date,
rating,required_age,is_multiplayer; titles with commas are quoted) + `train_game.txt`
(`user,item1,item2,...` per line, item = app id).
UCSD layout: `australian_users_items.json` + `steam_games.json`, Python-literal lines parsed
with ast.literal_eval (never eval: a line that is not a plain literal is counted as bad).

Every interaction is positive; file order is time order (there are no timestamps), so an
event's time is its running position in the file. Negatives: 2 per user sampled from games
the user never had (PROTOCOL §3).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import DataError
from .base import Event, RawSource, RemoteFile, SamplingPolicy
from .io import BuildReport, check_json_format, iter_delimited, iter_jsonl, iter_lines

UCSD_STEAM = "https://datarepo.eng.ucsd.edu/mcauley_group/data/steam/"


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as Latin-1 ("PokÃ©mon" -> "Pokémon").

    The RecBench copy of App_ID_Info.txt carries such titles. A title is repaired only when
    it round-trips exactly; genuine accents ("Pokémon") do not and are kept as they are.
    """
    if not any("\x80" <= ch <= "\xff" for ch in text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


class SteamSource(RawSource):
    name = "steam"
    domain = "games"
    item_noun = "game"
    description = "Steam games owned by users; all positive, 2 sampled negatives per user."
    policy = SamplingPolicy(sampled_negatives=2)
    expected_files = (
        "App_ID_Info.txt + train_game.txt (RecBench layout), or australian_users_items.json(.gz) "
        "+ steam_games.json(.gz) (UCSD layout)"
    )
    source_url = "https://cseweb.ucsd.edu/~jmcauley/datasets.html#steam_data"
    downloads = (
        RemoteFile(UCSD_STEAM + "australian_users_items.json.gz", "australian_users_items.json.gz"),
        RemoteFile(UCSD_STEAM + "steam_games.json.gz", "steam_games.json.gz"),
    )

    def _files(self) -> Tuple[str, Path, Path]:
        """(layout, item file, interaction file)."""
        pairs = (
            ("recbench", "App_ID_Info.txt", "train_game.txt"),
            ("ucsd", "steam_games.json", "australian_users_items.json"),
        )
        for layout, items_name, users_name in pairs:
            items, users = self.find_file(items_name), self.find_file(users_name)
            if items and users:
                return layout, items, users
            if items or users:
                raise self.missing(users_name if items else items_name)
        raise self.missing("App_ID_Info.txt and train_game.txt")

    def raw_files(self) -> List[Path]:
        _, items, users = self._files()
        return [items, users]

    # -- items ------------------------------------------------------------------------------
    def load_items(self) -> Dict[str, str]:
        layout, path, users = self._files()
        if layout == "recbench":
            self._check_recbench(path, users)
            rows = iter_delimited(path, self.report, header=False, columns=("app_id", "title"), min_fields=2)
            pairs = ((ln, r["app_id"], repair_mojibake(r["title"])) for ln, r in rows)
        else:
            check_json_format(path, self.report, "Python-literal game records ({'id': ..., 'app_name': ...})", literal=True)
            check_json_format(users, self.report, "Python-literal user records ({'user_id': ..., 'items': [...]})", literal=True)
            pairs = (
                (ln, obj.get("id"), obj.get("app_name") or obj.get("title"))
                for ln, obj in iter_jsonl(path, self.report, literal=True)
            )
        items: Dict[str, str] = {}
        for lineno, app_id, title in pairs:
            app_id = str(app_id).strip() if app_id is not None else ""
            if not app_id:
                self.report.skip("missing app id", f"{path.name}:{lineno}")
                continue
            if layout == "recbench" and lineno == 1 and app_id.lower() in ("appid", "app_id"):
                continue  # a header line
            title = " ".join(str(title or "").split())
            if not title:
                self.report.skip("empty title", f"{path.name}:{lineno}")
                continue
            items.setdefault(app_id, title)
        return items

    @staticmethod
    def _check_recbench(apps: Path, users: Path) -> None:
        """Fail early (file, line, what was expected) when a file is not in the RecBench format."""
        for path, expected in (
            (apps, "CSV lines appid,title,type,price,..."),
            (users, "lines user,app_id,app_id,..."),
        ):
            for lineno, text in iter_lines(path, BuildReport()):
                try:
                    fields = next(csv.reader([text]))
                except csv.Error:
                    fields = []
                if path is apps:
                    ok = len(fields) >= 2 and (fields[0].strip().isdigit() or fields[0].strip().lower() in ("appid", "app_id"))
                else:
                    ok = len(fields) >= 1 and all(f.strip().isdigit() for f in fields[1:] if f.strip())
                    ok = ok and not text.lstrip().startswith(("{", "["))
                if not ok:
                    raise DataError(f"{path} line {lineno}: expected {expected}, got {text[:60]!r}; is this the right file?")
                break
            else:
                raise DataError(f"{path} is empty; expected {expected}")

    # -- interactions -----------------------------------------------------------------------
    def iter_events(self, items: Dict[str, str]) -> Iterator[Event]:
        layout, _, users = self._files()
        lists = self._recbench_lists(users) if layout == "recbench" else self._ucsd_lists(users)
        pos = 0
        for user, games in lists:
            for app_id in games:
                yield Event(user, app_id, float(pos), 1)
                pos += 1

    def _recbench_lists(self, path: Path) -> Iterator[Tuple[str, List[str]]]:
        for lineno, text in iter_lines(path, self.report):
            fields = [f.strip() for f in text.split(",")]
            user = fields[0]
            if not user:
                self.report.skip("missing user id", f"{path.name}:{lineno}")
                continue
            yield user, [f for f in fields[1:] if f]

    def _ucsd_lists(self, path: Path) -> Iterator[Tuple[str, List[str]]]:
        for lineno, obj in iter_jsonl(path, self.report, literal=True):
            user: Optional[object] = obj.get("user_id")
            games = obj.get("items")
            if not isinstance(user, str) or not user.strip() or not isinstance(games, list):
                self.report.skip("missing user_id or items list", f"{path.name}:{lineno}")
                continue
            ids = []
            for g in games:
                app_id = g.get("item_id") if isinstance(g, dict) else None
                if app_id is None or not str(app_id).strip():
                    self.report.skip("game without item_id", f"{path.name}:{lineno}")
                    continue
                ids.append(str(app_id).strip())
            yield user.strip(), ids
