"""Exact search with numpy, recall against it, and the choice of ``search_k``."""

import numpy as np

from . import _forest, _kernels, _transform

# Rows of queries scored per matrix product: at most _EXACT_BLOCK, and few enough
# that the score block holds about _EXACT_SCORES floats (64 MB). With a fixed 1,024
# rows, a million items needed 4 GB per block.
_EXACT_BLOCK = 1024
_EXACT_SCORES = 1 << 24


def exact_top_k(index, queries, k, exclude=None, allowed=None, return_keys=False):
    """Return the exact top-k ids (int64, best first) of an index's metric, by brute force.

    ``exclude`` is None or a list with one id array per query, and ``allowed`` None
    or a mask of the items that may be returned, as in :meth:`VectorIndex.query`.
    Rows of queries with no result (a zero query under "angular") are all -1, and
    slots past the last eligible item are -1 too. With ``return_keys``, also
    return the kernel's ranking keys (float32, +inf in empty slots).
    """
    vectors = index._vectors
    eligible = index._indexed if allowed is None else index._indexed & np.asarray(allowed, dtype=bool)
    truth = np.full((queries.shape[0], k), -1, dtype=np.int64)
    truth_keys = np.full((queries.shape[0], k), np.inf, dtype=np.float32)
    valid = np.ones(queries.shape[0], dtype=bool)
    if index.metric == "angular":
        queries, zero = _transform.unit_rows(queries)
        valid = ~zero
    squared_norms = np.einsum("ij,ij->i", vectors, vectors) if index.metric == "euclidean" else None

    n_rows = max(1, min(_EXACT_BLOCK, _EXACT_SCORES // max(1, vectors.shape[0])))
    ineligible = np.flatnonzero(~eligible)
    for low in range(0, queries.shape[0], n_rows):
        block = queries[low : low + n_rows]
        keys = (block @ vectors.T).astype(np.float32, copy=False)
        if index.metric == "euclidean":
            # |q - x|² minus the constant |q|², so larger is still worse.
            keys *= -2
            keys += squared_norms[None, :]
        else:
            np.negative(keys, out=keys)
        keys[:, ineligible] = np.inf
        if exclude is not None:
            for row, excluded in enumerate(exclude[low : low + len(block)]):
                keys[row, excluded] = np.inf
        best_ids = np.empty((len(block), k), dtype=np.int32)
        best_keys = np.empty((len(block), k), dtype=np.float32)
        _forest._run_parallel(_kernels.select_top_k, keys, best_ids, best_keys)
        truth[low : low + len(block)] = best_ids
        truth_keys[low : low + len(block)] = best_keys
    truth[~valid] = -1
    truth_keys[~valid] = np.inf
    return (truth, truth_keys) if return_keys else truth


def mean_recall(found, truth):
    """Return the mean share of each true top-k row found; rows with no true result are skipped."""
    answered = truth[:, 0] >= 0
    if not answered.any():
        return 1.0
    hits = [
        len(np.intersect1d(found_row, truth_row[truth_row >= 0]))
        for found_row, truth_row in zip(found[answered], truth[answered])
    ]
    return float(np.mean(hits)) / truth.shape[1]


def choose_search_k(
    index, queries, target_recall, k, sample, random_state, exclusions=None, allowed=None, max_search_k=None
):
    """Return (smallest search_k reaching the target on a sample, its recall, sample size).

    Doubles search_k from k until the sample's recall reaches the target, then
    bisects down to within 10 %. Reaching the number of indexed vectors makes every
    query exact, so the loop always ends. It also ends at ``max_search_k``, with
    a recall below the target. ``exclusions`` (a CSR pair with one row per query)
    and ``allowed`` (an item mask) apply to the sample as they will to the
    queries, because filters change which items a search must find.
    """
    if not (isinstance(target_recall, (int, float)) and 0 < target_recall <= 1):
        raise ValueError(f"target_recall must be a number in (0, 1], got {target_recall!r}")
    if not (isinstance(sample, (int, np.integer)) and sample > 0):
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    n_indexed = index.n_indexed
    if not 0 < k <= n_indexed:
        raise ValueError(f"k={k} must be between 1 and the number of indexed non-zero vectors ({n_indexed})")

    rng = np.random.default_rng(random_state)
    n_sample = min(int(sample), queries.shape[0])
    rows = np.sort(rng.choice(queries.shape[0], size=n_sample, replace=False))
    sample_queries = np.ascontiguousarray(queries[rows])
    sample_exclude = None
    if exclusions is not None:
        indptr, indices = exclusions
        sample_exclude = [indices[indptr[row] : indptr[row + 1]] for row in rows]
    sample_allowed = None if allowed is None else np.asarray(allowed, dtype=bool)
    truth = exact_top_k(index, sample_queries, k, sample_exclude, sample_allowed)

    def measure(search_k):
        show_progress = index.show_progress
        index.show_progress = False
        try:
            found, _ = index.query(
                sample_queries, k=k, search_k=search_k, exclude=sample_exclude, items=sample_allowed
            )
        finally:
            index.show_progress = show_progress
        return mean_recall(found, truth)

    failing = None
    search_k = k
    estimate = measure(search_k)
    limit = n_indexed if max_search_k is None else max(k, min(int(max_search_k), n_indexed))
    while estimate < target_recall and search_k < limit:
        failing = search_k
        search_k = min(2 * search_k, limit)
        estimate = measure(search_k)
    if estimate < target_recall:
        return search_k, estimate, n_sample

    while failing is not None and search_k - failing > max(k, search_k // 10):
        middle = (failing + search_k) // 2
        middle_estimate = measure(middle)
        if middle_estimate >= target_recall:
            search_k, estimate = middle, middle_estimate
        else:
            failing = middle
    return search_k, estimate, n_sample
