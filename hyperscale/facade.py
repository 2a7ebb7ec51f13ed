"""The ``hyperscale`` class: recommendations and similar vectors in one call."""

import numpy as np

from . import _dask, _defaults, _exact, _filters, _transform, _validation
from ._log import log_step
from .index import GRAPH_INIT_TREES, GRAPH_LEAF_SIZE, GRAPH_MIN_VECTORS, METRICS, VectorIndex, log_choice


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

    def _new_index(self, metric, n_trees, graph=False, leaf_size=None):
        """Return an unbuilt index. The ``leaf_size`` given to the constructor wins over the one given here."""
        return VectorIndex(
            metric=metric,
            n_trees=n_trees,
            leaf_size=self.leaf_size if self.leaf_size is not None else leaf_size,
            random_state=self.random_state,
            show_progress=self.show_progress,
            verbose=self.verbose,
            graph=graph,
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

    def build_vector_index(self, item_vectors, n_trees=None, metric="angular", save_index=False, graph=False):
        """Build and return a :class:`VectorIndex` over ``item_vectors``.

        ``metric`` is "angular", "euclidean" or "dot". ``save_index`` may be False,
        True (write ``hyperscale_index.hsx`` in the working directory) or a path;
        the path written is logged. ``graph=True`` adds the neighbour graph that
        makes repeated queries faster (see :class:`VectorIndex`).
        """
        metric = _validation.check_metric(metric, METRICS)
        index = self._new_index(metric, n_trees, graph).build(item_vectors)
        if save_index is not False and save_index is not None:
            path = "hyperscale_index.hsx" if save_index is True else save_index
            written = index.save(path)
            log_step(self.verbose, "saved the index to %s", written)
        return index

    def recommend(
        self,
        user_vectors,
        item_vectors,
        n_vectors=10,
        n_trees=None,
        search_k=None,
        exclude=None,
        items=None,
        exclude_items=None,
        return_scores=False,
        target_recall=None,
    ):
        """Return the top ``n_vectors`` items for every user, by inner product.

        Parameters
        ----------
        user_vectors : array-like (n_users, dim)
        item_vectors : array-like (n_items, dim)
        n_vectors : int, default 10
            Items per user; at most n_items.
        n_trees : int, optional
            Trees of the index; default dim + 1 (the dimension after the
            transform), or, when the search effort is tuned, dim / 2 within
            [8, 16].
        search_k : int, optional
            Distinct eligible candidates scored exactly per user. Default: the
            value ``target_recall`` picks. Without it, for 5,000 users or more,
            the smallest value whose estimated recall@n_vectors reaches 0.965 on
            500 sampled users (the choice is logged), and for fewer users
            2 * n_vectors * n_trees. A call that gives neither ``n_trees`` nor
            ``search_k`` may score every item exactly instead (see below).
        exclude : sparse matrix, boolean array or list of id arrays, optional
            Items each user must not get, typically the items already seen. Pass
            a scipy.sparse matrix (CSR, CSC, COO or any other format) or a boolean
            array, of shape (n_users, n_items), or a list with one id array per
            user. Row i belongs to ``user_vectors[i]``. A wrong shape or length
            raises ValueError.
        items : array of ids or boolean mask, optional
            Allow-list: rank only these items. The result keeps the original ids.
        exclude_items : array of ids or boolean mask, optional
            Deny-list for every user. It wins over ``items``.
        return_scores : bool, default False
            Also return the exact inner products, float32, best first.
        target_recall : float, optional
            Instead of ``search_k``: estimate recall@n_vectors on a sample of up
            to 1,000 users against exact search and use the smallest search
            effort that reaches this value (see :meth:`VectorIndex.tune`).

        Returns
        -------
        ids : int32 ndarray (n_users, n_vectors)
            Item row ids, largest inner product first.
        scores : float32 ndarray (n_users, n_vectors), only with ``return_scores``
            The exact inner products, never clipped.

        When the filters leave fewer than ``n_vectors`` items for a user, the row
        ends with id -1 and score -inf.

        Given neither ``n_trees`` nor ``search_k``, the call first compares the
        cost of exact search with the cost of building and searching trees, and
        when exact search is cheaper it returns the exact top ``n_vectors``
        without building an index. Exact search visits the items in decreasing
        norm order and stops for each user once no remaining item can reach
        its top ``n_vectors``, so its cost depends on the data: the call
        measures it on a sample of 256 users. On the Gowalla ALS factors and
        on a million matrix-factorisation-like items it scored 4 to 7 % of
        the items, and won. On vectors with no common direction, such as
        Gaussian ones, it scores nearly every item, so many users favour the
        trees. A tuning that needs more candidates than
        exact search would cost also ends in exact search. Both choices are
        logged.

        When ``user_vectors`` is a dask array, the results are dask arrays with
        the same row chunks, searched when they are computed. ``exclude`` must
        then be a sparse matrix, a boolean array or a list on the client. The
        README section "Scale out with Dask" describes what runs where.
        """
        if _dask.is_dask_array(user_vectors):
            return _dask.recommend(
                self,
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
            )
        # Neither is ever written to, and the index build makes its own copy.
        users = _validation.as_matrix(user_vectors, "user_vectors", copy=False)
        items_matrix = _validation.as_matrix(item_vectors, "item_vectors", copy=False)
        _validation.check_same_dim(users.shape[1], items_matrix.shape[1], "user_vectors", "item_vectors")
        n_vectors = _validation.check_count(n_vectors, "n_vectors", items_matrix.shape[0], "the number of items")
        # Check the filters before the build, so a mistake costs no time.
        _filters.exclusions_to_csr(exclude, users.shape[0], items_matrix.shape[0], "user_vectors")
        _filters.eligible_mask(np.ones(items_matrix.shape[0], dtype=bool), items, exclude_items)

        target_recall, sample = _defaults.recommend_target(search_k, target_recall, users.shape[0])
        tuned = target_recall is not None
        exact = _exact.ExactItems(items_matrix, self.verbose, self.show_progress)
        use_exact, planned, share = _exact.prefers_exact(
            exact, users, users.shape[0], n_vectors, n_trees, search_k
        )
        if use_exact:
            n_sample = min(users.shape[0], _defaults.EXACT_SAMPLE)
            _exact.log_exact_choice(self.verbose, users.shape[0], planned, share, n_sample)
            ids, scores = exact.query(users, n_vectors, exclude=exclude, items=items, exclude_items=exclude_items)
            return (ids, scores) if return_scores else ids
        n_trees = _defaults.recommend_trees(n_trees, items_matrix.shape[1], tuned)
        index = self._new_index("dot", n_trees).build(items_matrix)
        log_step(self.verbose, "augmenting user vectors with an extra dimension (zero, so it is implicit)")
        if tuned:
            if share is None:
                share = exact.scored_share(users, n_vectors)
            max_search_k = _defaults.exact_threshold(index.n_indexed, items_matrix.shape[1], share)
            search_k, estimate, n_sample = index._tune(
                users,
                target_recall,
                n_vectors,
                sample,
                random_state=0,
                exclude=exclude,
                items=items,
                exclude_items=exclude_items,
                max_search_k=max_search_k,
            )
            if estimate < target_recall:
                log_step(
                    self.verbose,
                    "switching to exact search: search_k=%d, the most that costs less, gives estimated "
                    "recall@%d %.3f on %d sample users (target %.3f)",
                    search_k,
                    n_vectors,
                    estimate,
                    n_sample,
                    target_recall,
                )
                ids, scores = exact.query(
                    users, n_vectors, exclude=exclude, items=items, exclude_items=exclude_items
                )
                return (ids, scores) if return_scores else ids
            log_choice(self.verbose, search_k, n_vectors, estimate, n_sample, target_recall)
        log_step(self.verbose, "finding top %d for all %d users", n_vectors, users.shape[0])
        ids, scores = index.query(
            users, k=n_vectors, search_k=search_k, exclude=exclude, items=items, exclude_items=exclude_items
        )
        return (ids, scores) if return_scores else ids

    def find_similar_vectors(
        self,
        vectors,
        vector_id=None,
        n_vectors=10,
        n_trees=None,
        metric="euclidean",
        search_k=None,
        exclude_self=False,
        exclude=None,
        items=None,
        exclude_items=None,
        return_scores=False,
        target_recall=None,
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
        search_k : int, optional
            Distinct eligible candidates scored exactly per row; default
            2 * n_vectors * n_trees.
        exclude_self : bool, default False
            False: each row starts with the vector itself, as in Annoy's
            ``get_nns_by_item`` (exact duplicates follow at distance 0). True: the
            vector itself is left out, but its duplicates are still returned.
        exclude : sparse matrix, boolean array or list of id arrays, optional
            Vectors that each row must not return, with one row per queried
            vector: n rows, or 1 row with ``vector_id``.
        items, exclude_items : array of ids or boolean mask, optional
            Allow-list and deny-list of the vectors that may be returned.
        return_scores : bool, default False
            Also return the second array of :meth:`VectorIndex.query`: the
            Euclidean distance, the cosine distance 1 - cos (for "angular") or the
            inner product (for "dot").
        target_recall : float, optional
            Instead of ``search_k``: tune the search effort on a sample of up to
            1,000 rows to reach this estimated recall.

        Returns
        -------
        int32 ndarray
            (n, n_vectors) for every row, or (n_vectors,) for one ``vector_id``;
            with ``return_scores`` also the float32 values of the same shape.
            Under "angular", the row of an all-zero vector is all -1. Filters that
            leave too few vectors end a row with id -1.
        """
        metric = _validation.check_metric(metric, METRICS)
        matrix = _validation.as_matrix(vectors, "vectors")
        if vector_id is not None:
            vector_id = _validation.check_vector_id(vector_id, matrix.shape[0])
        if exclude_self and matrix.shape[0] == 1:
            raise ValueError("exclude_self=True needs at least 2 vectors; vectors has 1")
        if exclude_self:
            limit, description = matrix.shape[0] - 1, "the number of vectors minus the vector itself"
        else:
            limit, description = matrix.shape[0], "the number of vectors"
        n_vectors = _validation.check_count(n_vectors, "n_vectors", limit, description)
        n_rows = matrix.shape[0] if vector_id is None else 1
        _filters.exclusions_to_csr(exclude, n_rows, matrix.shape[0], "queried vectors")
        _filters.eligible_mask(np.ones(matrix.shape[0], dtype=bool), items, exclude_items)

        graph_call = (
            vector_id is None
            and search_k is None
            and target_recall is None
            and exclude is None
            and items is None
            and exclude_items is None
        )
        leaf_size = None
        if graph_call and n_trees is None and metric in ("euclidean", "angular"):
            # The graph starts from the leaves of GRAPH_INIT_TREES trees, so more
            # trees would only lengthen the build. Below GRAPH_MIN_VECTORS the trees
            # are searched, and the default number of trees is kept.
            if matrix.shape[0] >= GRAPH_MIN_VECTORS:
                n_trees = GRAPH_INIT_TREES
                leaf_size = GRAPH_LEAF_SIZE
        index = self._new_index(metric, n_trees, leaf_size=leaf_size).build(matrix)
        if target_recall is not None and search_k is None:
            # ``exclude`` has one row per queried vector, and tuning samples rows
            # of the whole matrix, so it applies only when every row is queried.
            search_k, _ = index.tune(
                matrix,
                target_recall=target_recall,
                k=n_vectors,
                exclude=exclude if vector_id is None else None,
                items=items,
                exclude_items=exclude_items,
            )
        options = dict(
            k=n_vectors,
            search_k=search_k,
            exclude_self=exclude_self,
            exclude=exclude,
            items=items,
            exclude_items=exclude_items,
        )
        if vector_id is None:
            log_step(self.verbose, "finding top %d for all %d vectors", n_vectors, matrix.shape[0])
            ids, values = index.neighbors(None, **options)
        else:
            log_step(self.verbose, "finding top %d for vector %d", n_vectors, vector_id)
            ids, values = index.neighbors(vector_id, **options)
            ids, values = ids[0], values[0]
        return (ids, values) if return_scores else ids
