"""How fast, and in how much memory, does a multi-GB raw file become a scenario?

Generates large raw files in official layouts, then runs ``load_scenario`` on each with the
old Python reader (engine="python") and the columnar engine (engine="duckdb"), each in its
own subprocess, and reports rows/s, CPU seconds and peak RSS side by side, checks that both
built the same test and fine-tuning samples (data fingerprints and bad-row counts), and
projects the time for the real Goodreads interactions file (228M rows).

    python benchmarks/prepare_large.py                         # 1 GB Yelp + 1 GB Goodreads layouts
    python benchmarks/prepare_large.py --layout yelp --gb 0.2
    python benchmarks/prepare_large.py --layout goodreads --gb 3 --keep --dir /data/synth
    python benchmarks/prepare_large.py --engines duckdb        # the new engine only

Layouts:
  yelp       yelp_academic_dataset_review.json (JSON lines, ~600-byte review texts, heavy-
             tailed users/businesses: 1.5M users, 150k businesses by default) and
             yelp_academic_dataset_business.json
  goodreads  goodreads_interactions_dedup.json (JSON lines as published, ~330 bytes a row,
             heavy-tailed users/books: 300k users, 400k books by default) and
             goodreads_book_works.json (best_book_id, original_title; some titles blank)
  movielens  ratings.csv (userId,movieId,rating,timestamp, grouped by user as published)
             and movies.csv

Targets (issue 13): the columnar engine >= 10x the old rows/s, peak RSS < --limit-gb, and
the same samples. Exit status: 0 PASS, 1 FAIL. Timings on a shared machine are noisy; the
CPU-seconds columns are less so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np

GIB = 1024 ** 3
MIB = 1024 ** 2
ID_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", dtype=np.uint8)

WORDS = (
    "the food was great service friendly staff amazing place delicious ordered tacos burger pizza "
    "sushi ramen coffee brunch dinner lunch table waited minutes server came back really nice "
    "atmosphere cozy loud music drinks cocktails beer wine happy hour prices reasonable expensive "
    "portion size huge small fresh salad soup fries chicken steak medium rare perfectly cooked "
    "dessert chocolate cake ice cream would definitely recommend come again never disappointed "
    "parking lot downtown location neighborhood gem hidden spot weekend crowded reservation "
    "manager apologized order wrong cold bland salty sweet spicy flavor texture menu options "
    "vegetarian vegan gluten free kids family birthday celebration date night friends outdoor "
    "patio view clean bathroom rude slow fast quick takeout delivery online app pickup"
).split()

CITIES = [("Philadelphia", "PA"), ("Tucson", "AZ"), ("Tampa", "FL"), ("Indianapolis", "IN"),
          ("Nashville", "TN"), ("New Orleans", "LA"), ("Reno", "NV"), ("Edmonton", "AB"),
          ("Saint Louis", "MO"), ("Boise", "ID"), ("Santa Barbara", "CA")]
CATEGORIES = ["Restaurants", "Food", "Nightlife", "Bars", "American (New)", "Mexican", "Italian",
              "Coffee & Tea", "Breakfast & Brunch", "Pizza", "Sandwiches", "Japanese", "Sushi Bars",
              "Chinese", "Burgers", "Seafood", "Bakeries", "Cafes", "Thai", "Vegan"]
NAME_A = ["Golden", "Blue", "Little", "Happy", "Rustic", "Urban", "Old Town", "Sunny", "Royal", "Green",
          "Lucky", "Smoky", "Twisted", "Hidden", "Copper", "Velvet", "Salty", "Wild", "Silver", "Red"]
NAME_B = ["Dragon", "Fork", "Spoon", "Oven", "Kitchen", "Grill", "Taco", "Noodle", "Bistro", "Diner",
          "Cafe", "Tavern", "Bakery", "Pub", "Cantina", "Garden", "Table", "Barrel", "Pot", "Wok"]


def random_ids(rng: np.random.Generator, n: int, length: int = 22) -> list:
    """n random base64-like ids of the Yelp shape (22 characters)."""
    raw = ID_ALPHABET[rng.integers(0, len(ID_ALPHABET), size=(n, length))]
    blob = raw.tobytes().decode("ascii")
    return [blob[i * length:(i + 1) * length] for i in range(n)]


def heavy_tailed(rng: np.random.Generator, n_pool: int, size: int, exponent: float) -> np.ndarray:
    """Indices in [0, n_pool) with P(i) ~ (i+1)^-exponent (a few heavy users, a long tail)."""
    # Inverse CDF of a continuous power law on [1, n_pool+1): fast, no n_pool-sized table.
    u = rng.random(size)
    a = 1.0 - exponent
    x = ((n_pool + 1) ** a - 1.0) * u + 1.0
    idx = np.floor(x ** (1.0 / a)).astype(np.int64) - 1
    return np.clip(idx, 0, n_pool - 1)


def review_texts(rng: np.random.Generator, n: int = 4096, target_len: int = 600) -> list:
    """JSON-encoded review texts of about target_len characters (with the odd newline/quote)."""
    words = np.array(WORDS)
    out = []
    for _ in range(n):
        length = int(rng.normal(target_len, 120))
        parts, size = [], 0
        while size < max(80, length):
            sentence = " ".join(words[rng.integers(0, len(words), size=int(rng.integers(6, 18)))])
            sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", "!", ".", ". \"Wow\"", ".\n\n"])
            parts.append(sentence)
            size += len(sentence) + 1
        out.append(json.dumps(" ".join(parts)))
    return out


def write_yelp(folder: Path, target_bytes: int, seed: int, n_users: int, n_businesses: int, log) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    users = random_ids(rng, n_users)
    businesses = random_ids(rng, n_businesses)
    texts = review_texts(rng)
    log(f"ids and texts ready in {time.perf_counter() - t0:.1f}s")

    with open(folder / "yelp_academic_dataset_business.json", "w", encoding="utf-8", newline="\n") as fh:
        chunk = []
        for k, bid in enumerate(businesses):
            city, state = CITIES[k % len(CITIES)]
            cats = ", ".join(CATEGORIES[(k * 7 + j * 3) % len(CATEGORIES)] for j in range(1 + k % 4))
            name = f"{NAME_A[k % 20]} {NAME_B[(k // 20) % 20]}" + (f" #{k // 400}" if k >= 400 else "")
            chunk.append(
                '{"business_id":"%s","name":%s,"address":"%d Main St","city":"%s","state":"%s",'
                '"postal_code":"%05d","latitude":%.6f,"longitude":%.6f,"stars":%.1f,"review_count":%d,'
                '"is_open":%d,"attributes":{"RestaurantsTakeOut":"True"},"categories":"%s",'
                '"hours":{"Monday":"8:0-22:0"}}\n'
                % (bid, json.dumps(name), 100 + k % 9000, city, state, 10000 + k % 89999,
                   39.9 + (k % 1000) / 1e4, -75.1 - (k % 997) / 1e4, 1 + (k % 9) / 2, 5 + k % 300,
                   k % 7 != 0, cats)
            )
            if len(chunk) >= 50_000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))

    review_path = folder / "yelp_academic_dataset_review.json"
    written = rows = 0
    batch = 100_000
    start = np.datetime64("2005-03-01T00:00:00").astype(np.int64)
    span = np.datetime64("2022-01-19T00:00:00").astype(np.int64) - start
    # Yelp's star mix: mostly 5s and 4s, a fair share of 1s, few 2s and 3s.
    stars_values = np.array(["1.0", "2.0", "3.0", "4.0", "5.0"])
    stars_p = [0.15, 0.08, 0.10, 0.21, 0.46]
    with open(review_path, "w", encoding="utf-8", newline="\n") as fh:
        while written < target_bytes:
            u = heavy_tailed(rng, n_users, batch, 0.7)  # ~630k distinct users per GiB, top user ~4k
            b = heavy_tailed(rng, n_businesses, batch, 0.9)
            st = stars_values[rng.choice(5, size=batch, p=stars_p)]
            secs = start + rng.integers(0, span, size=batch)
            dates = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s")
            tix = rng.integers(0, len(texts), size=batch)
            useful = rng.geometric(0.5, size=batch) - 1
            rids = random_ids(rng, batch)
            lines = [
                '{"review_id":"%s","user_id":"%s","business_id":"%s","stars":%s,"useful":%d,'
                '"funny":%d,"cool":%d,"text":%s,"date":"%s %s"}\n'
                % (rids[k], users[u[k]], businesses[b[k]], st[k], useful[k], useful[k] // 2,
                   useful[k] // 3, texts[tix[k]], dates[k][:10], dates[k][11:])
                for k in range(batch)
            ]
            if rows == 0:  # a couple of damaged rows, as real dumps have: they must be skipped, not crash
                lines[5] = lines[5][: len(lines[5]) // 2] + "\n"
                lines[9] = lines[9].replace('"stars":', '"stars":"n/a","x":')
            data = "".join(lines)
            fh.write(data)
            written += len(data.encode("utf-8")) if not data.isascii() else len(data)
            rows += batch
            if rows % 500_000 == 0:
                log(f"  {rows:,} reviews, {written / GIB:.2f} GiB")
    return {"file": str(review_path), "bytes": review_path.stat().st_size, "rows": rows,
            "users": n_users, "items": n_businesses, "seconds": time.perf_counter() - t0}


MONTHS = np.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
DAYS = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])


def goodreads_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    """n date_added strings as Goodreads writes them ("Thu Dec 17 11:10:42 -0800 2015")."""
    start = np.datetime64("2007-01-01T00:00:00").astype(np.int64)
    span = np.datetime64("2017-11-01T00:00:00").astype(np.int64) - start
    secs = (start + rng.integers(0, span, size=n)).astype("datetime64[s]")
    days = secs.astype("datetime64[D]")
    iso = np.datetime_as_string(secs, unit="s")
    weekday = DAYS[(days.astype(np.int64) + 3) % 7]  # 1970-01-01 was a Thursday
    month = MONTHS[np.array([int(t[5:7]) for t in iso]) - 1]
    offsets = np.array(["-0700", "-0800", "-0500", "+0000", "+0100", "+0530"])[rng.integers(0, 6, size=n)]
    return np.array([f"{w} {m} {t[8:10]} {t[11:19]} {o} {t[:4]}"
                     for w, m, t, o in zip(weekday, month, iso, offsets)])


def write_goodreads(folder: Path, target_bytes: int, seed: int, n_users: int, n_books: int, log) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    users = [bytes(row).decode() for row in hexchars[rng.integers(0, 16, size=(n_users, 32))]]
    books = rng.permutation(np.arange(1, 30_000_000))[:n_books].astype(str)
    # works: most books are the best book of a work; some titles are blank (left out by rule)
    best = rng.random(n_books) < 0.85
    with open(folder / "goodreads_book_works.json", "w", encoding="utf-8", newline="\n") as fh:
        chunk = []
        for k in np.flatnonzero(best):
            title = "" if k % 50 == 0 else f"{NAME_A[k % 20]} {NAME_B[(k // 20) % 20]} Chronicles, Vol. {k}"
            chunk.append('{"books_count": "%d", "reviews_count": "%d", "text_reviews_count": "%d", '
                         '"work_id": "%d", "best_book_id": "%s", "original_title": %s, "original_language_id": ""}\n'
                         % (1 + k % 9, k % 5000, k % 300, 1000000 + k, books[k], json.dumps(title)))
            if len(chunk) >= 50_000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))
    dates = goodreads_dates(rng, 50_000)
    rid = [bytes(row).decode() for row in hexchars[rng.integers(0, 16, size=(4096, 32))]]
    log(f"ids and dates ready in {time.perf_counter() - t0:.1f}s")
    path = folder / "goodreads_interactions_dedup.json"
    written = rows = 0
    batch = 200_000
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        while written < target_bytes:
            u = heavy_tailed(rng, n_users, batch, 0.6)
            b = heavy_tailed(rng, n_books, batch, 0.8)
            read = rng.random(batch) < 0.5
            rating = np.where(read, rng.integers(0, 6, size=batch), 0)
            d = rng.integers(0, len(dates), size=batch)
            r = rng.integers(0, len(rid), size=batch)
            lines = [
                '{"user_id": "%s", "book_id": "%s", "review_id": "%s", "is_read": %s, "rating": %d, '
                '"review_text_incomplete": "", "date_added": "%s", "date_updated": "%s", "read_at": "", '
                '"started_at": ""}\n'
                % (users[u[k]], books[b[k]], rid[r[k]], "true" if read[k] else "false", rating[k], dates[d[k]],
                   dates[d[k]])
                for k in range(batch)
            ]
            if rows == 0:  # damaged rows, as real dumps have: skipped and counted, never fatal
                lines[3] = lines[3][: len(lines[3]) // 2] + "\n"
                lines[8] = lines[8].replace('"date_added": "', '"date_added": "sometime ')
            data = "".join(lines)
            fh.write(data)
            written += len(data)
            rows += batch
            if rows % 1_000_000 == 0:
                log(f"  {rows:,} interactions, {written / GIB:.2f} GiB")
    return {"file": str(path), "bytes": path.stat().st_size, "rows": rows, "users": n_users,
            "items": n_books, "seconds": time.perf_counter() - t0}


def write_movielens(folder: Path, target_bytes: int, seed: int, n_users: int, n_items: int, log) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with open(folder / "movies.csv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("movieId,title,genres\n")
        fh.write("".join(f'{m},"Movie {m}, The ({1920 + m % 100})",Drama|Comedy\n' for m in range(1, n_items + 1)))
    path = folder / "ratings.csv"
    written = rows = 0
    user = 0
    ratings = np.array(["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        while written < target_bytes:
            # ratings.csv is grouped by user; a heavy-tailed number of ratings per user
            counts = np.minimum(rng.pareto(1.2, size=20_000) * 20 + 20, 5000).astype(np.int64)
            n = int(counts.sum())
            uids = np.repeat(np.arange(user + 1, user + 1 + len(counts)) % n_users + 1, counts)
            user += len(counts)
            movies = heavy_tailed(rng, n_items, n, 0.9) + 1
            rt = ratings[np.minimum(rng.binomial(9, 0.7, size=n), 9)]
            ts = 789652009 + rng.integers(0, 900_000_000, size=n)
            data = "".join(map("{},{},{},{}\n".format, uids.tolist(), movies.tolist(), rt.tolist(), ts.tolist()))
            fh.write(data)
            written += len(data)
            rows += n
            log(f"  {rows:,} ratings, {written / GIB:.2f} GiB")
    return {"file": str(path), "bytes": path.stat().st_size, "rows": rows, "users": n_users,
            "items": n_items, "seconds": time.perf_counter() - t0}


CHILD = r"""
import json, resource, sys, time
from recbench.scenarios import load_scenario
name, folder, num_test, num_finetune, engine = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t0 = time.perf_counter()
sc = load_scenario(name, folder, seed=2024, num_test=num_test, num_finetune=num_finetune, use_cache=False,
                   engine=engine, progress=lambda m: print(f"[{engine} {time.perf_counter() - t0:7.1f}s] {m}",
                                                            file=sys.stderr, flush=True))
