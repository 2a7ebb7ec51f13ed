"""Numba kernels of the random-projection forest: data layout, build, search.

Data layout
-----------
A forest of ``n_trees`` trees lives in five flat arrays:

``hyperplanes`` float32 (n_splits, tree_dim)
    Normal vector of each split node. A zero row marks a random split.
``offsets`` float32 (n_splits,)
    A point ``x`` lies on the positive side when ``hyperplane @ x + offset > 0``.
``children`` int32 (n_splits, 2)
    Column 0 is the negative side, column 1 the positive side. A value ``c >= 0``
    is another split node; ``c < 0`` is the leaf ``~c`` (that is ``-c - 1``).
``leaf_bounds`` int64 (n_leaves, 2)
    Start and end of each leaf inside ``leaf_indices``.
``leaf_indices`` int32 (n_trees * n_indexed,)
    One permutation of the indexed item ids per tree, each leaf a contiguous slice.
``roots`` int32 (n_trees,)
    The root of each tree, encoded like ``children``.

Build
-----
The trees are built one level at a time: ``split_level`` splits every open node of
every tree in one parallel loop, and the caller links the results. The few nodes
that no two-means plane balances are halved at their median by
``median_split_level``. Each node draws its random numbers from a generator seeded
by (tree seed, start, depth), so the same seed gives the same forest whatever the
thread count or the order of the work.

Search
------
``search_batch`` runs an Annoy-style best-first search per query: one priority queue
over all trees, keyed by the smallest signed margin on the path from the root, until
``search_k`` distinct eligible candidates have been scored exactly. Excluded items
are marked as seen before the search starts, so filters cost no extra pass. Queries
run in parallel, each chunk of queries with its own scratch arrays, so results do
not depend on the thread count and concurrent calls share no state.
"""

import numba
import numpy as np

from ._prefetch import CACHE_LINE_BYTES, prefetch_element

# Without "nnan" and "ninf": the search compares against +inf priorities and keys.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

METRIC_EUCLIDEAN = 0
METRIC_ANGULAR = 1
METRIC_DOT = 2

# A split whose larger side has more than this share of the points is retried.
_MAX_IMBALANCE = 0.95
# The last attempt is accepted up to this share before falling back to a random split.
_MAX_IMBALANCE_LAST = 0.99
_SPLIT_ATTEMPTS = 3
_TWO_MEANS_ITERATIONS = 200
# A node of at most this many points is copied into one block before its split,
# so that two-means and the side test read it from cache instead of from rows
# scattered over the data.
_GATHER_LIMIT = 4096
# float32 coordinates per cache line, and the distance in leaf members between
# the member being scored and the member being prefetched. The leaf scan
# prefetches only vectors larger than PREFETCH_MIN_BYTES, about the size of a
# server's last-level cache, because vectors that stay in cache gain nothing.
# NOTE: the distance and the threshold come from development A/B runs on one
# machine, not from a benchmarks/ table.
LINE_FLOATS = CACHE_LINE_BYTES // 4
PREFETCH_AHEAD = 4
PREFETCH_MIN_BYTES = 32 << 20

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


