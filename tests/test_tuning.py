"""Recall control: measured recall, tuning search_k to a target, target_recall."""

import logging

import numpy as np
import pytest
from conftest import exact_top_k_dot, recall

from hyperscale import LOGGER_NAME, VectorIndex, hyperscale


def build_dot_index(items, verbose=False):
    return VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=verbose).build(items)


@pytest.fixture(scope="module")
def dot_index():
    rng = np.random.default_rng(12)
    items = rng.random((20_000, 16), dtype=np.float32)
    users = rng.random((2_000, 16), dtype=np.float32)
    return build_dot_index(items), users, items


def test_recall_matches_brute_force(dot_index):
    index, users, items = dot_index
    measured = index.recall(users[:500], k=10, search_k=200)
    found, _ = index.query(users[:500], k=10, search_k=200)
    assert measured == pytest.approx(recall(found, exact_top_k_dot(users[:500], items, 10)))
    assert 0 < measured < 1


def test_recall_exact_when_search_k_covers_all(dot_index):
    index, users, _ = dot_index
    assert index.recall(users[:200], k=10, search_k=len(index)) == 1.0


def test_tune_reaches_target_on_other_queries(dot_index, caplog):
    _, users, items = dot_index
    tuned = build_dot_index(items, verbose=True)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        search_k, estimate = tuned.tune(users[:1_000], target_recall=0.95, k=10, sample=1_000)
    assert estimate >= 0.95
    assert tuned.default_search_k(10) == search_k
    assert any("chose search_k=" in record.getMessage() for record in caplog.records)
    # Held-out queries: a sample estimate, so allow a small shortfall.
    assert tuned.recall(users[1_000:], k=10) >= 0.93


def test_tune_picks_less_for_lower_target(dot_index):
    _, users, items = dot_index
    low = build_dot_index(items)
    high = build_dot_index(items)
    low_k, _ = low.tune(users, target_recall=0.7, k=10, sample=500)
    high_k, _ = high.tune(users, target_recall=0.99, k=10, sample=500)
    assert low_k < high_k


def test_tune_rejects_bad_target(dot_index):
    index, users, _ = dot_index
    with pytest.raises(ValueError, match="target_recall"):
        index.tune(users, target_recall=1.5)
    with pytest.raises(ValueError, match="target_recall"):
        index.tune(users, target_recall=0)


def test_recommend_target_recall():
    rng = np.random.default_rng(13)
    items = rng.random((20_000, 16), dtype=np.float32)
    users = rng.random((1_500, 16), dtype=np.float32)
    truth = exact_top_k_dot(users, items, 10)
    hs = hyperscale(random_state=0, show_progress=False, verbose=False)
    # With n_trees given, recommend() tunes the trees instead of choosing exact search.
    loose = hs.recommend(users, items, n_trees=8, target_recall=0.6)
    strict = hs.recommend(users, items, n_trees=8, target_recall=0.99)
    assert recall(strict, truth) >= 0.97
    assert recall(loose, truth) < recall(strict, truth)


def test_target_recall_counts_exclusions():
    # Each user has seen its 100 best items, so the search must reach deeper.
    rng = np.random.default_rng(0)
    items = rng.normal(size=(5000, 16)).astype(np.float32)
    users = rng.normal(size=(500, 16)).astype(np.float32)
    scores = users @ items.T
    seen = [row for row in np.argsort(-scores, axis=1)[:, :100]]
    found = hyperscale(random_state=0, show_progress=False, verbose=False).recommend(
        users, items, exclude=seen, target_recall=0.95
    )
    for row, excluded in enumerate(seen):
        scores[row, excluded] = -np.inf
    truth = np.argsort(-scores, axis=1)[:, :10]
    hits = [len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist())]
    assert np.mean(hits) / 10 >= 0.93


def test_tune_with_item_filter():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(4000, 8)).astype(np.float32)
    queries = rng.normal(size=(300, 8)).astype(np.float32)
    index = VectorIndex(metric="euclidean", random_state=0, show_progress=False, verbose=False).build(items)
    allowed = np.zeros(len(items), dtype=bool)
    allowed[::7] = True
    search_k, estimate = index.tune(queries, target_recall=0.95, k=10, items=allowed)
    found, _ = index.query(queries, k=10, search_k=search_k, items=allowed)
    distances = np.linalg.norm(queries[:, None, :] - items[None, allowed, :], axis=2)
    truth = np.flatnonzero(allowed)[np.argsort(distances, axis=1)[:, :10]]
    hits = [len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist())]
    assert estimate >= 0.95
    assert np.mean(hits) / 10 >= 0.93
