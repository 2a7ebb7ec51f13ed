"""Costs behind recommend()'s choice between exact search and a tree index.

For uniform [0, 1) items at several dimensions, measures in one process, after a
warm-up that compiles every kernel:
- exact search: the share of the items each user scores before its norm bound
  stops it, and nanoseconds per user and item scored (``exact_top_k``, all threads);
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
        "| dim | share scored | exact ns / user·item scored | build ns / tree·item | search ns / user·candidate "
        "| model: exact, build, search |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for dim in DIMS:
        items = rng.random((args.items, dim), dtype=np.float32)
        users = rng.random((args.users, dim), dtype=np.float32)
        warm = VectorIndex("dot", n_trees=1, show_progress=False, verbose=False).build(items[:5000])
        warm.query(users[:10], k=10, search_k=100)
        _tuning.exact_top_k("dot", items, np.ones(len(items), dtype=bool), users[:10], 10)

        index = VectorIndex("dot", n_trees=TREES, show_progress=False, verbose=False)
        build = timed(lambda: index.build(items))
        indexed = np.ones(len(items), dtype=bool)
        visited = np.empty(len(users), dtype=np.int64)
        exact = timed(lambda: _tuning.exact_top_k("dot", items, indexed, users, 10, visited=visited))
        search = timed(lambda: index.query(users, k=10, search_k=SEARCH_K))
        share = visited.sum() / (args.users * args.items)
        exact_ns = exact / visited.sum() * 1e9
        build_ns = build / (TREES * args.items) * 1e9
        search_ns = search / (args.users * SEARCH_K) * 1e9
        model = ", ".join(f"{cost(dim):.1f}" for cost in (_defaults.exact_ns, _defaults.build_ns, _defaults.search_ns))
        print(f"| {dim} | {share:.3f} | {exact_ns:.2f} | {build_ns:.0f} | {search_ns:.1f} | {model} |")


if __name__ == "__main__":
    main()
