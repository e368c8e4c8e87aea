"""The `custom` scenario's options (your own tables), shared by data prepare, zero-shot and sft."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# --option -> (custom loader keyword, type, help)
CUSTOM_OPTIONS: List[Tuple[str, str, type, str]] = [
    ("--interactions", "interactions", str, "interactions table (CSV, Parquet or JSON lines)"),
    ("--items", "items", str, "items table with the item text"),
    ("--user-col", "user_col", str, "user id column of the interactions table"),
    ("--item-col", "item_col", str, "item id column (both tables)"),
    ("--time-col", "time_col", str, "timestamp column (orders each user's history)"),
    ("--label-col", "label_col", str, "0/1 label column"),
    ("--rating-col", "rating_col", str, "rating column (labelled with --threshold)"),
    ("--text-col", "text_col", str, "item text column of the items table"),
    ("--threshold", "positive_threshold", float, "ratings at or above this are positive"),
    ("--negative-threshold", "negative_threshold", float, "ratings at or below this are negative"),
]


def add_custom_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("custom scenario", "options of the `custom` scenario (your own tables)")
    for flag, dest, typ, text in CUSTOM_OPTIONS:
        g.add_argument(flag, dest=f"opt_{dest}", type=typ, default=None, help=text)


def custom_options(args) -> Dict[str, object]:
    """The custom-scenario options given on the command line (paths expanded)."""
    opts: Dict[str, object] = {}
    for _flag, dest, _typ, _text in CUSTOM_OPTIONS:
        value = getattr(args, f"opt_{dest}", None)
        if value is not None:
            opts[dest] = value
    for key in ("interactions", "items"):
        if key in opts:
            opts[key] = os.path.expanduser(str(opts[key]))
    return opts


def custom_raw_dir(options: Dict[str, object], raw_dir: Optional[str]) -> Optional[str]:
    """Without --raw-dir (and $RECBENCH_DATA), the custom tables' own folder."""
    if raw_dir is None and "interactions" in options and not os.environ.get("RECBENCH_DATA"):
        return str(Path(str(options["interactions"])).parent)
    return raw_dir
