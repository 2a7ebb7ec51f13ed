"""Exact search, recall against it, and the choice of ``search_k``."""

import numba
import numpy as np

from . import _exact_kernels, _filters, _transform, _validation


def exact_top_k(
    metric, vectors, indexed, queries, k, exclusions=None, allowed=None, return_keys=False, progress=None,
    visit=None, visited=None, bound_factor=1.0,
):
    """Return the exact top-k ids (int64, best first) of ``queries`` among ``vectors``, by brute force.

    ``metric`` and ``vectors`` are an index's metric and ranked vectors (unit rows
    under "angular"), and ``indexed`` its mask of indexed rows. ``exclusions`` is
    None or a CSR pair ``(indptr, indices)`` with one row per query, and
    ``allowed`` None or a mask of the items that may be returned, as in
    :meth:`VectorIndex.query`. Rows of queries with no result (a zero query
    under "angular") are all -1, and slots past the last eligible item are -1
    too. With ``return_keys``, also return the ranking keys (float32, +inf in
    empty slots): minus the inner product under "dot". ``progress`` (a tqdm bar
    or None) advances by the queries done. ``visit`` is what
    :func:`visit_order` returns for these vectors, for callers that search the
    same vectors again. ``visited``, an int64 array with one slot per query,
    receives how many items each query scored before it could stop. A
    ``bound_factor`` below 1 scales the norm bound that stops each query under
    "dot", which stops it sooner and makes the result approximate.
    """
    eligible = indexed if allowed is None else indexed & np.asarray(allowed, dtype=bool)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    valid = np.ones(queries.shape[0], dtype=bool)
    if metric == "angular":
        queries, zero = _transform.unit_rows(queries)
        valid = ~zero
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "euclidean":
        # |q - x|² = |q|² - 2 (q·x - |x|² / 2), and |q|² is the same for every item.
        bias = -0.5 * np.einsum("ij,ij->i", vectors, vectors, dtype=np.float32)
    else:
        bias = np.zeros(vectors.shape[0], dtype=np.float32)
    order, bounds = visit_order(metric, vectors) if visit is None else visit
    eligible_in_order = eligible[order]
    order, bounds = order[eligible_in_order], bounds[eligible_in_order]
    query_norms = _norm_bounds(queries)
    if bound_factor != 1.0:
        query_norms *= np.float32(bound_factor)
    indptr, indices = _sorted_rows(exclusions, queries.shape[0])

    ids = np.empty((queries.shape[0], k), dtype=np.int32)
    keys = np.empty((queries.shape[0], k), dtype=np.float32)
    if visited is None:
        visited = np.empty(queries.shape[0], dtype=np.int64)
    # Several tiles per thread and call keep every thread busy between bar updates,
    # and leave enough queries running in the late spans to fill whole tiles.
    tile = _exact_kernels.tile_size(vectors.shape[1])
    batch = 8 * tile * numba.get_num_threads()
    for low in range(0, queries.shape[0], batch):
        high = min(low + batch, queries.shape[0])
        _exact_kernels.exact_search(
            queries[low:high],
            query_norms[low:high],
            vectors,
            order,
            bounds,
            bias,
            indptr[low : high + 1] - indptr[low],
            indices[indptr[low] : indptr[high]],
            tile,
            ids[low:high],
            keys[low:high],
            visited[low:high],
        )
        if progress is not None:
            progress.update(high - low)
    truth = ids.astype(np.int64)
    truth[~valid] = -1
    keys[~valid] = np.inf
    return (truth, keys) if return_keys else truth


def visit_order(metric, vectors):
    """Return the order in which exact search visits ``vectors``, and the kernel's norm bounds.

    Under "dot", the items go by decreasing norm, so that each query's k-th best
    score soon exceeds what any remaining item could reach, and the search stops.
    Under the other metrics the norm bounds nothing (the rows are unit, or the
    score carries a distance term), and the items go in id order.
    """
    n_rows = vectors.shape[0]
    if metric != "dot":
        return np.arange(n_rows, dtype=np.int64), np.full(n_rows, np.inf, dtype=np.float32)
    norms = _norm_bounds(vectors)
    order = np.argsort(-norms, kind="stable")
    return order, norms[order]


def _norm_bounds(rows):
    """Return float32 upper bounds on the norms of ``rows``, with room for rounding.

    A float32 inner product of ``dim`` terms differs from the exact one by at most
    about ``dim`` units in the last place of the product of the norms. The
    allowance covers that, so a score the kernel computes never exceeds the
    product of the two bounds.
    """
    dim = rows.shape[1]
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    norms *= 1.0 + (dim + 8) * 2.0**-23
    return np.nextafter(norms.astype(np.float32), np.float32(np.inf))


def _sorted_rows(exclusions, n_queries):
    """Return the CSR exclusions with each row sorted, as the kernel's binary search needs."""
    if exclusions is None:
        return np.zeros(n_queries + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    indptr, indices = exclusions
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int32)
    if indices.size:
        rows = np.repeat(np.arange(n_queries), np.diff(indptr))
        indices = indices[np.lexsort((indices, rows))]
    return indptr, indices


