"""Numba kernels of the k-nearest-neighbour graph: data layout, build, read-out, search.

Data layout
-----------
A graph of ``n`` vertices and degree ``K`` lives in three arrays of shape (n, K):

``graph_ids`` int32
    The neighbours of each vertex; -1 marks an empty slot.
``graph_keys`` float32
    Their ranking keys (``_kernels._rank_key``, smaller is better); +inf marks an
    empty slot.
``graph_new`` uint8
    1 while a neighbour has not yet taken part in a local join.

Each row is a bounded max-heap ordered by (key, id), so its root is the worst
neighbour: an offer that does not beat the root is rejected at once.

Build
-----
``join_leaves`` seeds the graph with every pair of points that share a leaf of a
random-projection tree. Neighbour descent (Dong, Charikar and Li, "Efficient
k-nearest neighbor graph construction for generic similarity measures", WWW 2011)
then refines it: a neighbour of a neighbour is likely a neighbour. Each round
samples candidate lists (``sample_candidates``), joins every pair of candidates of
each vertex (``local_join``) and applies the improvements (``apply_updates``).

Every phase either reads the graph or writes only rows that one block of vertices
owns, and a bounded heap keeps the same best entries whatever the order of the
offers. So the graph depends on the seed only, not on the thread count.
"""

import numba
import numpy as np

from ._kernels import (
    FASTMATH,
    METRIC_EUCLIDEAN,
    _mark_excluded,
    _prefetch_vector,
    _queue_pop,
    _queue_push,
    _random_below,
    _rank_key,
    _scan_ids,
    _search_trees,
    _splitmix64,
    _top_offer,
    _top_sift_down,
    _worse,
    _write_sorted,
)
from ._prefetch import CACHE_LINE_BYTES, prefetch_element

# int32 edges per cache line.
LINE_INTS = CACHE_LINE_BYTES // 4

# ---------------------------------------------------------------------------
# Bounded heaps
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _contains(row, item):
    for slot in range(row.shape[0]):
        if row[slot] == item:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _offer_neighbor(keys, ids, flags, key, item):
    """Offer ``item`` to one full row heap; return 1 if it entered, else 0."""
    if not _worse(keys[0], ids[0], key, item):
        return 0
    if _contains(ids, item):
        return 0
    size = keys.shape[0]
    position = 0
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
        flags[position] = flags[child]
        position = child
    keys[position] = key
    ids[position] = item
    flags[position] = 1
    return 1


@numba.njit(cache=True, nogil=True)
def _offer_candidate(priorities, ids, row, priority, item):
    """Keep the candidates of the smallest priorities in the full max-heap ``row``."""
    if not (priority < priorities[row, 0] or (priority == priorities[row, 0] and item < ids[row, 0])):
        return
    size = priorities.shape[1]
    for slot in range(size):
        if ids[row, slot] == item:
            return
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and (
            priorities[row, child + 1] > priorities[row, child]
            or (priorities[row, child + 1] == priorities[row, child] and ids[row, child + 1] > ids[row, child])
        ):
            child += 1
        if priorities[row, child] < priority or (priorities[row, child] == priority and ids[row, child] < item):
            break
        priorities[row, position] = priorities[row, child]
        ids[row, position] = ids[row, child]
        position = child
    priorities[row, position] = priority
    ids[row, position] = item


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------


# Vertices per parallel task of the local join, which share one scratch block.
JOIN_CHUNK = 256
# Minimum number of columns of a candidate block. An estimate from the exact
# kernel: LLVM vectorizes these loops 32 float32 at a time, and shorter ones run scalar.
BLOCK_COLUMNS = 32


