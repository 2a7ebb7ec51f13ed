"""Measure the kernel settings that hyperscale's constants rest on.

Three tables, each from one process on the same arrays:

1. Exact search by its largest query tile (``MAX_TILE`` in ``_exact_kernels``):
   queries per second of exact inner-product search at tiles of 8, 256, 512 and
   1,024 queries, at ``bound_factor`` 1 and 0.75. The running queries regroup
   between spans whatever the tile, so a tile of 8 shows the cost of narrow tiles.
2. The all-items graph of ``find_similar_vectors`` by leaf size
   (``GRAPH_LEAF_SIZE`` in ``index``): build time (8 trees and neighbour descent)
   and recall@10 on the quickstart vectors (uniform [0, 1), 100,000 x 16), median of 3 builds.
3. ``graph=True`` indexes by number of trees (4 and 8) and leaf size on the
   Gowalla ALS factors: recall@10 and queries per second of the walk under
   "angular" and "dot". The default is 4 trees under "angular" and 8 under "dot"
   (``GRAPH_SPREAD_TREES`` and ``GRAPH_INIT_TREES`` in ``index``). Leaves of 128
   shrink the index (BENCHMARKS.md, W4) but are not the default because of this table.

Tables 1 and 3 use the Gowalla ALS-64 factors (40,981 items, 10,000 sampled
users) from ``$HYPERSCALE_DATA/factors``. Without them, table 1 uses the
quickstart vectors and table 3 is skipped. Searches repeat while they take
less than a second in all, up to 7 calls, and the tables give the median.

Usage: python benchmarks/kernel_choices.py [--data ../shared/data]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from hyperscale import VectorIndex, _exact_kernels, _graph, _tuning
from hyperscale._demo import recall_at_k
from hyperscale.index import GRAPH_EXTRA_DEGREE, GRAPH_INIT_TREES

K = 10
TILES = (8, 256, 512, 1024)
FACTORS = (1.0, 0.75)
GRAPH_LEAVES = (32, 64, 128)
WALK_TREES = (4, 8)
WALK_LEAVES = (32, 128)
WALK_SEARCH_K = (40, 160)


def median_seconds(function):
    """Return (result, median seconds) of ``function()``, called until 1 s in all or 7 calls."""
    times = []
    result = None
    while sum(times) < 1.0 and len(times) < 7:
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def exact_by_tile(items, queries):
    """Return rows (tile, factor, queries/s) of exact inner-product search by largest tile."""
    order, bounds = _tuning.visit_order("dot", items)
    query_norms = _tuning._norm_bounds(queries)
    bias = np.zeros(items.shape[0], dtype=np.float32)
    no_exclusions = np.zeros(queries.shape[0] + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    ids = np.empty((queries.shape[0], K), dtype=np.int32)
    keys = np.empty((queries.shape[0], K), dtype=np.float32)
    visited = np.empty(queries.shape[0], dtype=np.int64)
    rows = []
    for factor in FACTORS:
        norms = query_norms * np.float32(factor)
        for tile in TILES:

            def search():
                _exact_kernels.exact_search(
                    queries, norms, items, order, bounds, bias, *no_exclusions, tile, ids, keys, visited
                )

            search()  # compiles on the first call
            _, seconds = median_seconds(search)
            rows.append((tile, factor, queries.shape[0] / seconds))
    return rows


def graph_by_leaf():
    """Return rows (leaf size, median build seconds, recall@10) of the all-items graph."""
    rng = np.random.default_rng(42)
    items = rng.random((100_000, 16), dtype=np.float32)
    truth = _tuning.exact_top_k("euclidean", items, np.ones(len(items), dtype=bool), items, K + 1)
    truth = np.array([row[row != own][:K] for own, row in enumerate(truth)])
    degree = K + GRAPH_EXTRA_DEGREE
    rows = []
    for leaf_size in GRAPH_LEAVES:
        times = []
        for repeat in range(3):
            start = time.perf_counter()
            index = VectorIndex("euclidean", n_trees=GRAPH_INIT_TREES, leaf_size=leaf_size, random_state=repeat,
                                show_progress=False, verbose=False).build(items)
            graph_ids, graph_keys = _graph.build_knn_graph(index._forest, index._vectors, 0, degree,
                                                           index._graph_seed, n_init_trees=GRAPH_INIT_TREES)
            found, _ = _graph.sorted_neighbors(graph_ids, graph_keys, K)
            times.append(time.perf_counter() - start)
        rows.append((leaf_size, float(np.median(times)), recall_at_k(found.astype(np.int64), truth)))
    return rows


def walk_by_leaf(items, queries):
    """Return rows (metric, trees, leaf size, search_k, recall@10, queries/s) of ``graph=True`` indexes."""
    rows = []
    for metric in ("angular", "dot"):
        exact = VectorIndex(metric, n_trees=1, random_state=0, show_progress=False, verbose=False).build(items)
        truth = _tuning.exact_top_k(metric, exact._vectors, exact._indexed, queries, K)
        for n_trees in WALK_TREES:
            for leaf_size in WALK_LEAVES:
                index = VectorIndex(metric, graph=True, n_trees=n_trees, leaf_size=leaf_size, random_state=0,
                                    show_progress=False, verbose=False).build(items)
                index.query(queries[:5], k=K)
                for search_k in WALK_SEARCH_K:
                    (found, _), seconds = median_seconds(lambda: index.query(queries, k=K, search_k=search_k))
                    rate = queries.shape[0] / seconds
                    rows.append((metric, n_trees, leaf_size, search_k, recall_at_k(found, truth), rate))
    return rows


def main():
    default_data = os.environ.get("HYPERSCALE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data, help="real-data folder (default: $HYPERSCALE_DATA)")
    args = parser.parse_args()

    factors = Path(args.data) / "factors"
    items_path, users_path = factors / "gowalla_als64_items.npy", factors / "gowalla_als64_users.npy"
    if items_path.is_file() and users_path.is_file():
        items = np.load(items_path).astype(np.float32)
        users = np.load(users_path).astype(np.float32)
        rows = np.random.default_rng(0).choice(len(users), 10_000, replace=False)
        queries = np.ascontiguousarray(users[rows])
        data = "Gowalla ALS-64 factors, 40,981 items, 10,000 users"
    else:
        rng = np.random.default_rng(42)
        items = rng.random((100_000, 16), dtype=np.float32)
        queries = rng.random((10_000, 16), dtype=np.float32)
        data = f"uniform vectors (no factors in {factors})"
        print(f"Gowalla factors not found in {factors}: table 1 uses uniform vectors, table 3 is skipped")

    print(f"\n1. Exact inner-product search by largest tile, {data}\n")
    print("| tile | bound_factor | queries/s |")
    print("| ---: | ---: | ---: |")
    for tile, factor, rate in exact_by_tile(items, queries):
        print(f"| {tile} | {factor} | {rate:,.0f} |", flush=True)

    print("\n2. All-items graph (8 trees, neighbour descent, degree 16) by leaf size, uniform 100,000 x 16\n")
    print("| leaf size | build (s) | recall@10 |")
    print("| ---: | ---: | ---: |")
    for leaf_size, seconds, recall in graph_by_leaf():
        print(f"| {leaf_size} | {seconds:.2f} | {recall:.4f} |", flush=True)

    if "Gowalla" in data:
        print(f"\n3. graph=True indexes by number of trees and leaf size, {data}\n")
        print("| metric | trees | leaf size | search_k | recall@10 | queries/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for metric, n_trees, leaf_size, search_k, recall, rate in walk_by_leaf(items, queries):
            print(f"| {metric} | {n_trees} | {leaf_size} | {search_k} | {recall:.3f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
