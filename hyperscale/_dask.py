"""``recommend`` and ``VectorIndex.query`` on dask arrays of queries, computed lazily.

The index is built (or was built) on the client. Every row chunk of the queries
becomes one task that calls ``VectorIndex.query`` on that chunk. Each query's
result depends only on that query, the index and ``search_k``, so the chunked
results equal those of one local call. When dask computes on a
``dask.distributed`` client, the index is scattered to every worker once per
call. The local schedulers pass the index object to the tasks directly.

dask is imported only when a dask array is passed, so ``import hyperscale`` never
loads it.
"""

import copy
import math
import uuid

import numpy as np

from . import _defaults, _exact, _filters, _validation
from ._log import log_step

INSTALL_COMMAND = 'pip install "hyperscale[dask]"'


def is_dask_array(value):
    """Return True when ``value`` is a dask array, without importing dask."""
    cls = type(value)
    return cls.__module__.startswith("dask.") and hasattr(cls, "map_blocks")


def _import_dask():
    """Import and return ``dask``, ``dask.array`` and ``distributed``, or raise ImportError naming the extra."""
    try:
        import dask
        import dask.array
        import distributed
    except ImportError as error:
        raise ImportError(
            f"searching a dask array needs dask.array and distributed, and the import failed: {error}. "
            f"Install them with: {INSTALL_COMMAND}"
        ) from error
    return dask, dask.array, distributed


def _distributed_client(dask, distributed):
    """Return the distributed Client that dask computes with at this moment, or None.

    ``dask.base.get_scheduler()`` follows the default client and also
    ``dask.config.set(scheduler=...)``, so a local scheduler chosen that way wins
    over an open client.
    """
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if isinstance(client, distributed.Client) else None


# ----------------------------------------------------------------------
# Checks on the client, before anything is built or scheduled
# ----------------------------------------------------------------------


def _prepare_queries(queries, da, name):
    """Check a dask array of queries and return it with one chunk across, converted to float32 lazily.

    The values themselves are checked (NaN, infinity, float32 overflow) by each
    task when the result is computed.
    """
    if not isinstance(queries, da.Array):
        raise TypeError(
            f"{name} of type {type(queries).__name__} is not a dask array. Pass a dask array or a numpy array "
            "(convert a dask DataFrame with its to_dask_array(lengths=True))"
        )
    if queries.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_vectors, dim), got shape {queries.shape}")
    dtype = np.dtype(queries.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must contain real numbers, got a dask array of dtype {dtype}")
    if any(math.isnan(size) for size in queries.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {queries.shape}), so its rows cannot be matched to "
            f"the results. Call {name}.compute_chunk_sizes() first"
        )
    if queries.shape[0] == 0 or queries.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {queries.shape}")
    if queries.numblocks[1] > 1:
        queries = queries.rechunk({1: -1})
    return queries.map_blocks(_as_float32_chunk, name, dtype=np.float32, meta=np.empty((0, 0), np.float32))


def _check_exclusions(exclude, n_rows, n_items, name):
    """Raise when ``exclude`` does not have one row per query and one column per item.

    A sparse matrix gets a shape check only, because converting it in full would
    copy it on the client. Boolean masks and lists of ids are checked in full,
    as the local path does.
    """
    if exclude is None:
        return
    if _filters._is_sparse(exclude):
        _filters._check_shape(exclude.shape, n_rows, n_items, name)
    else:
        _filters.exclusions_to_csr(exclude, n_rows, n_items, name)


def _split_exclusions(exclude, row_chunks):
    """Return one row slice of ``exclude`` per row chunk of the queries."""
    rows = exclude.tocsr() if _filters._is_sparse(exclude) else exclude
    bounds = np.cumsum((0,) + tuple(row_chunks))
    return [rows[low:high] for low, high in zip(bounds[:-1], bounds[1:])]


def _allowed_items(n_items, items, exclude_items):
    """Merge the allow-list and the deny-list into one boolean mask, or None without filters.

    Passing the mask as ``items=`` to ``VectorIndex.query`` selects the same items
    as the two lists, and every task then receives n_items bytes at most.
    """
    if items is None and exclude_items is None:
        return None
    return _filters.eligible_mask(np.ones(n_items, dtype=bool), items, exclude_items).astype(bool)


