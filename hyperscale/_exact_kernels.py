"""Numba kernel of exact top-k search: data layout, scoring, selection, early stop.

Data layout
-----------
``vectors`` float32 (n, dim)
    The indexed vectors, row-major as the index stores them, never copied.
``order`` int64 (m,)
    The items to score, in the order they are visited. Items left out of it are
    never returned, which is how the allow masks apply.
``bounds`` float32 (m,)
    Non-increasing. For each position of ``order``, an upper bound on the norm
    of every item from that position on, or +inf where no bound applies.
``query_norms`` float32 (n_queries,)
    An upper bound on each query's norm. A query stops visiting items once
    its norm times the next bound falls below its k-th best score: by the
    Cauchy-Schwarz inequality, no later item can score as high.
``bias`` float32 (n,)
    Added to each inner product: 0 for inner product and cosine, ``-|x|² / 2``
    for Euclidean distance (so that a larger score is a nearer item). The
    bounds above only hold with a zero bias.
``exclude_indptr`` int64, ``exclude_indices`` int32
    CSR rows, one per query, of the items that query must skip, each row sorted.

Each parallel task takes a tile of up to ``tile`` queries and copies it
transposed, as (dim, width). The innermost loop then runs over queries: one item
coordinate multiplies a contiguous row of query coordinates, which LLVM turns
into SIMD code, and the items are never copied.

Scoring
-------
Four items times four coordinates are accumulated per pass over the tile. Each
load of query coordinates then feeds four items, and each store of a score
carries four coordinates.

Selection
---------
Each query keeps a heap of its best ``k`` (the same heap as the tree search) and
a threshold: -inf until the heap is full, then the score of its worst entry. A
vectorised count of the scores that reach the thresholds skips most items with
no scalar work. A score equal to the threshold is offered to the heap, which
settles ties by id, so the order of the visit does not change the result.

Early stop
----------
Every ``CHECK_EVERY`` positions, the queries whose bound has fallen below their
threshold leave the tile, and the remaining ones are packed to the front, so the
SIMD loops stop paying for them. The positions run in spans of doubling length,
and after each span the queries still running from all tiles form new full tiles.
Each query's heap and threshold live in arrays shared by all spans.
"""

import numba
import numpy as np

from ._kernels import FASTMATH, _top_offer, _write_sorted
from ._parallel import run_parallel

# Items scored per pass. _accumulate_4x4 is written for this many.
ITEM_BLOCK = 4
# Largest query tile, in queries and in bytes: 512 queries of 64 coordinates take
# 128 KB, which stays in a core's L2 cache (1 MiB on the machine of
# BENCHMARKS.md). On the Gowalla factors (64 dimensions), tiles of 512 gave 6 to
# 7 % more queries per second than 256 and 33 to 48 % more than 1,024
# (benchmarks/kernel_choices.py).
MAX_TILE = 512
MAX_TILE_BYTES = 128 << 10
# Positions visited between two checks of the early stop. Each check costs a
# pass over the tile's thresholds, small next to scoring this many items.
CHECK_EVERY = 64
# Lanes of one AVX2 register of float32: the packed tile keeps a multiple of it.
LANES = 8
# Positions every query scores before the first regrouping of the tiles; the
# later spans double. A multiple of CHECK_EVERY, so spans end at checks.
FIRST_SPAN = 128


def tile_size(dim):
    """Return the largest query tile for ``dim`` coordinates: a multiple of LANES within MAX_TILE_BYTES."""
    fit = MAX_TILE_BYTES // (4 * max(dim, 1)) // LANES * LANES
    return int(min(MAX_TILE, max(LANES, fit)))


@numba.njit(cache=True, nogil=True)
def _fill_bias(scores, bias, rows, n_valid, width):
    for r in range(ITEM_BLOCK):
        value = bias[rows[r]] if r < n_valid else np.float32(-np.inf)
        row = scores[r]
        for q in range(width):
            row[q] = value


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _accumulate_4x4(scores, tile, vectors, rows, d, width):
    """Add coordinates d to d + 3 of four items times the first ``width`` queries of the tile to their scores."""
    s0 = scores[0]
    s1 = scores[1]
    s2 = scores[2]
    s3 = scores[3]
    t0 = tile[d]
    t1 = tile[d + 1]
    t2 = tile[d + 2]
    t3 = tile[d + 3]
    x = vectors[rows[0]]
    a0, a1, a2, a3 = x[d], x[d + 1], x[d + 2], x[d + 3]
    x = vectors[rows[1]]
    b0, b1, b2, b3 = x[d], x[d + 1], x[d + 2], x[d + 3]
    x = vectors[rows[2]]
    c0, c1, c2, c3 = x[d], x[d + 1], x[d + 2], x[d + 3]
    x = vectors[rows[3]]
    e0, e1, e2, e3 = x[d], x[d + 1], x[d + 2], x[d + 3]
    for q in range(width):
        y0 = t0[q]
        y1 = t1[q]
        y2 = t2[q]
        y3 = t3[q]
        s0[q] += a0 * y0 + a1 * y1 + a2 * y2 + a3 * y3
        s1[q] += b0 * y0 + b1 * y1 + b2 * y2 + b3 * y3
        s2[q] += c0 * y0 + c1 * y1 + c2 * y2 + c3 * y3
        s3[q] += e0 * y0 + e1 * y1 + e2 * y2 + e3 * y3


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _accumulate_4x1(scores, tile, vectors, rows, d, width):
    """Add coordinate d, for dimensions that are not a multiple of four."""
    t0 = tile[d]
    for r in range(ITEM_BLOCK):
        row = scores[r]
        a = vectors[rows[r], d]
        for q in range(width):
            row[q] += a * t0[q]


