"""Degenerate data: zero rows, duplicates, near-parallel points, extreme norms, tiny inputs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import exact_top_k_dot, recall

from hyperscale import VectorIndex, hyperscale

REPO_ROOT = Path(__file__).resolve().parent.parent
METRIC_NAMES = ["angular", "euclidean", "dot"]


def quiet(random_state=0, **kwargs):
    return hyperscale(random_state=random_state, show_progress=False, verbose=False, **kwargs)


def quiet_index(metric, random_state=0, **kwargs):
    return VectorIndex(metric=metric, random_state=random_state, show_progress=False, verbose=False, **kwargs)


def exact_top_k_cosine(queries, vectors, k):
    """Return the exact top-k ids by cosine similarity, best first. All-zero vectors are never returned."""
    queries = np.asarray(queries, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms == 0, 1.0, norms)[:, None]
    similarities = queries @ unit.T
    similarities[:, norms == 0] = -np.inf
    return np.argsort(-similarities, axis=1, kind="stable")[:, :k]


def exact_values(metric, queries, vectors):
    """Return the (n_queries, n_vectors) matrix of what ``VectorIndex.query`` reports."""
    queries = np.asarray(queries, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    if metric == "dot":
        return queries @ vectors.T
    if metric == "euclidean":
        return np.linalg.norm(queries[:, None, :] - vectors[None, :, :], axis=2)
    query_unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    vector_unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return 1.0 - query_unit @ vector_unit.T


def exact_values_at(metric, queries, vectors, ids):
    """Return what ``VectorIndex.query`` reports for the pairs (queries[i], vectors[ids[i, j]])."""
    queries = np.asarray(queries, dtype=np.float64)[:, None, :]
    chosen = np.asarray(vectors, dtype=np.float64)[np.asarray(ids, dtype=np.int64)]
    if metric == "dot":
        return (queries * chosen).sum(axis=2)
    if metric == "euclidean":
        return np.linalg.norm(queries - chosen, axis=2)
    cosine = (queries * chosen).sum(axis=2) / np.linalg.norm(queries, axis=2) / np.linalg.norm(chosen, axis=2)
    return 1.0 - cosine


def leaves_of_tree(forest, tree):
    """Return the member ids of every leaf of one tree, found by walking down from its root."""
    members = []
    pending = [int(forest.roots[tree])]
    while pending:
        ref = pending.pop()
        if ref >= 0:
            pending.extend(int(child) for child in forest.children[ref])
        else:
            start, end = forest.leaf_bounds[~ref]
            members.append(np.asarray(forest.leaf_indices[start:end]))
    return members


def assert_trees_cover(index, expected_ids):
    """Assert that the leaves of every tree contain each id of ``expected_ids`` exactly once."""
    expected = np.sort(np.asarray(expected_ids))
    for tree in range(index._forest.n_trees):
        members = np.sort(np.concatenate(leaves_of_tree(index._forest, tree)))
        assert np.array_equal(members, expected), f"tree {tree}"


def assert_rows_distinct(ids, expected_width):
    for row_number, row in enumerate(ids.tolist()):
        assert len(set(row)) == expected_width, f"row {row_number}: {row}"
        assert -1 not in row, f"row {row_number}: {row}"


# ---------------------------------------------------------------------------
# All-zero rows under "angular"
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_rows_case():
    """Return (vectors, zero_ids, nonzero_ids, with_zeros, without_zeros).

    The vectors are 20,000 N(0,1) rows of dimension 32 with 100 zero rows shuffled
    in. The index with_zeros is built over every row and without_zeros over the
    non-zero rows only, both angular with 10 trees and seed 0.
    """
    rng = np.random.default_rng(40)
    nonzero = rng.standard_normal((20_000, 32)).astype(np.float32)
    vectors = np.vstack([nonzero, np.zeros((100, 32), dtype=np.float32)])[rng.permutation(20_100)]
    zero_ids = np.flatnonzero(~vectors.any(axis=1))
    nonzero_ids = np.flatnonzero(vectors.any(axis=1))
    with_zeros = quiet_index("angular", n_trees=10).build(vectors)
    without_zeros = quiet_index("angular", n_trees=10).build(vectors[nonzero_ids])
    return vectors, zero_ids, nonzero_ids, with_zeros, without_zeros


def test_zero_rows_finite_planes(zero_rows_case):
    _, _, _, index, _ = zero_rows_case

    assert np.isfinite(index._forest.hyperplanes).all()
    assert np.isfinite(index._forest.offsets).all()


def test_zero_rows_kept_out_of_trees(zero_rows_case):
    _, zero_ids, nonzero_ids, index, _ = zero_rows_case

    assert len(zero_ids) == 100
    assert index.n_indexed == 20_000
    assert_trees_cover(index, nonzero_ids)


def test_zero_rows_self_first(zero_rows_case):
    vectors, _, nonzero_ids, index, _ = zero_rows_case
    chosen = np.random.default_rng(41).choice(nonzero_ids, size=500, replace=False)

    ids, distances = index.neighbors(chosen, k=10)

    assert np.array_equal(ids[:, 0], chosen)
    assert np.all(distances[:, 0] == 0)
    # find_similar_vectors builds the same forest from the same seed and tree count.
    for vector_id in chosen[:3]:
        single = quiet().find_similar_vectors(vectors, vector_id=vector_id, metric="angular", n_trees=10)
        assert single[0] == vector_id
        assert np.array_equal(single, ids[chosen == vector_id][0])


def test_zero_rows_never_returned(zero_rows_case):
    _, zero_ids, nonzero_ids, index, _ = zero_rows_case
    chosen = np.random.default_rng(42).choice(nonzero_ids, size=500, replace=False)
    queries = np.random.default_rng(43).standard_normal((1000, 32)).astype(np.float32)

    neighbor_ids, _ = index.neighbors(chosen, k=10)
    query_ids, query_distances = index.query(queries, k=10)

    assert not np.isin(neighbor_ids, zero_ids).any()
    assert not np.isin(query_ids, zero_ids).any()
    assert not (query_ids == -1).any()
    assert np.isfinite(query_distances).all()


def test_zero_rows_own_row_padding(zero_rows_case):
    _, zero_ids, _, index, _ = zero_rows_case

    ids, distances = index.neighbors(zero_ids[:5], k=10)

    assert np.all(ids == -1)
    assert np.all(np.isposinf(distances))


def test_zero_rows_keep_recall(zero_rows_case):
    vectors, _, nonzero_ids, with_zeros, without_zeros = zero_rows_case
    queries = np.random.default_rng(44).standard_normal((1000, 32)).astype(np.float32)
    truth = exact_top_k_cosine(queries, vectors, 10)

    found_with, _ = with_zeros.query(queries, k=10)
    found_without, _ = without_zeros.query(queries, k=10)
    recall_with = recall(found_with, truth)
    recall_without = recall(nonzero_ids[found_without], truth)

    assert recall_with >= recall_without - 0.02, (recall_with, recall_without)


def test_zero_query_padding():
    vectors = np.array(
        [
            [0, 1, 2, 0, 3, 1, 0, 2, 1],
            [4, 0, 0, 1, 2, 0, 3, 0, 1],
            [1, 1, 1, 1, 0, 0, 2, 2, 0],
        ]
    )
    index = quiet_index("angular").build(vectors)

    ids, distances = index.query(np.zeros((1, 9)), k=1)
    all_ids, all_distances = index.query(np.zeros((1, 9)), k=3)

    assert np.array_equal(ids, [[-1]])
    assert np.array_equal(distances, [[np.inf]])
    assert np.array_equal(all_ids, [[-1, -1, -1]])
    assert np.all(np.isposinf(all_distances))


def test_zero_query_in_batch():
    vectors = np.array(
        [
            [0, 1, 2, 0, 3, 1, 0, 2, 1],
            [4, 0, 0, 1, 2, 0, 3, 0, 1],
            [1, 1, 1, 1, 0, 0, 2, 2, 0],
        ]
    )
    queries = np.vstack([vectors[1], np.zeros(9), vectors[2]])
    index = quiet_index("angular").build(vectors)

    ids, distances = index.query(queries, k=3)

    assert not np.isnan(distances).any()
    assert np.array_equal(ids[1], [-1, -1, -1])
    assert ids[0, 0] == 1
    assert ids[2, 0] == 2
    assert np.array_equal(np.sort(ids[0]), [0, 1, 2])
    assert np.array_equal(np.sort(ids[2]), [0, 1, 2])


# ---------------------------------------------------------------------------
# Near-parallel points and identical vectors
# ---------------------------------------------------------------------------


def near_parallel_points(n_repeated):
    """Return 32 float32 points (x, 100.0) with x in [100.0147, 100.0213], then n_repeated copies of (100, 100)."""
    x = np.random.default_rng(45).uniform(100.0147, 100.0213, 32)
    points = np.stack([x, np.full(32, 100.0)], axis=1)
    repeated = np.full((n_repeated, 2), 100.0)
    return np.vstack([points, repeated]).astype(np.float32)


@pytest.mark.parametrize("leaf_size", [None, 2], ids=["default_leaf", "leaf_2"])
@pytest.mark.parametrize("n_repeated", [0, 32], ids=["distinct", "with_repeats"])
def test_near_parallel_build(n_repeated, leaf_size):
    points = near_parallel_points(n_repeated)
    index = quiet_index("angular", n_trees=5, leaf_size=leaf_size).build(points)

    query_ids, query_distances = index.query(points, k=10)
    neighbor_ids, _ = index.neighbors(k=10)
    similar = quiet(leaf_size=leaf_size).find_similar_vectors(points, n_vectors=10, n_trees=5, metric="angular")

    assert_trees_cover(index, np.arange(len(points)))
    assert_rows_distinct(query_ids, 10)
    assert_rows_distinct(neighbor_ids, 10)
    assert_rows_distinct(similar, 10)
    assert np.all((query_distances >= 0) & (query_distances <= 2))


@pytest.fixture(scope="module")
def identical_rows():
    """Return 20,000 rows of 128 values 0.5 followed by 10 N(0,1) rows."""
    random_rows = np.random.default_rng(46).standard_normal((10, 128))
    return np.vstack([np.full((20_000, 128), 0.5), random_rows]).astype(np.float32)


def test_identical_rows_neighbors_distinct(identical_rows):
    found = quiet().find_similar_vectors(identical_rows, vector_id=0, n_vectors=100, n_trees=8)

    assert found.shape == (100,)
    assert len(set(found.tolist())) == 100
    assert found[0] == 0
    assert found.max() < 20_000


def test_identical_rows_recommend_distinct(identical_rows):
    users = np.random.default_rng(47).standard_normal((3, 128)).astype(np.float32)

    found = quiet().recommend(users, identical_rows, n_vectors=100, n_trees=8)

    assert found.shape == (3, 100)
    assert_rows_distinct(found, 100)


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_identical_rows_outliers_found(identical_rows, metric):
    random_ids = np.arange(20_000, 20_010)
    index = quiet_index(metric, n_trees=8).build(identical_rows)

    query_ids, _ = index.query(identical_rows[random_ids], k=1)
    neighbor_ids, _ = index.neighbors(random_ids, k=10)

    assert np.array_equal(query_ids[:, 0], random_ids)
    assert np.array_equal(neighbor_ids[:, 0], random_ids)
    assert_rows_distinct(neighbor_ids, 10)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_uniform_similar_distinct_ids(metric):
    vectors = np.random.RandomState(0).uniform(0, 1, (100, 100))

    found = quiet().find_similar_vectors(vectors, n_vectors=30, n_trees=50, metric=metric)

    assert found.shape == (100, 30)
    assert_rows_distinct(found, 30)


def test_uniform_recommend_distinct_ids():
    items = np.random.RandomState(0).uniform(0, 1, (100, 100))
    users = np.random.RandomState(1).uniform(0, 1, (200, 100))

    found = quiet().recommend(users, items, n_vectors=30, n_trees=50)

    assert found.shape == (200, 30)
    assert_rows_distinct(found, 30)


# ---------------------------------------------------------------------------
# The vector itself and its duplicates
# ---------------------------------------------------------------------------


@pytest.fixture()
def with_duplicate():
    """Return 50 N(0,1) rows of dimension 8 in which row 49 equals row 7."""
    vectors = np.random.default_rng(48).standard_normal((50, 8)).astype(np.float32)
    vectors[49] = vectors[7]
    return vectors


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_duplicate_follows_self(with_duplicate, metric):
    found = quiet().find_similar_vectors(with_duplicate, metric=metric)

    assert found.shape == (50, 10)
    assert_rows_distinct(found, 10)
    assert np.array_equal(found[:, 0], np.arange(50))
    assert np.array_equal(found[7, :2], [7, 49])
    assert np.array_equal(found[49, :2], [49, 7])


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_duplicate_exclude_self(with_duplicate, metric):
    found = quiet().find_similar_vectors(with_duplicate, metric=metric, exclude_self=True)

    assert found.shape == (50, 10)
    assert_rows_distinct(found, 10)
    assert found[7, 0] == 49
    assert 7 not in found[7]
    assert found[49, 0] == 7
    assert 49 not in found[49]
    for row_number in range(50):
        assert row_number not in found[row_number], f"row {row_number}: {found[row_number]}"


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_duplicate_single_matches_batch(with_duplicate, metric, exclude_self):
    batch = quiet().find_similar_vectors(with_duplicate, metric=metric, exclude_self=exclude_self)

    single = quiet().find_similar_vectors(with_duplicate, vector_id=7, metric=metric, exclude_self=exclude_self)

    assert np.array_equal(single, batch[7])


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_duplicate_rows_exact(with_duplicate, metric):
    # The default search effort (2 * 10 * 8 candidates) covers all 50 rows, so every
    # row must contain the 10 smallest true distances. Rows 7 and 49 tie everywhere,
    # so the check compares distances, not ids.
    found = quiet().find_similar_vectors(with_duplicate, metric=metric)
    values = exact_values(metric, with_duplicate, with_duplicate)

    found_values = np.take_along_axis(values, found.astype(np.int64), axis=1)
    np.testing.assert_allclose(found_values, np.sort(values, axis=1)[:, :10], atol=1e-5)


# ---------------------------------------------------------------------------
# Consistency of k, and distances
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_top1_first_of_top10(metric):
    rng = np.random.default_rng(49)
    vectors = rng.uniform(size=(10_000, 64)).astype(np.float32)
    queries = rng.uniform(size=(200, 64)).astype(np.float32)
    index = quiet_index(metric, n_trees=100).build(vectors)

    top1_ids, top1_values = index.query(queries, k=1, search_k=5000)
    top10_ids, top10_values = index.query(queries, k=10, search_k=5000)

    assert np.array_equal(top1_ids[:, 0], top10_ids[:, 0])
    assert np.array_equal(top1_values[:, 0], top10_values[:, 0])
    steps = np.diff(top10_values, axis=1)
    if metric == "dot":
        assert np.all(steps <= 0)
    else:
        assert np.all(steps >= 0)
    np.testing.assert_allclose(
        top10_values, exact_values_at(metric, queries, vectors, top10_ids), rtol=1e-4, atol=1e-5
    )


@pytest.fixture(scope="module")
def scaled_rows():
    """Return 500 N(0,1) rows of dimension 16, each scaled by 10**u with u uniform in [-2, 2]."""
    rng = np.random.default_rng(50)
    vectors = rng.standard_normal((500, 16)) * 10 ** rng.uniform(-2, 2, (500, 1))
    return vectors.astype(np.float32)


def test_self_cosine_distance(scaled_rows):
    index = quiet_index("angular").build(scaled_rows)

    ids, distances = index.query(scaled_rows, k=1)

    assert np.array_equal(ids[:, 0], np.arange(500))
    assert distances.min() >= 0
    assert distances.max() <= 1e-5


def test_self_euclidean_distance(scaled_rows):
    index = quiet_index("euclidean").build(scaled_rows)

    ids, distances = index.query(scaled_rows, k=1)

    assert np.array_equal(ids[:, 0], np.arange(500))
    assert np.all(distances == 0)


def test_compass_cosine_distances():
    compass = np.array([[0, 1], [1, 1], [1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1]], dtype=np.float32)
    index = quiet_index("angular").build(compass)
    expected = np.sort(exact_values("angular", compass, compass), axis=1)

    query_ids, query_distances = index.query(compass, k=8)
    neighbor_ids, neighbor_distances = index.neighbors(k=8)

    for distances in (query_distances, neighbor_distances):
        assert not np.isnan(distances).any()
        assert distances.min() >= 0
        assert distances.max() <= 2
        np.testing.assert_allclose(distances, expected, atol=1e-6)
    # The opposite compass point is last, at distance 2.
    assert np.array_equal(query_ids[:, -1], (np.arange(8) + 4) % 8)
    assert np.array_equal(neighbor_ids[:, 0], np.arange(8))


# ---------------------------------------------------------------------------
# Inner product with extreme norms
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extreme_norms():
    """Return (items, users, huge_id) for the inner-product tests.

    The items are 20,000 N(0,1) rows of dimension 32 scaled by lognormal(0, 1),
    50 rows scaled to exactly the largest norm among those, and last one row of
    norm 1e20.
    """
    rng = np.random.default_rng(51)
    ordinary = rng.standard_normal((20_000, 32)) * rng.lognormal(0.0, 1.0, (20_000, 1))
    largest_norm = np.linalg.norm(ordinary, axis=1).max()
    directions = rng.standard_normal((50, 32))
    tied = directions / np.linalg.norm(directions, axis=1, keepdims=True) * largest_norm
    huge = rng.standard_normal((1, 32))
    huge *= 1e20 / np.linalg.norm(huge)
    items = np.vstack([ordinary, tied, huge]).astype(np.float32)
    users = rng.standard_normal((500, 32)).astype(np.float32)
    return items, users, len(items) - 1


@pytest.fixture(scope="module")
def extreme_norm_results(extreme_norms):
    items, users, _ = extreme_norms
    return quiet().recommend(users, items, n_vectors=10)


def test_extreme_norms_recall(extreme_norms, extreme_norm_results):
    items, users, _ = extreme_norms

    truth = exact_top_k_dot(users, items, 10)

    assert recall(extreme_norm_results, truth) >= 0.90


def test_extreme_norms_huge_item_first(extreme_norms, extreme_norm_results):
    items, users, huge_id = extreme_norms
    positive = users.astype(np.float64) @ items[huge_id].astype(np.float64) > 0

    assert positive.any()
    assert np.all(extreme_norm_results[positive, 0] == huge_id)
    assert not np.isin(extreme_norm_results[~positive], huge_id).any()


def test_tied_max_norms_recall(extreme_norms):
    items, users, huge_id = extreme_norms
    without_huge = np.delete(items, huge_id, axis=0)

    found = quiet().recommend(users, without_huge, n_vectors=10)

    assert recall(found, exact_top_k_dot(users, without_huge, 10)) >= 0.90


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_norms_augment_finite(extreme_norms, dtype):
    items, _, huge_id = extreme_norms

    augmented = quiet().augment_vectors(items.astype(dtype))

    assert augmented.dtype == dtype
    assert np.isfinite(augmented).all()
    assert augmented[:, -1].min() >= 0
    assert augmented[huge_id, -1] == 0
    norms = np.linalg.norm(augmented.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, norms[huge_id], rtol=1e-6)


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

# Subprocess script that loads the saved inputs, saves the recommended ids and a
# "dot" index built with the same seed, and prints Numba's thread count.
DETERMINISM_SCRIPT = """
import sys

