"""Conversion of item filters into the arrays the search kernel reads.

Per-query exclusions (``exclude=``) become CSR arrays ``(indptr, indices)`` with
one row per query. Allow- and deny-lists for every query (``items=``,
``exclude_items=``) become one mask of eligible items. scipy is imported only when
a sparse matrix is passed.
"""

import numpy as np

from ._validation import check_ids

_FORMATS = (
    "a scipy.sparse matrix of shape (n_queries, n_items), a boolean numpy array of "
    "that shape, or a list with one array of item ids (or one boolean mask) per query"
)


def _is_sparse(value):
    module = type(value).__module__
    return module.startswith("scipy.sparse") and hasattr(value, "tocsr")


def exclusions_to_csr(exclude, n_queries, n_items, query_name):
    """Return ``(indptr int64, indices int32)`` of the items each query must skip.

    ``exclude`` is None, a scipy.sparse matrix in any format, a boolean array of
    shape (n_queries, n_items), or a list with one id array or boolean mask per query. Rows line
    up with the queries: row i belongs to the i-th query passed, not to a user id.
    """
    if exclude is None:
        return np.zeros(n_queries + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)

    if _is_sparse(exclude):
        _check_shape(exclude.shape, n_queries, n_items, query_name)
        matrix = exclude.tocsr(copy=True)
        # A stored zero is not an interaction.
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32)

    if isinstance(exclude, np.ndarray):
        if exclude.dtype != np.bool_:
            raise TypeError(
                f"exclude as a numpy array must be a boolean mask, got dtype {exclude.dtype}; pass {_FORMATS}. "
                "For a 0/1 matrix pass exclude.astype(bool)"
            )
        if exclude.ndim != 2:
            raise ValueError(f"exclude as a boolean mask must be 2-D (n_queries, n_items), got shape {exclude.shape}")
        _check_shape(exclude.shape, n_queries, n_items, query_name)
        rows, columns = np.nonzero(exclude)
        indptr = np.zeros(n_queries + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_queries), out=indptr[1:])
        return indptr, columns.astype(np.int32)

    if isinstance(exclude, (list, tuple)):
        if len(exclude) != n_queries:
            raise ValueError(
                f"exclude has {len(exclude)} rows but there are {n_queries} {query_name}; "
                f"pass one list of item ids per row of {query_name}, in the same order"
            )
        rows = [_id_list(row, n_items, f"exclude[{i}]") for i, row in enumerate(exclude)]
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        indptr = np.zeros(n_queries + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, dtype=np.int32)
        return indptr, indices

    raise TypeError(f"exclude of type {type(exclude).__name__} is not supported; pass {_FORMATS}")


def _check_shape(shape, n_queries, n_items, query_name):
    if tuple(shape) != (n_queries, n_items):
        raise ValueError(
            f"exclude has shape {tuple(shape)} but must be ({n_queries}, {n_items}): "
            f"one row per row of {query_name} and one column per item"
        )


def _id_list(values, n_items, name):
    """Return the ids in ``values``: an array of ids or a boolean mask of length ``n_items``."""
    array = np.asarray(values)
    if array.dtype == np.bool_:
        if array.shape != (n_items,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n_items},), got {array.shape}")
        return np.flatnonzero(array)
    # Integers are ids, so a 0/1 integer mask would silently name only items 0 and 1.
    if (
        n_items > 2
        and array.shape == (n_items,)
        and np.issubdtype(array.dtype, np.integer)
        and np.isin(array, (0, 1)).all()
    ):
        raise ValueError(
            f"{name} is ambiguous: it has one integer per item ({n_items}), all 0 or 1, but integer arrays "
            f"are read as item ids (here only items 0 and 1). Pass a mask as booleans, for example "
            f"np.asarray({name}, dtype=bool), or pass the item ids"
        )
    return check_ids(array, n_items, name)


def eligible_mask(indexed, items, exclude_items):
    """Return a uint8 mask of the items a query may return.

    ``items`` (an allow-list) and ``exclude_items`` (a deny-list) are arrays of
    ids or boolean masks; an item in both is excluded.
    """
    n_items = indexed.shape[0]
    mask = indexed.astype(np.uint8)
    if items is not None:
        allow = np.zeros(n_items, dtype=np.uint8)
        allow[_id_list(items, n_items, "items")] = 1
        mask &= allow
    if exclude_items is not None:
        mask[_id_list(exclude_items, n_items, "exclude_items")] = 0
    return mask
