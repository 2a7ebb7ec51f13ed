"""Recall@10 against speed, build time and memory: hyperscale, Annoy, hnswlib, FAISS, PyNNDescent.

Every contender runs in one process on the same arrays, with the same number of
threads (``--threads``, default 2), and sweeps its accuracy knob:

- hyperscale: ``search_k`` at two values of ``n_trees``.
- Annoy: ``search_k`` at two values of ``n_trees``. Annoy has no batch query, so
  the queries run one at a time in ``--threads`` Python threads, each over its own
  slice of the queries. Annoy 1.17.3 releases the GIL inside each search, but the
  Python loop around it does not.
- hnswlib: ``ef`` with ``M = 16`` and ``ef_construction = 200`` (100 on W3).
- FAISS: ``efSearch`` of ``IndexHNSWFlat`` with ``M = 16`` and ``efConstruction = 200``
  (100 on W3).
- PyNNDescent: ``epsilon`` of ``NNDescent.query``, or ``n_neighbors`` of the
  build for the all-items graph.
- Exact search with numpy (one BLAS matrix product per block of queries).

For inner product, Annoy, hnswlib and FAISS run twice. The "native dot" and
"native ip" rows use the library's own inner-product space: Annoy's metric
"dot", hnswlib's space "ip" and FAISS's METRIC_INNER_PRODUCT. The "euclidean
transform" rows search by Euclidean distance with the transform that hyperscale
uses internally: items from ``hyperscale.augment_vectors`` and queries with a
zero column appended.
PyNNDescent runs only on the transform, because its metric "dot" normalizes the
vectors (pynndescent 0.7.0) and so ranks by cosine, not inner product.

Workloads (fixed seeds):

- W1: uniform [0, 1) items 100,000 x 16 and users 10,000 x 16 (seed 42, as in
  recall_defaults.py), top 10 items per user by inner product.
- W2: the top-10 Euclidean neighbour graph of all W1 items, without the item
  itself. Annoy searches item by item for a sample of ``--graph-sample`` items and
  its time is extrapolated to all items.
- R1: Gowalla ALS factors with 64 dimensions from
  ``$HYPERSCALE_DATA/factors/gowalla_als64_{users,items}.npy``, top 10 by inner
  product for a random sample of ``--queries`` users. Skipped when the files are
  missing.
- W3: synthetic matrix-factorisation vectors, 1,000,000 items x 64 and 10,000
  users (seed 3), top 10 by inner product. Item and user directions gather
  around 300 random cluster centres, with cluster sizes from a flat Dirichlet,
  and the norms are log-normal (sigma 0.5 for items, 0.3 for users).
- W4: 200,000 unit vectors x 96 and 10,000 queries drawn from the same
  distribution (seed 4), top 10 by cosine similarity. The 300 cluster centres
  gather around 30 topics, so that neighbouring clusters overlap. For the first
  500 queries, about 70 % of each true top 10 come from the query's own cluster.

W3 runs like W1 and R1, with the native and the transformed variants. W4 uses
each library's cosine search: hyperscale and Annoy metric "angular", hnswlib
space "cosine", FAISS inner product on the unit vectors and PyNNDescent metric
"cosine". Exact search on W3 and W4 works in tiles of 256 queries x 65,536
items, so the full score matrix is never in memory.

Build times include adding the vectors. Query times exclude converting the
queries to float32 or to Python lists and exclude Numba compilation: hyperscale
and PyNNDescent first build and query a small warm-up index. A search shorter
than one second is repeated, up to 7 calls, and its row gives the median time:
on a shared machine a single call of 0.05 s can take twice as long. Builds and
one-call rows run once. Index memory is the
bytes of the index arrays where the library reports them, else the size of the
saved or serialized index. The "memory from" column names the source. For W2 the
throughput counts the search of all items but not the build, except for
PyNNDescent, whose graph comes out of the build.

``--quick`` runs every contender on 5,000 items and 500 queries with short sweeps
and writes ``<workload>_quick.md`` and ``.png`` in place of the full results.
``--skip LIB`` (repeatable) leaves a contender out.

The full W3 run is heavy. The items take 256 MB per float32 copy, and the
contenders that search the Euclidean transform each make a 260 MB copy of their
own. Its sweeps therefore differ from the other workloads (see
FULL_SWEEP_CHANGES): hnswlib and FAISS build with ``ef_construction = 100``
instead of 200, and PyNNDescent's ``epsilon`` stops at 0.02.

Estimated duration with 2 threads on a 2-core machine, scaled from the full
sweeps on the first 100,000 W3 items and the first 50,000 W4 items with 1,000
queries, run while other jobs loaded the machine:

- W3: about an hour. The 8 builds of Annoy, hnswlib and FAISS take about half
  of it, and the exact search 2 to 6 minutes. ``--skip annoy`` saves about 15
  minutes.
- W4: about 15 minutes.

PyNNDescent's compilation adds one to two minutes per workload, outside its
build time. The W3 indexes grow to an estimated 1 GB each (hyperscale and
Annoy with 50 trees), one at a time, so the run should fit in a few GB of
memory.

Usage: python benchmarks/compare.py [--workload W1|W2|R1|W3|W4] [--workload ...] [--quick] [--threads 2]
                                    [--skip LIB] [--skip ...]
"""

import argparse
import os
import sys