# ----------------------------------------------------------------------
# Tasks: these run on the workers, once per row chunk
# ----------------------------------------------------------------------


def _as_float32_chunk(block, name, block_info=None):
    """Convert one row chunk to float32. An invalid value raises ValueError naming the chunk's first row."""
    if block.shape[0] == 0:
        return np.empty(block.shape, dtype=np.float32)
    first_row = block_info[0]["array-location"][0][0]
    try:
        return _validation.as_matrix(block, name)
    except ValueError as error:
        raise ValueError(
            f"{error} (the rows are numbered within the dask chunk that starts at row {first_row} of {name})"
        ) from None


def _search_chunk(query_blocks, index, exclusion_blocks, k, search_k, allowed, return_values, bound_factor):
    """Search one row chunk with ``index.query``.

    blockwise passes each input as a list with the chunk's one block.
    Returns the int32 ids, or with ``return_values`` an int32 array of shape
    (rows, k, 2) whose second plane contains the float32 values bit for bit, so
    that one task returns both results.
    """
    (queries,) = query_blocks
    exclude = None
    if exclusion_blocks is not None:
        (exclude,) = exclusion_blocks
    if queries.shape[0] == 0:
        ids = np.empty((0, k), dtype=np.int32)
        values = np.empty((0, k), dtype=np.float32)
    else:
        # Only VectorIndex.query takes bound_factor, and only the caller's factor is passed.
        options = {} if bound_factor is None else {"bound_factor": bound_factor}
        ids, values = index.query(queries, k=k, search_k=search_k, exclude=exclude, items=allowed, **options)
    if not return_values:
        return ids
    return np.stack([ids, values.view(np.int32)], axis=-1)


# ----------------------------------------------------------------------
# Graph construction
# ----------------------------------------------------------------------


def _search_lazily(index, queries, k, search_k, exclude, allowed, return_values, modules, bound_factor=None):
    """Return dask arrays of the ids (and values) of ``queries`` against ``index``.

    ``queries`` comes from :func:`_prepare_queries`, and every other argument has
    been checked.
    """
    dask, da, distributed = modules
    token = uuid.uuid4().hex
    row_chunks = queries.chunks[0]
    exclusion_parts = None if exclude is None else _split_exclusions(exclude, row_chunks)

    # The copy shares the index arrays. It only stops the tasks from drawing
    # progress bars.
    worker_index = copy.copy(index)
    worker_index.show_progress = False

    client = _distributed_client(dask, distributed)
    if client is None:
        index_argument = worker_index
    else:
        # One scatter per call: the tasks receive a reference to the copy that
        # every worker already stores, never the index itself. The result arrays
        # keep that copy alive on the workers until they are garbage-collected.
        # NOTE: such a result can be computed only on this client. Under a local
        # scheduler dask fails with "Missing dependency VectorIndex-...".
        [index_argument] = client.scatter([worker_index], broadcast=True, hash=False)
        sent = "the items" if isinstance(index, _exact.ExactItems) else "the index"
        log_step(index.verbose, "sent %s (%.1f MB) to every dask worker", sent, index.nbytes / 1e6)
        if exclusion_parts is not None:
            exclusion_parts = client.scatter(exclusion_parts, hash=False)

    exclusions = None
    if exclusion_parts is not None:
        blocks = [
            da.from_delayed(
                dask.delayed(part, name=f"hyperscale-exclude-{token}-{number}", traverse=False),
                shape=(rows, len(index)),
                dtype=bool,
                meta=np.empty((0, 0), dtype=bool),
            )
            for number, (part, rows) in enumerate(zip(exclusion_parts, row_chunks))
        ]
        exclusions = da.concatenate(blocks, axis=0)

    new_axes = {"k": k, "p": 2} if return_values else {"k": k}
    output_index = "ikp" if return_values else "ik"
    result = da.blockwise(
        _search_chunk,
        output_index,
        queries,
        "id",
        index_argument,
        None,
        exclusions,
        None if exclusions is None else "ie",
        k,
        None,
        search_k,
        None,
        allowed,
        None,
        return_values,
        None,
        bound_factor,
        None,
        new_axes=new_axes,
        dtype=np.int32,
        meta=np.empty((0,) * len(output_index), dtype=np.int32),
        # An explicit name keeps dask from hashing the index and the filters.
        name=f"hyperscale-search-{token}",
    )
    if not return_values:
        return result, None
    return result[:, :, 0], result[:, :, 1].view(np.float32)


