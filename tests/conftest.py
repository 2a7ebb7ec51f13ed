"""Shared fixtures: the real-data folder and brute-force references."""

import os
from pathlib import Path

import numpy as np
import pytest

# Real interaction data and trained factors live outside the repository because
# several of their licences forbid redistribution.
DATA_ENV = "HYPERSCALE_DATA"
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir():
    """The real-data folder (``$HYPERSCALE_DATA``, else ``../shared/data``); skip when absent."""
    path = Path(os.environ.get(DATA_ENV, DEFAULT_DATA))
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}; set {DATA_ENV} to the data folder")
    return path


def exact_top_k_dot(users, items, k, block=2048):
    """Exact top-k item ids by inner product, best first, in row blocks."""
    users = np.asarray(users, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    result = np.empty((users.shape[0], k), dtype=np.int64)
    for low in range(0, users.shape[0], block):
        scores = users[low : low + block] @ items.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        result[low : low + block] = np.take_along_axis(top, order, axis=1)
    return result


def exact_top_k_euclidean(queries, vectors, k, block=1024):
    queries = np.asarray(queries, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    squared = (vectors * vectors).sum(axis=1)
    result = np.empty((queries.shape[0], k), dtype=np.int64)
    for low in range(0, queries.shape[0], block):
        q = queries[low : low + block]
        distances = squared[None, :] - 2 * q @ vectors.T
        top = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distances, top, axis=1), axis=1, kind="stable")
        result[low : low + block] = np.take_along_axis(top, order, axis=1)
    return result


def recall(found, truth):
    """Mean share of each true top-k row found in the matching result row."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / truth.shape[1]
