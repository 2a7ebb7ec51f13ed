"""Peak memory and wall time of ``recommend`` for many users against many items.

Each measurement runs in a fresh process: it generates the vectors, compiles the
kernels on a small warm-up call, records the peak resident set size (RSS), then
runs ``recommend`` once and reports how far the peak grew. The full float32 score
matrix for 20,000 users x 50,000 items would need 4 GB; the growth shows whether
hyperscale ever builds it.

Usage: python benchmarks/memory_recommend.py [--users 20000] [--items 50000] [--dim 32]
"""

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import numpy as np
from hyperscale import hyperscale
from hyperscale._exact import ExactItems

n_users, n_items, dim = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(30)
items = rng.normal(size=(n_items, dim)).astype(np.float32)
users = rng.normal(size=(n_users, dim)).astype(np.float32)
hs = hyperscale(random_state=0, show_progress=False, verbose=False)
# The measured call logs its steps to stderr, which the parent reads for the path taken.
logged = hyperscale(random_state=0, show_progress=False, verbose=True)
# Both paths: exact search for few users, and the trees that more users may take.
hs.recommend(users[:50], items[:2000])
hs.recommend(users[:50], items[:2000], n_trees=2, search_k=20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
ids = logged.recommend(users, items, n_vectors=10)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
share = ExactItems(items).scored_share(users, 10)
print(json.dumps({"users": n_users, "items": n_items, "dim": dim, "seconds": seconds, "share": share,
                  "peak_growth_mib": (after - before) / 1024, "shape": list(ids.shape),
                  "dtype": str(ids.dtype), "input_mib": (users.nbytes + items.nbytes) / 2**20}))
"""


def measure(n_users, n_items, dim):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_users), str(n_items), str(dim)],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(result.stdout)
    if "exact search for" in result.stderr:
        row["path"] = "exact"
    elif "switching to exact search" in result.stderr:
        row["path"] = "trees, then exact"
    else:
        row["path"] = "tuned trees"
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="users at 1x (default 20,000)")
    parser.add_argument("--items", type=int, default=50_000, help="items (default 50,000)")
    parser.add_argument("--dim", type=int, default=32, help="dimensions (default 32)")
    args = parser.parse_args()

    print(
        "| users | items | dim | path taken | share scored | recommend (s) | peak RSS growth (MiB) "
        "| input arrays (MiB) | output |"
    )
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for factor in (1, 2, 4):
        row = measure(args.users * factor, args.items, args.dim)
        print(
            f"| {row['users']:,} | {row['items']:,} | {row['dim']} | {row['path']} | {100 * row['share']:.1f} % | "
            f"{row['seconds']:.1f} | "
            f"{row['peak_growth_mib']:.0f} | {row['input_mib']:.0f} | {tuple(row['shape'])} {row['dtype']} |"
        )


if __name__ == "__main__":
    main()