def query(index, queries, k=10, search_k=None, exclude=None, items=None, exclude_items=None, bound_factor=None):
    """Run ``VectorIndex.query`` lazily on a dask array and return dask arrays (ids int32, values float32)."""
    modules = _import_dask()
    queries = _prepare_queries(queries, modules[1], "queries")
    _validation.check_same_dim(queries.shape[1], index.dim, "queries", "the indexed vectors")
    k = _validation.check_count(k, "k", len(index), "the number of indexed vectors")
    walk = index.graph
    if bound_factor is None:
        search_k = index._effective_search_k(k, search_k, walk)
    _check_exclusions(exclude, queries.shape[0], len(index), "queries")
    allowed = _allowed_items(len(index), items, exclude_items)
    return _search_lazily(index, queries, k, search_k, exclude, allowed, True, modules, bound_factor)


def _first_rows(queries):
    """Compute and return the first non-empty row chunk of a dask array."""
    number = next(number for number, rows in enumerate(queries.chunks[0]) if rows > 0)
    return queries.blocks[number].compute()


def recommend(
    hs,
    user_vectors,
    item_vectors,
    n_vectors,
    n_trees,
    search_k,
    exclude,
    items,
    exclude_items,
    return_scores,
    target_recall,
):
    """Run ``hyperscale.recommend`` lazily on a dask array of users. Its docstring describes the arguments."""
    modules = _import_dask()
    users = _prepare_queries(user_vectors, modules[1], "user_vectors")
    items_matrix = _validation.as_matrix(item_vectors, "item_vectors", copy=False)
    _validation.check_same_dim(users.shape[1], items_matrix.shape[1], "user_vectors", "item_vectors")
    n_items = items_matrix.shape[0]
    n_vectors = _validation.check_count(n_vectors, "n_vectors", n_items, "the number of items")
    _check_exclusions(exclude, users.shape[0], n_items, "user_vectors")
    allowed = _allowed_items(n_items, items, exclude_items)

    target_recall, sample = _defaults.recommend_target(search_k, target_recall, users.shape[0])
    tuned = target_recall is not None
    exact = _exact.ExactItems(items_matrix, hs.verbose)
    # The choice needs concrete users: it samples the first chunk.
    use_exact, planned, share, n_sample = (False, None, None, 0)
    sample_source = None
    if _defaults.replaces_trees(n_trees, search_k):
        sample_source = _first_rows(users)
        n_sample = min(sample_source.shape[0], _defaults.EXACT_SAMPLE)
        use_exact, planned, share = _exact.prefers_exact(
            exact, sample_source, users.shape[0], n_vectors, n_trees, search_k
        )
    if use_exact:
        _exact.log_exact_choice(hs.verbose, users.shape[0], planned, share, n_sample)
        message = "scheduling exact top %d for all %d users in %d dask chunks"
        log_step(hs.verbose, message, n_vectors, users.shape[0], users.numblocks[0])
        ids, scores = _search_lazily(exact, users, n_vectors, None, exclude, allowed, return_scores, modules)
        return (ids, scores) if return_scores else ids
    index = hs._new_index("dot", _defaults.recommend_trees(n_trees, items_matrix.shape[1], tuned)).build(items_matrix)
    if tuned:
        # Tuning needs concrete vectors: it computes one chunk and samples it.
        # NOTE: tuning here applies the item filters but not the per-user
        # ``exclude``, whose rows would first have to be cut to the first chunk.
        # Nor does it switch to exact search when the tuned budget costs more
        # than exact search, as the in-memory call does: the trees then search with it.
        if sample_source is None:
            sample_source = _first_rows(users)
        search_k, _ = index.tune(
            sample_source, target_recall=target_recall, k=n_vectors, sample=sample, items=allowed
        )
    search_k = index._effective_search_k(n_vectors, search_k)
    log_step(
        hs.verbose,
        "scheduling top %d for all %d users in %d dask chunks; the search runs when the result is computed",
        n_vectors,
        users.shape[0],
        users.numblocks[0],
    )
    ids, scores = _search_lazily(index, users, n_vectors, search_k, exclude, allowed, return_scores, modules)
    return (ids, scores) if return_scores else ids
