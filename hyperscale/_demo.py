"""Synthetic matrix-factorisation vectors and the ``hyperscale demo`` run.

``make_factors`` is shared by the demo, the tests and the benchmarks, so changes
to its distribution change their numbers too.
"""

import time

import numpy as np

from . import _exact, _validation
from ._tuning import count_common_ids
from ._log import log_step
from .facade import hyperscale

# The quickstart size: 10,000 users and 100,000 items with 16 factors.
DEFAULT_N_USERS = 10_000
DEFAULT_N_ITEMS = 100_000
DEFAULT_DIM = 16
DEFAULT_SEED = 0
DEFAULT_K = 10

# Taste clusters (genres, say) that item and user directions gather around.
N_CLUSTERS = 32

# Spread of the directions around their cluster centre: the noise added to a
# unit centre has a norm of about this value. Users spread wider than items
# because a user's taste mixes several clusters.
ITEM_SPREAD = 0.6
USER_SPREAD = 0.9

# Standard deviation of the log of the vector norms. Item norms vary more
# because a factorisation gives popular items large norms.
ITEM_LOG_NORM_SIGMA = 0.5
USER_LOG_NORM_SIGMA = 0.25

# Maximum size in bytes of the float32 score block of the exact search: 41 user
# rows for 100,000 items. argpartition allocates twice as much for its int64 output.
EXACT_BLOCK_BYTES = 16 * 2**20


def make_factors(n_users, n_items, dim, seed):
    """Generate user and item vectors that look like trained factors.

    Directions gather around N_CLUSTERS random centres, with cluster sizes drawn
    from a flat Dirichlet, and items and users share the centres. Norms are
    log-normal, and item norms spread wider than user norms. The same arguments give
    the same arrays in one environment, but NumPy does not promise the same random
    stream across its versions.

    Returns
    -------
    users : float32 ndarray (n_users, dim)
    items : float32 ndarray (n_items, dim)
    """
    rng = np.random.default_rng(seed)
    centres = _unit_rows(rng.standard_normal((N_CLUSTERS, dim)))
    cluster_weights = rng.dirichlet(np.ones(N_CLUSTERS))

    items = _clustered_vectors(rng, centres, cluster_weights, n_items, ITEM_SPREAD, ITEM_LOG_NORM_SIGMA)
    users = _clustered_vectors(rng, centres, cluster_weights, n_users, USER_SPREAD, USER_LOG_NORM_SIGMA)
    return users, items


