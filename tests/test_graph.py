"""The neighbour graph behind ``neighbors()`` for all vectors: recall, conventions, determinism."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import exact_top_k_dot, exact_top_k_euclidean, recall

from hyperscale import VectorIndex, hyperscale
from hyperscale import _graph, _graph_kernels, _kernels
from hyperscale.index import GRAPH_MIN_VECTORS

REPO_ROOT = Path(__file__).resolve().parents[1]


def clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, dim))
    labels = rng.integers(0, 60, n)
    return (centres[labels] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


def quiet_index(metric, **kwargs):
    return VectorIndex(metric=metric, random_state=3, show_progress=False, verbose=False, **kwargs)


def exact_without_self(items, k, metric):
    if metric == "euclidean":
        return exact_top_k_euclidean(items, items, k + 1)[:, 1:]
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    return exact_top_k_dot(unit, unit, k + 1)[:, 1:]


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_graph_recall_conventions(metric):
    items = clustered(GRAPH_MIN_VECTORS + 5_000, 16, seed=1)
    index = quiet_index(metric, n_trees=8).build(items)
    assert index.uses_graph(10)
    found, distances = index.neighbors(k=10, exclude_self=True)
    assert found.shape == (len(items), 10)
    assert found.dtype == np.int32
    assert (found != np.arange(len(items))[:, None]).all()
    assert (np.diff(distances, axis=1) >= 0).all()
    assert recall(found, exact_without_self(items, 10, metric)) >= 0.95

    with_self, _ = index.neighbors(k=10)
    assert (with_self[:, 0] == np.arange(len(items))).all()
    assert (with_self[:, 1:] == found[:, :9]).all()


def test_graph_distances_are_exact():
    items = clustered(GRAPH_MIN_VECTORS, 8, seed=2)
    found, distances = quiet_index("euclidean").build(items).neighbors(k=5, exclude_self=True)
    expected = np.linalg.norm(items[found] - items[:, None, :], axis=2)
    np.testing.assert_allclose(distances, expected, rtol=1e-4, atol=1e-5)


def test_graph_duplicates_zero_rows():
    items = clustered(GRAPH_MIN_VECTORS + 10, 8, seed=4)
    items[100:104] = items[7]
    items[200:210] = 0
    index = quiet_index("angular").build(items)
    assert index.uses_graph(10)
    found, distances = index.neighbors(k=10, exclude_self=True)
    assert set(range(100, 104)) <= set(found[7, :4].tolist())
    assert np.all(distances[7, :4] < 1e-5)
    assert not np.isin(found, np.arange(200, 210)).any()
    assert (found[200:210] == -1).all()
    assert np.isinf(distances[200:210]).all()


def test_filters_use_trees():
    items = clustered(GRAPH_MIN_VECTORS, 8, seed=5)
    index = quiet_index("euclidean").build(items)
    assert not index.uses_graph(10, search_k=200)
    assert not index.uses_graph(10, exclude_items=[1, 2])
    found, _ = index.neighbors(k=10, exclude_items=[1, 2], exclude_self=True)
    assert not np.isin(found, [1, 2]).any()
    assert not quiet_index("dot").build(items).uses_graph(10)
    assert not quiet_index("euclidean").build(items[: GRAPH_MIN_VECTORS - 1]).uses_graph(10)


def test_similar_all_rows_recall():
    items = clustered(GRAPH_MIN_VECTORS + 10_000, 12, seed=6)
    found = hyperscale(random_state=0, show_progress=False, verbose=False).find_similar_vectors(items)
    assert (found[:, 0] == np.arange(len(items))).all()
    assert recall(found[:, 1:], exact_without_self(items, 9, "euclidean")) >= 0.95


def test_graph_rows_distinct_sorted():
    items = clustered(3_000, 8, seed=7)
    index = quiet_index("euclidean", n_trees=4).build(items)
    ids, keys = _graph.build_knn_graph(index._forest, index._vectors, _kernels.METRIC_EUCLIDEAN, 12, seed=9)
    best, best_keys = _graph.sorted_neighbors(ids, keys, 12)
    assert (best >= 0).all()
    assert all(len(set(row)) == 12 for row in best.tolist())
    assert (best != np.arange(len(items))[:, None]).all()
    assert (np.diff(best_keys, axis=1) >= 0).all()
    assert recall(best[:, :10], exact_without_self(items, 10, "euclidean")) >= 0.95
    again = _graph.build_knn_graph(index._forest, index._vectors, _kernels.METRIC_EUCLIDEAN, 12, seed=9)
    assert (again[0] == ids).all()


@pytest.mark.parametrize("metric", [_kernels.METRIC_EUCLIDEAN, _kernels.METRIC_ANGULAR])
@pytest.mark.parametrize("n_members", [5, 37])
def test_block_keys_match_float64(metric, n_members):
    # 37 members make a block of 40 columns, wider than BLOCK_COLUMNS and not a multiple of 32.
    rng = np.random.default_rng(21)
    vectors = rng.normal(size=(200, 13)).astype(np.float32)
    members = rng.choice(200, n_members, replace=False).astype(np.int64)
    width = _graph_kernels._block_width(n_members)
    block = np.full((13, width), np.nan, dtype=np.float32)
    _graph_kernels._gather_block(vectors, members, n_members, block)
    rows = vectors[members].astype(np.float64)
    for column in (0, n_members - 1):
        keys = np.empty(width, dtype=np.float32)
        _graph_kernels._block_keys(metric, block, column, keys)
        if metric == _kernels.METRIC_EUCLIDEAN:
            expected = ((rows - rows[column]) ** 2).sum(axis=1)
        else:
            expected = -(rows @ rows[column])
        np.testing.assert_allclose(keys[:n_members], expected, rtol=1e-5, atol=1e-5)
        assert np.isfinite(keys).all()


def brute_force_rows(vectors, width, metric):
    """Each vertex's ``width`` nearest others, nearest first, by the kernel's keys in float64."""
    data = vectors.astype(np.float64)
    if metric == _kernels.METRIC_EUCLIDEAN:
        keys = ((data[:, None, :] - data[None, :, :]) ** 2).sum(axis=2)
    else:
        keys = -(data @ data.T)
    np.fill_diagonal(keys, np.inf)
    return np.argsort(keys, axis=1, kind="stable")[:, :width].astype(np.int32)


def squared_distances(vectors, a, b):
    difference = vectors[a].astype(np.float64) - vectors[b].astype(np.float64)
    return float(difference @ difference)


@pytest.mark.parametrize("metric", [_kernels.METRIC_EUCLIDEAN, _kernels.METRIC_ANGULAR])
@pytest.mark.parametrize("hops", [0, 3])
def test_prune_edges_keeps_a_spread(metric, hops):
    rng = np.random.default_rng(23)
    vectors = clustered(300, 6, seed=23)
    if metric == _kernels.METRIC_ANGULAR:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = brute_force_rows(vectors, 8, metric)
    # Empty a few slots, as rows of a real graph can have.
    rows[rng.random(rows.shape) < 0.1] = -1
    indptr, sources = _graph._reverse_lists(rows)
    alpha = 1.2
    out = np.full((300, 10), -2, dtype=np.int32)
    _graph_kernels.prune_edges(vectors, metric, rows, indptr, sources, hops, np.float32(alpha), 3, out)
    for v in range(300):
        pool = set(rows[v][rows[v] >= 0]) | set(sources[indptr[v] : indptr[v + 1]])
        for w in rows[v, :hops]:
            if w >= 0:
                pool |= set(rows[w][rows[w] >= 0])
        pool.discard(v)
        edges = [int(u) for u in out[v] if u >= 0]
        assert (out[v, len(edges) :] == -1).all()
        assert edges
        assert len(set(edges)) == len(edges)
        assert set(edges) <= pool
        reach = [squared_distances(vectors, v, u) for u in edges]
        assert all(a <= b + 1e-5 for a, b in zip(reach, reach[1:]))
        # No edge lies much nearer to an earlier edge than to v ...
        for i, u in enumerate(edges):
            for r in edges[:i]:
                assert alpha * squared_distances(vectors, u, r) >= squared_distances(vectors, v, u) - 1e-4
        # ... and while the row has room, every candidate left out does.
        if len(edges) < out.shape[1]:
            for u in pool - set(edges):
                nearer = [r for r in edges if squared_distances(vectors, v, r) <= squared_distances(vectors, v, u)]
                assert any(
                    alpha * squared_distances(vectors, u, r) < squared_distances(vectors, v, u) + 1e-4 for r in nearer
                )


GRAPH_SCRIPT = f"""
import hashlib, numpy as np
from hyperscale import VectorIndex
rng = np.random.default_rng(0)
items = rng.random(({GRAPH_MIN_VECTORS}, 8), dtype=np.float32)
index = VectorIndex(metric="euclidean", random_state=5, show_progress=False, verbose=False).build(items)
found, distances = index.neighbors(k=10, exclude_self=True)
walked = VectorIndex(metric="dot", random_state=5, show_progress=False, verbose=False, graph=True).build(items)
ids, scores = walked.query(rng.random((500, 8), dtype=np.float32), k=10)
spread = VectorIndex(metric="angular", random_state=5, show_progress=False, verbose=False, graph=True).build(items)
print(hashlib.sha256(found.tobytes() + distances.tobytes() + walked._adjacency.tobytes() + ids.tobytes()
                     + spread._adjacency.tobytes()).hexdigest())
