"""Exact top-k search: the kernel against float64 numpy, its ties, padding and filters."""

import numpy as np
import pytest
from hyperscale import VectorIndex, _exact_kernels, _filters, _tuning
from hyperscale._exact import ExactItems

# 3,001 items and 13 dimensions: neither is a multiple of the kernel's block of four.
N_ITEMS, DIM, N_QUERIES, K = 3_001, 13, 517, 15


def reference(metric, queries, vectors, k, eligible, exclude):
    """Exact top-k by a float64 stable sort: ties go to the smaller id."""
    queries = queries.astype(np.float64)
    vectors = vectors.astype(np.float64)
    if metric == "euclidean":
        scores = -((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2)
    else:
        if metric == "angular":
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
            queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-300)
        scores = queries @ vectors.T
    scores[:, ~eligible] = -np.inf
    for row, banned in enumerate(exclude):
        scores[row, banned] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["dot", "euclidean", "angular"])
def test_matches_float64_sort_with_filters(metric):
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    vectors[5] = 0
    queries = rng.standard_normal((N_QUERIES, DIM)).astype(np.float32)
    indexed = np.ones(N_ITEMS, dtype=bool)
    ranked = vectors
    if metric == "angular":
        indexed[5] = False
        ranked = np.where(indexed[:, None], vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-30), 0)
        ranked = ranked.astype(np.float32)
    # Unsorted id lists: the kernel's binary search needs them sorted first.
    exclude = [rng.permutation(rng.choice(N_ITEMS, size=rng.integers(0, 60), replace=False)) for _ in range(N_QUERIES)]
    allowed = rng.random(N_ITEMS) < 0.7
    exclusions = _filters.exclusions_to_csr(exclude, N_QUERIES, N_ITEMS, "queries")
    copy = queries.copy()

    found = _tuning.exact_top_k(metric, ranked, indexed, queries, K, exclusions, allowed)

    np.testing.assert_array_equal(queries, copy)
    expected = reference(metric, queries, vectors, K, indexed & allowed, exclude)
    np.testing.assert_array_equal(found, expected)


