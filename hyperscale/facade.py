"""The ``hyperscale`` class: recommendations and similar vectors in one call."""

import numpy as np

from . import _transform, _validation
from ._log import log_step
from .index import METRICS, VectorIndex


class hyperscale:  # noqa: N801  (the lower-case name is the public API users start from)
    """Fast top-k recommendations and similarity search from trained vectors.

    Parameters
    ----------
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of every index this object builds. None (the default) draws a fresh
        seed each time, so repeated calls may differ slightly; pass an integer for
        reproducible results.
    show_progress : bool, default True
        Show tqdm bars while building and querying.
    verbose : bool, default True
        Log each step at INFO on the ``⚡hyperscale`` logger; False logs at DEBUG.
    leaf_size : int, optional
        Maximum number of points per leaf of every index (default 32).

    Examples
    --------
    >>> from hyperscale import hyperscale
    >>> hs = hyperscale()
    >>> recommendations = hs.recommend(user_vectors, item_vectors)  # doctest: +SKIP
    """

    def __init__(self, random_state=None, show_progress=True, verbose=True, leaf_size=None):
        self.random_state = random_state
        self.show_progress = show_progress
        self.verbose = verbose
        self.leaf_size = _validation.check_optional_positive(leaf_size, "leaf_size")

    def _new_index(self, metric, n_trees):
        return VectorIndex(
            metric=metric,
            n_trees=n_trees,
            leaf_size=self.leaf_size,
            random_state=self.random_state,
            show_progress=self.show_progress,
            verbose=self.verbose,
        )

    def augment_vectors(self, item_vectors):
        """Return ``item_vectors`` with the Euclidean transformation's extra coordinate.

        Row x becomes (x, sqrt(M² - |x|²)), where M is the largest row norm, so that
        every row has norm M. The result is float32 for float32 input and float64
        otherwise; the input is not modified.
        """
        dtype = np.float32 if np.asarray(item_vectors).dtype == np.float32 else np.float64
        vectors = _validation.as_matrix(item_vectors, "item_vectors")
        log_step(self.verbose, "augmenting vectors with the Euclidean transformation")
        extra, _ = _transform.extra_coordinate(vectors)
        augmented = np.empty((vectors.shape[0], vectors.shape[1] + 1), dtype=dtype)
        augmented[:, :-1] = np.asarray(item_vectors, dtype=dtype)
        augmented[:, -1] = extra
        return augmented

    def build_vector_index(self, item_vectors, n_trees=None, metric="angular", save_index=False):
        """Build and return a :class:`VectorIndex` over ``item_vectors``.

        ``metric`` is "angular", "euclidean" or "dot". ``save_index`` may be False,
        True (write ``hyperscale_index.hsx`` in the working directory) or a path;
        the path written is logged.
        """
        metric = _validation.check_metric(metric, METRICS)
        index = self._new_index(metric, n_trees).build(item_vectors)
        if save_index is not False and save_index is not None:
            path = "hyperscale_index.hsx" if save_index is True else save_index
            written = index.save(path)
            log_step(self.verbose, "saved the index to %s", written)
        return index

    def recommend(self, user_vectors, item_vectors, n_vectors=10, n_trees=None, search_k=None):
        """Return the top ``n_vectors`` items for every user, by inner product.

        Parameters
        ----------
        user_vectors : array-like (n_users, dim)
        item_vectors : array-like (n_items, dim)
        n_vectors : int, default 10
            Items per user; at most n_items.
        n_trees : int, optional
            Trees of the index; default dim + 1 (the dimension after the transform).
        search_k : int, optional
            Distinct candidates scored exactly per user; default 3 * n_vectors * n_trees.

        Returns
        -------
        int32 ndarray (n_users, n_vectors)
            Item row ids, largest inner product first.
        """
        users = _validation.as_matrix(user_vectors, "user_vectors")
        items = _validation.as_matrix(item_vectors, "item_vectors")
        _validation.check_same_dim(users.shape[1], items.shape[1], "user_vectors", "item_vectors")
        n_vectors = _validation.check_count(n_vectors, "n_vectors", items.shape[0], "the number of items")

        index = self._new_index("dot", n_trees).build(items)
        log_step(self.verbose, "augmenting user vectors with an extra dimension (zero, so it is implicit)")
        log_step(self.verbose, "finding top %d for all %d users", n_vectors, users.shape[0])
        ids, _ = index.query(users, k=n_vectors, search_k=search_k)
        return ids

    def find_similar_vectors(
        self,
        vectors,
        vector_id=None,
        n_vectors=10,
        n_trees=None,
        metric="euclidean",
        search_k=None,
        exclude_self=False,
    ):
        """Return the ``n_vectors`` most similar vectors for every vector, or for one.

        Parameters
        ----------
        vectors : array-like (n, dim)
        vector_id : int, optional
            One row id (any integer type, 0 <= id < n). None: every row.
        n_vectors : int, default 10
            Neighbours per row.
        metric : {"euclidean", "angular", "dot"}, default "euclidean"
        exclude_self : bool, default False
            False: each row starts with the vector itself, as in Annoy's
            ``get_nns_by_item`` (exact duplicates follow at distance 0). True: the
            vector itself is left out; its duplicates are still returned.

        Returns
        -------
        int32 ndarray
            (n, n_vectors) for every row, or (n_vectors,) for one ``vector_id``.
            Under "angular", the row of an all-zero vector is all -1.
        """
        metric = _validation.check_metric(metric, METRICS)
        matrix = _validation.as_matrix(vectors, "vectors")
        if vector_id is not None:
            vector_id = _validation.check_vector_id(vector_id, matrix.shape[0])
        limit = matrix.shape[0] - 1 if exclude_self else matrix.shape[0]
        if limit == 0:
            raise ValueError("exclude_self=True needs at least 2 vectors; vectors holds 1")
        n_vectors = _validation.check_count(
            n_vectors,
            "n_vectors",
            limit,
            "the number of vectors minus the vector itself" if exclude_self else "the number of vectors",
        )

        index = self._new_index(metric, n_trees).build(matrix)
        if vector_id is None:
            log_step(self.verbose, "finding top %d for all %d vectors", n_vectors, matrix.shape[0])
            ids, _ = index.neighbors(None, k=n_vectors, search_k=search_k, exclude_self=exclude_self)
            return ids
        log_step(self.verbose, "finding top %d for vector %d", n_vectors, vector_id)
        ids, _ = index.neighbors(vector_id, k=n_vectors, search_k=search_k, exclude_self=exclude_self)
        return ids[0]