"""


def test_graph_same_any_threads():
    digests = set()
    for threads in ("1", "2", "3"):
        result = subprocess.run(
            [sys.executable, "-c", GRAPH_SCRIPT],
            cwd=REPO_ROOT,
            env={**os.environ, "NUMBA_NUM_THREADS": threads},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert len(digests) == 1


# ---------------------------------------------------------------------------
# Indexes built with graph=True: queries walk the graph from tree seeds
# ---------------------------------------------------------------------------


def items_and_queries(n_items, n_queries, dim, seed):
    """Items and queries drawn around the same cluster centres."""
    data = clustered(n_items + n_queries, dim, seed)
    return data[:n_items], data[n_items:]


def exact_top_k(metric, queries, items, k):
    if metric == "dot":
        return exact_top_k_dot(queries, items, k)
    if metric == "euclidean":
        return exact_top_k_euclidean(queries, items, k)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    return exact_top_k_dot(queries / np.linalg.norm(queries, axis=1, keepdims=True), unit, k)


@pytest.mark.parametrize("metric", ["dot", "euclidean", "angular"])
def test_walk_recall_default(metric):
    items, queries = items_and_queries(20_000, 500, 16, seed=11)
    index = quiet_index(metric, graph=True).build(items)
    found, _ = index.query(queries, k=10)
    assert index.default_search_k(10) == 40
    assert recall(found, exact_top_k(metric, queries, items, 10)) >= 0.95


def test_walk_scores_are_exact_and_sorted():
    items, queries = items_and_queries(5_000, 200, 8, seed=13)
    found, scores = quiet_index("dot", graph=True).build(items).query(queries, k=10)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, items[found]), rtol=1e-4, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_walk_more_candidates_more_recall():
    items, queries = items_and_queries(20_000, 500, 16, seed=15)
    index = quiet_index("euclidean", graph=True).build(items)
    truth = exact_top_k("euclidean", queries, items, 10)
    low = recall(index.query(queries, k=10, search_k=10)[0], truth)
    high = recall(index.query(queries, k=10, search_k=200)[0], truth)
    assert high >= 0.99
    assert high > low


def test_walk_survives_save_and_load(tmp_path):
    items, queries = items_and_queries(3_000, 100, 8, seed=17)
    index = quiet_index("angular", graph=True).build(items)
    path = index.save(tmp_path / "walk.hsx")
    loaded = VectorIndex.load(path, show_progress=False, verbose=False)
    assert loaded.graph
    assert loaded.nbytes == index.nbytes
    assert (loaded.query(queries, k=10)[0] == index.query(queries, k=10)[0]).all()


def test_walk_filters_and_zero_rows():
    items, queries = items_and_queries(3_000, 50, 8, seed=19)
    items[:5] = 0
    queries[0] = 0
    index = quiet_index("angular", graph=True).build(items)
    found, distances = index.query(queries, k=10)
    assert not np.isin(found, np.arange(5)).any()
    assert (found[0] == -1).all()
    assert np.isinf(distances[0]).all()
    filtered, _ = index.query(queries, k=10, exclude_items=found[1:, 0])
    assert not np.isin(filtered, found[1:, 0]).any()


def test_graph_option_must_be_bool():
    with pytest.raises(TypeError, match="graph must be True or False"):
        VectorIndex(graph="yes")


def test_tune_with_graph_meets_target():
    items, queries = items_and_queries(20_000, 2_000, 16, seed=21)
    index = quiet_index("dot", graph=True).build(items)
    search_k, estimate = index.tune(queries[:1_000], target_recall=0.98, k=10)
    found, _ = index.query(queries[1_000:], k=10)
    assert estimate >= 0.98
    assert recall(found, exact_top_k("dot", queries[1_000:], items, 10)) >= 0.96


def test_tuned_search_k_survives_save_and_load(tmp_path):
    items, queries = items_and_queries(3_000, 300, 8, seed=25)
    index = quiet_index("euclidean", graph=True).build(items)
    exclude = [[row % 50] for row in range(len(queries))]
    walk_k, _ = index.tune(queries, target_recall=0.99, k=10, exclude=exclude)
    loaded = VectorIndex.load(index.save(tmp_path / "tuned.hsx"), show_progress=False, verbose=False)
    assert loaded.default_search_k(10) == walk_k
    assert (loaded.query(queries, k=10)[0] == index.query(queries, k=10)[0]).all()
    assert (loaded.query(queries, k=10, exclude=exclude)[0] == index.query(queries, k=10, exclude=exclude)[0]).all()


def test_tune_on_graph_leaves_trees_default():
    items, queries = items_and_queries(5_000, 400, 8, seed=27)
    index = quiet_index("euclidean", graph=True).build(items)
    walk_k, _ = index.tune(queries, target_recall=0.95, k=10, exclude_items=[0, 1, 2])
    assert index.default_search_k(10) == walk_k
    # neighbors() for ids searches the trees, whose default a walk's tuning leaves alone.
    assert index.default_search_k(10, walk=False) == 2 * 10 * index._n_trees_built


def exact_excluding(metric, queries, items, k, excluded_rows):
    """Exact top k of each query with the ids of its row of ``excluded_rows`` left out."""
    truth = exact_top_k(metric, queries, items, k + excluded_rows.shape[1])
    return np.array([[i for i in row if i not in set(banned)][:k] for row, banned in zip(truth, excluded_rows)])


@pytest.mark.parametrize("metric", ["euclidean", "angular", "dot"])
def test_walk_keeps_recall_with_exclusions(metric):
    rng = np.random.default_rng(37)
    items = rng.random((20_000, 16), dtype=np.float32)
    queries = rng.random((400, 16), dtype=np.float32)
    index = quiet_index(metric, graph=True).build(items)
    # Excluding each query's five best items removes the very ones the walk
    # would reach first.
    banned = exact_top_k(metric, queries, items, 5)
    found, _ = index.query(queries, k=10, exclude=list(banned))
    assert not (found[:, :, None] == banned[:, None, :]).any()
    unfiltered = recall(index.query(queries, k=10)[0], exact_top_k(metric, queries, items, 10))
    filtered = recall(found, exact_excluding(metric, queries, items, 10, banned))
    assert filtered >= unfiltered - 0.03


def test_walk_with_allow_list():
    rng = np.random.default_rng(39)
    items = rng.random((20_000, 16), dtype=np.float32)
    queries = rng.random((300, 16), dtype=np.float32)
    index = quiet_index("euclidean", graph=True).build(items)
    allowed = np.flatnonzero(rng.random(len(items)) < 0.3)
    found, _ = index.query(queries, k=10, items=allowed, search_k=80)
    assert np.isin(found, allowed).all()
    truth = allowed[exact_top_k("euclidean", queries, items[allowed], 10)]
    assert recall(found, truth) >= 0.9
    # Fewer allowed items than the candidate list: every one is scored, which is exact.
    few = allowed[:30]
    found, _ = index.query(queries, k=10, items=few)
    assert (found == few[exact_top_k("euclidean", queries, items[few], 10)]).all()


@pytest.mark.parametrize("options", [{"leaf_size": 1}, {"n_trees": 1}])
def test_walk_graph_joins_sparse_leaves(options):
    # Leaves of one vector give neighbour descent no pairs to start from, and one
    # tree gives it only cliques. Random neighbours must connect them.
    rng = np.random.default_rng(29)
    items = rng.random((8_000, 16), dtype=np.float32)
    queries = rng.random((300, 16), dtype=np.float32)
    index = quiet_index("euclidean", graph=True, **options).build(items)
    assert (index._adjacency >= 0).sum(axis=1).min() >= 1
    found, _ = index.query(queries, k=10, search_k=80)
    assert recall(found, exact_top_k("euclidean", queries, items, 10)) >= 0.9


@pytest.mark.parametrize("metric, expected", [("euclidean", 4), ("angular", 4), ("dot", 8)])
def test_graph_default_tree_count(metric, expected):
    items, _ = items_and_queries(2_000, 1, 16, seed=32)
    index = quiet_index(metric, graph=True).build(items)
    assert f"n_trees={expected}," in repr(index)
    assert index._forest.n_trees == expected


def test_repr_shows_graph():
    items, _ = items_and_queries(1_000, 1, 8, seed=31)
    assert "graph=True" in repr(quiet_index("angular", graph=True).build(items))
    assert "graph" not in repr(quiet_index("angular").build(items))