@numba.njit(cache=True, nogil=True)
def _count_reaching(scores, thresholds, width):
    count = 0
    for q in range(width):
        count += scores[q] >= thresholds[q]
    return count


@numba.njit(cache=True, nogil=True)
def _is_excluded(indices, start, end, item):
    """Return whether ``item`` is in the sorted slice ``indices[start:end]``, by binary search."""
    low = start
    high = end
    while low < high:
        middle = (low + high) >> 1
        if indices[middle] < item:
            low = middle + 1
        else:
            high = middle
    return low < end and indices[low] == item


@numba.njit(cache=True, nogil=True)
def _pack(tile, keep, n_keep, width):
    """Move the columns ``keep[:n_keep]`` (increasing) of ``tile`` to the front, and zero the rest up to ``width``."""
    for d in range(tile.shape[0]):
        row = tile[d]
        for j in range(n_keep):
            row[j] = row[keep[j]]
        for j in range(n_keep, width):
            row[j] = 0.0


def exact_search(
    queries, query_norms, vectors, order, bounds, bias, exclude_indptr, exclude_indices, tile_size,
    out_ids, out_keys, out_visited,
):
    """Write the exact top-k of each query: ids and keys (minus the score), best first.

    ``k`` is ``out_ids.shape[1]``. Slots past the last eligible item get (-1, +inf).
    ``out_visited`` gets the positions of ``order`` each query scored, counted in
    whole checks. ``tile_size`` caps the queries of one parallel task. Each
    query's result depends only on that query, not on the tiles or the thread
    count: the heap settles ties by id, and a query stops only when no later item
    can reach its threshold.

    The positions run in spans: the first FIRST_SPAN, then spans that double.
    After each span the queries still running are gathered into full tiles
    again. Within one tile, queries stop at very different positions. Without
    the regrouping, the last queries of each tile would run in narrow tiles,
    where each item costs about as much as in a full one. Tiles of 8 queries
    gave 5 to 7 times fewer queries per second than tiles of 256
    (benchmarks/kernel_choices.py).
    """
    n_queries, k = out_ids.shape
    n_order = order.shape[0]
    out_visited[:] = n_order
    if n_queries == 0 or k == 0:
        return
    top_keys = np.empty((n_queries, k), dtype=np.float32)
    top_ids = np.empty((n_queries, k), dtype=np.int32)
    n_top = np.zeros(n_queries, dtype=np.int64)
    thresholds = np.full(n_queries, -np.inf, dtype=np.float32)
    active = np.arange(n_queries, dtype=np.int64)
    n_threads = numba.get_num_threads()
    low = 0
    while active.shape[0] and low < n_order:
        high = min(max(2 * low, FIRST_SPAN), n_order)
        # One tile per thread when few queries remain, so that every thread works.
        per_thread = -(-active.shape[0] // n_threads)
        tile = min(tile_size, max(LANES, -(-per_thread // LANES) * LANES))
        run_parallel(
            search_span, queries, query_norms, vectors, order, bounds, bias, exclude_indptr, exclude_indices,
            active, low, high, tile, top_keys, top_ids, n_top, thresholds, out_visited,
        )
        active = active[out_visited[active] == n_order]
        low = high
    write_results(top_keys, top_ids, n_top, out_ids, out_keys)


@numba.njit(parallel=True, cache=True)
def search_span(
    queries, query_norms, vectors, order, bounds, bias, exclude_indptr, exclude_indices,
    active, low, high, tile_size, top_keys, top_ids, n_top, thresholds, out_visited,
):
    """Score the positions ``low`` to ``high`` of ``order`` for the queries ``active``, in tiles.

    Each query's heap (``top_keys``, ``top_ids``, ``n_top``) and threshold carry
    over from one span to the next. A query that stops gets its stop position in
    ``out_visited``; the others keep ``order.shape[0]`` there.
    """
    n_active = active.shape[0]
    n_tiles = (n_active + tile_size - 1) // tile_size
    # The loop body is a function of its own: Numba's parallel passes then see a
    # short loop, which keeps the first compilation shorter.
    for tile_index in numba.prange(n_tiles):
        first = tile_index * tile_size
        _search_tile(
            queries, query_norms, vectors, order, bounds, bias, exclude_indptr, exclude_indices,
            active[first : first + min(tile_size, n_active - first)], low, high,
            top_keys, top_ids, n_top, thresholds, out_visited,
        )


@numba.njit(cache=True, nogil=True)
def _search_tile(
    queries, query_norms, vectors, order, bounds, bias, exclude_indptr, exclude_indices,
    members, low, high, top_keys, top_ids, n_top, thresholds, out_visited,
):
    """Search the queries ``members`` over the positions ``low`` to ``high``, as one tile."""
    k = top_keys.shape[1]
    dim = queries.shape[1]
    n_tile = members.shape[0]
    width = -(-n_tile // LANES) * LANES
    # Padding queries are zero: their scores are computed and never read.
    tile = np.empty((dim, width), np.float32)
    for d in range(dim):
        for q in range(width):
            tile[d, q] = queries[members[q], d] if q < n_tile else 0.0
    # lane_query maps a lane of the packed tile to its query.
    lane_query = np.empty(width, np.int64)
    lane_norm = np.empty(width, np.float32)
    lane_threshold = np.empty(width, np.float32)
    for lane in range(width):
        if lane < n_tile:
            query = members[lane]
            lane_query[lane] = query
            lane_norm[lane] = query_norms[query]
            lane_threshold[lane] = thresholds[query]
        else:
            lane_query[lane] = -1
            lane_norm[lane] = 0.0
            # An infinite threshold keeps the padding out of the count, which
            # would otherwise send every item of a partial tile to the scalar loop.
            lane_threshold[lane] = np.inf
    n_active = n_tile
    keep = np.empty(width, np.int64)
    scores = np.empty((ITEM_BLOCK, width), np.float32)
    rows = np.empty(ITEM_BLOCK, np.int64)
    for start in range(low, high, ITEM_BLOCK):
        if start > 0 and start % CHECK_EVERY == 0:
            n_keep = 0
            for lane in range(n_active):
                # Written as "not below" so that a NaN product keeps the lane.
                if not lane_norm[lane] * bounds[start] < lane_threshold[lane]:
                    keep[n_keep] = lane
                    n_keep += 1
                else:
                    out_visited[lane_query[lane]] = start
            if n_keep == 0:
                n_active = 0
                break
            if n_keep < n_active:
                width = -(-n_keep // LANES) * LANES
                _pack(tile, keep, n_keep, width)
                for j in range(n_keep):
                    lane_query[j] = lane_query[keep[j]]
                    lane_norm[j] = lane_norm[keep[j]]
                    lane_threshold[j] = lane_threshold[keep[j]]
                for lane in range(n_keep, width):
                    lane_threshold[lane] = np.inf
                n_active = n_keep
        n_valid = min(ITEM_BLOCK, high - start)
        # Past the end, the last item is scored again and never read.
        for r in range(ITEM_BLOCK):
            rows[r] = order[min(start + r, high - 1)]
        _fill_bias(scores, bias, rows, n_valid, width)
        d = 0
        while d + 4 <= dim:
            _accumulate_4x4(scores, tile, vectors, rows, d, width)
            d += 4
        while d < dim:
            _accumulate_4x1(scores, tile, vectors, rows, d, width)
            d += 1
        for r in range(n_valid):
            row = scores[r]
            if _count_reaching(row, lane_threshold, width) == 0:
                continue
            item = np.int32(rows[r])
            for lane in range(n_active):
                if row[lane] < lane_threshold[lane]:
                    continue
                query = lane_query[lane]
                if _is_excluded(exclude_indices, exclude_indptr[query], exclude_indptr[query + 1], item):
                    continue
                n_top[query] = _top_offer(top_keys[query], top_ids[query], n_top[query], -row[lane], item)
                if n_top[query] == k:
                    lane_threshold[lane] = -top_keys[query, 0]
    for lane in range(n_active):
        thresholds[lane_query[lane]] = lane_threshold[lane]


# Not parallel: sorting k entries per query is cheap next to the search, and a
# parallel kernel would add to the first compilation.
@numba.njit(cache=True, nogil=True)
def write_results(top_keys, top_ids, n_top, out_ids, out_keys):
    """Write each query's heap best first, padded with (-1, +inf)."""
    for query in range(top_keys.shape[0]):
        _write_sorted(top_keys[query], top_ids[query], n_top[query], out_ids[query], out_keys[query])