def test_angular_zero_query_gets_padding():
    rng = np.random.default_rng(12)
    vectors = rng.standard_normal((100, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    queries[1] = 0
    found = _tuning.exact_top_k("angular", vectors, np.ones(100, dtype=bool), queries, 5)
    assert (found[1] == -1).all()
    assert (found[[0, 2]] >= 0).all()


def test_ties_go_to_the_smaller_id():
    vectors = np.ones((40, 4), dtype=np.float32)
    vectors[[7, 21, 33]] = 2
    found = _tuning.exact_top_k("dot", vectors, np.ones(40, dtype=bool), np.ones((2, 4), dtype=np.float32), 6)
    np.testing.assert_array_equal(found, [[7, 21, 33, 0, 1, 2]] * 2)


def test_rows_padded_past_eligible_items():
    vectors = np.random.default_rng(13).standard_normal((30, 5)).astype(np.float32)
    allowed = np.zeros(30, dtype=bool)
    allowed[[3, 17]] = True
    ids, keys = _tuning.exact_top_k(
        "dot", vectors, np.ones(30, dtype=bool), vectors[:2], 4, allowed=allowed, return_keys=True
    )
    assert set(ids[0, :2]) == {3, 17}
    np.testing.assert_array_equal(ids[:, 2:], -1)
    assert np.isinf(keys[:, 2:]).all()
    assert np.isfinite(keys[:, :2]).all()


def run_kernel(queries, vectors, k, tile, pruned=True):
    """Call the kernel directly, visiting by decreasing norm. ``pruned=False`` turns the early stop off."""
    order, bounds = _tuning.visit_order("dot", vectors)
    if not pruned:
        bounds = np.full_like(bounds, np.inf)
    n_queries = queries.shape[0]
    ids = np.empty((n_queries, k), dtype=np.int32)
    keys = np.empty((n_queries, k), dtype=np.float32)
    visited = np.empty(n_queries, dtype=np.int64)
    _exact_kernels.exact_search(
        queries, _tuning._norm_bounds(queries), vectors, order, bounds, np.zeros(len(vectors), dtype=np.float32),
        np.zeros(n_queries + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), tile, ids, keys, visited,
    )
    return ids, keys, visited


def factors(rng, n_rows, dim, spread):
    """Positive-leaning rows with log-normal norms, like matrix-factorisation output."""
    rows = rng.standard_normal((n_rows, dim)) + 1.0
    return (rows * rng.lognormal(0.0, spread, size=(n_rows, 1))).astype(np.float32)


def test_result_independent_of_tile():
    rng = np.random.default_rng(14)
    queries = factors(rng, 300, 24, 0.3)
    vectors = factors(rng, 2_000, 24, 0.5)
    results = [run_kernel(queries, vectors, 10, tile) for tile in (8, 40, _exact_kernels.MAX_TILE)]
    for ids, keys, visited in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(keys, results[0][1])
        np.testing.assert_array_equal(visited, results[0][2])


def test_early_stop_keeps_the_full_result():
    rng = np.random.default_rng(18)
    queries = factors(rng, 400, 32, 0.3)
    vectors = factors(rng, 5_000, 32, 0.5)
    ids, keys, visited = run_kernel(queries, vectors, 10, 64)
    full_ids, full_keys, full_visited = run_kernel(queries, vectors, 10, 64, pruned=False)
    np.testing.assert_array_equal(ids, full_ids)
    np.testing.assert_array_equal(keys, full_keys)
    assert (full_visited == 5_000).all()
    # The bound must stop the queries early here, or the early stop is not working.
    assert visited.mean() < 0.5 * 5_000
    np.testing.assert_array_equal(ids, reference("dot", queries, vectors, 10, np.ones(5_000, dtype=bool), []))


def test_early_stop_on_items_parallel_to_the_query():
    # Items parallel to the query, with norms a few units in the last place
    # apart: their scores equal |q| |x| up to rounding, and a bound without room
    # for that rounding stops before items that still reach the threshold.
    rng = np.random.default_rng(19)
    for _ in range(20):
        query = rng.random(64) + 0.5
        scales = 1 + rng.uniform(0, 2e-6, size=1_000)
        vectors = (scales[:, None] * query[None, :]).astype(np.float32)
        queries = query[None, :].astype(np.float32)
        ids, keys, _ = run_kernel(queries, vectors, 64, 8)
        full_ids, full_keys, _ = run_kernel(queries, vectors, 64, 8, pruned=False)
        np.testing.assert_array_equal(ids, full_ids)
        np.testing.assert_array_equal(keys, full_keys)


def test_ties_in_norm_order():
    # Every item scores 1, and the visit goes by decreasing norm: id 0 comes
    # last, so the heap must let it replace an equal score with a larger id.
    vectors = np.zeros((10, 2), dtype=np.float32)
    vectors[:, 0] = 1
    vectors[:, 1] = np.arange(10)
    ids, _, _ = run_kernel(np.array([[1.0, 0.0]], dtype=np.float32), vectors, 3, 8)
    np.testing.assert_array_equal(ids, [[0, 1, 2]])


def test_progress_counts_every_query():
    class Counter:
        total = 0

        def update(self, n):
            self.total += n

    counter = Counter()
    rng = np.random.default_rng(15)
    vectors = rng.standard_normal((500, 8)).astype(np.float32)
    queries = rng.standard_normal((5_000, 8)).astype(np.float32)
    _tuning.exact_top_k("dot", vectors, np.ones(500, dtype=bool), queries, 3, progress=counter)
    assert counter.total == 5_000


def test_exact_items_ignore_search_k():
    rng = np.random.default_rng(16)
    items = rng.standard_normal((1_000, 16)).astype(np.float32)
    users = rng.standard_normal((20, 16)).astype(np.float32)
    exact = ExactItems(items)
    ids, scores = exact.query(users, k=5, search_k=1)
    assert ids.dtype == np.int32
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(ids, reference("dot", users, items, 5, np.ones(1_000, dtype=bool), []))
    expected = np.take_along_axis(users.astype(np.float64) @ items.T.astype(np.float64), ids.astype(np.int64), axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_mean_recall_counts_common_ids():
    rng = np.random.default_rng(17)
    truth = np.array([rng.permutation(50)[:10] for _ in range(300)])
    found = truth.copy()
    for row in found[::3]:
        row[rng.choice(10, 4, replace=False)] = rng.integers(50, 60, 4)
    found[1, 5:] = -1
    truth[2, 7:] = -1
    truth[4] = -1
    answered = truth[:, 0] >= 0
    expected = np.mean(
        [len(set(f) & set(t[t >= 0])) / 10 for f, t in zip(found[answered], truth[answered])]
    )
    assert _tuning.mean_recall(found, truth) == pytest.approx(expected)
    assert _tuning.mean_recall(found, truth) < 1.0
    assert _tuning.mean_recall(truth[5:], truth[5:]) == 1.0


def test_index_full_budget_runs_exact_search():
    rng = np.random.default_rng(20)
    vectors = factors(rng, N_ITEMS, DIM, 0.5)
    queries = factors(rng, 200, DIM, 0.3)
    exclude = [rng.choice(N_ITEMS, size=30, replace=False) for _ in range(200)]
    allowed = rng.random(N_ITEMS) < 0.8
    index = VectorIndex("dot", n_trees=2, random_state=0, show_progress=False, verbose=False).build(vectors)

    ids, scores = index.query(queries, k=K, search_k=N_ITEMS, exclude=exclude, items=allowed)

    assert index._visit is not None
    np.testing.assert_array_equal(ids, reference("dot", queries, vectors, K, allowed, exclude))
    expected = np.take_along_axis(queries.astype(np.float64) @ vectors.T.astype(np.float64), ids.astype(np.int64), 1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # A budget that covers only the allowed items is also every eligible item.
    narrow, _ = index.query(queries, k=K, search_k=int(allowed.sum()), items=allowed)
    np.testing.assert_array_equal(narrow, reference("dot", queries, vectors, K, allowed, []))


def test_bound_factor_trades_recall_for_stops():
    rng = np.random.default_rng(21)
    vectors = rng.random((20_000, 16), dtype=np.float32)
    queries = rng.random((500, 16), dtype=np.float32)
    index = VectorIndex("dot", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    truth = reference("dot", queries, vectors, 10, np.ones(20_000, dtype=bool), [])

    def recall(factor):
        found, _ = index.query(queries, k=10, bound_factor=factor)
        return _tuning.mean_recall(found, truth)

    before = index.nbytes
    exact, high, low = recall(1.0), recall(0.9), recall(0.8)
    # The first such query sorts the items by norm, and the index counts the order.
    assert index.nbytes == before + 20_000 * (8 + 4)
    assert exact == 1.0
    # A smaller factor stops each query at the same item or sooner, so its recall is never higher.
    assert high <= exact
    assert low <= high
    assert low < 1.0


@pytest.mark.parametrize(
    ("metric", "options", "error", "match"),
    [
        ("dot", {"bound_factor": 0}, ValueError, "must be in"),
        ("dot", {"bound_factor": 1.5}, ValueError, "must be in"),
        ("dot", {"bound_factor": True}, TypeError, "must be a number"),
        ("dot", {"bound_factor": "0.9"}, TypeError, "must be a number"),
        ("dot", {"bound_factor": 0.9, "search_k": 100}, ValueError, "not both"),
        ("euclidean", {"bound_factor": 0.9}, ValueError, "metric 'dot' only"),
    ],
)
def test_bad_bound_factor_rejected(metric, options, error, match):
    vectors = np.random.default_rng(22).random((200, 8), dtype=np.float32)
    index = VectorIndex(metric, n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    with pytest.raises(error, match=match):
        index.query(vectors[:3], k=5, **options)


@pytest.mark.parametrize("target", [0.9, 0.99])
def test_tune_bound_factor_smallest_reaching(target):
    rng = np.random.default_rng(24)
    vectors = rng.random((20_000, 16), dtype=np.float32)
    queries = rng.random((400, 16), dtype=np.float32)
    index = VectorIndex("dot", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    factor, estimate = index.tune_bound_factor(queries, target_recall=target, k=10, sample=400)
    truth = reference("dot", queries, vectors, 10, np.ones(20_000, dtype=bool), [])

    def recall(value):
        found, _ = index.query(queries, k=10, bound_factor=value)
        return _tuning.mean_recall(found, truth)

    assert 0 < factor < 1
    assert estimate == recall(factor)
    assert estimate >= target
    # The whole sample was used, so one step less must miss the target.
    assert recall(round(factor - 0.01, 2)) < target


def test_tune_bound_factor_with_filters():
    rng = np.random.default_rng(25)
    vectors = rng.random((10_000, 16), dtype=np.float32)
    queries = rng.random((200, 16), dtype=np.float32)
    index = VectorIndex("dot", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    exclude_items = np.argsort(-np.linalg.norm(vectors, axis=1))[:500]
    exclude = [rng.choice(10_000, 30, replace=False) for _ in range(200)]
    factor, estimate = index.tune_bound_factor(
        queries, target_recall=0.95, k=10, sample=200, exclude=exclude, exclude_items=exclude_items
    )
    allowed = np.ones(10_000, dtype=bool)
    allowed[exclude_items] = False
    found, _ = index.query(queries, k=10, bound_factor=factor, exclude=exclude, exclude_items=exclude_items)
    truth = reference("dot", queries, vectors, 10, allowed, exclude)
    assert estimate == _tuning.mean_recall(found, truth)
    assert estimate >= 0.95


def test_tune_bound_factor_needs_dot():
    vectors = np.random.default_rng(26).random((200, 8), dtype=np.float32)
    index = VectorIndex("angular", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    with pytest.raises(ValueError, match="metric 'dot' only"):
        index.tune_bound_factor(vectors, target_recall=0.9)


@pytest.mark.parametrize(
    ("k", "error", "match"),
    [(2.5, TypeError, "k must be an integer, got 2.5"), (201, ValueError, "number of indexed vectors \\(200\\)")],
)
def test_tuning_rejects_bad_k(k, error, match):
    vectors = np.random.default_rng(27).random((200, 8), dtype=np.float32)
    vectors[:20] = 0
    index = VectorIndex("dot", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    for tune in (index.tune, index.tune_bound_factor):
        with pytest.raises(error, match=match):
            tune(vectors, target_recall=0.9, k=k)


def test_nan_query_message():
    vectors = np.random.default_rng(28).random((200, 8), dtype=np.float32)
    index = VectorIndex("dot", n_trees=1, random_state=0, show_progress=False, verbose=False).build(vectors)
    queries = vectors[:4].copy()
    queries[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"queries contains NaN or infinity in rows \[2\]; remove or impute those rows first"):
        index.query(queries, k=5, bound_factor=0.9)


def test_scored_share_grows_with_k():
    rng = np.random.default_rng(23)
    items = rng.random((20_000, 16), dtype=np.float32)
    users = rng.random((300, 16), dtype=np.float32)
    exact = ExactItems(items)
    top_one, top_fifty = exact.scored_share(users, 1), exact.scored_share(users, 50)
    assert 0 < top_one < top_fifty <= 1