import numba
import numpy as np

from hyperscale import VectorIndex, hyperscale

users_path, items_path, ids_path, index_path = sys.argv[1:5]
users = np.load(users_path)
items = np.load(items_path)
model = hyperscale(random_state=42, show_progress=False, verbose=False)
np.save(ids_path, model.recommend(users, items, n_vectors=10))
VectorIndex(metric="dot", random_state=42, show_progress=False, verbose=False).build(items).save(index_path)
print(numba.get_num_threads())
"""


def determinism_inputs():
    rng = np.random.default_rng(52)
    users = rng.standard_normal((300, 16)).astype(np.float32)
    items = (rng.standard_normal((5000, 16)) * rng.lognormal(0.0, 0.5, (5000, 1))).astype(np.float32)
    return users, items


def test_same_seed_same_results_in_process():
    users, items = determinism_inputs()

    first = quiet(random_state=42).recommend(users, items)
    second = quiet(random_state=42).recommend(users, items)
    first_forest = quiet_index("dot", random_state=42).build(items)._forest
    second_forest = quiet_index("dot", random_state=42).build(items)._forest

    assert np.array_equal(first, second)
    for name, first_array, second_array in zip(
        ("hyperplanes", "offsets", "children", "leaf_bounds", "leaf_indices", "roots"),
        first_forest.arrays(),
        second_forest.arrays(),
    ):
        assert np.array_equal(first_array, second_array), name


def test_same_seed_same_results_across_threads(tmp_path):
    users, items = determinism_inputs()
    users_path = tmp_path / "users.npy"
    items_path = tmp_path / "items.npy"
    np.save(users_path, users)
    np.save(items_path, items)

    # The script runs in the repository root, so "import hyperscale" finds this checkout.
    processes = {}
    for n_threads in (1, 2):
        arguments = [
            sys.executable,
            "-c",
            DETERMINISM_SCRIPT,
            str(users_path),
            str(items_path),
            str(tmp_path / f"ids_{n_threads}.npy"),
            str(tmp_path / f"index_{n_threads}.hsx"),
        ]
        environment = dict(os.environ, NUMBA_NUM_THREADS=str(n_threads))
        processes[n_threads] = subprocess.Popen(
            arguments, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    outputs = {n_threads: process.communicate(timeout=300) for n_threads, process in processes.items()}
    in_process = quiet(random_state=42).recommend(users, items)
    quiet_index("dot", random_state=42).build(items).save(tmp_path / "index_here.hsx")

    for n_threads, process in processes.items():
        assert process.returncode == 0, outputs[n_threads][1]
        assert outputs[n_threads][0].strip() == str(n_threads)
    ids_one = np.load(tmp_path / "ids_1.npy")
    ids_two = np.load(tmp_path / "ids_2.npy")
    assert np.array_equal(ids_one, ids_two)
    assert np.array_equal(ids_one, in_process)
    index_one = (tmp_path / "index_1.hsx").read_bytes()
    assert index_one == (tmp_path / "index_2.hsx").read_bytes()
    assert index_one == (tmp_path / "index_here.hsx").read_bytes()


# ---------------------------------------------------------------------------
# Tiny inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("n_vectors", [1, 2, 5])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_tiny_query_exact(metric, n_vectors, dim):
    rng = np.random.default_rng(53 + 10 * n_vectors + dim)
    vectors = rng.standard_normal((n_vectors, dim)).astype(np.float32)
    queries = rng.standard_normal((4, dim)).astype(np.float32)
    index = quiet_index(metric).build(vectors)
    values = exact_values(metric, queries, vectors)
    best_first = -np.sort(-values, axis=1) if metric == "dot" else np.sort(values, axis=1)

    ids, found_values = index.query(queries, k=n_vectors)

    for row in ids.tolist():
        assert sorted(row) == list(range(n_vectors)), row
    np.testing.assert_allclose(found_values, best_first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found_values, exact_values_at(metric, queries, vectors, ids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("n_vectors", [1, 2, 5])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_tiny_similar_vectors(metric, n_vectors, dim):
    vectors = np.random.default_rng(54 + 10 * n_vectors + dim).standard_normal((n_vectors, dim)).astype(np.float32)

    found = quiet().find_similar_vectors(vectors, n_vectors=n_vectors, metric=metric)
    single = quiet().find_similar_vectors(vectors, vector_id=n_vectors - 1, n_vectors=n_vectors, metric=metric)

    assert found.shape == (n_vectors, n_vectors)
    for row in found.tolist():
        assert sorted(row) == list(range(n_vectors)), row
    if metric != "dot":
        assert np.array_equal(found[:, 0], np.arange(n_vectors))
    assert np.array_equal(single, found[-1])


@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("n_items", [1, 2, 5])
def test_tiny_recommend_exact(n_items, dim):
    rng = np.random.default_rng(55 + 10 * n_items + dim)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    users = rng.standard_normal((4, dim)).astype(np.float32)

    found = quiet().recommend(users, items, n_vectors=n_items)

    assert np.array_equal(found, exact_top_k_dot(users, items, n_items))


def test_single_vector_exclude_self():
    with pytest.raises(ValueError, match=r"exclude_self=True needs .*at least 2 vectors"):
        quiet().find_similar_vectors(np.ones((1, 3)), exclude_self=True)