# ---------------------------------------------------------------------------
# Random numbers
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _splitmix64(state):
    """Advance a SplitMix64 state; return the new state and a 64-bit output."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _random_below(state, n):
    """Draw an integer in [0, n); the modulo bias is below n / 2**64."""
    state, value = _splitmix64(state)
    return state, np.int64(value % np.uint64(n))


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _squared_distance(a, b):
    total = np.float32(0.0)
    for c in range(a.shape[0]):
        diff = a[c] - b[c]
        total += diff * diff
    return total


# The build accumulates in float64: after the inner-product transform, items far
# below the largest norm have coordinates near 1e-20, whose squares are subnormal
# or zero in float32.
@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _squared_distance_wide(a, b):
    total = 0.0
    for c in range(a.shape[0]):
        diff = np.float64(a[c]) - np.float64(b[c])
        total += diff * diff
    return total


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _normalize_in_place(vector):
    total = 0.0
    for c in range(vector.shape[0]):
        total += np.float64(vector[c]) * np.float64(vector[c])
    if total > 0:
        scale = 1.0 / np.sqrt(total)
        for c in range(vector.shape[0]):
            vector[c] = vector[c] * scale


@numba.njit(cache=True, nogil=True)
def _same_vector(a, b):
    for c in range(a.shape[0]):
        if a[c] != b[c]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _pick_pair(data, ids, state):
    """Pick two positions of ``ids`` whose vectors differ; the second is -1 if none do.

    A node of mostly identical points would otherwise keep drawing identical pairs,
    and the planes that separate its few distinct points would never be tried.
    """
    count = ids.shape[0]
    state, i = _random_below(state, count)
    state, j = _random_below(state, count - 1)
    if j >= i:
        j += 1
    if not _same_vector(data[ids[i]], data[ids[j]]):
        return state, i, j
    state, start = _random_below(state, count)
    for t in range(count):
        j = (start + t) % count
        if not _same_vector(data[ids[i]], data[ids[j]]):
            return state, i, j
    return state, i, -1


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _two_means(data, ids, through_origin, state, i, j, first, second):
    """Refine the points at positions i and j into two centroids (Annoy's bounded two-means).

    Each distance is weighted by the size of its cluster, so that one centroid does
    not absorb every point. On return ``first`` and ``second`` contain the centroids.
    """
    count = ids.shape[0]
    # Element loops instead of slice assignment, which costs seconds of compilation.
    for c in range(first.shape[0]):
        first[c] = data[ids[i], c]
        second[c] = data[ids[j], c]
    weight_first = 1.0
    weight_second = 1.0

    for _ in range(min(_TWO_MEANS_ITERATIONS, 2 * count)):
        state, p = _random_below(state, count)
        point = data[ids[p]]
        distance_first = weight_first * _squared_distance_wide(first, point)
        distance_second = weight_second * _squared_distance_wide(second, point)
        if distance_first < distance_second:
            keep = weight_first / (weight_first + 1)
            add = 1.0 / (weight_first + 1)
            for c in range(first.shape[0]):
                first[c] = first[c] * keep + point[c] * add
            weight_first += 1
            if through_origin:
                _normalize_in_place(first)
        elif distance_second < distance_first:
            keep = weight_second / (weight_second + 1)
            add = 1.0 / (weight_second + 1)
            for c in range(second.shape[0]):
                second[c] = second[c] * keep + point[c] * add
            weight_second += 1
            if through_origin:
                _normalize_in_place(second)
    return state


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _raw_margin(hyperplane, point):
    total = 0.0
    for c in range(point.shape[0]):
        total += np.float64(hyperplane[c]) * np.float64(point[c])
    return total


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _assign_sides(data, ids, hyperplane, offset, state, sides):
    """Put each point on side 0 or 1 of a plane and return the count on side 1.

    A point exactly on the plane goes to a random side, so that a node of identical
    points still splits in two.
    """
    n_positive = 0
    for t in range(ids.shape[0]):
        margin = offset + _raw_margin(hyperplane, data[ids[t]])
        if margin > 0:
            side = 1
        elif margin < 0:
            side = 0
        else:
            state, value = _splitmix64(state)
            side = np.int64(value >> np.uint64(63))
        sides[t] = side
        n_positive += side
    return state, n_positive


@numba.njit(cache=True, nogil=True)
def _partition(ids, sides):
    """Stable partition of ``ids`` in place: side 0 first. Return the side-0 count."""
    buffer = np.empty(ids.shape[0], np.int32)
    n_negative = 0
    for t in range(ids.shape[0]):
        if sides[t] == 0:
            buffer[n_negative] = ids[t]
            n_negative += 1
    position = n_negative
    for t in range(ids.shape[0]):
        if sides[t] != 0:
            buffer[position] = ids[t]
            position += 1
    for t in range(ids.shape[0]):
        ids[t] = buffer[t]
    return n_negative


@numba.njit(cache=True, nogil=True)
def _sift_down_by_key(keys, order, size, position):
    """Restore a max-heap of ``order`` by (keys[order], order) from ``position`` down."""
    while True:
        child = 2 * position + 1
        if child >= size:
            return
        if child + 1 < size:
            a, b = order[child + 1], order[child]
            if keys[a] > keys[b] or (keys[a] == keys[b] and a > b):
                child += 1
        top, below = order[position], order[child]
        if keys[below] > keys[top] or (keys[below] == keys[top] and below > top):
            order[position] = below
            order[child] = top
            position = child
        else:
            return


@numba.njit(cache=True, nogil=True)
def _argsort_stable(keys):
    """Return the positions of ``keys`` sorted by (key, position), by heap sort.

    A hand-written sort compiles in a fraction of the time of numpy's mergesort.
    """
    count = keys.shape[0]
    order = np.arange(count)
    for position in range(count // 2 - 1, -1, -1):
        _sift_down_by_key(keys, order, count, position)
    for end in range(count - 1, 0, -1):
        largest = order[0]
        order[0] = order[end]
        order[end] = largest
        _sift_down_by_key(keys, order, end, np.int64(0))
    return order


@numba.njit(cache=True, nogil=True)
def _median_split(data, ids, hyperplane, sides):
    """Halve the points at the median of their margins along ``hyperplane``; return the offset.

    Keeps the direction of an unbalanced two-means plane, so a query still learns
    which half is nearer. Points tied at the median are split by position.
    """
    count = ids.shape[0]
    margins = np.empty(count, np.float64)
    for t in range(count):
        margins[t] = _raw_margin(hyperplane, data[ids[t]])
    order = _argsort_stable(margins)
    half = count // 2
    for t in range(count):
        sides[order[t]] = 0 if t < half else 1
    return -0.5 * (margins[order[half - 1]] + margins[order[half]])


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _split_node(data, ids, through_origin, seed, hyperplane):
    """Split one node; return (offset, size of the negative side).

    Writes the normal into ``hyperplane`` and reorders ``ids`` so that the negative
    side comes first. Tries up to ``_SPLIT_ATTEMPTS`` two-means planes. When each
    leaves the node badly unbalanced (duplicates, near-parallel points), it returns
    a size of -1 and leaves the last plane in ``hyperplane``: ``median_split_level``
    then halves the node at the median margin along it. Only a node of identical
    points gets a random split, which a zero normal marks.
    """
    count = ids.shape[0]
    dim = data.shape[1]
    state = seed
    first = np.empty(dim, np.float32)
    second = np.empty(dim, np.float32)
    sides = np.empty(count, np.uint8)
    has_plane = False
    if count <= _GATHER_LIMIT:
        rows = np.empty((count, dim), np.float32)
        row_ids = np.empty(count, np.int32)
        for t in range(count):
            row_ids[t] = t
            source = ids[t]
            for c in range(dim):
                rows[t, c] = data[source, c]
    else:
        rows = data
        row_ids = ids

    for attempt in range(_SPLIT_ATTEMPTS):
        state, i, j = _pick_pair(rows, row_ids, state)
        if j < 0:
            break
        state = _two_means(rows, row_ids, through_origin, state, i, j, first, second)
        norm = _squared_distance_wide(first, second)
        if not norm > 0:
            continue
        scale = 1.0 / np.sqrt(norm)
        offset = 0.0
        for c in range(dim):
            hyperplane[c] = (np.float64(first[c]) - np.float64(second[c])) * scale
            if not through_origin:
                offset -= np.float64(hyperplane[c]) * 0.5 * (np.float64(first[c]) + np.float64(second[c]))
        has_plane = True

        state, n_positive = _assign_sides(rows, row_ids, hyperplane, offset, state, sides)
        larger = max(n_positive, count - n_positive)
        limit = _MAX_IMBALANCE_LAST if attempt == _SPLIT_ATTEMPTS - 1 else _MAX_IMBALANCE
        if n_positive > 0 and n_positive < count and larger <= limit * count:
            return np.float32(offset), _partition(ids, sides)

    if has_plane:
        return np.float32(0.0), -1

    # All points are identical: a Fisher-Yates shuffle, then halve.
    for t in range(count - 1, 0, -1):
        state, u = _random_below(state, t + 1)
        swap = ids[t]
        ids[t] = ids[u]
        ids[u] = swap
    for c in range(dim):
        hyperplane[c] = 0
    return np.float32(0.0), count // 2


@numba.njit(parallel=True, cache=True, nogil=True)
def split_level(data, leaf_indices, starts, ends, seeds, through_origin, hyperplanes, offsets, n_negative):
    """Split the nodes ``leaf_indices[starts[j]:ends[j]]`` for every j in parallel.

    Node j writes only its own slice of ``leaf_indices`` and its own row of the
    outputs, so the loop has no shared writes.
    """
    for j in numba.prange(starts.shape[0]):
        ids = leaf_indices[starts[j] : ends[j]]
        offset, negative = _split_node(data, ids, through_origin, seeds[j], hyperplanes[j])
        offsets[j] = offset
        n_negative[j] = negative


# The median split is a separate kernel because few inputs need it. Inside
# split_level, its sort would compile on every first build.
@numba.njit(parallel=True, cache=True, nogil=True)
def median_split_level(data, leaf_indices, starts, ends, nodes, hyperplanes, offsets, n_negative):
    """Halve each node j in ``nodes`` at the median margin along ``hyperplanes[j]``."""
    for position in numba.prange(nodes.shape[0]):
        j = nodes[position]
        ids = leaf_indices[starts[j] : ends[j]]
        sides = np.empty(ids.shape[0], np.uint8)
        offsets[j] = _median_split(data, ids, hyperplanes[j], sides)
        n_negative[j] = _partition(ids, sides)


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _queue_push(priorities, refs, size, priority, ref):
    """Push onto a binary max-heap; grow the arrays when full. Return them and the size."""
    if size == priorities.shape[0]:
        grown_priorities = np.empty(2 * size, np.float32)
        grown_refs = np.empty(2 * size, np.int32)
        for position in range(size):
            grown_priorities[position] = priorities[position]
            grown_refs[position] = refs[position]
        priorities = grown_priorities
        refs = grown_refs
    position = size
    while position > 0:
        parent = (position - 1) >> 1
        if priorities[parent] >= priority:
            break
        priorities[position] = priorities[parent]
        refs[position] = refs[parent]
        position = parent
    priorities[position] = priority
    refs[position] = ref
    return priorities, refs, size + 1


@numba.njit(cache=True, nogil=True)
def _queue_pop(priorities, refs, size):
    """Remove the top of a binary max-heap; return it and the new size."""
    top_priority = priorities[0]
    top_ref = refs[0]
    size -= 1
    last_priority = priorities[size]
    last_ref = refs[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and priorities[child + 1] > priorities[child]:
            child += 1
        if priorities[child] <= last_priority:
            break
        priorities[position] = priorities[child]
        refs[position] = refs[child]
        position = child
    priorities[position] = last_priority
    refs[position] = last_ref
    return top_priority, top_ref, size


@numba.njit(cache=True, nogil=True)
def _worse(key_a, id_a, key_b, id_b):
    """Order of the top-k heap: a larger key is worse, ties go to the larger id."""
    return key_a > key_b or (key_a == key_b and id_a > id_b)


@numba.njit(cache=True, nogil=True)
def _top_sift_down(keys, ids, size, position):
    key = keys[position]
    item = ids[position]
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and _worse(keys[child + 1], ids[child + 1], keys[child], ids[child]):
            child += 1
        if not _worse(keys[child], ids[child], key, item):
            break
        keys[position] = keys[child]
        ids[position] = ids[child]
        position = child
    keys[position] = key
    ids[position] = item


@numba.njit(cache=True, nogil=True)
def _top_offer(keys, ids, size, key, item):
    """Offer a candidate to a bounded max-heap of the best ``keys.shape[0]``; return the size."""
    capacity = keys.shape[0]
    if size < capacity:
        position = size
        while position > 0:
            parent = (position - 1) >> 1
            if not _worse(key, item, keys[parent], ids[parent]):
                break
            keys[position] = keys[parent]
            ids[position] = ids[parent]
            position = parent
        keys[position] = key
        ids[position] = item
        return size + 1
    if _worse(keys[0], ids[0], key, item):
        keys[0] = key
        ids[0] = item
        _top_sift_down(keys, ids, size, np.int64(0))
    return size


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _rank_key(metric, query, vector):
    """Exact ranking key, smaller is better: squared distance or negative inner product."""
    if metric == METRIC_EUCLIDEAN:
        return _squared_distance(query, vector)
    total = np.float32(0.0)
    for c in range(query.shape[0]):
        total += query[c] * vector[c]
    return -total


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _margin(hyperplane, offset, query):
    """Signed distance of the query to a plane, over the query's coordinates only.

    Trees for the inner-product metric have one more coordinate than the queries,
    and the queries' value there is zero, so it is skipped.
    """
    total = offset
    for c in range(query.shape[0]):
        total += hyperplane[c] * query[c]
    return total


@numba.njit(cache=True, nogil=True)
def _prefetch_vector(vectors, item):
    """Ask for row ``item`` of ``vectors`` ahead of use, one prefetch per cache line."""
    for column in range(0, vectors.shape[1], LINE_FLOATS):
        prefetch_element(vectors, item, column)


@numba.njit(cache=True, nogil=True)
def _mark_excluded(stamps, epoch, allowed, self_id, excluded):
    """Stamp the query's own id and its excluded items as seen.

    Returns how many of them were eligible, so the caller knows how many eligible
    items are left for this query. Duplicated ids are counted once.
    """
    n_removed = 0
    if self_id >= 0:
        stamps[self_id] = epoch
        n_removed += allowed[self_id]
    for position in range(excluded.shape[0]):
        item = excluded[position]
        if stamps[item] != epoch:
            stamps[item] = epoch
            n_removed += allowed[item]
    return n_removed


@numba.njit(cache=True, nogil=True)
def _scan_ids(rank_query, vectors, metric, candidate_ids, allowed, stamps, epoch, top_keys, top_ids, n_top):
    """Score the eligible ``candidate_ids`` not yet stamped, and stamp them.

    Returns the number scored and the new size of the top-k heap.
    """
    n_scored = 0
    for position in range(candidate_ids.shape[0]):
        item = candidate_ids[position]
        if stamps[item] == epoch:
            continue
        stamps[item] = epoch
        if not allowed[item]:
            continue
        n_scored += 1
        key = _rank_key(metric, rank_query, vectors[item])
        if n_top < top_keys.shape[0] or key <= top_keys[0]:
            n_top = _top_offer(top_keys, top_ids, n_top, key, item)
    return n_scored, n_top


@numba.njit(cache=True, nogil=True)
def _search_trees(
    tree_query,
    rank_query,
    vectors,
    hyperplanes,
    offsets,
    children,
    leaf_bounds,
    leaf_indices,
    roots,
    metric,
    search_k,
    allowed,
    stamps,
    epoch,
    queue_priorities,
    queue_refs,
    top_keys,
    top_ids,
    n_scored,
    n_top,
):
    """Best-first search over all trees until ``search_k`` eligible items are scored.

    ``stamps[item] == epoch`` marks an item already scored or excluded for this
    query, which also removes the duplicates that several trees return. Returns
    the size of the top-k heap and the queue arrays, which may have grown.
    """
    infinity = np.float32(np.inf)
    ahead = PREFETCH_AHEAD if vectors.nbytes > PREFETCH_MIN_BYTES else 0
    size = np.int64(0)
    for t in range(roots.shape[0]):
        queue_priorities, queue_refs, size = _queue_push(queue_priorities, queue_refs, size, infinity, roots[t])

    while size > 0 and n_scored < search_k:
        priority, ref, size = _queue_pop(queue_priorities, queue_refs, size)
        while ref >= 0:
            margin = _margin(hyperplanes[ref], offsets[ref], tree_query)
            if margin >= 0:
                near, far = children[ref, 1], children[ref, 0]
            else:
                near, far = children[ref, 0], children[ref, 1]
            far_priority = min(priority, -abs(margin))
            priority = min(priority, abs(margin))
            queue_priorities, queue_refs, size = _queue_push(queue_priorities, queue_refs, size, far_priority, far)
            # Going down directly is what a push and a pop would do, unless some
            # other queued subtree now has the higher priority.
            if size > 0 and queue_priorities[0] > priority:
                queue_priorities, queue_refs, size = _queue_push(queue_priorities, queue_refs, size, priority, near)
                priority, ref, size = _queue_pop(queue_priorities, queue_refs, size)
            else:
                ref = near

        leaf = ~ref
        start, end = leaf_bounds[leaf, 0], leaf_bounds[leaf, 1]
        # Members of a leaf lie anywhere in memory: asking for the vector a few
        # members ahead overlaps its cache misses with the scoring of this one.
        for position in range(start, min(start + ahead, end)):
            _prefetch_vector(vectors, leaf_indices[position])
        for position in range(start, end):
            if position + ahead < end:
                _prefetch_vector(vectors, leaf_indices[position + ahead])
            item = leaf_indices[position]
            if stamps[item] == epoch:
                continue
            stamps[item] = epoch
            if not allowed[item]:
                continue
            n_scored += 1
            key = _rank_key(metric, rank_query, vectors[item])
            # Most candidates lose to the worst of a full heap, and this
            # comparison costs less than the call.
            if n_top < top_keys.shape[0] or key <= top_keys[0]:
                n_top = _top_offer(top_keys, top_ids, n_top, key, item)
    return n_top, queue_priorities, queue_refs


@numba.njit(cache=True, nogil=True)
def _write_sorted(top_keys, top_ids, n_top, out_ids, out_keys):
    """Write the top-k heap best first, then pad the row with (-1, +inf)."""
    k = out_ids.shape[0]
    for slot in range(n_top, k):
        out_ids[slot] = -1
        out_keys[slot] = np.inf
    # Pop the heap from the worst down so the output runs best first.
    for slot in range(n_top - 1, -1, -1):
        out_keys[slot] = top_keys[0]
        out_ids[slot] = top_ids[0]
        top_keys[0] = top_keys[slot]
        top_ids[0] = top_ids[slot]
        _top_sift_down(top_keys, top_ids, slot, np.int64(0))


@numba.njit(parallel=True, cache=True, nogil=True)
def search_batch(
    tree_queries,
    rank_queries,
    self_ids,
    valid,
    exclude_indptr,
    exclude_indices,
    allowed,
    allowed_ids,
    head_ids,
    vectors,
    hyperplanes,
    offsets,
    children,
    leaf_bounds,
    leaf_indices,
    roots,
    metric,
    search_k,
    n_chunks,
    out_ids,
    out_keys,
):
    """Search every query and write its top-k rows, best first.

    Query q skips ``self_ids[q]`` (when >= 0) and the items
    ``exclude_indices[exclude_indptr[q]:exclude_indptr[q + 1]]``, and returns only
    items with ``allowed[item] == 1``; ``allowed_ids`` lists those items. When no
    more than ``search_k`` eligible items remain, it scores all of them, which is
    exact and cheaper than walking the trees. Otherwise it scores ``head_ids``,
    the items kept out of the trees, then searches the trees. Rows with ``valid[q] == False`` and
    slots left empty get the padding (-1, +inf). Each chunk of queries owns its
    scratch arrays and its rows of the outputs, so no two threads share a write.
    """
    n_queries = tree_queries.shape[0]
    k = out_ids.shape[1]
    n_allowed = allowed_ids.shape[0]
    for chunk in numba.prange(n_chunks):
        low = chunk * n_queries // n_chunks
        high = (chunk + 1) * n_queries // n_chunks
        stamps = np.zeros(vectors.shape[0], np.int32)
        queue_priorities = np.empty(4 * roots.shape[0] + 64, np.float32)
        queue_refs = np.empty(4 * roots.shape[0] + 64, np.int32)
        top_keys = np.empty(k, np.float32)
        top_ids = np.empty(k, np.int32)
        for q in range(low, high):
            if not valid[q]:
                for slot in range(k):
                    out_ids[q, slot] = -1
                    out_keys[q, slot] = np.inf
                continue
            epoch = q - low + 1
            excluded = exclude_indices[exclude_indptr[q] : exclude_indptr[q + 1]]
            n_eligible = n_allowed - _mark_excluded(stamps, epoch, allowed, self_ids[q], excluded)
            if n_eligible <= search_k:
                _, n_top = _scan_ids(
                    rank_queries[q], vectors, metric, allowed_ids, allowed, stamps, epoch, top_keys, top_ids, np.int64(0)
                )
            else:
                # The head comes on top of the budget: search_k counts tree candidates,
                # so a budget below the head size still searches the trees.
                _, n_top = _scan_ids(
                    rank_queries[q], vectors, metric, head_ids, allowed, stamps, epoch, top_keys, top_ids, np.int64(0)
                )
                n_top, queue_priorities, queue_refs = _search_trees(
                    tree_queries[q],
                    rank_queries[q],
                    vectors,
                    hyperplanes,
                    offsets,
                    children,
                    leaf_bounds,
                    leaf_indices,
                    roots,
                    metric,
                    search_k,
                    allowed,
                    stamps,
                    epoch,
                    queue_priorities,
                    queue_refs,
                    top_keys,
                    top_ids,
                    np.int64(0),
                    n_top,
                )
            _write_sorted(top_keys, top_ids, n_top, out_ids[q], out_keys[q])
