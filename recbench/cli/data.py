"""`recbench data`: list, inspect, download and prepare the benchmark scenarios."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import ConfigError, RecBenchError
from ..settings import DEFAULT_SEED
from .custom_options import CUSTOM_OPTIONS, add_custom_options, custom_options, custom_raw_dir

RAW_DIR_HELP = (
    "folder holding one folder per scenario (ROOT/mind, ROOT/movielens, ...) or the "
    "scenario's own folder; default: $RECBENCH_DATA"
)

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "data",
        help="list, inspect, download and prepare scenarios",
        description="List, inspect, download and prepare the benchmark scenarios (PROTOCOL §2-§3).",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))

    q = sub.add_parser("list", help="all scenarios, their sizes and whether their raw files are present",
                       description="Show every scenario: domain, default test/fine-tuning sizes, whether "
                                   "its raw files were found under ROOT/<name>/, and whether "
                                   "`recbench data download` can fetch them (auto) or not (manual).")
    q.add_argument("--raw-dir", metavar="ROOT", help="data root to look in (default: $RECBENCH_DATA)")
    q.add_argument("--json", action="store_true", help="print the table as JSON")
    q.set_defaults(func=run_list)

    q = sub.add_parser("prepare", help="build (or load from cache) a scenario's test and fine-tuning samples",
                       description="Read a scenario's official raw files, build the test and fine-tuning "
                                   "samples (seeded, PROTOCOL §3), cache them as Parquet and print a "
                                   "summary: sizes, positive rate, rows read/skipped (with reasons and "
                                   "the first file:line), rows dropped by protocol rules, cache key and "
                                   "data fingerprint.")
    q.add_argument("scenario", metavar="SCENARIO", help="scenario name (see `recbench data list`)")
    q.add_argument("--raw-dir", metavar="DIR", help=RAW_DIR_HELP)
    q.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"sampling seed (default: {DEFAULT_SEED})")
    q.add_argument("--num-test", type=int, metavar="N", help="test samples (default: the scenario's)")
    q.add_argument("--num-finetune", type=int, metavar="N", help="fine-tuning samples (default: the scenario's)")
    q.add_argument("--strict", action="store_true", help="stop at the first malformed row instead of skipping it")
    q.add_argument("--no-cache", action="store_true", help="rebuild and do not write the cache")
    q.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $RECBENCH_CACHE or ~/.cache/recbench)")
    q.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_custom_options(q)
    q.set_defaults(func=run_prepare)

    q = sub.add_parser("info", help="what a scenario is, which files it needs and where to get them",
                       description="Describe a scenario: domain, item noun, expected raw files, source, "
                                   "download availability, sampling policy and default sizes; with a raw "
                                   "folder configured and a cached build present, its summary too.")
    q.add_argument("scenario", metavar="SCENARIO")
    q.add_argument("--raw-dir", metavar="DIR", help=RAW_DIR_HELP)
    q.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of the cached build to look for (default: {DEFAULT_SEED})")
    q.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $RECBENCH_CACHE or ~/.cache/recbench)")
    q.add_argument("--json", action="store_true", help="print as JSON")
    q.set_defaults(func=run_info)

    q = sub.add_parser("download", help="download a scenario's raw files into ROOT/<name>/",
                       description="Download a scenario's public raw files into ROOT/<name>/ (resumable, "
                                   "sha256-checked, archives unpacked). Scenarios whose files need a login "
                                   "or accepted terms (mind, hm, yelp, hotelrec, microlens, ...) have no "
                                   "direct link: the command then prints where to get the files and "
                                   "where to put them, and exits with status 1 (nothing was downloaded).",
                       epilog="Exit status: 0 files in place, 1 manual download needed (instructions "
                              "printed), 2 error (bad name, network or HTTP failure, checksum mismatch).")
    q.add_argument("scenario", metavar="SCENARIO")
    q.add_argument("--raw-dir", metavar="ROOT", help="data root; files go to ROOT/<name>/ (default: $RECBENCH_DATA)")
    q.add_argument("--force", action="store_true", help="download again even when the files are present")
    q.add_argument("--retries", type=int, default=3, help="tries per file without progress (default: 3)")
    q.add_argument("--timeout", type=float, default=60, help="network timeout in seconds (default: 60)")
    q.set_defaults(func=run_download)
    return p


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sources() -> List[Tuple[str, object, Optional[str]]]:
    """(name, source class or None, reason unavailable) for every registered scenario."""
    from ..scenarios import get_source, list_scenarios

    out = []
    for name in list_scenarios():
        try:
            out.append((name, get_source(name), None))
        except Exception as exc:  # a loader that does not import yet must not break the list
            reason = str(exc).splitlines()[0] if str(exc) else ""
            out.append((name, None, f"{type(exc).__name__}: {reason}"[:100]))
    return out


def _root(raw_dir: Optional[str]) -> Optional[Path]:
    value = raw_dir if raw_dir else os.environ.get("RECBENCH_DATA")
    return Path(value).expanduser().resolve() if value else None


def _takes_files(src) -> bool:
    """True for scenarios whose files are named by options (custom)."""
    return "interactions" in src.option_names()


def _download_kind(src) -> str:
    if src.downloads:
        return "auto"
    if _takes_files(src):
        return "-"
    return "bundled" if not src.needs_raw_dir else "manual"


def _raw_status(src, root: Optional[Path]) -> str:
    from ..scenarios import BuildReport

    if _takes_files(src):
        return "your files"
    if not src.needs_raw_dir:
        return "bundled"
    if root is None:
        return "-"
    folder = root / src.name
    if not folder.is_dir():
        return "missing"
    try:
        src(folder, BuildReport()).raw_files()
    except RecBenchError:
        return "incomplete"
    except Exception as exc:  # pragma: no cover - a loader bug
        return f"error: {type(exc).__name__}"
    return "found"


def _fmt_int(n) -> str:
    return f"{int(n):,}" if n is not None else "-"


def _table(headers: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _policy_text(policy, sampled_default: bool = False) -> List[str]:
    lines = []
    if policy.heldout_positives is None:
        lines.append(f"candidates: the items shown in the user's impressions (up to {policy.max_positives} "
                     f"positives and {policy.max_negatives} negatives per user); history shipped with the data")
    else:
        lines.append(f"held out: each user's last {policy.heldout_positives} positives; history: up to "
                     f"{policy.max_history} earlier positives, oldest first")
    if policy.sampled_negatives:
        lines.append(f"negatives: {policy.sampled_negatives} per user, sampled (seeded) from items the user never interacted with")
    else:
        lines.append(f"negatives: the user's real negatives, at most {policy.max_negatives}")
    elig = f"users need >= {policy.min_positives} positives"
    if policy.min_negatives:
        elig += f" and >= {policy.min_negatives} negative(s)"
    lines.append(elig + "; users visited in a seeded shuffled order; fine-tuning users are disjoint from test users")
    return lines


def _summary(scenario, *, raw_dir, cache_entry: Optional[Path], cache_state: str, elapsed: Optional[float]) -> dict:
    s = scenario.summary()
    info = scenario.info
    s["users_total"] = info.get("users_total")
    s["items_total"] = info.get("items_total")
    s["rows_skipped"] = int(sum((s.get("skipped") or {}).values()))
    s["rows_dropped"] = int(sum((s.get("dropped_by_rule") or {}).values()))
    if not scenario.finetune.empty:
        s["finetune"]["train"] = int(len(scenario.finetune_split("train")))
        s["finetune"]["valid"] = int(len(scenario.finetune_split("valid")))
    s["raw_dir"] = str(raw_dir) if raw_dir is not None else None
    s["raw_files"] = info.get("raw_files", [])
    s["protocol_version"] = info.get("protocol_version")
    s["cache"] = {
        "state": cache_state,  # built | loaded | disabled
        "key": info.get("cache_key"),
        "path": str(cache_entry) if cache_entry is not None else None,
    }
    if elapsed is not None:
        s["seconds"] = round(elapsed, 3)
    return s


def _print_summary(s: dict, out=None) -> None:
    out = out or sys.stdout
    w = lambda text="": print(text, file=out)  # noqa: E731
    state = {"built": "built", "loaded": "loaded from cache", "disabled": "built (cache off)"}.get(
        s["cache"]["state"], s["cache"]["state"])
    took = f" in {s['seconds']:.1f}s" if s.get("seconds") is not None else ""
    w(f"{s['scenario']} ({s['domain']}): {state}{took}, seed {s['seed']}")
    if s.get("raw_dir"):
        w(f"  raw folder       {s['raw_dir']}")
    t, f = s["test"], s["finetune"]
    w(f"  users            {_fmt_int(t['users'])} test + {_fmt_int(f['users'])} fine-tuning"
      + (f" (of {_fmt_int(s['users_total'])} in the data)" if s.get("users_total") is not None else ""))
    w(f"  items            {_fmt_int(s['items'])} used"
      + (f" (of {_fmt_int(s['items_total'])} with text)" if s.get("items_total") is not None else ""))
    pr = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    w(f"  test samples     {_fmt_int(t['samples'])}  (positive rate {pr(t['positive_rate'])})")
    ft = f"  finetune samples {_fmt_int(f['samples'])}"
    if f.get("samples"):
        ft += (f"  (positive rate {pr(f['positive_rate'])}; train {_fmt_int(f.get('train'))}, "
               f"valid {_fmt_int(f.get('valid'))})")
    w(ft)
    if "rows_read" in s:
        w(f"  rows read        {_fmt_int(s['rows_read'])}")
    skipped = s.get("skipped") or {}
    examples = s.get("skipped_examples") or {}
    w(f"  rows skipped     {_fmt_int(s['rows_skipped'])}" + ("" if skipped else "  (none)"))
    for reason, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        ex = examples.get(reason)
        w(f"    {_fmt_int(n):>10}  {reason}" + (f"  (first: {ex})" if ex else ""))
    dropped = s.get("dropped_by_rule") or {}
    w(f"  dropped by rule  {_fmt_int(s['rows_dropped'])}" + ("" if dropped else "  (none)"))
    for reason, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])):
        w(f"    {_fmt_int(n):>10}  {reason}")
    c = s["cache"]
    if c["state"] == "disabled":
        w("  cache            off (--no-cache)")
    else:
        w(f"  cache            {c['path']}")
        w(f"  cache key        {c['key']}")
    w(f"  data fingerprint {s.get('data_fingerprint', '-')}")


def _cache_entry(cache_dir: Optional[str], name: str, key: Optional[str]) -> Optional[Path]:
    from ..scenarios import cache as _cache

    if not key:
        return None
    return Path(cache_dir or _cache.default_cache_dir()).expanduser() / "scenarios" / name / key


# ----------------------------------------------------------------------------------------
# data list
# ----------------------------------------------------------------------------------------


def run_list(args) -> int:
    root = _root(args.raw_dir)
    rows = []
    records = []
    for name, src, problem in _sources():
        if src is None:
            rows.append([name, "-", "-", "-", "-", "-", f"unavailable: {problem}"])
            records.append({"name": name, "available": False, "reason": problem})
            continue
        raw = _raw_status(src, root)
        dl = _download_kind(src)
        rows.append([name, src.domain, _fmt_int(src.default_num_test), _fmt_int(src.default_num_finetune),
                     raw, dl, ""])
        records.append({"name": name, "available": True, "domain": src.domain,
                        "num_test": src.default_num_test, "num_finetune": src.default_num_finetune,
                        "raw_files": raw, "download": dl})
    if args.json:
        print(json.dumps({"root": str(root) if root else None, "scenarios": records}, indent=1))
        return 0
    print(_table(["scenario", "domain", "test", "finetune", "raw files", "download", "note"], rows))
    if root is None:
        print("\nraw files: pass --raw-dir ROOT or set RECBENCH_DATA to check ROOT/<scenario>/")
    else:
        print(f"\nraw files looked up in {root}/<scenario>/")
    print("download: auto = `recbench data download NAME`; manual = see `recbench data info NAME`")
    return 0


# ----------------------------------------------------------------------------------------
# data prepare
# ----------------------------------------------------------------------------------------


def run_prepare(args) -> int:
    from ..scenarios import get_source, load_scenario, resolve_raw_dir

    src = get_source(args.scenario)
    options = custom_options(args)
    unknown = [flag for flag, dest, _t, _x in CUSTOM_OPTIONS if dest in options and dest not in src.option_names()]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not an option of scenario '{src.name}' "
                          "(these options are for the custom scenario)")
    raw_dir = custom_raw_dir(options, args.raw_dir) if src.needs_raw_dir else args.raw_dir

    built = {"yes": False}
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        built["yes"] = True
        _err(f"[{time.perf_counter() - t0:7.1f}s] {msg}")

    folder = resolve_raw_dir(src.name, raw_dir) if src.needs_raw_dir else None
    _err(f"recbench: preparing {src.name}" + (f" from {folder}" if folder else ""))
    scenario = load_scenario(
        src.name, raw_dir, seed=args.seed, num_test=args.num_test, num_finetune=args.num_finetune,
        strict=args.strict, cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=progress,
        **options,
    )
    elapsed = time.perf_counter() - t0
    state = "disabled" if args.no_cache else ("built" if built["yes"] else "loaded")
    entry = None if args.no_cache else _cache_entry(args.cache_dir, src.name, scenario.info.get("cache_key"))
    summary = _summary(scenario, raw_dir=folder.resolve() if folder else None, cache_entry=entry,
                       cache_state=state, elapsed=elapsed)
    if state == "loaded":
        _err(f"recbench: loaded from cache {entry}")
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True, default=str))
    else:
        _print_summary(summary)
    return 0


# ----------------------------------------------------------------------------------------
# data info
# ----------------------------------------------------------------------------------------


def _cached_summary(src, args) -> Tuple[Optional[dict], str]:
    """The summary of a cached default build, and a line on why there is none."""
    from ..scenarios import BuildReport, resolve_raw_dir, split_cache_key
    from ..scenarios import cache as _cache

    if src.option_names():
        return None, "cached builds depend on the options; run `recbench data prepare` to see one"
    folder = None
    if src.needs_raw_dir:
        folder = resolve_raw_dir(src.name, args.raw_dir)
        if folder is None:
            return None, "no raw folder configured (pass --raw-dir or set RECBENCH_DATA)"
        if not folder.is_dir():
            return None, f"raw folder {folder} does not exist"
    try:
        files = src(folder, BuildReport()).raw_files()
    except RecBenchError as exc:
        return None, f"raw files not found: {exc}"
    # Mirrors the key load_scenario computes for the default sizes.
    key = split_cache_key(src, files, args.seed, src.default_num_test, src.default_num_finetune, {})
    entry = _cache_entry(args.cache_dir, src.name, key)
    scenario = _cache.load(entry) if entry is not None else None
    if scenario is None:
        return None, (f"no cached build yet for seed {args.seed} and the default sizes; run: "
                      f"recbench data prepare {src.name}" + (f" --raw-dir {args.raw_dir}" if args.raw_dir else ""))
    return _summary(scenario, raw_dir=folder.resolve() if folder else None, cache_entry=entry,
                    cache_state="loaded", elapsed=None), ""


def run_info(args) -> int:
    from ..scenarios import get_source

    src = get_source(args.scenario)
    if src.downloads:
        dl = "auto: recbench data download " + src.name + " (" + ", ".join(r.filename for r in src.downloads) + ")"
    elif _takes_files(src):
        dl = "not needed (your own files, named with --interactions and --items)"
    elif not src.needs_raw_dir:
        dl = "not needed (bundled with the package)"
    else:
        dl = "manual: get the files from the source below (login or accepted terms needed)"
    cached, why = _cached_summary(src, args)
    doc = {
        "name": src.name,
        "domain": src.domain,
        "item_noun": src.item_noun,
        "description": src.description,
        "expected_files": src.expected_files,
        "source_url": src.source_url,
        "needs_raw_dir": src.needs_raw_dir,
        "download": dl,
        "downloads": [{"url": r.url, "filename": r.filename, "sha256": r.sha256, "unpack": r.unpack,
                       "size": r.size} for r in src.downloads],
        "policy": {k: getattr(src.policy, k) for k in src.policy.__dataclass_fields__},
        "default_num_test": src.default_num_test,
        "default_num_finetune": src.default_num_finetune,
        "options": list(src.option_names()),
        "cached_build": cached,
    }
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
        return 0
    p = print
    p(f"{src.name}: {src.description or '(no description)'}")
    p(f"  domain           {src.domain} (items are {src.item_noun}s)")
    p(f"  default sizes    {_fmt_int(src.default_num_test)} test, {_fmt_int(src.default_num_finetune)} fine-tuning samples")
    if src.needs_raw_dir or _takes_files(src):
        p(f"  expected files   {src.expected_files or '-'}")
    p(f"  source           {src.source_url or '-'}")
    p(f"  download         {dl}")
    if src.option_names():
        p(f"  options          {', '.join(src.option_names())}")
    p("  sampling")
    for line in _policy_text(src.policy):
        p(f"    - {line}")
    if cached is not None:
        p("")
        _print_summary(cached)
    else:
        p(f"  cached build     none ({why})")
    return 0


# ----------------------------------------------------------------------------------------
# data download
# ----------------------------------------------------------------------------------------


def run_download(args) -> int:
    from .. import download as dl
    from ..scenarios import get_source

    src = get_source(args.scenario)
    if _takes_files(src):
        print(f"{src.name}: uses your own files (recbench data prepare {src.name} --interactions FILE "
              "--items FILE); nothing to download")
        return 0
    if not src.needs_raw_dir:
        print(f"{src.name}: bundled with the package, nothing to download")
        return 0
    if not src.downloads:
        root = _root(args.raw_dir)
        print(dl.manual_instructions(src.name, root))
        _err(f"recbench: {src.name} cannot be downloaded automatically; follow the steps above")
        return 1
    root = dl.resolve_root(args.raw_dir)
    paths = dl.download_scenario(src.name, root, force=args.force, progress=True,
                                 retries=args.retries, timeout=args.timeout, log=_err)
    target = root / src.name
    print(f"{src.name}: {len(paths)} file(s) in {target}")
    for path in paths:
        print(f"  {path.name}{'/' if path.is_dir() else ''}")
    print(f"next: recbench data prepare {src.name} --raw-dir {root}")
    return 0
