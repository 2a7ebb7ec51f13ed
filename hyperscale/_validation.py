"""Input checks shared by the public API: clear errors before any kernel runs."""

import numbers

import numpy as np

# float32 overflows above this; scores and squared distances must stay below it.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Squared distances and inner products below this keep fewer than float32's 24
# bits, and far below it they are zero, so the ranking is lost.
FLOAT32_SMALLEST_KEY = float(np.finfo(np.float32).tiny) * 2.0**23

_MAX_ROWS_LISTED = 5


def _describe_rows(rows):
    listed = ", ".join(str(int(r)) for r in rows[:_MAX_ROWS_LISTED])
    n_more = len(rows) - _MAX_ROWS_LISTED
    if n_more > 0:
        listed += f", … ({n_more} more)"
    return f"[{listed}]"


def as_matrix(values, name, copy=True):
    """Return ``values`` as a C-contiguous float32 (n, d) array; raise on bad input.

    The caller's array is never modified. The result is a copy, unless ``copy``
    is false and ``values`` already is a C-contiguous float32 array: callers
    that only read the result then skip the copy. Accepts any array-like of
    real numbers (lists, integer, float, strided, Fortran-order or read-only
    arrays).
    """
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise TypeError(f"{name} could not be converted to a numeric array: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got complex dtype {array.dtype}")
    if array.ndim != 2:
        hint = ""
        if array.ndim == 1:
            hint = (
                f"; use {name}.reshape(1, -1) for a single vector "
                f"or {name}.reshape(-1, 1) for one-dimensional vectors"
            )
        raise ValueError(f"{name} must be a 2-D array (n_vectors, dim), got shape {array.shape}{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {array.shape}")

    finite_rows = np.isfinite(array).all(axis=1)
    if not finite_rows.all():
        bad = np.flatnonzero(~finite_rows)
        raise ValueError(
            f"{name} contains NaN or infinity in rows {_describe_rows(bad)}; "
            "remove or impute those rows first"
        )
    # By default, keep the copy even for float32 input: the index owns its arrays.
    with np.errstate(over="ignore"):
        if copy:
            matrix = np.array(array, dtype=np.float32, order="C", copy=True)
        else:
            matrix = np.ascontiguousarray(array, dtype=np.float32)
    overflow_rows = ~np.isfinite(matrix).all(axis=1)
    if overflow_rows.any():
        bad = np.flatnonzero(overflow_rows)
        largest = float(np.abs(array[bad]).max())
        raise ValueError(
            f"{name} has values up to {largest:.3g} in rows {_describe_rows(bad)}, beyond float32's "
            f"largest value {FLOAT32_MAX:.3g}; rescale the vectors"
        )
    # A row that is non-zero before the conversion and zero after it would rank
    # as a zero vector without any warning.
    zero_rows = np.flatnonzero(~matrix.any(axis=1))
    bad = zero_rows[np.asarray(array[zero_rows] != 0).any(axis=1)] if zero_rows.size else zero_rows
    if bad.size:
        largest = float(np.abs(array[bad]).max())
        raise ValueError(
            f"{name} has rows {_describe_rows(bad)} whose values, at most {largest:.3g} in magnitude, "
            "round to zero in float32; rescale the vectors"
        )
    return matrix


def check_same_dim(dim, expected, name, expected_name):
    if dim != expected:
        raise ValueError(
            f"{name} have {dim} dimensions but {expected_name} have {expected}; "
            "both must come from the same model"
        )


def _is_integer(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(value, name, maximum, maximum_description):
    """Return ``value`` as an int in [1, maximum]; raise TypeError or ValueError otherwise."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > maximum:
        raise ValueError(
            f"{name}={value} is larger than {maximum_description} ({maximum}); "
            f"ask for at most {maximum}"
        )
    return value


def check_optional_positive(value, name):
    """Return None or ``value`` as a positive int; used for n_trees, leaf_size, search_k."""
    if value is None:
        return None
    if not _is_integer(value):
        raise TypeError(f"{name} must be a positive integer or None, got {value!r}")
    if int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {int(value)}")
    return int(value)


def check_bound_factor(value, metric, search_k):
    """Return None or ``value`` as a float in (0, 1]. The factor applies to metric "dot" only."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"bound_factor must be a number in (0, 1] or None, got {value!r}")
    value = float(value)
    if not 0 < value <= 1:
        raise ValueError(f"bound_factor must be in (0, 1], got {value}. Pass 1 for exact search, or less for a faster one")
    if metric != "dot":
        raise ValueError(f"bound_factor applies to metric 'dot' only, and this index uses {metric!r}. Pass search_k instead")
    if search_k is not None:
        raise ValueError(f"pass search_k ({search_k}) or bound_factor ({value}), not both: they choose different searches")
    return value


def check_vector_id(value, n_vectors):
    """Return a row id in [0, n_vectors) as an int.

    Negative ids are rejected rather than counted from the end, so that a -1 used
    as a "missing" marker elsewhere never selects the last row by accident.
    """
    if not _is_integer(value):
        raise TypeError(f"vector_id must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if not 0 <= value < n_vectors:
        raise IndexError(f"vector_id {value} is out of range: valid ids are 0 to {n_vectors - 1}")
    return value


def check_ids(values, n_vectors, name):
    """Return an int64 array of row ids, each in [0, n_vectors)."""
    ids = np.asarray(values)
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be an integer or a 1-D array of integers, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    out_of_range = (ids < 0) | (ids >= n_vectors)
    if out_of_range.any():
        raise IndexError(
            f"{name} has ids out of range: {_describe_rows(ids[out_of_range])}; "
            f"valid ids are 0 to {n_vectors - 1}"
        )
    return ids


def check_metric(metric, allowed):
    if not isinstance(metric, str) or metric not in allowed:
        raise ValueError(f"metric must be one of {', '.join(map(repr, allowed))}, got {metric!r}")
    return metric


def tree_seeds(random_state, n_trees):
    """Draw one uint64 seed per tree from an int, a numpy Generator, a RandomState or None.

    None draws fresh entropy from the operating system, so each build differs.
    """
    if isinstance(random_state, np.random.RandomState):
        return random_state.randint(0, 2**63, size=n_trees, dtype=np.uint64)
    if random_state is None or _is_integer(random_state) or isinstance(random_state, np.random.Generator):
        if _is_integer(random_state) and int(random_state) < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {int(random_state)}")
        generator = np.random.default_rng(random_state)
        return generator.integers(0, 2**63, size=n_trees, dtype=np.uint64)
    raise TypeError(
        "random_state must be None, an integer, a numpy Generator or a numpy RandomState, "
        f"got {random_state!r}"
    )


def check_inner_product_range(queries, max_item_norm):
    """Raise ValueError when an inner product of a query and an item could overflow float32."""
    largest_query = float(np.linalg.norm(queries.astype(np.float64), axis=1).max())
    if largest_query * max_item_norm > FLOAT32_MAX:
        raise ValueError(
            f"inner products of queries with norm up to {largest_query:.3g} and items with "
            f"norm up to {max_item_norm:.3g} overflow float32; rescale the queries or the items"
        )
    if 0.0 < largest_query * max_item_norm < FLOAT32_SMALLEST_KEY:
        raise ValueError(
            f"inner products of queries with norm up to {largest_query:.3g} and items with "
            f"norm up to {max_item_norm:.3g} underflow float32, which loses their ranking; "
            "rescale the queries or the items (for example divide each by its largest norm)"
        )
