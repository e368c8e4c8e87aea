"""Full-catalogue ranking for embedding models (seqrec --candidates all): the ranking step
after the embeddings exist, timed on CPU (issue target: 5,000 users x 50,000 items < 10 s).

Runs exactly what the discriminative scheme runs once it has the vectors: one matrix product
per block of users (blocks of at most CATALOGUE_BLOCK scores) and the seqrec task's reduction
of each block to the targets' pessimistic ranks, masking each user's other interactions.
Random unit vectors of MiniLM's dimension (384) stand in for real embeddings; the timing does
not depend on their values. Also checks a sample of the ranks against a plain numpy argsort.

    python benchmarks/seqrec_catalogue.py [--users 5000] [--items 50000] [--dim 384] [--exclude 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--items", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--exclude", type=int, default=20, help="other interactions masked per user")
    ap.add_argument("--target-seconds", type=float, default=10.0)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                    help="float32: what the scheme uses (default)")
    args = ap.parse_args()

    from recbench.schemes.discriminative import rank_catalogue
    from recbench.tasks import get_task

    rng = np.random.default_rng(0)
    items = tuple(f"i{k}" for k in range(args.items))
    picks = rng.integers(0, args.items, size=(args.users, args.exclude + 1))
    samples = pd.DataFrame({
        "user_id": [f"u{k}" for k in range(args.users)],
        "history": [[] for _ in range(args.users)],
        "target": [items[p[0]] for p in picks],
        "candidates": [[] for _ in range(args.users)],
        "exclude": [sorted({items[j] for j in p[1:]} - {items[p[0]]}) for p in picks],
    })
    samples.attrs["catalogue"] = items
    task = get_task("seqrec")
    catalogue = task.catalogue(samples)
    u = rng.standard_normal((args.users, args.dim)).astype(args.dtype)
    v = rng.standard_normal((args.items, args.dim)).astype(args.dtype)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)

    try:
        import threadpoolctl

        info = threadpoolctl.threadpool_info()
        threads = info[0].get("num_threads") if info else "?"
    except ImportError:  # only for the printout
        threads = "?"
    print(f"{args.users} users x {args.items} items, dim {args.dim}, {args.exclude} masked per user; "
          f"BLAS threads: {threads}")
    start = time.perf_counter()
    ranks = rank_catalogue(u, v, catalogue.reduce)
    took = time.perf_counter() - start
    print(f"ranking step: {took:.2f} s  ({args.users * args.items / took / 1e6:.0f} M scores/s)")

    # check 20 users against a plain count over their row (in float64: a float32 product may
    # round differently in another BLAS kernel, so near-ties get a tolerance)
    eps = 1e-5 if args.dtype == "float32" else 0.0
    for r in rng.choice(args.users, size=20, replace=False):
        row = u[r].astype(np.float64) @ v.T.astype(np.float64)
        keep = np.ones(args.items, dtype=bool)
        keep[[int(x[1:]) for x in samples.loc[r, "exclude"]]] = False
        t = int(samples.loc[r, "target"][1:])
        low, high = int(np.sum(row[keep] > row[t] + eps)) + 1, int(np.sum(row[keep] >= row[t] - eps))
        assert low <= ranks[r] <= high, (r, ranks[r], low, high)
    print("ranks checked against a plain numpy count for 20 users: ok")
    print(f"target < {args.target_seconds:.0f} s:", "PASS" if took < args.target_seconds else "FAIL")


if __name__ == "__main__":
    main()
