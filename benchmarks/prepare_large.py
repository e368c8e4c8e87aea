"""Does preparing a scenario from a multi-GB raw file stay within memory?

Generates a large raw file in an official layout, then runs ``load_scenario`` on it in a
subprocess and reports wall time, rows/s and the child's peak RSS against the limit
(PROTOCOL §2: very large raw files must be streamed; memory must not grow with file size).

    python benchmarks/prepare_large.py                 # 1 GB Yelp review file
    python benchmarks/prepare_large.py --gb 3 --keep --dir /data/yelp-synth
    python benchmarks/prepare_large.py --layout movielens --gb 0.2

Layouts:
  yelp       yelp_academic_dataset_review.json (JSON lines, ~600-byte review texts, heavy-
             tailed users/businesses: 1.5M users, 150k businesses by default) and
             yelp_academic_dataset_business.json
  movielens  ratings.csv (userId,movieId,rating,timestamp, grouped by user as published)
             and movies.csv

Exit status: 0 PASS, 1 FAIL (peak RSS over --limit-gb).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
import json, sys, time
from recbench.scenarios import load_scenario
name, folder, num_test, num_finetune = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
sc = load_scenario(name, folder, seed=2024, num_test=num_test, num_finetune=num_finetune,
                   use_cache=False, progress=lambda m: print(f"[{time.perf_counter() - t0:7.1f}s] {m}",
                                                           file=sys.stderr, flush=True))
s = sc.summary()
s["seconds"] = time.perf_counter() - t0
s["users_total"] = sc.info.get("users_total")
print(json.dumps(s, default=str))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--gb", type=float, default=1.0, help="size of the big raw file in GiB (default: 1.0)")
    ap.add_argument("--layout", choices=["yelp", "movielens"], default="yelp")
    ap.add_argument("--dir", help="folder to write into (default: a temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--reuse", action="store_true", help="reuse files already in --dir instead of generating")
    ap.add_argument("--users", type=int, default=None, help="user pool (default: yelp 1.5M, movielens 160k)")
    ap.add_argument("--items", type=int, default=None, help="item pool (default: yelp 150k, movielens 60k)")
    ap.add_argument("--num-test", type=int, default=20000)
    ap.add_argument("--num-finetune", type=int, default=0)
    ap.add_argument("--limit-gb", type=float, default=1.5, help="peak RSS limit in GiB (default: 1.5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    own_dir = args.dir is None
    folder = Path(args.dir or tempfile.mkdtemp(prefix=f"recbench-{args.layout}-"))
    folder.mkdir(parents=True, exist_ok=True)
    target = int(args.gb * GIB)
    try:
        if args.reuse:
            big = folder / ("yelp_academic_dataset_review.json" if args.layout == "yelp" else "ratings.csv")
            gen = {"file": str(big), "bytes": big.stat().st_size, "rows": None, "seconds": 0.0}
        elif args.layout == "yelp":
            log(f"generating {args.gb} GiB of Yelp reviews in {folder}")
            gen = write_yelp(folder, target, args.seed, args.users or 1_500_000, args.items or 150_000, log)
        else:
            log(f"generating {args.gb} GiB of MovieLens ratings in {folder}")
            gen = write_movielens(folder, target, args.seed, args.users or 160_000, args.items or 60_000, log)
        log(f"generated {gen['bytes'] / GIB:.2f} GiB ({gen['rows'] or 0:,} rows) in {gen['seconds']:.1f}s")

        log(f"running load_scenario({args.layout!r}) in a subprocess ...")
        env = dict(os.environ)
        repo = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, args.layout, str(folder), str(args.num_test), str(args.num_finetune)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        wall = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        if sys.platform == "darwin":
            peak_kib //= 1024  # bytes on macOS
        if proc.returncode != 0:
            print(f"FAIL: load_scenario exited with status {proc.returncode}")
            return 1
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        peak_mb = peak_kib / 1024
        rows_read = summary.get("rows_read") or 0
        limit_mb = args.limit_gb * 1024
        ok = peak_mb <= limit_mb
        print(f"layout            {args.layout}")
        print(f"raw file          {gen['file']} ({gen['bytes'] / GIB:.2f} GiB, {gen['bytes'] / 1e9:.2f} GB)")
        print(f"generation        {gen['seconds']:.1f}s")
        print(f"rows read         {rows_read:,} (+ skipped {sum((summary.get('skipped') or {}).values()):,}, "
              f"dropped by rule {sum((summary.get('dropped_by_rule') or {}).values()):,})")
        print(f"users in data     {summary.get('users_total') or 0:,}")
        print(f"test samples      {summary['test']['samples']:,} from {summary['test']['users']:,} users "
              f"(positive rate {summary['test']['positive_rate']})")
        print(f"wall time         {wall:.1f}s (load_scenario {summary['seconds']:.1f}s, two passes)")
        print(f"throughput        {rows_read / wall:,.0f} rows/s, {gen['bytes'] / MIB / wall:.1f} MiB/s of raw file "
              "(end to end; every row is read twice)")
        print(f"peak RSS          {peak_mb:,.0f} MB (limit {limit_mb:,.0f} MB)")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif args.keep or not own_dir:
            log(f"files kept in {folder}")


if __name__ == "__main__":
    sys.exit(main())
