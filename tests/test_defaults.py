"""The trees, search effort or exact search that recommend() picks when the caller gives none."""

import logging

import numpy as np
import pytest
from conftest import exact_top_k_dot, recall

from hyperscale import LOGGER_NAME, VectorIndex, hyperscale
from hyperscale import _defaults


def quiet(**options):
    return hyperscale(show_progress=False, verbose=False, **options)


def clustered_factors(seed, n_items, n_users, dim=64, n_clusters=200):
    """Return (items, users) whose directions gather around clusters, with log-normal norms."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(n_rows, spread, sigma):
        rows = centres[rng.integers(0, n_clusters, n_rows)]
        rows = rows + spread * rng.standard_normal((n_rows, dim)) / np.sqrt(dim)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return (rows * rng.lognormal(0.0, sigma, (n_rows, 1))).astype(np.float32)

    return draw(n_items, 0.8, 0.5), draw(n_users, 1.0, 0.3)


@pytest.fixture(scope="module")
def clustered():
    items, users = clustered_factors(0, 100_000, _defaults.AUTO_TUNE_MIN_USERS)
    return users, items, exact_top_k_dot(users, items, 10)


def info_messages(caplog):
    return [record.getMessage() for record in caplog.records if record.name == LOGGER_NAME]


@pytest.mark.parametrize(
    ("options", "n_trees"),
    [({"search_k": 100}, 65), ({"n_trees": 40}, 40), ({"n_trees": 40, "target_recall": 0.9}, 40)],
    ids=["untuned dim + 1", "given", "given and tuned"],
)
def test_recommend_trees_by_options(options, n_trees, caplog):
    rng = np.random.default_rng(1)
    users, items = rng.standard_normal((50, 64)), rng.standard_normal((2_000, 64))
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        hyperscale(random_state=0, show_progress=False).recommend(users, items, **options)
    assert f"building the index with {n_trees} trees" in info_messages(caplog)


@pytest.mark.parametrize(("dim", "n_trees"), [(4, 8), (16, 8), (24, 12), (64, 16), (300, 16)])
def test_tuned_trees_half_the_dimension(dim, n_trees):
    assert _defaults.recommend_trees(None, dim, tuned=True) == n_trees


def test_untuned_trees_left_to_index():
    assert _defaults.recommend_trees(None, 64, tuned=False) is None
    assert _defaults.recommend_trees(5, 64, tuned=True) == 5


@pytest.mark.parametrize("options", [{}, {"target_recall": 0.9}], ids=["defaults", "target recall"])
def test_few_users_score_every_item(options, caplog):
    rng = np.random.default_rng(1)
    users, items = rng.standard_normal((50, 64)), rng.standard_normal((2_000, 64))
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        ids = hyperscale(random_state=0, show_progress=False).recommend(users, items, **options)
    messages = info_messages(caplog)
    assert any(message.startswith("exact search for 50 users") for message in messages)
    assert not any(message.startswith("building the index") for message in messages)
    np.testing.assert_array_equal(ids, exact_top_k_dot(users, items, 10))


def test_exact_choice_follows_the_costs():
    # W1 of BENCHMARKS.md: 10,000 users, 100,000 items, 16 dimensions and 8
    # trees. exact_crossover.py measured a share of 4.8 % on such vectors.
    assert _defaults.exact_is_cheaper(10_000, 100_000, 16, 10, 8, 0.04)
    # With no early stop, a million users search trees for less.
    assert not _defaults.exact_is_cheaper(1_000_000, 100_000, 16, 10, 8, 1.0)
    # A larger share scored tips the balance towards the trees, more trees towards exact search.
    assert _defaults.exact_is_cheaper(200_000, 100_000, 32, 10, 8, 0.03)
    assert not _defaults.exact_is_cheaper(200_000, 100_000, 32, 10, 8, 0.5)
    assert _defaults.exact_is_cheaper(200_000, 100_000, 32, 10, 128, 0.5)
    # Tree search pays only while it scores fewer candidates than exact search does.
    assert _defaults.exact_threshold(100_000, 16, 0.04) < 100_000 // 100
    assert _defaults.exact_threshold(100_000, 16, 0.4) > 9 * _defaults.exact_threshold(100_000, 16, 0.04)


@pytest.mark.parametrize("dim", [2, 16, 64, 512, 4096])
def test_sample_sized_calls_never_pay_for_trees(dim):
    # recommend() relies on this bound to skip the share sample for this many users.
    n_users = _defaults.EXACT_SAMPLE
    assert _defaults.exact_is_cheaper(n_users, 1_000_000, dim, 1, _defaults.RECOMMEND_MIN_TREES, 1.0)


def test_auto_tuning_beats_fixed_budget(clustered, caplog):
    users, items, truth = clustered
    fixed_budget = 2 * 10 * _defaults.RECOMMEND_MAX_TREES
    fixed = quiet(random_state=0).recommend(users, items, n_trees=_defaults.RECOMMEND_MAX_TREES, search_k=fixed_budget)
    tuned = quiet(random_state=0).recommend(users, items, n_trees=_defaults.RECOMMEND_MAX_TREES)
    assert recall(fixed, truth) < 0.9
    assert recall(tuned, truth) >= 0.95

    # The same tuning on the index, without the limit that sends recommend() to exact search.
    index = VectorIndex(metric="dot", n_trees=_defaults.RECOMMEND_MAX_TREES, random_state=0, show_progress=False)
    index.build(items)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        index.tune(users, target_recall=_defaults.AUTO_TARGET_RECALL, sample=_defaults.AUTO_TUNE_SAMPLE)
    chosen = [message for message in info_messages(caplog) if message.startswith("chose search_k=")]
    assert len(chosen) == 1
    assert f"on {_defaults.AUTO_TUNE_SAMPLE} sample queries" in chosen[0]
    found, _ = index.query(users, k=10)
    assert recall(found, truth) >= 0.95


def test_given_search_k_skips_tuning(clustered, caplog):
    users, items, _ = clustered
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        hyperscale(random_state=0, show_progress=False).recommend(users, items[:20_000], search_k=200)
    assert not any(message.startswith("chose search_k=") for message in info_messages(caplog))


def test_few_users_keep_fixed_budget(clustered, caplog):
    users, items, _ = clustered
    few, items = users[: _defaults.AUTO_TUNE_MIN_USERS - 1], items[:20_000]
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        found = hyperscale(random_state=0, show_progress=False).recommend(few, items, n_trees=16)
    assert not any(message.startswith("chose search_k=") for message in info_messages(caplog))
    fixed_budget = 2 * 10 * 16
    expected = quiet(random_state=0).recommend(few, items, n_trees=16, search_k=fixed_budget)
    np.testing.assert_array_equal(found, expected)


def test_auto_tuning_is_deterministic(clustered):
    users, items, _ = clustered
    first = quiet(random_state=3).recommend(users, items, n_trees=_defaults.RECOMMEND_MAX_TREES)
    second = quiet(random_state=3).recommend(users, items, n_trees=_defaults.RECOMMEND_MAX_TREES)
    np.testing.assert_array_equal(first, second)


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(7)
    items = rng.standard_normal((20_000, 32)).astype(np.float32)
    users = rng.standard_normal((_defaults.AUTO_TUNE_MIN_USERS, 32)).astype(np.float32)
    return users, items


def test_gaussian_falls_back_to_exact(gaussian, caplog):
    users, items = gaussian
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        ids, scores = hyperscale(random_state=0, show_progress=False).recommend(
            users, items, n_trees=8, return_scores=True
        )
    messages = info_messages(caplog)
    assert any(message.startswith("switching to exact search: search_k=") for message in messages)
    # recommend() has no max_search_k, so the tuning's own advice must not show.
    assert not any("max_search_k" in message for message in messages)
    assert ids.dtype == np.int32
    assert recall(ids, exact_top_k_dot(users, items, 10)) == 1.0
    expected_scores = np.take_along_axis(users @ items.T, ids.astype(np.int64), axis=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-4)


# Without n_trees the call scores every item from the start. With it, the call does so after tuning.
EXACT_PATHS = pytest.mark.parametrize("options", [{}, {"n_trees": 8}], ids=["up front", "after tuning"])


@EXACT_PATHS
def test_exact_fallback_applies_filters(gaussian, options):
    users, items = gaussian
    rng = np.random.default_rng(8)
    seen = [rng.choice(len(items), 30, replace=False) for _ in range(len(users))]
    allowed = np.arange(0, len(items), 2)
    ids = quiet(random_state=0).recommend(users, items, exclude=seen, items=allowed, **options)
    assert all(not np.isin(row, banned).any() for row, banned in zip(ids, seen))
    assert (ids % 2 == 0).all()
    keys = users @ items.T
    keys[:, 1::2] = -np.inf
    for row, banned in enumerate(seen):
        keys[row, banned] = -np.inf
    expected = np.argsort(-keys, axis=1, kind="stable")[:, :10]
    assert recall(ids, expected) == 1.0


@EXACT_PATHS
def test_exact_fallback_rejects_overflow(gaussian, options):
    users, items = gaussian
    huge = users.copy()
    # Row 124 is outside the tuning sample, so only the exact path can catch it.
    huge[124] *= 1e37
    with pytest.raises(ValueError, match="overflow float32"):
        quiet(random_state=0).recommend(huge, items, **options)


def test_tune_stops_at_max_search_k(gaussian, caplog):
    users, items = gaussian
    index = VectorIndex(metric="dot", n_trees=8, random_state=0, show_progress=False, verbose=False).build(items)
    # verbose=False logs the steps at DEBUG.
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        search_k, estimate = index.tune(users, target_recall=0.99, k=10, sample=200, max_search_k=50)
    assert search_k == 50
    assert estimate < 0.99
    messages = info_messages(caplog)
    assert any(message.startswith("target recall not reached") for message in messages)
    assert any("raise max_search_k" in message for message in messages)
    assert not any(message.startswith("chose search_k=") for message in messages)


def test_tune_rejects_zero_max_search_k(gaussian):
    users, items = gaussian
    index = VectorIndex(metric="dot", n_trees=2, random_state=0, show_progress=False, verbose=False).build(items[:500])
    with pytest.raises(ValueError, match="max_search_k"):
        index.tune(users[:50], max_search_k=0)