s = sc.summary()
s["seconds"] = time.perf_counter() - t0
s["users_total"] = sc.info.get("users_total")
s["finetune_fingerprint"] = sc.info.get("finetune_fingerprint")
r = resource.getrusage(resource.RUSAGE_SELF)
s["cpu_seconds"] = r.ru_utime + r.ru_stime
s["peak_rss_kib"] = r.ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(json.dumps(s, default=str))
"""

BIG_FILE = {"yelp": "yelp_academic_dataset_review.json", "goodreads": "goodreads_interactions_dedup.json",
            "movielens": "ratings.csv"}
GOODREADS_ROWS = 228_648_342  # goodreads_interactions_dedup.json, UCSD Book Graph


def run_child(layout: str, folder: Path, engine: str, args) -> dict:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, layout, str(folder), str(args.num_test), str(args.num_finetune), engine],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"load_scenario exited with status {proc.returncode}", "wall": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def generate(layout: str, folder: Path, args, log) -> dict:
    target = int(args.gb * GIB)
    if args.reuse:
        big = folder / BIG_FILE[layout]
        return {"file": str(big), "bytes": big.stat().st_size, "rows": None, "seconds": 0.0}
    log(f"generating {args.gb} GiB of {layout} in {folder}")
    if layout == "yelp":
        return write_yelp(folder, target, args.seed, args.users or 1_500_000, args.items or 150_000, log)
    if layout == "goodreads":
        return write_goodreads(folder, target, args.seed, args.users or 300_000, args.items or 400_000, log)
    return write_movielens(folder, target, args.seed, args.users or 160_000, args.items or 60_000, log)


def machine() -> str:
    """Cores and load: on a shared machine the wall-clock numbers depend on both."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"


