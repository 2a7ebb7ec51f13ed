"""Seen-item filtering, allow- and deny-lists, padding and exact scores, against numpy."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from hyperscale import VectorIndex, hyperscale


def quiet(**kwargs):
    return hyperscale(show_progress=False, verbose=False, **kwargs)


def exact_filtered_top_k(users, items, k, banned):
    """Exact top-k by inner product with ``banned`` (bool, n_users x n_items) removed."""
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    scores[banned] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.fixture()
def liked_top5():
    """Users whose 5 best items are marked as liked, so a missing filter shows at once."""
    rng = np.random.default_rng(18)
    users = rng.normal(size=(50, 16)).astype(np.float32)
    items = rng.normal(size=(200, 16)).astype(np.float32)
    top5 = np.argsort(-(users @ items.T), axis=1)[:, :5]
    liked = np.zeros((50, 200), dtype=bool)
    np.put_along_axis(liked, top5, True, axis=1)
    return users, items, liked, top5


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda m: sp.csr_matrix(m), id="csr"),
        pytest.param(lambda m: sp.csc_matrix(m), id="csc"),
        pytest.param(lambda m: sp.coo_matrix(m), id="coo"),
        pytest.param(lambda m: sp.lil_matrix(m), id="lil"),
        pytest.param(lambda m: sp.csr_array(m), id="csr_array"),
        pytest.param(lambda m: m, id="dense_bool"),
        pytest.param(lambda m: [np.flatnonzero(row) for row in m], id="list_of_arrays"),
        pytest.param(lambda m: [np.flatnonzero(row).tolist() for row in m], id="list_of_lists"),
    ],
)
def test_exclude_formats_match_brute_force(liked_top5, convert):
    users, items, liked, top5 = liked_top5
    ids = quiet(random_state=0).recommend(users, items, n_vectors=10, exclude=convert(liked))
    expected, _ = exact_filtered_top_k(users, items, 10, liked)
    for user in range(50):
        assert not np.isin(ids[user], top5[user]).any()
    np.testing.assert_array_equal(ids, expected)


def test_exclude_none_returns_seen(liked_top5):
    users, items, _, top5 = liked_top5
    ids = quiet(random_state=0).recommend(users, items, n_vectors=10)
    np.testing.assert_array_equal(ids[:, :5], top5)


def test_exclude_wrong_row_count():
    rng = np.random.default_rng(20)
    users = rng.normal(size=(20, 8))
    items = rng.normal(size=(30, 8))
    seen = sp.random(19, 30, density=0.1, format="csr", random_state=20)
    with pytest.raises(ValueError, match=r"shape \(19, 30\) but must be \(20, 30\)"):
        quiet().recommend(users, items, exclude=seen)
    with pytest.raises(ValueError, match="19 rows but there are 20"):
        quiet().recommend(users, items, exclude=[[1]] * 19)


def test_exclude_rows_follow_passed_users():
    rng = np.random.default_rng(20)
    users = rng.normal(size=(20, 8)).astype(np.float32)
    items = rng.normal(size=(30, 8)).astype(np.float32)
    seen = np.zeros((20, 30), dtype=bool)
    for user in range(20):
        seen[user, rng.choice(30, 3, replace=False)] = True
    full = quiet(random_state=1).recommend(users, items, n_vectors=5, exclude=sp.csr_matrix(seen))
    subset = quiet(random_state=1).recommend(
        users[[3, 7]], items, n_vectors=5, exclude=sp.csr_matrix(seen)[[3, 7]]
    )
    np.testing.assert_array_equal(subset, full[[3, 7]])
    with pytest.raises(ValueError, match="must be"):
        quiet().recommend(users[[3, 7]], items, n_vectors=5, exclude=sp.csr_matrix(seen))


def test_exclude_unsupported_type():
    rng = np.random.default_rng(0)
    users = rng.normal(size=(4, 3))
    items = rng.normal(size=(10, 3))
    with pytest.raises(TypeError, match="not supported"):
        quiet().recommend(users, items, n_vectors=2, exclude={0: [1]})
    with pytest.raises(TypeError, match="boolean mask"):
        quiet().recommend(users, items, n_vectors=2, exclude=np.zeros((4, 10), dtype=np.int64))


def test_exclude_out_of_range_id():
    rng = np.random.default_rng(0)
    users = rng.normal(size=(2, 3))
    items = rng.normal(size=(10, 3))
    with pytest.raises(IndexError, match="0 to 9"):
        quiet().recommend(users, items, n_vectors=2, exclude=[[1], [10]])


def test_deny_990_of_1000_returns_rest():
    rng = np.random.default_rng(33)
    users = rng.normal(size=(10, 16)).astype(np.float32)
    items = rng.normal(size=(1_000, 16)).astype(np.float32)
    keep = np.sort(rng.choice(1_000, 10, replace=False))
    banned = np.ones((10, 1_000), dtype=bool)
    banned[:, keep] = False
    ids = quiet(random_state=0).recommend(users, items, n_vectors=10, exclude=banned)
    expected, _ = exact_filtered_top_k(users, items, 10, banned)
    np.testing.assert_array_equal(ids, expected)
    for row in ids:
        np.testing.assert_array_equal(np.sort(row), keep)


def test_allow_list_ranked_exactly():
    rng = np.random.default_rng(33)
    users = rng.normal(size=(10, 16)).astype(np.float32)
    items = rng.normal(size=(1_000, 16)).astype(np.float32)
    allowed = rng.choice(1_000, 25, replace=False)
    ids, scores = quiet(random_state=0).recommend(users, items, n_vectors=10, items=allowed, return_scores=True)
    banned = np.ones((10, 1_000), dtype=bool)
    banned[:, allowed] = False
    expected, expected_scores = exact_filtered_top_k(users, items, 10, banned)
    assert np.isin(ids, allowed).all()
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def mask_option(option, mask, n_users):
    """Keyword arguments that pass ``mask`` as ``option``, once per user for ``exclude``."""
    if option == "exclude":
        return {option: [mask] * n_users}
    return {option: mask}


@pytest.mark.parametrize("option, name", [("items", "items"), ("exclude_items", "exclude_items"),
                                          ("exclude", r"exclude\[0\]")])
def test_integer_mask_is_rejected(option, name):
    rng = np.random.default_rng(34)
    users = rng.normal(size=(4, 8)).astype(np.float32)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    mask = (rng.random(300) < 0.5).astype(np.int64)
    with pytest.raises(ValueError, match=rf"{name} is ambiguous.*per item \(300\).*dtype=bool"):
        quiet(random_state=0).recommend(users, items, n_vectors=5, **mask_option(option, mask, 4))
    # The same mask as booleans, and ids that happen to be only 0 and 1, are accepted.
    ids = quiet(random_state=0).recommend(
        users, items, n_vectors=5, search_k=300, **mask_option(option, mask.astype(bool), 4)
    )
    marked = np.isin(ids, np.flatnonzero(mask))
    if option == "items":
        assert marked.all()
    else:
        assert not marked.any()
    quiet(random_state=0).recommend(users, items, n_vectors=5, **mask_option(option, np.array([0, 1, 1]), 4))


def test_integer_exclude_matrix_names_astype():
    users = np.ones((2, 4), np.float32)
    items = np.ones((10, 4), np.float32)
    with pytest.raises(TypeError, match=r"exclude\.astype\(bool\)"):
        quiet(random_state=0).recommend(users, items, n_vectors=2, exclude=np.zeros((2, 10), np.int64))


def test_allow_and_deny_lists_together():
    rng = np.random.default_rng(4)
    users = rng.normal(size=(30, 8)).astype(np.float32)
    items = rng.normal(size=(500, 8)).astype(np.float32)
    allowed = np.arange(0, 500, 2)
    denied = np.arange(0, 500, 6)
    approximate = quiet(random_state=0).recommend(users, items, n_vectors=5, items=allowed, exclude_items=denied)
    assert np.isin(approximate, allowed).all()
    assert not np.isin(approximate, denied).any()
    # A budget of every item makes the search exact, so it must match brute force.
    ids = quiet(random_state=0).recommend(
        users, items, n_vectors=5, items=allowed, exclude_items=denied, search_k=500
    )
    banned = np.ones((30, 500), dtype=bool)
    banned[:, allowed] = False
    banned[:, denied] = True
    expected, _ = exact_filtered_top_k(users, items, 5, banned)
    np.testing.assert_array_equal(ids, expected)


def test_padding_when_filter_leaves_too_few():
    rng = np.random.default_rng(5)
    users = rng.normal(size=(3, 4)).astype(np.float32)
    items = rng.normal(size=(50, 4)).astype(np.float32)
    ids, scores = quiet(random_state=0).recommend(users, items, n_vectors=8, items=[3, 9, 11], return_scores=True)
    np.testing.assert_array_equal(np.sort(ids[:, :3], axis=1), np.tile([3, 9, 11], (3, 1)))
    assert (ids[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()
    assert np.isfinite(scores[:, :3]).all()


def test_padding_distance_is_positive_infinity():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(50, 4)).astype(np.float32)
    index = VectorIndex(metric="euclidean", random_state=0, show_progress=False, verbose=False).build(vectors)
    ids, distances = index.query(vectors[:2], k=5, exclude_items=np.arange(2, 50))
    assert (ids[:, 2:] == -1).all()
    assert np.isposinf(distances[:, 2:]).all()


def test_scores_exact_and_unclipped():
    rng = np.random.default_rng(6)
    users = rng.normal(size=(40, 10)).astype(np.float32)
    items = rng.normal(size=(2_000, 10)).astype(np.float32)
    ids, scores = quiet(random_state=0).recommend(-np.abs(users), np.abs(items), n_vectors=5, return_scores=True)
    expected = np.einsum("ukd,ud->uk", np.abs(items)[ids], -np.abs(users))
    assert scores.dtype == np.float32
    assert (scores < 0).all()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_similar_vectors_filters_and_scores():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 6)).astype(np.float32)
    denied = np.arange(100, 300)
    ids, distances = quiet(random_state=0).find_similar_vectors(
        vectors, n_vectors=5, exclude_items=denied, return_scores=True, search_k=300
    )
    assert (ids[:100, 0] == np.arange(100)).all()
    assert not np.isin(ids[:, 1:], denied).any()
    expected = np.linalg.norm(vectors[ids] - vectors[:, None, :], axis=2)
    np.testing.assert_allclose(distances, expected, rtol=1e-4, atol=1e-4)
    single_ids, single_distances = quiet(random_state=0).find_similar_vectors(
        vectors, vector_id=7, n_vectors=5, exclude=[[ids[7, 1]]], return_scores=True, search_k=300
    )
    assert single_ids.shape == (5,)
    assert ids[7, 1] not in single_ids
    assert single_distances.shape == (5,)


def test_index_query_exclude_matches_brute_force():
    rng = np.random.default_rng(8)
    items = rng.normal(size=(5_000, 12)).astype(np.float32)
    queries = rng.normal(size=(100, 12)).astype(np.float32)
    banned = rng.random((100, 5_000)) < 0.3
    index = VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=False).build(items)
    ids, _ = index.query(queries, k=10, search_k=5_000, exclude=sp.csr_matrix(banned))
    expected, _ = exact_filtered_top_k(queries, items, 10, banned)
    np.testing.assert_array_equal(ids, expected)


def test_ml100k_hit_rate_matches_reference(data_dir):
    factors = data_dir / "factors"
    meta = json.loads((factors / "ml100k_meta.json").read_text())
    train = np.loadtxt(factors / "ml100k_train.csv", delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.int64)
    test = np.loadtxt(factors / "ml100k_test.csv", delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.int64)
    n_users, n_items = meta["n_users"], meta["n_items"]
    seen = sp.csr_matrix((np.ones(len(train)), (train[:, 0], train[:, 1])), shape=(n_users, n_items))
    held_out = sp.csr_matrix((np.ones(len(test)), (test[:, 0], test[:, 1])), shape=(n_users, n_items))
    for name in ("svd32", "svd64", "nmf32", "nmf64", "als32", "als64"):
        users = np.load(factors / meta["files"][name]["users"])
        items = np.load(factors / meta["files"][name]["items"])
        ids = quiet(random_state=0).recommend(users, items, n_vectors=10, exclude=seen)
        assert not any(np.isin(ids[u], seen[u].indices).any() for u in range(n_users)), name
        hits = np.array([np.isin(ids[u], held_out[u].indices).any() for u in range(n_users)])
        reference = meta["metrics"][name]["hit_rate@10"]
        assert abs(hits.mean() - reference) <= 0.01, f"{name}: {hits.mean():.4f} vs {reference:.4f}"