@numba.njit(cache=True, nogil=True)
def _block_width(n_members):
    """Return the columns of a block for ``n_members`` vectors: a multiple of 8, at least BLOCK_COLUMNS."""
    return max(BLOCK_COLUMNS, -(-n_members // 8) * 8)


@numba.njit(cache=True, nogil=True)
def _gather_block(vectors, members, n_members, block):
    """Copy the vectors ``members[:n_members]`` into the columns of ``block`` (dim, width), zeros after them."""
    for d in range(block.shape[0]):
        row = block[d]
        for j in range(n_members):
            row[j] = vectors[members[j], d]
        for j in range(n_members, block.shape[1]):
            row[j] = 0.0


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _block_keys(metric, block, column, keys):
    """Write the ranking keys between column ``column`` of ``block`` and every column of it to ``keys``.

    The keys are those of ``_kernels._rank_key``, computed with the columns as
    the vectorized loop, and may differ from it in the last bits.
    """
    width = block.shape[1]
    for j in range(width):
        keys[j] = 0.0
    for d in range(block.shape[0]):
        row = block[d]
        value = row[column]
        if metric == METRIC_EUCLIDEAN:
            for j in range(width):
                diff = value - row[j]
                keys[j] += diff * diff
        else:
            for j in range(width):
                keys[j] -= value * row[j]


@numba.njit(parallel=True, cache=True, nogil=True)
def join_leaves(vectors, metric, leaves, leaf_bounds, leaf_indices, graph_ids, graph_keys, graph_new):
    """Offer every pair of points that share one of ``leaves`` to each other's rows.

    The leaves must come from one tree, where each point lies in exactly one leaf,
    so no two iterations write the same row.
    """
    for position in numba.prange(leaves.shape[0]):
        leaf = leaves[position]
        start = leaf_bounds[leaf, 0]
        size = leaf_bounds[leaf, 1] - start
        width = _block_width(size)
        members = leaf_indices[start : start + size]
        block = np.empty((vectors.shape[1], width), np.float32)
        keys = np.empty(width, np.float32)
        _gather_block(vectors, members, size, block)
        for s in range(size):
            a = members[s]
            _block_keys(metric, block, s, keys)
            for t in range(s + 1, size):
                b = members[t]
                _offer_neighbor(graph_keys[a], graph_ids[a], graph_new[a], keys[t], b)
                _offer_neighbor(graph_keys[b], graph_ids[b], graph_new[b], keys[t], a)


@numba.njit(parallel=True, cache=True, nogil=True)
def fill_empty_slots(vectors, metric, members, seed, graph_ids, graph_keys, graph_new):
    """Offer random ``members`` to the row of every member that has empty slots.

    ``members`` lists each vertex of the trees once. Leaves of one vector leave
    rows empty, and a single tree cuts the graph into cliques, one per leaf,
    that neighbour descent never joins. Random neighbours, the start of Dong et
    al., join them. Row ``u`` draws from a generator seeded by (seed, u) and is
    the only row it writes, so the graph still depends on the seed only.
    """
    n_members = members.shape[0]
    degree = graph_ids.shape[1]
    for position in numba.prange(n_members):
        u = members[position]
        empty = 0
        for slot in range(degree):
            if graph_ids[u, slot] < 0:
                empty += 1
        state = seed ^ (np.uint64(u) << np.uint64(20))
        for _ in range(4 * degree if n_members > 1 else 0):
            if empty == 0:
                break
            state, draw = _random_below(state, n_members)
            v = members[draw]
            if v != u:
                key = _rank_key(metric, vectors[u], vectors[v])
                empty -= _offer_neighbor(graph_keys[u], graph_ids[u], graph_new[u], key, v)


@numba.njit(cache=True, nogil=True)
def _edge_priority(a, b, seed):
    """Return a random uint32 priority for the edge a -> b, fixed by the round's seed."""
    _, value = _splitmix64((np.uint64(a) << np.uint64(32)) ^ np.uint64(b) ^ seed)
    return np.uint32(value >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def reverse_edges(graph_ids, graph_new, indptr, sources, source_new):
    """Fill the CSR lists of the vertices that point to each vertex, with the edge flags.

    ``indptr`` must hold n + 1 zeros. One sequential pass over the edges is cheaper
    than any parallel scheme that needs atomic counters. The flags are copied so
    that the sampling reads them in order instead of at random.
    """
    n = graph_ids.shape[0]
    for u in range(n):
        for slot in range(graph_ids.shape[1]):
            v = graph_ids[u, slot]
            if v >= 0:
                indptr[v + 1] += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    fill = indptr[:-1].copy()
    for u in range(n):
        for slot in range(graph_ids.shape[1]):
            v = graph_ids[u, slot]
            if v >= 0:
                sources[fill[v]] = u
                source_new[fill[v]] = graph_new[u, slot]
                fill[v] += 1


@numba.njit(cache=True, nogil=True)
def _offer_edges(graph_ids, graph_new, indptr, sources, source_new, seed, v, flag, ids, priorities):
    """Offer the edges of ``v`` whose new-flag equals ``flag`` to row ``v``; return their count."""
    degree = graph_ids.shape[1]
    count = 0
    for slot in range(degree):
        u = graph_ids[v, slot]
        if u >= 0 and graph_new[v, slot] == flag:
            _offer_candidate(priorities, ids, v, _edge_priority(v, u, seed), u)
            count += 1
    for position in range(indptr[v], indptr[v + 1]):
        u = sources[position]
        if source_new[position] == flag:
            _offer_candidate(priorities, ids, v, _edge_priority(u, v, seed), u)
            count += 1
    return count


@numba.njit(parallel=True, cache=True, nogil=True)
def sample_candidates(
    graph_ids, graph_new, indptr, sources, source_new, seed, new_ids, new_priorities, old_ids, old_priorities
):
    """Fill each vertex's new and old candidate rows from its edges in both directions.

    ``sources[indptr[v]:indptr[v + 1]]`` lists the vertices that point to ``v``,
    and ``source_new`` the flags of those edges. Each candidate row keeps the
    entries of smallest random priority, a uniform sample that is the same whatever
    order the edges arrive in. Old candidates only pair with new ones, so a vertex
    without new candidates skips them. After the first rounds, most vertices do.
    """
    for v in numba.prange(graph_ids.shape[0]):
        if _offer_edges(graph_ids, graph_new, indptr, sources, source_new, seed, v, 1, new_ids, new_priorities) > 0:
            _offer_edges(graph_ids, graph_new, indptr, sources, source_new, seed, v, 0, old_ids, old_priorities)


@numba.njit(parallel=True, cache=True, nogil=True)
def retire_sampled(graph_ids, graph_new, new_ids):
    """Mark as old the new neighbours that were sampled, so each joins only once."""
    for u in numba.prange(graph_ids.shape[0]):
        for slot in range(graph_ids.shape[1]):
            if graph_new[u, slot] and _contains(new_ids[u], graph_ids[u, slot]):
                graph_new[u, slot] = 0


@numba.njit(parallel=True, cache=True, nogil=True)
def local_join(vectors, metric, graph_keys, new_ids, old_ids, low, high, update_a, update_b, update_keys, counts):
    """Score each pair of candidates of vertices low..high-1 that could improve a row.

    Vertex ``u`` writes its updates to row ``u - low`` of the update arrays. Pairs
    of two old candidates are skipped: they met in an earlier round. The graph is
    only read here, so the updates do not depend on the order of the vertices.
    Each vertex copies its candidates into one block, and each new candidate
    is scored against the whole block in one vectorized pass.
    """
    n_new = new_ids.shape[1]
    n_old = old_ids.shape[1]
    width = _block_width(n_new + n_old)
    n_chunks = -(-(high - low) // JOIN_CHUNK)
    for chunk in numba.prange(n_chunks):
        members = np.empty(n_new + n_old, np.int32)
        block = np.empty((vectors.shape[1], width), np.float32)
        keys = np.empty(width, np.float32)
        for u in range(low + chunk * JOIN_CHUNK, min(low + (chunk + 1) * JOIN_CHUNK, high)):
            row = u - low
            # New candidates first, then old ones, each list without its empty slots.
            n_fresh = 0
            for i in range(n_new):
                if new_ids[u, i] >= 0:
                    members[n_fresh] = new_ids[u, i]
                    n_fresh += 1
            n_members = n_fresh
            for i in range(n_old):
                if old_ids[u, i] >= 0:
                    members[n_members] = old_ids[u, i]
                    n_members += 1
            count = 0
            if n_fresh > 0:
                _gather_block(vectors, members, n_members, block)
            for i in range(n_fresh):
                a = members[i]
                _block_keys(metric, block, i, keys)
                for j in range(i + 1, n_members):
                    b = members[j]
                    if b == a:
                        continue
                    key = keys[j]
                    if key < graph_keys[a, 0] or key < graph_keys[b, 0]:
                        update_a[row, count] = a
                        update_b[row, count] = b
                        update_keys[row, count] = key
                        count += 1
            counts[row] = count


@numba.njit(parallel=True, cache=True, nogil=True)
def apply_updates(update_a, update_b, update_keys, counts, n_blocks, graph_ids, graph_keys, graph_new, changes):
    """Offer each update to both of its rows; block ``b`` writes only its own rows."""
    n = graph_ids.shape[0]
    for block in numba.prange(n_blocks):
        low = block * n // n_blocks
        high = (block + 1) * n // n_blocks
        changed = 0
        for row in range(counts.shape[0]):
            for position in range(counts[row]):
                a = update_a[row, position]
                b = update_b[row, position]
                key = update_keys[row, position]
                if low <= a < high:
                    changed += _offer_neighbor(graph_keys[a], graph_ids[a], graph_new[a], key, b)
                if low <= b < high:
                    changed += _offer_neighbor(graph_keys[b], graph_ids[b], graph_new[b], key, a)
        changes[block] += changed


# ---------------------------------------------------------------------------
# Read-out
# ---------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True, nogil=True)
def sorted_rows(graph_ids, graph_keys, out_ids, out_keys):
    """Write the best ``out_ids.shape[1]`` neighbours of each vertex, best first."""
    size = graph_ids.shape[1]
    k = out_ids.shape[1]
    for u in numba.prange(graph_ids.shape[0]):
        keys = graph_keys[u].copy()
        ids = graph_ids[u].copy()
        # Pop the worst until k remain, then pop the rest into place from the back.
        for end in range(size - 1, -1, -1):
            worst_key = keys[0]
            worst_id = ids[0]
            keys[0] = keys[end]
            ids[0] = ids[end]
            _top_sift_down(keys, ids, end, np.int64(0))
            if end < k:
                out_keys[u, end] = worst_key
                out_ids[u, end] = worst_id



@numba.njit(parallel=True, cache=True, nogil=True)
def add_reverse_neighbors(vectors, metric, forward, indptr, sources, adjacency):
    """Fill each row of ``adjacency`` (n, 2 K) with its K forward neighbours, then its nearest in-neighbours.

    ``forward`` contains the sorted graph rows (n, K). The second half of each row
    keeps up to K of the vertices that point to it, nearest first, and pads with
    -1. A vertex that many others list as a neighbour keeps only its K nearest
    of them, so no row grows past 2 K. In-neighbours make the graph navigable:
    without them a greedy search cannot leave a dense cluster that points only
    inward.
    """
    degree = forward.shape[1]
    for v in numba.prange(forward.shape[0]):
        for slot in range(degree):
            adjacency[v, slot] = forward[v, slot]
        keys = np.full(degree, np.inf, np.float32)
        ids = np.full(degree, -1, np.int32)
        flags = np.zeros(degree, np.uint8)
        for position in range(indptr[v], indptr[v + 1]):
            u = sources[position]
            if _contains(forward[v], u):
                continue
            _offer_neighbor(keys, ids, flags, _rank_key(metric, vectors[v], vectors[u]), u)
        for end in range(degree - 1, -1, -1):
            adjacency[v, degree + end] = ids[0]
            keys[0] = keys[end]
            ids[0] = ids[end]
            _top_sift_down(keys, ids, end, np.int64(0))


@numba.njit(cache=True, nogil=True)
def _squared_distance_of_key(metric, key):
    """Return the squared Euclidean distance between two vectors whose ranking key is ``key``.

    Under "angular" the vectors have unit norm, so a key of -cos is 2 - 2 cos.
    """
    if metric == METRIC_EUCLIDEAN:
        return key
    return 2.0 + 2.0 * key


@numba.njit(cache=True, nogil=True)
def _add_unseen(ids, stamps, epoch, pool, size):
    """Append the ids not yet stamped to ``pool[size:]`` and stamp them. Return the new size."""
    for position in range(ids.shape[0]):
        u = ids[position]
        if u >= 0 and stamps[u] != epoch:
            stamps[u] = epoch
            pool[size] = u
            size += 1
    return size


@numba.njit(cache=True, nogil=True)
def _gather_pool(v, rows, indptr, sources, hops, stamps, epoch, pool):
    """Write the distinct candidates of ``v`` to ``pool`` and return their count.

    The candidates are row ``v`` of ``rows``, the vertices whose rows list ``v``,
    and the rows of the first ``hops`` vertices of row ``v``.
    """
    stamps[v] = epoch
    size = _add_unseen(rows[v], stamps, epoch, pool, 0)
    size = _add_unseen(sources[indptr[v] : indptr[v + 1]], stamps, epoch, pool, size)
    for slot in range(min(hops, rows.shape[1])):
        w = rows[v, slot]
        if w >= 0:
            size = _add_unseen(rows[w], stamps, epoch, pool, size)
    return size


@numba.njit(parallel=True, cache=True, nogil=True)
def prune_edges(vectors, metric, rows, indptr, sources, hops, alpha, n_chunks, out):
    """Keep for each vertex a spread of near candidates as its edges, nearest first.

    The candidates come from ``_gather_pool``. Taken nearest first, a candidate
    ``c`` of ``v`` is dropped when an edge ``r`` already kept is nearer to it
    than ``v`` is, by the factor ``alpha`` on squared distances. This is the
    relative neighbourhood rule of HNSW and of Vamana (Subramanya et al.,
    "DiskANN", NeurIPS 2019): it spends the edges on different directions instead
    of on one tight cluster, so a greedy walk can leave the cluster. ``alpha``
    above 1 drops fewer candidates and so keeps some longer edges. Rows of
    ``out`` (n, R) keep up to R edges and pad with -1. Each vertex reads only
    ``rows`` and the candidates' vectors, so the result does not depend on the
    thread count.
    """
    n = rows.shape[0]
    width = rows.shape[1]
    max_in = 0
    for v in range(n):
        max_in = max(max_in, indptr[v + 1] - indptr[v])
    capacity = width + max_in + min(hops, width) * width
    max_degree = out.shape[1]
    for chunk in numba.prange(n_chunks):
        stamps = np.zeros(n, np.int32)
        pool = np.empty(capacity, np.int32)
        keys = np.empty(capacity, np.float32)
        edges = np.empty(max_degree, np.int32)
        for v in range(chunk * n // n_chunks, (chunk + 1) * n // n_chunks):
            size = _gather_pool(v, rows, indptr, sources, hops, stamps, v + 1, pool)
            for position in range(size):
                keys[position] = _rank_key(metric, vectors[v], vectors[pool[position]])
            order = np.argsort(keys[:size], kind="mergesort")
            n_kept = 0
            for position in range(size):
                if n_kept == max_degree:
                    break
                candidate = pool[order[position]]
                reach = _squared_distance_of_key(metric, keys[order[position]])
                spread = True
                for slot in range(n_kept):
                    gap = _squared_distance_of_key(metric, _rank_key(metric, vectors[candidate], vectors[edges[slot]]))
                    if alpha * gap < reach:
                        spread = False
                        break
                if spread:
                    edges[n_kept] = candidate
                    n_kept += 1
            for slot in range(max_degree):
                out[v, slot] = edges[slot] if slot < n_kept else -1


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _prefetch_edges(adjacency, vertex):
    """Prefetch the adjacency row of a vertex that has just entered the walk's queue.

    Each expansion would otherwise wait for its row from memory before it can
    prefetch the neighbours' vectors. hnswlib gets the same effect from its
    layout, which stores each vertex's bottom-layer edges next to its vector.
    """
    for column in range(0, adjacency.shape[1], LINE_INTS):
        prefetch_element(adjacency, vertex, column)


@numba.njit(cache=True, nogil=True)
def _walk_graph(rank_query, vectors, metric, adjacency, stamps, epoch, top_keys, top_ids, n_top, queue_priorities,
                queue_refs, allowed, banned):
    """Expand the best unexpanded result until none can improve the ``top_keys.shape[0]`` best.

    Starts from the results already in the top heap, as HNSW's search of its
    bottom layer does. Returns the heap size and the queue arrays, which may grow.
    Vertices with ``allowed[v] == 0`` or ``banned[v] == epoch`` are walked
    through but never enter the results: a filter must not cut the paths that
    lead to the items it lets through.
    """
    capacity = top_keys.shape[0]
    size = np.int64(0)
    for position in range(n_top):
        queue_priorities, queue_refs, size = _queue_push(
            queue_priorities, queue_refs, size, -top_keys[position], top_ids[position]
        )
    fresh = np.empty(adjacency.shape[1], np.int32)
    while size > 0:
        priority, vertex, size = _queue_pop(queue_priorities, queue_refs, size)
        if n_top == capacity and -priority > top_keys[0]:
            break
        # Ask for every unseen neighbour's vector before scoring the first, so
        # that their cache misses overlap instead of following one another.
        n_fresh = 0
        for slot in range(adjacency.shape[1]):
            neighbor = adjacency[vertex, slot]
            if neighbor < 0 or stamps[neighbor] == epoch:
                continue
            stamps[neighbor] = epoch
            fresh[n_fresh] = neighbor
            n_fresh += 1
            _prefetch_vector(vectors, neighbor)
        for position in range(n_fresh):
            neighbor = fresh[position]
            key = _rank_key(metric, rank_query, vectors[neighbor])
            if n_top < capacity or _worse(top_keys[0], top_ids[0], key, neighbor):
                if allowed[neighbor] and banned[neighbor] != epoch:
                    n_top = _top_offer(top_keys, top_ids, n_top, key, neighbor)
                queue_priorities, queue_refs, size = _queue_push(queue_priorities, queue_refs, size, -key, neighbor)
                _prefetch_edges(adjacency, neighbor)
    return n_top, queue_priorities, queue_refs


@numba.njit(parallel=True, cache=True, nogil=True)
def graph_search_batch(
    tree_queries,
    rank_queries,
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
    seed_k,
    adjacency,
    ef,
    n_chunks,
    out_ids,
    out_keys,
):
    """Search every query by the trees, then by the graph, and write its top-k rows.

    The trees score ``seed_k`` candidates, the best ``ef`` of them start a greedy
    walk over ``adjacency``, and the head items are scored last. Only items with
    ``allowed[item] == 1`` (``allowed_ids`` lists them) and outside
    ``exclude_indices[exclude_indptr[q]:exclude_indptr[q + 1]]`` are returned.
    When no more than ``ef`` of them remain, they are all scored, which is exact.
    Rows with ``valid[q] == False`` get the padding (-1, +inf). Each chunk of
    queries owns its scratch arrays.
    """
    n_queries = tree_queries.shape[0]
    k = out_ids.shape[1]
    n_allowed = allowed_ids.shape[0]
    for chunk in numba.prange(n_chunks):
        low = chunk * n_queries // n_chunks
        high = (chunk + 1) * n_queries // n_chunks
        stamps = np.zeros(vectors.shape[0], np.int32)
        banned = np.zeros(vectors.shape[0], np.int32)
        queue_priorities = np.empty(4 * roots.shape[0] + 64, np.float32)
        queue_refs = np.empty(4 * roots.shape[0] + 64, np.int32)
        top_keys = np.empty(ef, np.float32)
        top_ids = np.empty(ef, np.int32)
        for q in range(low, high):
            if not valid[q]:
                for slot in range(k):
                    out_ids[q, slot] = -1
                    out_keys[q, slot] = np.inf
                continue
            epoch = q - low + 1
            excluded = exclude_indices[exclude_indptr[q] : exclude_indptr[q + 1]]
            n_eligible = n_allowed - _mark_excluded(stamps, epoch, allowed, np.int32(-1), excluded)
            if n_eligible <= ef:
                _, n_top = _scan_ids(
                    rank_queries[q], vectors, metric, allowed_ids, allowed, stamps, epoch, top_keys, top_ids,
                    np.int64(0),
                )
            else:
                # The stamps keep excluded items out of the seeds. The walk then
                # passes through them, so they leave the stamps for the bans.
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
                    seed_k,
                    allowed,
                    stamps,
                    epoch,
                    queue_priorities,
                    queue_refs,
                    top_keys,
                    top_ids,
                    np.int64(0),
                    np.int64(0),
                )
                for position in range(excluded.shape[0]):
                    stamps[excluded[position]] = 0
                    banned[excluded[position]] = epoch
                n_top, queue_priorities, queue_refs = _walk_graph(
                    rank_queries[q], vectors, metric, adjacency, stamps, epoch, top_keys, top_ids, n_top,
                    queue_priorities, queue_refs, allowed, banned
                )
                for position in range(excluded.shape[0]):
                    stamps[excluded[position]] = epoch
                # The head comes last: its items have no edges, and scored first they
                # would push the tree seeds out of the heap before the walk starts.
                _, n_top = _scan_ids(rank_queries[q], vectors, metric, head_ids, allowed, stamps, epoch, top_keys,
                                     top_ids, n_top)
            # Drop the worst until k remain, then write the rest best first.
            while n_top > k:
                n_top -= 1
                top_keys[0] = top_keys[n_top]
                top_ids[0] = top_ids[n_top]
                _top_sift_down(top_keys, top_ids, n_top, np.int64(0))
            _write_sorted(top_keys, top_ids, n_top, out_ids[q], out_keys[q])