def report(layout: str, gen: dict, runs: Dict[str, dict], args) -> bool:
    """Print one layout's table; True when every target is met."""
    limit_mb = args.limit_gb * 1024
    print(f"\n== {layout}: {gen['file']} ({gen['bytes'] / GIB:.2f} GiB, {gen['bytes'] / 1e9:.2f} GB), "
          f"generated in {gen['seconds']:.1f}s; machine: {machine()}")
    ok = True
    for engine, r in runs.items():
        if "error" in r:
            print(f"{engine:7s} FAILED: {r['error']}")
            ok = False
            continue
        rows = r.get("rows_read") or 0
        r["rows_per_s"] = rows / r["wall"]
        print(f"{engine:7s} {r['wall']:7.1f}s wall  {r['cpu_seconds']:7.1f}s CPU  {r['rows_per_s']:>10,.0f} rows/s  "
              f"{rows / max(r['cpu_seconds'], 1e-9):>10,.0f} rows/CPU-s  peak RSS {r['peak_rss_kib'] / 1024:6,.0f} MB"
              f"  ({rows:,} rows, {r['test']['samples']:,} test / {r['finetune']['samples']:,} fine-tuning samples)")
        if r["peak_rss_kib"] / 1024 > limit_mb and engine == "duckdb":
            ok = False
    good = {e: r for e, r in runs.items() if "error" not in r}
    if "duckdb" in good:
        new = good["duckdb"]
        print(f"skipped by reason (duckdb): {new.get('skipped')}; dropped by rule: {new.get('dropped_by_rule')}")
        print(f"peak RSS (duckdb) {new['peak_rss_kib'] / 1024:,.0f} MB: "
              + ("PASS" if new["peak_rss_kib"] / 1024 <= limit_mb else "FAIL") + f" (limit {limit_mb:,.0f} MB)")
        if layout == "goodreads":
            hours = GOODREADS_ROWS / new["rows_per_s"] / 3600
            print(f"projected for the real Goodreads file ({GOODREADS_ROWS:,} rows): {hours * 60:,.0f} min with "
                  f"duckdb" + (f", {GOODREADS_ROWS / good['python']['rows_per_s'] / 3600:.1f} h with the "
                               "old reader" if "python" in good else "")
                  + " (at this machine's rows/s; the engine uses every core)")
    if "python" in good and "duckdb" in good:
        old, new = good["python"], good["duckdb"]
        same = all(old.get(k) == new.get(k) for k in ("data_fingerprint", "finetune_fingerprint", "rows_read",
                                                       "skipped", "dropped_by_rule"))
        speed = new["rows_per_s"] / old["rows_per_s"]
        cpu = old["cpu_seconds"] / new["cpu_seconds"]
        print(f"same samples and counts: {'yes' if same else 'NO'} (test {new['data_fingerprint'][:16]}, "
              f"fine-tuning {str(new.get('finetune_fingerprint'))[:16]})")
        print(f"speed-up: {speed:.1f}x rows/s (wall), {cpu:.1f}x less CPU: "
              + ("PASS" if speed >= 10 else "FAIL") + " (target >= 10x rows/s)")
        ok = ok and same and speed >= 10
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--gb", type=float, default=1.0, help="size of each big raw file in GiB (default: 1.0)")
    ap.add_argument("--layout", default="yelp,goodreads",
                    help="comma-separated layouts: yelp, goodreads, movielens (default: yelp,goodreads)")
    ap.add_argument("--engines", default="python,duckdb", help="comma-separated: python (old), duckdb (new)")
    ap.add_argument("--dir", help="folder to write into, one subfolder per layout (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--reuse", action="store_true", help="reuse files already in --dir instead of generating")
    ap.add_argument("--users", type=int, default=None, help="user pool (default: per layout)")
    ap.add_argument("--items", type=int, default=None, help="item pool (default: per layout)")
    ap.add_argument("--num-test", type=int, default=20000)
    ap.add_argument("--num-finetune", type=int, default=20000)
    ap.add_argument("--limit-gb", type=float, default=1.5, help="peak RSS limit in GiB (default: 1.5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    layouts = [x.strip() for x in args.layout.split(",") if x.strip()]
    engines = [x.strip() for x in args.engines.split(",") if x.strip()]
    bad = [x for x in layouts if x not in BIG_FILE] + [x for x in engines if x not in ("python", "duckdb")]
    if bad:
        ap.error(f"unknown layout or engine: {', '.join(bad)}")

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    own_dir = args.dir is None
    root = Path(args.dir or tempfile.mkdtemp(prefix="recbench-prepare-"))
    ok = True
    try:
        for layout in layouts:
            folder = root / layout
            folder.mkdir(parents=True, exist_ok=True)
            gen = generate(layout, folder, args, log)
            log(f"generated {gen['bytes'] / GIB:.2f} GiB ({gen['rows'] or 0:,} rows) in {gen['seconds']:.1f}s")
            runs = {}
            for engine in engines:
                log(f"running load_scenario({layout!r}, engine={engine!r}) in a subprocess ({machine()}) ...")
                runs[engine] = run_child(layout, folder, engine, args)
            ok = report(layout, gen, runs, args) and ok
            if own_dir and not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        print("\nPASS" if ok else "\nFAIL")
        return 0 if ok else 1
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"files kept in {root}")


if __name__ == "__main__":
    sys.exit(main())