# The thread count must be in the environment before numpy, numba and faiss load
# their thread pools, so it is read here, before the imports below.
_thread_parser = argparse.ArgumentParser(add_help=False)
_thread_parser.add_argument("--threads", type=int, default=2)
THREADS = _thread_parser.parse_known_args()[0].threads
if THREADS < 1:
    _thread_parser.error(f"--threads must be at least 1, got {THREADS}")
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_variable] = str(THREADS)

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import pickle  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import hyperscale as hyperscale_package  # noqa: E402
from hyperscale import VectorIndex, hyperscale  # noqa: E402
from hyperscale._demo import exact_top_k, recall_at_k  # noqa: E402

K = 10
# hyperscale's search in decreasing norm order sweeps bound_factor down from 1 in
# these steps, until recall falls below the floor or the factor reaches its lowest.
BOUND_FACTOR_STEP = 0.05
BOUND_FACTOR_LOWEST = 0.3
BOUND_FACTOR_RECALL_FLOOR = 0.88
# A search call shorter than SEARCH_SECONDS is repeated, up to SEARCH_REPEATS calls
# in all, and its row gives the median time.
SEARCH_SECONDS = 1.0
SEARCH_REPEATS = 7
# Leaf size of the second graph index that compare.py builds for "angular" workloads.
WALK_LARGE_LEAF = 128
WORKLOADS = ("W1", "W2", "R1", "W3", "W4")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = os.environ.get("HYPERSCALE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

# Sweeps per workload size. Each tuple is one accuracy knob, from fast to accurate.
# "ef_construction" is the one build setting of hnswlib and FAISS HNSW.
FULL_SWEEP = {
    "n_trees": (16, 50),
    "search_k": (50, 100, 200, 400, 800, 1600, 3200),
    "ef": (10, 16, 32, 64, 128, 256),
    "epsilon": (0.0, 0.05, 0.1, 0.2, 0.3),
    "graph_n_neighbors": (11, 15, 30),
    "walk_search_k": (10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320),
    "ef_construction": 200,
}
QUICK_SWEEP = {
    "n_trees": (16,),
    "search_k": (100, 400, 1600),
    "ef": (16, 64, 256),
    "epsilon": (0.0, 0.1, 0.3),
    "graph_n_neighbors": (11, 30),
    "walk_search_k": (10, 30, 80),
    "ef_construction": 200,
}
# Full-run changes per workload. The numbers behind them come from the full
# sweeps on the first 100,000 W3 items and the first 50,000 W4 items, with 1,000
# queries each:
# - search_k and ef: the full sizes have 10 (W3) and 4 (W4) times as many items,
#   so the same recall needs a larger search. On the W3 prefix, hyperscale with
#   16 trees reached recall 0.95 only at search_k = 3,200, Annoy stayed below
#   0.91 at 12,800, and the transform rows of hnswlib and FAISS stayed below 0.6
#   at ef = 512.
# - epsilon: on W3's Euclidean transform, PyNNDescent with 0.05 was slower than
#   exact search (26 against 272 queries/s), so the sweep stops at 0.02. On W4 it
#   reached only recall 0.89 at 0.3, so the sweep goes on to 0.5.
# - ef_construction: hnswlib took 2.4 times as long to build with 200 as with
#   100 on the W3 prefix, so W3 builds both HNSW libraries with 100.
FULL_SWEEP_CHANGES = {
    "W3": {
        "search_k": (100, 200, 400, 800, 1600, 3200, 6400, 12800),
        "ef": (10, 16, 32, 64, 128, 256, 512),
        "epsilon": (0.0, 0.005, 0.01, 0.02),
        "ef_construction": 100,
    },
    "W4": {
        "search_k": (50, 100, 200, 400, 800, 1600, 3200, 6400),
        "epsilon": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    },
}
HNSW_M = 16

# Rows generated at a time for W3 and W4, so that each temporary array stays
# below 40 MB.
GENERATION_CHUNK_ROWS = 100_000

# Tile of the exact search for W3 and W4: 64 MB of float32 scores. Tiles read
# the items once per 256 queries, where exact_top_k reads the million W3 items
# once per 4 users and took twice as long.
EXACT_TILE_QUERIES = 256
EXACT_TILE_ITEMS = 65_536


@dataclass
class Workload:
    name: str
    description: str
    kind: str  # "query" (top-k for each query) or "graph" (top-k for every item, without itself)
    metric: str  # "dot", "euclidean" or "angular"
    items: np.ndarray
    queries: np.ndarray
    truth: np.ndarray = None
    exact_seconds: float = 0.0
    graph_sample: int = 0
    exact_in_tiles: bool = False  # exact_top_k_tiled in place of exact_top_k


@dataclass
class Row:
    library: str
    variant: str
    build_params: str
    query_param: str
    build_seconds: float
    search_seconds: float
    n_searched: int
    recall: float
    memory_bytes: int
    memory_source: str
    notes: list = field(default_factory=list)

    @property
    def throughput(self):
        return self.n_searched / self.search_seconds


# ----------------------------------------------------------------------
# Workloads and exact results
# ----------------------------------------------------------------------


def uniform_w1(quick):
    rng = np.random.default_rng(42)
    n_items, n_users = (5_000, 500) if quick else (100_000, 10_000)
    items = rng.random((n_items, 16), dtype=np.float32)
    users = rng.random((n_users, 16), dtype=np.float32)
    return items, users


def unit_rows(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered_directions(rng, centres, weights, n_rows, spread):
    """Draw n_rows float32 unit vectors around the given unit centres.

    Each row picks a centre with probability ``weights`` and adds Gaussian noise
    with a norm of about ``spread``, because each noise coordinate has standard
    deviation spread / sqrt(dim).
    """
    dim = centres.shape[1]
    centres = centres.astype(np.float32)
    scale = np.float32(spread / np.sqrt(dim))
    result = np.empty((n_rows, dim), dtype=np.float32)
    for start in range(0, n_rows, GENERATION_CHUNK_ROWS):
        stop = min(start + GENERATION_CHUNK_ROWS, n_rows)
        clusters = rng.choice(len(centres), size=stop - start, p=weights)
        rows = rng.standard_normal((stop - start, dim), dtype=np.float32) * scale
        rows += centres[clusters]
        result[start:stop] = unit_rows(rows)
    return result


def factors_w3(quick):
    """Generate W3's item and user vectors, shaped like matrix-factorisation output.

    With noise norms of 0.8 for items and 1.0 for users, about 90 % of each
    user's true top 10 lie in the user's own cluster. The log-normal item norms
    put the true top 10 above the 99th percentile of item norms on average, as
    in the R1 Gowalla factors. Both figures come from the first 500 users.
    """
    rng = np.random.default_rng(3)
    n_items, n_users = (5_000, 500) if quick else (1_000_000, 10_000)
    centres = unit_rows(rng.standard_normal((300, 64)))
    weights = rng.dirichlet(np.ones(300))
    items = clustered_directions(rng, centres, weights, n_items, spread=0.8)
    items *= rng.lognormal(0.0, 0.5, size=(n_items, 1)).astype(np.float32)
    users = clustered_directions(rng, centres, weights, n_users, spread=1.0)
    users *= rng.lognormal(0.0, 0.3, size=(n_users, 1)).astype(np.float32)
    return items, users


def unit_vectors_w4(quick):
    """Generate W4's unit items and queries: 300 clusters whose centres gather around 30 topics."""
    rng = np.random.default_rng(4)
    n_items, n_queries = (5_000, 500) if quick else (200_000, 10_000)
    topics = unit_rows(rng.standard_normal((30, 96)))
    centres = clustered_directions(rng, topics, np.full(30, 1 / 30), 300, spread=0.4)
    weights = rng.dirichlet(np.ones(300))
    items = clustered_directions(rng, centres, weights, n_items, spread=1.0)
    queries = clustered_directions(rng, centres, weights, n_queries, spread=1.0)
    return items, queries


def load_workload(name, quick, data_dir, n_queries, graph_sample):
    """Build the named workload and its exact top-k, or return None when its data files are missing."""
    if name == "W1":
        items, users = uniform_w1(quick)
        workload = Workload(
            name, f"uniform [0, 1) items {items.shape[0]:,} x 16, users {users.shape[0]:,} x 16, seed 42, "
            "top 10 by inner product", "query", "dot", items, users)
    elif name == "W2":
        items, _ = uniform_w1(quick)
        workload = Workload(
            name, f"Euclidean top-10 graph of all {items.shape[0]:,} W1 items (16 dims), the item itself "
            "excluded", "graph", "euclidean", items, items, graph_sample=min(graph_sample, items.shape[0]))
    elif name == "R1":
        factors = Path(data_dir) / "factors"
        users_path = factors / "gowalla_als64_users.npy"
        items_path = factors / "gowalla_als64_items.npy"
        if not (users_path.is_file() and items_path.is_file()):
            print(f"R1 skipped: {users_path} or {items_path} not found (set HYPERSCALE_DATA or --data)")
            return None
        items = np.ascontiguousarray(np.load(items_path), dtype=np.float32)
        users = np.ascontiguousarray(np.load(users_path), dtype=np.float32)
        rng = np.random.default_rng(0)
        if quick:
            items = items[np.sort(rng.choice(items.shape[0], 5_000, replace=False))]
            n_queries = 500
        n_queries = min(n_queries, users.shape[0])
        users = users[np.sort(rng.choice(users.shape[0], n_queries, replace=False))]
        workload = Workload(
            name, f"Gowalla ALS factors, {items.shape[0]:,} items x {items.shape[1]}, a random sample of "
            f"{users.shape[0]:,} users (seed 0), top 10 by inner product", "query", "dot", items, users)
    elif name == "W3":
        items, users = factors_w3(quick)
        workload = Workload(
            name, f"matrix-factorisation-like items {items.shape[0]:,} x 64 and users {users.shape[0]:,} x 64 "
            "(300 clusters, log-normal norms), seed 3, top 10 by inner product", "query", "dot", items, users,
            exact_in_tiles=True)
    elif name == "W4":
        items, queries = unit_vectors_w4(quick)
        workload = Workload(
            name, f"clustered unit vectors, {items.shape[0]:,} items x 96 and {queries.shape[0]:,} queries "
            "from the same distribution, seed 4, top 10 by cosine", "query", "angular", items, queries,
            exact_in_tiles=True)
    else:
        raise ValueError(f"unknown workload {name!r}: choose one of {', '.join(WORKLOADS)}")

    start = time.perf_counter()
    workload.truth = ground_truth(workload)
    workload.exact_seconds = time.perf_counter() - start
    return workload


def ground_truth(workload):
    """Find the exact top K of every query by brute force, or of every item for a graph workload."""
    if workload.kind == "graph":
        return exact_euclidean_graph(workload.items, K)
    queries, items = workload.queries, workload.items
    if workload.metric == "angular":
        queries, items = unit_rows(queries), unit_rows(items)
    if workload.exact_in_tiles:
        return exact_top_k_tiled(queries, items, K)
    return exact_top_k(queries, items, K)


def exact_top_k_tiled(queries, items, k):
    """Find the k largest inner products for every query by brute force, best first.

    Each tile of EXACT_TILE_QUERIES x EXACT_TILE_ITEMS scores is one BLAS matrix
    product. argpartition then keeps each query's k best of the tile, with the
    query rows split over THREADS threads because argpartition releases the GIL.
    The candidates of all item tiles are merged per block of queries. Returns
    int64 ids (n_queries, k). Ties are broken in no particular order.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    if not 1 <= k <= len(items):
        raise ValueError(f"k must be between 1 and the number of items ({len(items)}), got {k}")

    result = np.empty((len(queries), k), dtype=np.int64)
    with ThreadPoolExecutor(THREADS) as pool:
        for start in range(0, len(queries), EXACT_TILE_QUERIES):
            block = queries[start:start + EXACT_TILE_QUERIES]
            ids, scores = tile_candidates(pool, block, items, k)
            result[start:start + len(block)] = best_of(ids, scores, k)
    return result


def tile_candidates(pool, block, items, k):
    """Return the ids and scores of each query's k best items in every item tile, side by side."""
    ids, scores = [], []
    for item_start in range(0, len(items), EXACT_TILE_ITEMS):
        tile_scores = block @ items[item_start:item_start + EXACT_TILE_ITEMS].T
        row_parts = np.array_split(np.arange(len(block)), THREADS)
        tops = pool.map(lambda rows: top_k_unordered(tile_scores[rows], k), row_parts)
        tile_ids = np.concatenate(list(tops))
        ids.append(tile_ids + item_start)
        scores.append(np.take_along_axis(tile_scores, tile_ids, axis=1))
    return np.hstack(ids), np.hstack(scores)


def top_k_unordered(scores, k):
    """Return the column ids of each row's k largest scores in no particular order (all columns if k or fewer)."""
    n_columns = scores.shape[1]
    if n_columns <= k:
        return np.tile(np.arange(n_columns), (scores.shape[0], 1))
    return np.argpartition(scores, n_columns - k, axis=1)[:, n_columns - k:]


def best_of(ids, scores, k):
    """Return the ids of each row's k largest scores, best first."""
    top = top_k_unordered(scores, k)
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(ids, np.take_along_axis(top, order, axis=1), axis=1)


def exact_euclidean_graph(items, k):
    """Find each item's k nearest other items by Euclidean distance, by brute force.

    The smallest |x - y|² is the largest 2 x·y - |y|², an inner product between
    (2x, -1) and (y, |y|²), so the inner-product search of exact_top_k applies.
    """
    squared_norms = np.einsum("ij,ij->i", items, items)
    queries = np.hstack([2 * items, -np.ones((items.shape[0], 1), dtype=np.float32)])
    targets = np.hstack([items, squared_norms[:, None]])
    return drop_self(exact_top_k(queries, targets, k + 1), k)


def drop_self(ids, k, own_ids=None):
    """Remove each row's own id and keep the first k of the rest.

    Row i belongs to item own_ids[i], or to item i when own_ids is None. Rows
    that do not contain their own id lose their last entry instead.
    """
    if own_ids is None:
        own_ids = np.arange(ids.shape[0])
    is_self = ids == own_ids[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1)[:, :k]


def with_zero_column(queries):
    return np.hstack([queries, np.zeros((queries.shape[0], 1), dtype=np.float32)])


def euclidean_transform(workload):
    """Return the Euclidean-transform items and queries of an inner-product workload."""
    items = hyperscale(show_progress=False, verbose=False).augment_vectors(workload.items)
    return np.ascontiguousarray(items, dtype=np.float32), with_zero_column(workload.queries)


def inner_product_variants(workload):
    """Yield (variant name, library metric, items, queries) for the native and transformed spaces."""
    yield "native ip", "ip", workload.items, workload.queries
    items, queries = euclidean_transform(workload)
    yield "euclidean transform", "l2", items, queries


def file_size_after(save):
    """Call save(path) on a fresh temporary path and return the size of the file it writes."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "index")
        save(path)
        return os.path.getsize(path)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def timed_search(function, *args, **kwargs):
    """Time a search call like :func:`timed`, repeated while it is short, and return the median time.

    A search of 10,000 queries can take 0.05 s, shorter than the pauses another
    process on a shared machine causes. Calls are repeated until they have taken
    SEARCH_SECONDS in all or SEARCH_REPEATS calls were made. Every contender's
    search rows go through here, so they are measured alike.
    """
    result, seconds = timed(function, *args, **kwargs)
    times = [seconds]
    while sum(times) < SEARCH_SECONDS and len(times) < SEARCH_REPEATS:
        times.append(timed(function, *args, **kwargs)[1])
    return result, float(np.median(times))


# ----------------------------------------------------------------------
# Contenders. Each yields one Row per point of its sweep.
# ----------------------------------------------------------------------


def run_exact(workload, sweep):
    if workload.exact_in_tiles:
        note = (f"one matmul per tile of {EXACT_TILE_QUERIES} queries x {EXACT_TILE_ITEMS:,} items, "
                f"argpartition in {THREADS} threads")
    else:
        note = "one matmul + argpartition per block of queries"
    yield Row("numpy", "exact", "-", "-", 0.0, workload.exact_seconds, len(workload.queries),
              recall_at_k(workload.truth, workload.truth), workload.items.nbytes, "item array", [note])


def run_hyperscale(workload, sweep):
    # Compile the kernels on a small index so that no timed call includes compilation.
    rng = np.random.default_rng(1)
    warm = VectorIndex(metric=workload.metric, n_trees=2, random_state=0, show_progress=False, verbose=False)
    warm.build(rng.random((500, workload.items.shape[1]), dtype=np.float32))
    warm.query(rng.random((5, workload.items.shape[1]), dtype=np.float32), k=K)
    warm.query(rng.random((5, workload.items.shape[1]), dtype=np.float32), k=K, search_k=500)
    warm.neighbors(k=K, exclude_self=True)
    if workload.kind == "graph":
        yield from run_hyperscale_graph(workload)

    for n_trees in sweep["n_trees"]:
        index = VectorIndex(metric=workload.metric, n_trees=n_trees, random_state=0, show_progress=False,
                            verbose=False)
        _, build_seconds = timed(index.build, workload.items)
        for search_k in sweep["search_k"]:
            if workload.kind == "graph":
                (found, _), seconds = timed_search(index.neighbors, k=K, search_k=search_k, exclude_self=True)
            else:
                (found, _), seconds = timed_search(index.query, workload.queries, k=K, search_k=search_k)
            yield Row("hyperscale", workload.metric, f"n_trees={n_trees}", f"search_k={search_k}",
                      build_seconds, seconds, len(found), recall_at_k(found, workload.truth),
                      index.nbytes, "index.nbytes")
    if workload.kind == "query":
        yield from run_hyperscale_walk(workload, sweep)
    if workload.kind == "query" and workload.metric == "dot":
        yield from run_hyperscale_norm_order(workload)
        yield from run_hyperscale_recommend(workload)


def run_hyperscale_norm_order(workload):
    """Sweep ``bound_factor`` down from 1: search in decreasing norm order, without the trees.

    The index is built with one tree, the fewest it allows, because this search
    does not use them. The build time includes one query, because the first
    query of an index sorts the items by norm.
    """
    index = VectorIndex(metric="dot", n_trees=1, random_state=0, show_progress=False, verbose=False)
    _, build_seconds = timed(index.build, workload.items)
    _, sort_seconds = timed(index.query, workload.queries[:1], k=K, bound_factor=1.0)
    build_seconds += sort_seconds
    factor = 1.0
    while factor >= BOUND_FACTOR_LOWEST:
        (found, _), seconds = timed_search(index.query, workload.queries, k=K, bound_factor=factor)
        recall = recall_at_k(found, workload.truth)
        yield Row("hyperscale", "dot norm order", "n_trees=1", f"bound_factor={factor:.2f}", build_seconds, seconds,
                  len(found), recall, index.nbytes, "index.nbytes",
                  ["items in decreasing norm order, each query stopped by its norm bound; 1 is exact"])
        if recall < BOUND_FACTOR_RECALL_FLOOR:
            break
        factor = round(factor - BOUND_FACTOR_STEP, 2)


def run_hyperscale_recommend(workload):
    """Time the one call a user makes: ``recommend(users, items)`` with its defaults.

    The call chooses between exact search and a tuned tree index by their
    estimated costs, and logs its choice. The note of the row names the path it took.
    """
    import logging

    from hyperscale import LOGGER_NAME

    recommender = hyperscale(random_state=0, show_progress=False, verbose=True)
    rng = np.random.default_rng(4)
    dim = workload.items.shape[1]
    # Compile the exact kernel outside the timed call. run_hyperscale compiled the trees.
    recommender.recommend(rng.random((20, dim), dtype=np.float32), rng.random((500, dim), dtype=np.float32))
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger(LOGGER_NAME)
    handler = Collect()
    logger.addHandler(handler)
    try:
        found, seconds = timed(recommender.recommend, workload.queries, workload.items)
    finally:
        logger.removeHandler(handler)
    exact = any(message.startswith(("exact search for", "switching to exact search")) for message in messages)
    path = "took exact search" if exact else "took the tuned trees"
    yield Row("hyperscale", "recommend()", "defaults", "one call", 0.0, seconds, len(found),
              recall_at_k(found, workload.truth), 0, "not measured",
              [f"one call with defaults, build and search included; {path}"])


def run_hyperscale_walk(workload, sweep):
    """Sweep the candidate list of the graph walk on an index built with ``graph=True``.

    Under "angular" a second index with leaves of WALK_LARGE_LEAF vectors runs
    too: fewer split planes make a smaller index (see BENCHMARKS.md).
    """
    rng = np.random.default_rng(3)
    warm = VectorIndex(metric=workload.metric, random_state=0, show_progress=False, verbose=False, graph=True)
    warm.build(rng.random((2_000, workload.items.shape[1]), dtype=np.float32))
    warm.query(rng.random((5, workload.items.shape[1]), dtype=np.float32), k=K)

    leaf_sizes = (None, WALK_LARGE_LEAF) if workload.metric == "angular" else (None,)
    for leaf_size in leaf_sizes:
        index = VectorIndex(metric=workload.metric, random_state=0, show_progress=False, verbose=False, graph=True,
                            leaf_size=leaf_size)
        _, build_seconds = timed(index.build, workload.items)
        build = f"graph=True, n_trees={index._n_trees_built}"
        if leaf_size is not None:
            build += f", leaf_size={leaf_size}"
        for search_k in sweep["walk_search_k"]:
            (found, _), seconds = timed_search(index.query, workload.queries, k=K, search_k=search_k)
            yield Row("hyperscale", f"{workload.metric} graph", build, f"search_k={search_k}", build_seconds,
                      seconds, len(found), recall_at_k(found, workload.truth), index.nbytes, "index.nbytes",
                      ["walks the neighbour graph from tree seeds"])


def run_hyperscale_graph(workload):
    """Time the one call a user makes: ``find_similar_vectors`` with its defaults.

    From GRAPH_MIN_VECTORS vectors on, it builds GRAPH_INIT_TREES trees and a
    neighbour graph refined by neighbour descent; below, it searches the trees.
    """
    from hyperscale.index import GRAPH_EXTRA_DEGREE, GRAPH_INIT_TREES, GRAPH_MIN_VECTORS

    finder = hyperscale(random_state=0, show_progress=False, verbose=False)
    rng = np.random.default_rng(2)
    # Compile the graph kernels outside the timed call.
    finder.find_similar_vectors(rng.random((GRAPH_MIN_VECTORS, workload.items.shape[1]), dtype=np.float32),
                                exclude_self=True)
    found, seconds = timed(finder.find_similar_vectors, workload.items, exclude_self=True)
    uses_graph = len(workload.items) >= GRAPH_MIN_VECTORS
    if uses_graph:
        degree = K + GRAPH_EXTRA_DEGREE
        memory = len(workload.items) * degree * 8 + workload.items.nbytes
        build, source = f"{GRAPH_INIT_TREES} trees + graph of degree {degree}", "graph ids + keys + data"
    else:
        memory, build, source = 0, "default trees", "not measured"
    yield Row("hyperscale", workload.metric, build, "find_similar_vectors", seconds, seconds, len(found),
              recall_at_k(found, workload.truth), memory, source,
              ["one call with defaults: build is the search"])


def annoy_search(index, vectors, search_k):
    """Query annoy one vector at a time in THREADS Python threads, one slice of the queries each."""
    slices = np.array_split(np.arange(len(vectors)), THREADS)

    def search_slice(rows):
        return [index.get_nns_by_vector(vectors[row], K, search_k) for row in rows]

    with ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(search_slice, slices))
    return np.array([ids for part in parts for ids in part], dtype=np.int64)


def annoy_search_items(index, item_ids, search_k):
    """Find each sampled item's K nearest other items, in THREADS Python threads."""
    slices = np.array_split(item_ids, THREADS)

    def search_slice(rows):
        return [index.get_nns_by_item(int(row), K + 1, search_k) for row in rows]

    with ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(search_slice, slices))
    return np.array([ids for part in parts for ids in part], dtype=np.int64)


def annoy_variants(workload):
    """Return (variant name, Annoy metric, items, queries) for each space Annoy searches."""
    if workload.kind == "graph":
        return [("euclidean", "euclidean", workload.items, None)]
    if workload.metric == "angular":
        return [("angular", "angular", workload.items, workload.queries)]
    items, queries = euclidean_transform(workload)
    return [("native dot", "dot", workload.items, workload.queries),
            ("euclidean transform", "euclidean", items, queries)]


def annoy_add_items(index, items):
    # As Python lists, a million rows of 65 floats take about 2 GB (32 bytes per
    # float), so the rows are converted one chunk at a time.
    for start in range(0, len(items), GENERATION_CHUNK_ROWS):
        for offset, vector in enumerate(items[start:start + GENERATION_CHUNK_ROWS].tolist()):
            index.add_item(start + offset, vector)


def run_annoy(workload, sweep):
    import annoy

    for variant, metric, items, queries in annoy_variants(workload):
        for n_trees in sweep["n_trees"]:
            index = annoy.AnnoyIndex(items.shape[1], metric)
            index.set_seed(0)
            start = time.perf_counter()
            annoy_add_items(index, items)
            index.build(n_trees, n_jobs=THREADS)
            build_seconds = time.perf_counter() - start
            memory = file_size_after(index.save)
            for search_k in sweep["search_k"]:
                notes = ["queries one at a time in Python threads"]
                if workload.kind == "graph":
                    sample = np.random.default_rng(0).choice(len(items), workload.graph_sample, replace=False)
                    found, seconds = timed(annoy_search_items, index, sample, search_k)
                    found = drop_self(found, K, own_ids=sample)
                    recall = recall_at_k(found, workload.truth[sample])
                    seconds *= len(items) / len(sample)
                    n_searched = len(items)
                    if len(sample) < len(items):
                        notes = [f"{len(sample):,} sampled items, time extrapolated to all"]
                    else:
                        notes = ["every item searched one at a time in Python threads"]
                else:
                    query_lists = queries.tolist()
                    found, seconds = timed_search(annoy_search, index, query_lists, search_k)
                    recall = recall_at_k(found, workload.truth)
                    n_searched = len(found)
                yield Row("annoy", variant, f"n_trees={n_trees}", f"search_k={search_k}", build_seconds,
                          seconds, n_searched, recall, memory, "saved file", notes)
            index.unload()


def hnsw_variants(workload):
    """Return (variant name, hnswlib space, items, queries) for each space hnswlib and FAISS search.

    Under "angular" the items and queries are unit vectors, so that FAISS's inner
    product is the cosine similarity.
    """
    if workload.kind == "graph":
        return [("euclidean", "l2", workload.items, workload.items)]
    if workload.metric == "angular":
        return [("cosine", "cosine", unit_rows(workload.items), unit_rows(workload.queries))]
    return list(inner_product_variants(workload))


def run_hnswlib(workload, sweep):
    import hnswlib

    ef_construction = sweep["ef_construction"]
    for variant, space, items, queries in hnsw_variants(workload):
        index = hnswlib.Index(space=space, dim=items.shape[1])
        index.set_num_threads(THREADS)
        start = time.perf_counter()
        index.init_index(max_elements=len(items), M=HNSW_M, ef_construction=ef_construction, random_seed=0)
        index.add_items(items, np.arange(len(items)))
        build_seconds = time.perf_counter() - start
        memory = file_size_after(index.save_index)
        for ef in sweep["ef"]:
            index.set_ef(max(ef, K + 1))
            found, seconds = timed_search(search_hnswlib, index, queries, workload.kind)
            yield Row("hnswlib", variant, f"M={HNSW_M}, ef_construction={ef_construction}",
                      f"ef={max(ef, K + 1)}", build_seconds, seconds, len(found),
                      recall_at_k(found, workload.truth), memory, "saved file")


def search_hnswlib(index, queries, kind):
    if kind == "graph":
        labels, _ = index.knn_query(queries, k=K + 1)
        return drop_self(labels.astype(np.int64), K)
    labels, _ = index.knn_query(queries, k=K)
    return labels.astype(np.int64)


def run_faiss(workload, sweep):
    import faiss

    faiss.omp_set_num_threads(THREADS)
    ef_construction = sweep["ef_construction"]
    for variant, space, items, queries in hnsw_variants(workload):
        metric = faiss.METRIC_L2 if space == "l2" else faiss.METRIC_INNER_PRODUCT
        notes = ["inner product on unit vectors"] if space == "cosine" else []
        index = faiss.IndexHNSWFlat(items.shape[1], HNSW_M, metric)
        index.hnsw.efConstruction = ef_construction
        _, build_seconds = timed(index.add, items)
        memory = faiss.serialize_index(index).nbytes
        for ef in sweep["ef"]:
            index.hnsw.efSearch = max(ef, K + 1)
            found, seconds = timed_search(search_faiss, index, queries, workload.kind)
            yield Row("faiss", variant, f"HNSWFlat M={HNSW_M}, efConstruction={ef_construction}",
                      f"efSearch={max(ef, K + 1)}", build_seconds, seconds, len(found),
                      recall_at_k(found, workload.truth), memory, "serialized index", notes)


def search_faiss(index, queries, kind):
    if kind == "graph":
        _, labels = index.search(queries, K + 1)
        return drop_self(labels, K)
    _, labels = index.search(queries, K)
    return labels


def pynndescent_nbytes(index):
    """Return the bytes a prepared NNDescent index searches, and where the number comes from.

    The private attributes read here exist in pynndescent 0.7.0. Other versions
    fall back to the size of the pickled index.
    """
    try:
        total = index._raw_data.nbytes
        graph = index._search_graph
        total += graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes
        for tree in index._search_forest:
            total += sum(part.nbytes for part in tree if isinstance(part, np.ndarray))
    except AttributeError:
        return len(pickle.dumps(index)), "pickled index"
    return total, "data + search graph + forest arrays"


def warm_up_pynndescent(pynndescent, items, metric="euclidean"):
    """Build, prepare and query a small index of the same dimension and metric, so that timed calls skip compilation."""
    start = time.perf_counter()
    warm_data = np.ascontiguousarray(items[:2_000])
    warm = pynndescent.NNDescent(warm_data, metric=metric, n_jobs=THREADS, random_state=0)
    warm.prepare()
    warm.query(warm_data[:5], k=K, epsilon=0.1)
    print(f"  pynndescent warm-up (compilation) took {time.perf_counter() - start:.1f} s", flush=True)


def run_pynndescent(workload, sweep):
    import pynndescent

    if workload.kind == "graph":
        yield from run_pynndescent_graph(pynndescent, workload, sweep)
        return

    if workload.metric == "angular":
        variant, metric, items, queries = "cosine", "cosine", workload.items, workload.queries
    else:
        items, queries = euclidean_transform(workload)
        variant, metric = "euclidean transform", "euclidean"
    warm_up_pynndescent(pynndescent, items, metric)
    start = time.perf_counter()
    index = pynndescent.NNDescent(items, metric=metric, n_jobs=THREADS, random_state=0)
    index.prepare()
    build_seconds = time.perf_counter() - start
    memory, memory_source = pynndescent_nbytes(index)
    for epsilon in sweep["epsilon"]:
        (found, _), seconds = timed_search(index.query, queries, k=K, epsilon=epsilon)
        yield Row("pynndescent", variant, "n_neighbors=30 (default)", f"epsilon={epsilon}", build_seconds,
                  seconds, len(found), recall_at_k(found, workload.truth), memory, memory_source,
                  ["build includes prepare()"])


def run_pynndescent_graph(pynndescent, workload, sweep):
    warm_up_pynndescent(pynndescent, workload.items)
    for n_neighbors in sweep["graph_n_neighbors"]:
        start = time.perf_counter()
        index = pynndescent.NNDescent(workload.items, metric="euclidean", n_neighbors=n_neighbors,
                                      n_jobs=THREADS, random_state=0)
        graph_ids, graph_distances = index.neighbor_graph
        build_seconds = time.perf_counter() - start
        found = drop_self(graph_ids.astype(np.int64), K)
        memory = graph_ids.nbytes + graph_distances.nbytes + workload.items.nbytes
        yield Row("pynndescent", "euclidean", f"n_neighbors={n_neighbors}", "neighbor_graph",
                  build_seconds, build_seconds, len(found), recall_at_k(found, workload.truth),
                  memory, "graph ids + distances + data", ["build is the search"])


CONTENDERS = {
    "numpy": (None, run_exact),
    "hyperscale": (None, run_hyperscale),
    "annoy": ("annoy", run_annoy),
    "hnswlib": ("hnswlib", run_hnswlib),
    "faiss": ("faiss", run_faiss),
    "pynndescent": ("pynndescent", run_pynndescent),
}


# ----------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------


def library_versions():
    versions = {"hyperscale": hyperscale_package.__version__, "numpy": np.__version__, "numba": numba.__version__}
    for name, (module_name, _) in CONTENDERS.items():
        if module_name is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            versions[name] = "not installed"
            continue
        versions[name] = getattr(module, "__version__", None) or package_version(name)
    return versions


def package_version(name):
    from importlib import metadata

    distribution = {"faiss": "faiss-cpu"}.get(name, name)
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def markdown_table(workload, rows, header_lines):
    throughput_name = "vectors/s" if workload.kind == "graph" else "queries/s"
    search_name = "search all (s)" if workload.kind == "graph" else "queries (s)"
    lines = list(header_lines)
    lines.append("")
    lines.append(f"| library | variant | build params | search param | build (s) | {search_name} | "
                 f"{throughput_name} | recall@10 | index (MB) | memory from | notes |")
    lines.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for row in rows:
        lines.append(
            f"| {row.library} | {row.variant} | {row.build_params} | {row.query_param} | "
            f"{row.build_seconds:.2f} | {row.search_seconds:.2f} | {row.throughput:,.0f} | {row.recall:.3f} | "
            f"{row.memory_bytes / 1e6:.1f} | {row.memory_source} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines) + "\n"


def plot(workload, rows, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no plot was written (pip install matplotlib)")
        return

    series = {}
    for row in rows:
        series.setdefault((row.library, row.variant, row.build_params), []).append(row)

    # One colour per library, and one line style and marker per variant and build setting within it.
    colours = dict(zip(CONTENDERS, plt.get_cmap("tab10").colors))
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    style_counts = {}
    figure, axes = plt.subplots(figsize=(11, 6))
    for (library, variant, build_params), points in series.items():
        line_style, marker = styles[style_counts.get(library, 0) % len(styles)]
        style_counts[library] = style_counts.get(library, 0) + 1
        points = sorted(points, key=lambda row: row.recall)
        axes.plot([row.recall for row in points], [row.throughput for row in points], color=colours[library],
                  linestyle=line_style, marker=marker, label=f"{library} {variant} {build_params}")
    axes.set_yscale("log")
    axes.set_xlabel("recall@10")
    axes.set_ylabel("vectors/s (search only)" if workload.kind == "graph" else "queries/s")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ----------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------


def run_workload(workload, sweep, selected):
    rows = []
    for name in selected:
        module_name, run = CONTENDERS[name]
        if module_name is not None and importlib.util.find_spec(module_name) is None:
            print(f"{workload.name}: {name} skipped because it is not installed (pip install '.[bench]')")
            continue
        start = time.perf_counter()
        try:
            for row in run(workload, sweep):
                rows.append(row)
                print(f"  {row.library:11s} {row.variant:20s} {row.build_params:38s} {row.query_param:15s} "
                      f"recall={row.recall:.3f} {row.throughput:12,.0f}/s build={row.build_seconds:.2f}s",
                      flush=True)
        except ImportError as error:
            print(f"{workload.name}: {name} skipped because it failed to import: {error}")
            continue
        print(f"{workload.name}: {name} finished in {time.perf_counter() - start:.1f} s", flush=True)
    return rows


def sweep_for(name, quick):
    """Return the sweep of the named workload: the quick one, or the full one with the workload's changes."""
    if quick:
        return QUICK_SWEEP
    return {**FULL_SWEEP, **FULL_SWEEP_CHANGES.get(name, {})}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=WORKLOADS,
                        help="workload to run; repeat for several (default: W1)")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 items, 500 queries and short sweeps; writes <workload>_quick.md/.png")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads for every library (default 2); also sets OMP/BLAS/Numba thread variables")
    parser.add_argument("--queries", type=int, default=10_000, help="R1: users sampled as queries (default 10,000)")
    parser.add_argument("--graph-sample", type=int, default=10_000,
                        help="W2: items Annoy searches one by one before extrapolating (default 10,000)")
    parser.add_argument("--contenders", nargs="+", choices=tuple(CONTENDERS), default=tuple(CONTENDERS),
                        help="libraries to run (default: all)")
    parser.add_argument("--skip", action="append", choices=tuple(CONTENDERS), default=[], metavar="LIB",
                        help=f"library to leave out, one of {', '.join(CONTENDERS)}, also when --contenders "
                        "names it. Repeat the option for several. The exact search runs anyway, because recall "
                        "needs it")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="folder for the tables and plots (default: benchmarks/results)")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="real-data folder for R1 (default: $HYPERSCALE_DATA or ../shared/data)")
    args = parser.parse_args()
    for option in ("queries", "graph_sample"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    args.contenders = [name for name in args.contenders if name not in args.skip]
    return args


def main():
    args = parse_arguments()
    numba.set_num_threads(THREADS)
    versions = library_versions()
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    results_dir = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)

    for name in args.workload or ["W1"]:
        load_before = os.getloadavg()
        workload = load_workload(name, args.quick, args.data, args.queries, args.graph_sample)
        if workload is None:
            continue
        print(f"{name}: {workload.description}; exact answers in {workload.exact_seconds:.2f} s", flush=True)
        rows = run_workload(workload, sweep_for(name, args.quick), args.contenders)
        load_after = os.getloadavg()

        suffix = "_quick" if args.quick else ""
        command = "python benchmarks/compare.py " + " ".join(sys.argv[1:])
        header = [
            f"## {name}{' (quick)' if args.quick else ''}: {workload.description}",
            "",
            f"`{command.strip()}`",
            "",
            f"Threads: {THREADS} for every library. Versions: "
            + ", ".join(f"{library} {version}" for library, version in versions.items()) + ".",
            f"Load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}.",
        ]
        table = markdown_table(workload, rows, header)
        print()
        print(table)
        (results_dir / f"{name}{suffix}.md").write_text(table)
        plot(workload, rows, results_dir / f"{name}{suffix}.png", header[0].lstrip("# "))
        print(f"wrote {results_dir / f'{name}{suffix}.md'} and .png", flush=True)


if __name__ == "__main__":
    main()
