"""Build a k-nearest-neighbour graph from a forest's leaves with ``_graph_kernels``."""

import numba
import numpy as np

from . import _graph_kernels
from ._forest import QUERY_BATCH
from ._parallel import run_parallel

# Neighbour descent stops when a round changes fewer than this share of all edges.
_CONVERGENCE = 0.001
MAX_ROUNDS = 12
# Bytes of pending updates per local-join batch: bounds the scratch memory.
_UPDATE_BUDGET = 64 << 20
_SEED_SALT = np.uint64(0x6A09E667F3BCC909)
_FILL_SALT = np.uint64(0xBB67AE8584CAA73B)
# A spread search graph starts from SPREAD_KNN_DEGREE nearest neighbours per
# vertex, and draws each vertex's edges from them, its in-neighbours and the
# nearest neighbours of its PRUNE_HOPS nearest, with the factor PRUNE_ALPHA on
# squared distances (see _graph_kernels.prune_edges).
SPREAD_KNN_DEGREE = 24
PRUNE_HOPS = 8
PRUNE_ALPHA = 1.2


def leaves_by_tree(forest):
    """Return (leaf ids sorted by tree, start of each tree's run in them)."""
    # Each tree owns one run of leaf_indices, a permutation of the items in trees.
    n_in_trees = max(forest.leaf_indices.shape[0] // max(forest.n_trees, 1), 1)
    tree_of_leaf = forest.leaf_bounds[:, 0] // n_in_trees
    order = np.argsort(tree_of_leaf, kind="stable")
    starts = np.searchsorted(tree_of_leaf[order], np.arange(forest.n_trees + 1))
    return order.astype(np.int64), starts


def build_knn_graph(forest, vectors, metric, degree, seed, n_init_trees=None, progress=None):
    """Return (ids int32, keys float32), both (n, degree): each row a heap of its nearest vectors.

    ``vectors`` are the ranking vectors and ``metric`` the kernel metric code.
    Rows of vectors outside the trees stay empty (-1, +inf). ``seed`` fixes the
    sampling of neighbour descent; the same seed gives the same graph.
    """
    n = vectors.shape[0]
    graph_ids = np.full((n, degree), -1, dtype=np.int32)
    graph_keys = np.full((n, degree), np.inf, dtype=np.float32)
    graph_new = np.zeros((n, degree), dtype=np.uint8)

    leaves, tree_starts = leaves_by_tree(forest)
    n_init = forest.n_trees if n_init_trees is None else min(n_init_trees, forest.n_trees)
    for tree in range(n_init):
        run_parallel(
            _graph_kernels.join_leaves,
            vectors,
            metric,
            leaves[tree_starts[tree] : tree_starts[tree + 1]],
            forest.leaf_bounds,
            forest.leaf_indices,
            graph_ids,
            graph_keys,
            graph_new,
        )

    if n_init > 0:
        # The first tree's run of leaf_indices lists every vertex of the trees once.
        members = forest.leaf_indices[: forest.leaf_indices.shape[0] // forest.n_trees]
        run_parallel(
            _graph_kernels.fill_empty_slots, vectors, metric, members, np.uint64(seed) ^ _FILL_SALT,
            graph_ids, graph_keys, graph_new,
        )

    # Any block count gives the same graph; one block per thread keeps all busy.
    n_blocks = numba.get_num_threads()
    # Sampling fewer candidates than the degree (Dong et al.'s rho below 1) was
    # measured on 100,000 x 16 vectors: recall@10 fell from 0.96 to 0.87 at rho 0.5.
    n_candidates = degree
    pairs_per_vertex = n_candidates * (n_candidates - 1) // 2 + n_candidates * n_candidates
    batch = max(1, _UPDATE_BUDGET // (12 * pairs_per_vertex))
    seed = np.uint64(seed) ^ _SEED_SALT
    for round_number in range(MAX_ROUNDS):
        new_ids = np.full((n, n_candidates), -1, dtype=np.int32)
        old_ids = np.full((n, n_candidates), -1, dtype=np.int32)
        new_priorities = np.full((n, n_candidates), np.iinfo(np.uint32).max, dtype=np.uint32)
        old_priorities = np.full((n, n_candidates), np.iinfo(np.uint32).max, dtype=np.uint32)
        round_seed = seed + np.uint64(round_number)
        indptr = np.zeros(n + 1, dtype=np.int64)
        sources = np.empty(n * degree, dtype=np.int32)
        source_new = np.empty(n * degree, dtype=np.uint8)
        _graph_kernels.reverse_edges(graph_ids, graph_new, indptr, sources, source_new)
        run_parallel(
            _graph_kernels.sample_candidates,
            graph_ids,
            graph_new,
            indptr,
            sources,
            source_new,
            round_seed,
            new_ids,
            new_priorities,
            old_ids,
            old_priorities,
        )
        run_parallel(_graph_kernels.retire_sampled, graph_ids, graph_new, new_ids)

        changes = np.zeros(n_blocks, dtype=np.int64)
        rows = min(batch, n)
        update_a = np.empty((rows, pairs_per_vertex), dtype=np.int32)
        update_b = np.empty((rows, pairs_per_vertex), dtype=np.int32)
        update_keys = np.empty((rows, pairs_per_vertex), dtype=np.float32)
        counts = np.empty(rows, dtype=np.int64)
        for low in range(0, n, batch):
            high = min(low + batch, n)
            used = high - low
            run_parallel(
                _graph_kernels.local_join,
                vectors,
                metric,
                graph_keys,
                new_ids,
                old_ids,
                low,
                high,
                update_a,
                update_b,
                update_keys,
                counts,
            )
            run_parallel(
                _graph_kernels.apply_updates,
                update_a[:used],
                update_b[:used],
                update_keys[:used],
                counts[:used],
                n_blocks,
                graph_ids,
                graph_keys,
                graph_new,
                changes,
            )
        if progress is not None:
            progress.update(1)
        if changes.sum() <= _CONVERGENCE * n * degree:
            if progress is not None:
                progress.update(MAX_ROUNDS - round_number - 1)
            break
    return graph_ids, graph_keys


def sorted_neighbors(graph_ids, graph_keys, k):
    """Return the best ``k`` of each row, best first, padded with (-1, +inf)."""
    n = graph_ids.shape[0]
    out_ids = np.empty((n, k), dtype=np.int32)
    out_keys = np.empty((n, k), dtype=np.float32)
    run_parallel(_graph_kernels.sorted_rows, graph_ids, graph_keys, out_ids, out_keys)
    return out_ids, out_keys


def _reverse_lists(rows):
    """Return the CSR lists (indptr, sources) of the vertices whose rows list each vertex."""
    n = rows.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    sources = np.empty(rows.size, dtype=np.int32)
    source_new = np.empty(rows.size, dtype=np.uint8)
    _graph_kernels.reverse_edges(rows, np.zeros(rows.shape, dtype=np.uint8), indptr, sources, source_new)
    return indptr, sources


def navigable_graph(forest, vectors, metric, max_degree, seed, spread, n_init_trees=None, progress=None):
    """Return the search graph (n, max_degree) int32, rows padded with -1.

    ``vectors`` and ``metric`` define the space of the graph: the space of the
    trees, where the nearest neighbours of the query are the items it must find.
    Without ``spread``, each vertex links to its max_degree / 2 nearest
    neighbours, found by neighbour descent, and to the nearest of the vertices
    that list it. With ``spread``, neighbour descent finds SPREAD_KNN_DEGREE
    neighbours, and each vertex keeps a spread of them, of its in-neighbours
    and of its nearest neighbours' neighbours (``_graph_kernels.prune_edges``);
    a second pass adds the reverse of every kept edge and spreads again.
    Either way a vertex that others link to links back: otherwise a walk that
    enters a dense cluster cannot leave it.
    """
    knn_degree = SPREAD_KNN_DEGREE if spread else max_degree // 2
    graph_ids, graph_keys = build_knn_graph(
        forest, vectors, metric, knn_degree, seed, n_init_trees=n_init_trees, progress=progress
    )
    forward, _ = sorted_neighbors(graph_ids, graph_keys, knn_degree)
    del graph_ids, graph_keys
    n = forward.shape[0]
    adjacency = np.empty((n, max_degree), dtype=np.int32)
    if not spread:
        run_parallel(
            _graph_kernels.add_reverse_neighbors, vectors, metric, forward, *_reverse_lists(forward), adjacency
        )
        return adjacency
    n_chunks = 4 * numba.get_num_threads()
    first = np.empty((n, knn_degree), dtype=np.int32)
    run_parallel(
        _graph_kernels.prune_edges, vectors, metric, forward, *_reverse_lists(forward), PRUNE_HOPS, PRUNE_ALPHA,
        n_chunks, first,
    )
    del forward
    run_parallel(
        _graph_kernels.prune_edges, vectors, metric, first, *_reverse_lists(first), 0, PRUNE_ALPHA, n_chunks,
        adjacency,
    )
    return adjacency


def search_graph(
    forest, vectors, metric, tree_queries, rank_queries, valid, exclusions, allowed, head_ids, adjacency, k, ef,
    seed_k, seed_trees, progress=None,
):
    """Search all queries by trees then graph, in batches; return (ids int32, keys float32), best first.

    Only the first ``seed_trees`` trees supply the ``seed_k`` seeds of each walk.
    ``exclusions`` is a CSR pair (indptr, indices) with one row per query and
    ``allowed`` a uint8 mask of the items that may be returned.
    """
    n_queries = tree_queries.shape[0]
    out_ids = np.empty((n_queries, k), dtype=np.int32)
    out_keys = np.empty((n_queries, k), dtype=np.float32)
    if k == 0 or n_queries == 0:
        return out_ids, out_keys
    n_threads = numba.get_num_threads()
    indptr, indices = exclusions
    allowed_ids = np.flatnonzero(allowed).astype(np.int32)
    for low in range(0, n_queries, QUERY_BATCH):
        high = min(low + QUERY_BATCH, n_queries)
        run_parallel(
            _graph_kernels.graph_search_batch,
            tree_queries[low:high],
            rank_queries[low:high],
            valid[low:high],
            indptr[low : high + 1] - indptr[low],
            indices[indptr[low] : indptr[high]],
            allowed,
            allowed_ids,
            head_ids,
            vectors,
            *forest.arrays()[:-1],
            forest.roots[:seed_trees],
            metric,
            seed_k,
            adjacency,
            ef,
            min(high - low, 4 * n_threads),
            out_ids[low:high],
            out_keys[low:high],
        )
        if progress is not None:
            progress.update(high - low)
    return out_ids, out_keys
