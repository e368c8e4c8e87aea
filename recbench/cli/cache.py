"""`recbench cache`: the per-request score cache (merge the caches of sharded jobs)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("cache", help="inspect or merge score caches",
                       description="The SQLite score cache ($RECBENCH_CACHE/scores.sqlite, or --cache-dir). "
                       "`merge` copies the entries of other caches (e.g. one per node of a sharded run) into it.")
    cmds = p.add_subparsers(dest="cache_command", metavar="ACTION")
    m = cmds.add_parser("merge", help="copy entries of other score caches into this one")
    m.add_argument("sources", nargs="+", help="scores.sqlite files (or folders holding one) to merge in")
    m.add_argument("--cache-dir", help="the destination cache folder (default: $RECBENCH_CACHE or ~/.cache/recbench)")
    m.set_defaults(func=merge)
    i = cmds.add_parser("info", help="entries in the cache")
    i.add_argument("--cache-dir", help="the cache folder (default: $RECBENCH_CACHE or ~/.cache/recbench)")
    i.set_defaults(func=info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _open(cache_dir):
    from ..cache import ScoreCache

    return ScoreCache.default() if cache_dir is None else ScoreCache(Path(cache_dir) / "scores.sqlite")


def merge(args) -> int:
    cache = _open(args.cache_dir)
    try:
        for src in args.sources:
            path = Path(src)
            if path.is_dir():
                path = path / "scores.sqlite"
            added = cache.merge_from(path)
            print(f"{path}: {added['scores']} scores and {added['vectors']} vectors added", file=sys.stderr)
    finally:
        cache.close()
    return 0


def info(args) -> int:
    cache = _open(args.cache_dir)
    try:
        print(f"{cache.path}: {cache.count('scores')} scores, {cache.count('vectors')} vectors")
    finally:
        cache.close()
    return 0
