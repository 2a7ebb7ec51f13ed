"""Recall with default settings against exact brute force, on generated and real vectors."""

import json

import numpy as np
import pytest
from conftest import exact_top_k_dot, exact_top_k_euclidean, recall

from hyperscale import VectorIndex, hyperscale


def quiet(**kwargs):
    return hyperscale(show_progress=False, verbose=False, **kwargs)


def clustered_items(n_items, dim, n_clusters, seed):
    """Item vectors with clustered directions and log-normal norms, like trained factors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, n_clusters, n_items)
    directions = centres[labels] + 0.3 * rng.normal(size=(n_items, dim)) / np.sqrt(dim)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = rng.lognormal(mean=0.0, sigma=0.7, size=n_items)
    return (directions * norms[:, None]).astype(np.float32), centres


@pytest.mark.slow
def test_recommend_quickstart_recall():
    rng = np.random.default_rng(42)
    items = rng.random((100_000, 16), dtype=np.float32)
    users = rng.random((10_000, 16), dtype=np.float32)
    found = quiet(random_state=0).recommend(users, items)
    assert found.shape == (10_000, 10)
    assert found.dtype == np.int32
    assert recall(found, exact_top_k_dot(users, items, 10)) >= 0.90


def test_recommend_clustered_lognormal_recall():
    items, centres = clustered_items(20_000, 32, 50, seed=7)
    rng = np.random.default_rng(8)
    users = centres[rng.integers(0, 50, 500)] + 0.5 * rng.normal(size=(500, 32)) / np.sqrt(32)
    users = users.astype(np.float32)
    found = quiet(random_state=1).recommend(users, items)
    assert recall(found, exact_top_k_dot(users, items, 10)) >= 0.90


def test_similar_euclidean_recall():
    items, _ = clustered_items(10_000, 24, 40, seed=3)
    found = quiet(random_state=2).find_similar_vectors(items, n_vectors=10)
    truth = exact_top_k_euclidean(items, items, 10)
    assert recall(found, truth) >= 0.90
    assert (found[:, 0] == np.arange(len(items))).all()


def test_similar_angular_recall():
    items, _ = clustered_items(10_000, 24, 40, seed=4)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    found = quiet(random_state=2).find_similar_vectors(items, n_vectors=10, metric="angular")
    truth = exact_top_k_dot(unit, unit, 10)
    assert recall(found, truth) >= 0.90


def test_index_query_matches_scores():
    items, _ = clustered_items(5_000, 16, 20, seed=5)
    queries = np.random.default_rng(6).normal(size=(200, 16)).astype(np.float32)
    for metric in ("dot", "euclidean", "angular"):
        index = VectorIndex(metric=metric, random_state=0, show_progress=False, verbose=False).build(items)
        ids, values = index.query(queries, k=10)
        rows = items[ids]
        if metric == "dot":
            expected = np.einsum("qkd,qd->qk", rows, queries)
            assert (np.diff(values, axis=1) <= 1e-6).all()
        elif metric == "euclidean":
            expected = np.linalg.norm(rows - queries[:, None, :], axis=2)
            assert (np.diff(values, axis=1) >= -1e-6).all()
        else:
            cosine = np.einsum("qkd,qd->qk", rows, queries) / (
                np.linalg.norm(rows, axis=2) * np.linalg.norm(queries, axis=1)[:, None]
            )
            expected = 1 - cosine
            assert (np.diff(values, axis=1) >= -1e-6).all()
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4, err_msg=metric)


# ---------------------------------------------------------------------------
# Real trained factors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["svd32", "svd64", "nmf32", "nmf64", "als32", "als64"])
def test_recommend_ml100k_factors_recall(data_dir, name):
    factors = data_dir / "factors"
    meta = json.loads((factors / "ml100k_meta.json").read_text())
    files = meta["files"][name]
    users = np.load(factors / files["users"])
    items = np.load(factors / files["items"])
    found = quiet(random_state=0).recommend(users, items)
    assert found.shape == (943, 10)
    assert recall(found, exact_top_k_dot(users, items, 10)) >= 0.95


@pytest.mark.slow
def test_recommend_gowalla_als64_recall(data_dir):
    factors = data_dir / "factors"
    users = np.load(factors / "gowalla_als64_users.npy")
    items = np.load(factors / "gowalla_als64_items.npy")
    assert items.shape == (40_981, 64)
    found = quiet(random_state=0).recommend(users, items)
    assert found.shape == (29_858, 10)
    assert recall(found, exact_top_k_dot(users, items, 10)) >= 0.90