def count_common_ids(found, truth):
    """Return how many valid ids (>= 0) of each ``truth`` row appear in the same row of ``found``, summed."""
    hits = 0
    # Rows hold distinct ids (padding aside), so counting equal pairs counts the
    # common ids. Blocks bound the (rows, k, k) comparison to about 16 MB.
    rows = max(1, (1 << 24) // max(1, found.shape[1] * truth.shape[1]))
    for low in range(0, truth.shape[0], rows):
        truth_block = truth[low : low + rows]
        same = found[low : low + rows, :, None] == truth_block[:, None, :]
        hits += int((same.any(axis=1) & (truth_block >= 0)).sum())
    return hits


def mean_recall(found, truth):
    """Return the mean share of each true top-k row found; rows with no true result are skipped."""
    answered = truth[:, 0] >= 0
    if not answered.any():
        return 1.0
    return count_common_ids(found[answered], truth[answered]) / (int(answered.sum()) * truth.shape[1])


def _sample_with_truth(index, queries, target_recall, k, sample, random_state, exclusions, allowed):
    """Check the tuning arguments, draw the sample of queries and find its exact top k.

    Return (k as an int, sample queries, their exclusion lists or None, the item
    mask or None, the exact ids, the sample size).
    """
    if not (isinstance(target_recall, (int, float)) and 0 < target_recall <= 1):
        raise ValueError(f"target_recall must be a number in (0, 1], got {target_recall!r}")
    if not (isinstance(sample, (int, np.integer)) and sample > 0):
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    k = _validation.check_count(k, "k", index.n_indexed, "the number of indexed vectors")

    rng = np.random.default_rng(random_state)
    n_sample = min(int(sample), queries.shape[0])
    rows = np.sort(rng.choice(queries.shape[0], size=n_sample, replace=False))
    sample_queries = np.ascontiguousarray(queries[rows])
    sample_exclude = None
    sample_exclusions = None
    if exclusions is not None:
        indptr, indices = exclusions
        sample_exclude = [indices[indptr[row] : indptr[row + 1]] for row in rows]
        sample_exclusions = _filters.exclusions_to_csr(sample_exclude, n_sample, len(index), "queries")
    sample_allowed = None if allowed is None else np.asarray(allowed, dtype=bool)
    truth = exact_top_k(
        index.metric, index._vectors, index._indexed, sample_queries, k, sample_exclusions, sample_allowed
    )
    return k, sample_queries, sample_exclude, sample_allowed, truth, n_sample


def _quiet_query(index, queries, **options):
    """Return the ids of ``index.query`` with its progress bar off."""
    show_progress = index.show_progress
    index.show_progress = False
    try:
        found, _ = index.query(queries, **options)
    finally:
        index.show_progress = show_progress
    return found


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
    k, sample_queries, sample_exclude, sample_allowed, truth, n_sample = _sample_with_truth(
        index, queries, target_recall, k, sample, random_state, exclusions, allowed
    )
    n_indexed = index.n_indexed

    def measure(search_k):
        found = _quiet_query(
            index, sample_queries, k=k, search_k=search_k, exclude=sample_exclude, items=sample_allowed
        )
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

    if failing is not None:
        search_k, estimate = _bisect(
            measure, failing, search_k, estimate, target_recall, lambda low, high: high - low <= max(k, high // 10)
        )
    return search_k, estimate, n_sample


def choose_bound_factor(index, queries, target_recall, k, sample, random_state, exclusions=None, allowed=None):
    """Return (smallest bound_factor, in hundredths, reaching the target on a sample, its recall, sample size).

    A larger factor stops each query at the same position or later in the same
    visiting order. The result of a longer prefix keeps every true top-k item
    of the shorter one, so recall never falls as the factor grows, and a
    bisection over the hundredths finds the smallest factor. At 1 the search is
    exact, so the target is always reached. Filters apply as in
    :func:`choose_search_k`.
    """
    k, sample_queries, sample_exclude, sample_allowed, truth, n_sample = _sample_with_truth(
        index, queries, target_recall, k, sample, random_state, exclusions, allowed
    )

    def measure(hundredths):
        found = _quiet_query(
            index, sample_queries, k=k, bound_factor=hundredths / 100, exclude=sample_exclude, items=sample_allowed
        )
        return mean_recall(found, truth)

    passing, estimate = _bisect(measure, 0, 100, 1.0, target_recall, lambda low, high: high - low <= 1)
    return passing / 100, estimate, n_sample


def _bisect(measure, failing, passing, estimate, target_recall, close_enough):
    """Return (smallest integer setting found to reach the target, its recall) between two known ones.

    ``failing`` misses the target and ``passing``, whose recall is ``estimate``,
    reaches it. Recall must not fall as the setting grows. The search stops once
    ``close_enough(failing, passing)`` holds.
    """
    while not close_enough(failing, passing):
        middle = (failing + passing) // 2
        middle_estimate = measure(middle)
        if middle_estimate >= target_recall:
            passing, estimate = middle, middle_estimate
        else:
            failing = middle
    return passing, estimate
