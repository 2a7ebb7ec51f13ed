"""Costs behind recommend()'s choice between exact search and a tree index.

For uniform [0, 1) items at several dimensions, measures in one process, after a
warm-up that compiles every kernel:
- exact search: nanoseconds per user and item (``exact_top_k``, all threads);
- the build: nanoseconds per tree and item (a 16-tree "dot" index);
- the tree search: nanoseconds per user and candidate (``query`` at a fixed search_k).

The ratios between them, not the absolute times, are what ``hyperscale._defaults``
uses; they move less than the times from one machine to another.

Usage: python benchmarks/exact_crossover.py [--items 100000] [--users 4000]
"""

import argparse
import time

import numpy as np

from hyperscale import _defaults, _tuning
from hyperscale.index import VectorIndex

DIMS = (16, 32, 64)
TREES = 16
SEARCH_K = 2000


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=4_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print(f"{args.items} items, {args.users} users, {TREES} trees, search_k={SEARCH_K}")
    print(
        "| dim | exact ns / user·item | build ns / tree·item | search ns / user·candidate "
        "| users per tree at break-even | model's users per tree |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for dim in DIMS:
        items = rng.random((args.items, dim), dtype=np.float32)
        users = rng.random((args.users, dim), dtype=np.float32)
        warm = VectorIndex("dot", n_trees=1, show_progress=False, verbose=False).build(items[:5000])
        warm.query(users[:10], k=10, search_k=100)
        _tuning.exact_top_k("dot", items, np.ones(len(items), dtype=bool), users[:10], 10)

        index = VectorIndex("dot", n_trees=TREES, show_progress=False, verbose=False)
        build = timed(lambda: index.build(items))
        indexed = np.ones(len(items), dtype=bool)
        exact = timed(lambda: _tuning.exact_top_k("dot", items, indexed, users, 10))
        search = timed(lambda: index.query(users, k=10, search_k=SEARCH_K))
        exact_ns = exact / (args.users * args.items) * 1e9
        build_ns = build / (TREES * args.items) * 1e9
        search_ns = search / (args.users * SEARCH_K) * 1e9
        model = _defaults.users_per_tree(dim)
        print(
            f"| {dim} | {exact_ns:.3f} | {build_ns:.0f} | {search_ns:.1f} | {build_ns / exact_ns:.0f} | {model:.0f} |"
        )


if __name__ == "__main__":
    main()