def _unit_rows(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _clustered_vectors(rng, centres, cluster_weights, n_rows, spread, log_norm_sigma):
    """Draw n_rows float32 vectors around the centres, with log-normal norms."""
    n_clusters, dim = centres.shape
    clusters = rng.choice(n_clusters, size=n_rows, p=cluster_weights)
    # Each noise coordinate has variance spread**2 / dim, so the noise norm is about spread.
    noise = rng.standard_normal((n_rows, dim)) * (spread / np.sqrt(dim))
    directions = _unit_rows(centres[clusters] + noise)
    norms = rng.lognormal(mean=0.0, sigma=log_norm_sigma, size=n_rows)
    return (directions * norms[:, None]).astype(np.float32)


def exact_top_k(users, items, k):
    """Find the k items with the largest inner product for every user, by brute force.

    The scores are computed with one BLAS matrix product per block of user rows. A
    block contains at most EXACT_BLOCK_BYTES of float32 scores (or one row if a row
    is larger), so the whole users x items matrix is never in memory. Returns int64
    ids (n_users, k), best first. Ties are broken in no particular order.
    """
    users = np.ascontiguousarray(users, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    n_users, n_items = users.shape[0], items.shape[0]
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be between 1 and the number of items ({n_items}), got {k}")

    block_rows = min(n_users, max(1, EXACT_BLOCK_BYTES // (4 * n_items)))
    items_transposed = items.T
    # One score buffer for all blocks: a fresh allocation per block costs page faults.
    score_buffer = np.empty((block_rows, n_items), dtype=np.float32)
    result = np.empty((n_users, k), dtype=np.int64)
    for start in range(0, n_users, block_rows):
        stop = min(start + block_rows, n_users)
        scores = score_buffer[: stop - start]
        np.matmul(users[start:stop], items_transposed, out=scores)
        # argpartition leaves the k largest scores, unordered, in the last k columns.
        top = np.argpartition(scores, n_items - k, axis=1)[:, n_items - k :]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        result[start:stop] = np.take_along_axis(top, order, axis=1)
    return result


def recall_at_k(found, exact):
    """Return the mean share of each exact row's ids that the found row contains.

    Both arrays have one row per query. The order within a row does not matter,
    and padding ids (-1) in ``found`` count as misses.
    """
    found = np.asarray(found)
    exact = np.asarray(exact)
    if found.shape[0] != exact.shape[0]:
        raise ValueError(f"found has {found.shape[0]} rows but exact has {exact.shape[0]}")
    if exact.size == 0:
        raise ValueError("exact is empty, so recall is undefined")

    hits = count_common_ids(found, exact)
    return hits / exact.size


def _format_seconds(seconds):
    if seconds < 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"


def run_demo(
    n_users=DEFAULT_N_USERS,
    n_items=DEFAULT_N_ITEMS,
    dim=DEFAULT_DIM,
    seed=DEFAULT_SEED,
    k=DEFAULT_K,
    n_trees=None,
    search_k=None,
    quiet=False,
    print_line=print,
):
    """Generate factors, recommend with hyperscale, compare with exact search, and return the recall.

    Each step prints one line with its duration through ``print_line``. Progress
    bars and step logs go to stderr unless ``quiet`` is true.
    """
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be between 1 and n_items ({n_items}), got {k}")
    sizes = f"{n_users:,} users x {n_items:,} items x {dim} dims"

    started = time.perf_counter()
    users, items = make_factors(n_users, n_items, dim, seed)
    elapsed = _format_seconds(time.perf_counter() - started)
    print_line(f"generate: {sizes} (seed {seed}) in {elapsed}")

    # The first call in a process compiles the Numba kernels or loads them from the
    # on-disk cache. A tiny warm-up keeps that cost out of the recommend time.
    verbose = not quiet
    started = time.perf_counter()
    log_step(verbose, "warming up the Numba kernels on %d users", min(n_users, 10))
    warm_up_engine = hyperscale(random_state=seed, show_progress=False, verbose=False)
    # Warm up only what the timed call runs: compiling every kernel would double the wait.
    # Exact search runs on the exact path, in the cost estimate and in the tuning.
    warm_items = items[: max(k, 100)]
    if search_k is None:
        warm_up_engine.recommend(users[:10], warm_items, n_vectors=k)
    exact = _exact.ExactItems(_validation.as_matrix(items, "items"))
    takes_exact, _, _ = _exact.prefers_exact(exact, users, n_users, k, n_trees, search_k)
    if not takes_exact:
        warm_up_engine.recommend(users[:10], warm_items, n_vectors=k, n_trees=2)
    elapsed = _format_seconds(time.perf_counter() - started)
    print_line(f"warm-up: Numba compilation or cache load in {elapsed}")

    engine = hyperscale(random_state=seed, show_progress=not quiet, verbose=verbose)
    started = time.perf_counter()
    found = engine.recommend(users, items, n_vectors=k, n_trees=n_trees, search_k=search_k)
    elapsed = _format_seconds(time.perf_counter() - started)
    print_line(f"recommend: {sizes} in {elapsed}")

    started = time.perf_counter()
    exact = exact_top_k(users, items, k)
    elapsed = _format_seconds(time.perf_counter() - started)
    print_line(f"exact: {sizes} by NumPy brute force in {elapsed}")

    recall = recall_at_k(found, exact)
    print_line(f"recall@{k} against exact search: {recall:.3f}")
    return recall
