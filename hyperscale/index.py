"""``VectorIndex``: a random-projection forest built once and queried many times."""

import numpy as np

from . import _dask, _defaults, _filters, _forest, _graph, _kernels, _persist, _transform, _tuning, _validation
from ._log import log_step, progress_bar
from ._version import __version__

METRICS = ("angular", "euclidean", "dot")

_METRIC_CODES = {
    "euclidean": _kernels.METRIC_EUCLIDEAN,
    "angular": _kernels.METRIC_ANGULAR,
    "dot": _kernels.METRIC_DOT,
}

# Points per leaf at most (unless a node reaches the depth cap). Measured on
# 100,000 x 16 uniform items: 16 gives slightly better recall per candidate, 32
# builds half as many nodes, 64 loses recall.
DEFAULT_LEAF_SIZE = 32

# Under "dot", the items with the largest norms are kept out of the trees and
# scored exactly by every query: at most HEAD_SIZE of them, and at most 1/16 of the
# items. They dominate inner-product rankings, and leaving them out of the
# transform keeps the largest norm M of the rest, which sets its scale, moderate.
HEAD_SIZE = 64

# The default search effort is SEARCH_K_PER_TREE * k * n_trees distinct candidates.
# Measured for inner product on 100,000 x 16 uniform items with 17 trees:
# recall@10 0.949 at 1, 0.982 at 2 and 0.992 at 3. On Gowalla ALS factors (64 dims,
# 65 trees, 5,000 users): 0.988 at 1 and 0.998 at 2.
SEARCH_K_PER_TREE = 2

# The neighbours of every vector at once come from a k-nearest-neighbour graph
# refined by neighbour descent, when no search effort, filter or exclusion is
# given, the metric is "euclidean" or "angular", and at least GRAPH_MIN_VECTORS
# vectors are indexed. Below that, searching the trees item by item is fast enough
# not to pay for compiling the graph kernels.
GRAPH_MIN_VECTORS = 20_000
# The graph seeds its rows from the leaves of at most GRAPH_INIT_TREES trees, and
# keeps k + GRAPH_EXTRA_DEGREE neighbours per row (at least 1.5 k). Measured on
# 100,000 x 16 uniform vectors, k = 10: degree 12 gave recall@10 0.90, 16 gave
# 0.96, 20 gave 0.99.
GRAPH_INIT_TREES = 8
GRAPH_EXTRA_DEGREE = 6
# find_similar_vectors builds those trees with leaves of up to GRAPH_LEAF_SIZE
# vectors. On the same data, leaves of 64 built the graph in 1.45 s against 1.47 s
# for 32, with recall@10 0.966 against 0.964 (benchmarks/kernel_choices.py).
# NOTE: 128 did better still there, but is not measured on more dimensions.
GRAPH_LEAF_SIZE = 64

# With ``graph=True``: each vertex keeps up to GRAPH_DEGREE edges. Under "dot" they
# are its GRAPH_DEGREE / 2 nearest neighbours in the transformed space and the
# nearest of the vertices that list it. Under "euclidean" and "angular" they are
# a spread of near vertices in different directions, as HNSW keeps (see
# _graph.navigable_graph). On the Gowalla factors the spread lost recall under
# "dot", 0.961 to 0.954 at search_k = 40, and moved it by at most 0.003 under "angular"
# (benchmarks/kernel_choices.py). A query scores
# GRAPH_SEED_SHARE * search_k seeds from the first GRAPH_SEED_TREES trees, then
# walks the graph keeping the best ``search_k`` candidates, by default
# GRAPH_EF_PER_RESULT * k. Measured with k = 10 on the quickstart items (100,000 x
# 16) and on Gowalla ALS-64 factors (40,981 items, 5,000 users), with 40 kept
# candidates. One seed tree and k seeds gave recall@10 0.9984 and 0.925. Eight
# trees and 80 seeds gave 0.9987 and 0.961, at the same speed on the first.
# On real factors the top items by inner product lie in several clusters that the
# nearest-neighbour graph barely links, so the walk needs seeds from several trees.
GRAPH_DEGREE = 32
GRAPH_SEED_TREES = 8
# A graph=True index under "euclidean" or "angular" builds GRAPH_SPREAD_TREES
# trees by default: its spread edges cross between clusters, so it needs fewer
# seed trees than "dot". On the Gowalla factors under "angular", four trees
# against eight gave recall@10 0.987 against 0.988 at search_k = 40, with 14 %
# more queries/s, and 0.999 at 160 for both. Under "dot" four trees lost recall
# at the top: 0.991 against 0.998 at 160 (benchmarks/kernel_choices.py). On W4
# of benchmarks/compare.py (200,000 x 96) four trees take 120.7 MB, against
# 138.9 MB for eight.
GRAPH_SPREAD_TREES = 4
GRAPH_SEED_SHARE = 2.0
# NOTE: on 1,000,000 clustered matrix-factorisation vectors (64 dims) this default
# gave recall@10 0.72, and 0.94 needed search_k = 160; tune() finds the value.
GRAPH_EF_PER_RESULT = 4


def _tuned_ratio(value, path):
    """Return a tuned ratio read from a saved header: None, or a positive float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{path} is corrupt: a tuned search_k ratio is {value!r}; save the index again")
    return float(value)


class VectorIndex:
    """An approximate nearest-neighbour index over a fixed set of vectors.

    The index is a forest of random-projection trees in the manner of Annoy. Each
    node splits its points by a hyperplane between two centroids found by a short
    two-means. A query searches all trees at once with one priority queue, then
    ranks the candidates by their exact distance or inner product.

    Parameters
    ----------
    metric : {"angular", "euclidean", "dot"}, default "angular"
        "angular" ranks by cosine similarity, "euclidean" by Euclidean distance,
        "dot" by inner product (maximum inner-product search through the Euclidean
        transform of Bachrach et al., 2014, applied internally).
    n_trees : int, optional
        Number of trees. Default: the dimension the trees are built on, which is
        ``dim`` for "angular" and "euclidean" and ``dim + 1`` for "dot"; with
        ``graph=True``, at most 8 under "dot" and 4 under the other metrics.
    leaf_size : int, optional
        Maximum number of points in a leaf (default 32). A node that reaches the
        depth cap of 200 becomes a leaf whatever its size.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of the tree construction. The same seed and data give the same index
        at any thread count. None (the default) draws a fresh seed, so two builds
        differ.
    show_progress : bool, default True
        Show tqdm bars while building and querying.
    verbose : bool, default True
        Log each step at INFO on the ``⚡hyperscale`` logger; False logs at DEBUG.
    graph : bool, default False
        Also build a neighbour graph, for an index that will serve many queries.
        A query then takes seeds from the trees and walks the graph from them,
        which reaches a given recall with far fewer candidates. The graph
        takes longer to build than the trees and 32 int32 per vector. Filtered
        queries walk it too, through the excluded items without returning them.
        :meth:`neighbors` for ids still searches the trees.

    Notes
    -----
    Under "angular", all-zero vectors have no direction: they are kept out of
    the trees and never returned, and a zero query gets the padding row (id -1,
    distance +inf) as its result.
    """

    def __init__(
        self,
        metric="angular",
        n_trees=None,
        leaf_size=None,
        random_state=None,
        show_progress=True,
        verbose=True,
        graph=False,
    ):
        self.metric = _validation.check_metric(metric, METRICS)
        self.n_trees = _validation.check_optional_positive(n_trees, "n_trees")
        self.leaf_size = _validation.check_optional_positive(leaf_size, "leaf_size")
        self.random_state = random_state
        self.show_progress = show_progress
        self.verbose = verbose
        if not isinstance(graph, (bool, np.bool_)):
            raise TypeError(f"graph must be True or False, got {graph!r}")
        self.graph = bool(graph)
        self._forest = None
        self._adjacency = None
        # Tuned candidates per result of the tree search, and of the graph walk.
        self._search_k_per_result = None
        self._walk_search_k_per_result = None
        # The exact search's visiting order, computed by its first query.
        self._visit = None

    # ------------------------------------------------------------------
    # Build
    # ------------------------------------------------------------------

    def build(self, vectors):
        """Build the forest over ``vectors`` (n, dim); return ``self``.

        The input is copied to float32 and never modified.
        """
        vectors = _validation.as_matrix(vectors, "vectors")
        n_vectors, dim = vectors.shape
        self._max_norm = 0.0
        self._visit = None
        self._indexed = np.ones(n_vectors, dtype=bool)
        head_ids = np.zeros(0, dtype=np.int32)

        if self.metric == "euclidean":
            _check_euclidean_range(vectors, "vectors")
            rank_vectors = vectors
            tree_data = vectors
            through_origin = False
        elif self.metric == "angular":
            rank_vectors, zero = _transform.unit_rows(vectors)
            if zero.all():
                raise ValueError(
                    "every row of vectors is all zeros, and the angular metric needs a direction; "
                    "use metric='euclidean' or remove the zero rows"
                )
            self._indexed = ~zero
            tree_data = rank_vectors
            through_origin = True
        else:
            log_step(self.verbose, "augmenting vectors with the Euclidean transformation")
            rank_vectors = vectors
            norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
            self._max_norm = float(norms.max())
            n_head = min(HEAD_SIZE, n_vectors // 16)
            head_ids = np.sort(np.argsort(-norms, kind="stable")[:n_head]).astype(np.int32)
            in_tail = np.ones(n_vectors, dtype=bool)
            in_tail[head_ids] = False
            # Rows of the head stay zero: the build never reads them.
            tree_data = np.zeros((n_vectors, dim + 1), dtype=np.float32)
            tree_data[in_tail], _ = _transform.augmented_unit(vectors[in_tail])
            # Measured on uniform and ALS item vectors: planes with an offset gave
            # higher recall than planes through the origin at equal search effort.
            through_origin = False

        if self.n_trees is not None:
            n_trees = self.n_trees
        elif self.graph:
            # The graph needs the leaves of a few trees, and its walks take seeds
            # from as many, so more trees would cost build time and memory.
            default_trees = GRAPH_INIT_TREES if self.metric == "dot" else GRAPH_SPREAD_TREES
            n_trees = min(default_trees, tree_data.shape[1])
        else:
            n_trees = tree_data.shape[1]
        leaf_size = self.leaf_size if self.leaf_size is not None else DEFAULT_LEAF_SIZE
        in_trees = self._indexed.copy()
        in_trees[head_ids] = False
        item_ids = np.flatnonzero(in_trees).astype(np.int32)
        seeds = _validation.tree_seeds(self.random_state, n_trees)
        graph_seed = int(seeds[0]) if n_trees else 0

        log_step(self.verbose, "building the index with %d trees", n_trees)
        bar = progress_bar(self.show_progress, n_trees * len(item_ids), "building trees", "pt")
        try:
            forest = _forest.build_forest(
                np.ascontiguousarray(tree_data), item_ids, seeds, leaf_size, through_origin, bar
            )
        finally:
            if bar is not None:
                bar.close()

        self._forest = forest
        self._graph_seed = graph_seed
        self._adjacency = None
        if self.graph:
            # The graph lives in the space of the trees, where the items nearest to
            # a query are the ones it must find, so that one metric serves both.
            tree_metric = _kernels.METRIC_ANGULAR if self.metric == "angular" else _kernels.METRIC_EUCLIDEAN
            log_step(self.verbose, "building a search graph of up to %d edges per vector", GRAPH_DEGREE)
            bar = progress_bar(self.show_progress, _graph.MAX_ROUNDS, "neighbour descent", "round")
            try:
                self._adjacency = _graph.navigable_graph(
                    forest,
                    np.ascontiguousarray(tree_data),
                    tree_metric,
                    GRAPH_DEGREE,
                    graph_seed,
                    self.metric != "dot",
                    n_init_trees=GRAPH_INIT_TREES,
                    progress=bar,
                )
            finally:
                if bar is not None:
                    bar.close()
        self._head_ids = head_ids
        self._vectors = rank_vectors
        self._dim = dim
        self._n_trees_built = n_trees
        self._leaf_size_used = leaf_size
        return self

    # ------------------------------------------------------------------
    # Properties
    # ------------------------------------------------------------------

    def _check_built(self):
        if self._forest is None:
            raise RuntimeError("this VectorIndex has not been built yet; call index.build(vectors) first")

    def __len__(self):
        self._check_built()
        return int(self._vectors.shape[0])

    @property
    def dim(self):
        """Dimension of the indexed vectors (before any transform)."""
        self._check_built()
        return self._dim

    @property
    def n_indexed(self):
        """Number of vectors in the trees: all of them except zero rows under "angular"."""
        self._check_built()
        return int(self._indexed.sum())

    @property
    def nbytes(self):
        """Bytes held by the index arrays: the stored vectors, the forest, and the graph and norm order if any."""
        self._check_built()
        graph_bytes = 0 if self._adjacency is None else self._adjacency.nbytes
        # The norm order exists once a query has run exact search under "dot".
        visit_bytes = 0 if self._visit is None else sum(array.nbytes for array in self._visit)
        return int(
            self._vectors.nbytes
            + self._forest.nbytes
            + self._indexed.nbytes
            + self._head_ids.nbytes
            + graph_bytes
            + visit_bytes
        )

    def default_search_k(self, k, walk=None):
        """Candidates scored per query when ``search_k`` is None.

        After :meth:`tune` this is the tuned number of candidates per result times
        ``k``, for the kind of search that was tuned. Otherwise it is ``2 * k * n_trees`` for a tree search, and
        ``4 * k`` candidates kept by the graph walk of an index built with
        ``graph=True`` (``walk`` None means: whenever the index has a graph).
        """
        self._check_built()
        if walk is None:
            walk = self._adjacency is not None
        tuned = self._walk_search_k_per_result if walk else self._search_k_per_result
        if tuned is not None:
            return max(k, int(round(tuned * k)))
        if walk:
            return GRAPH_EF_PER_RESULT * k
        return SEARCH_K_PER_TREE * k * self._n_trees_built

    def __repr__(self):
        if self._forest is None:
            return f"VectorIndex(metric={self.metric!r}, not built)"
        return (
            f"VectorIndex(metric={self.metric!r}, n_vectors={len(self)}, dim={self._dim}, "
            f"n_trees={self._n_trees_built}, leaf_size={self._leaf_size_used}"
            + (", graph=True)" if self._adjacency is not None else ")")
        )

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------

    def save(self, path):
        """Write the index to one file at ``path``; return the path as a string.

        The file contains the vectors the index ranks with and the forest, so
        :meth:`load` needs nothing else. Saving a loaded index gives the same bytes.
        """
        self._check_built()
        metadata = {
            "hyperscale_version": __version__,
            "metric": self.metric,
            "dim": self._dim,
            "n_vectors": len(self),
            "n_trees": self._n_trees_built,
            "leaf_size": self._leaf_size_used,
            "vector_dtype": "float32",
            "max_norm": self._max_norm,
            "graph_seed": self._graph_seed,
            "search_k_per_result": self._search_k_per_result,
            "walk_search_k_per_result": self._walk_search_k_per_result,
            "random_state": self.random_state if _is_plain_int(self.random_state) else None,
        }
        arrays = {
            "vectors": self._vectors,
            "indexed": self._indexed.astype(np.uint8),
            "head_ids": self._head_ids,
            "hyperplanes": self._forest.hyperplanes,
            "offsets": self._forest.offsets,
            "children": self._forest.children,
            "leaf_bounds": self._forest.leaf_bounds,
            "leaf_indices": self._forest.leaf_indices,
            "roots": self._forest.roots,
        }
        if self._adjacency is not None:
            arrays["adjacency"] = self._adjacency
        return _persist.write_index(path, metadata, arrays)

    @classmethod
    def load(cls, path, mmap=True, show_progress=True, verbose=True):
        """Load an index written by :meth:`save`.

        With ``mmap=True`` (the default) the arrays stay in the file, and the
        operating system pages them in as queries touch them. The file must not
        change while the index is in use.
        """
        header, arrays = _persist.read_index(path, mmap=mmap)
        metric = header.get("metric")
        if metric not in METRICS:
            raise ValueError(f"{path} has an unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        index = cls(
            metric=metric,
            n_trees=header["n_trees"],
            leaf_size=header["leaf_size"],
            random_state=header["random_state"],
            show_progress=show_progress,
            verbose=verbose,
        )
        vectors = arrays["vectors"]
        if vectors.shape != (header["n_vectors"], header["dim"]) or vectors.dtype != np.float32:
            raise ValueError(
                f"{path} is corrupt: its vectors have shape {vectors.shape} and dtype {vectors.dtype}, "
                f"but the header says ({header['n_vectors']}, {header['dim']}) float32"
            )
        index._vectors = vectors
        index._indexed = np.asarray(arrays["indexed"]).astype(bool)
        index._head_ids = np.ascontiguousarray(arrays["head_ids"], dtype=np.int32)
        index._forest = _forest.Forest(
            hyperplanes=arrays["hyperplanes"],
            offsets=arrays["offsets"],
            children=arrays["children"],
            leaf_bounds=arrays["leaf_bounds"],
            leaf_indices=arrays["leaf_indices"],
            roots=arrays["roots"],
        )
        index._dim = header["dim"]
        index._max_norm = header["max_norm"]
        index._graph_seed = int(header.get("graph_seed", 0))
        index._search_k_per_result = _tuned_ratio(header.get("search_k_per_result"), path)
        index._walk_search_k_per_result = _tuned_ratio(header.get("walk_search_k_per_result"), path)
        if "adjacency" in arrays:
            index._adjacency = arrays["adjacency"]
            index.graph = True
        index._n_trees_built = header["n_trees"]
        index._leaf_size_used = header["leaf_size"]
        if index._forest.n_trees != header["n_trees"]:
            raise ValueError(
                f"{path} is corrupt: it contains {index._forest.n_trees} trees, but its header records "
                f"{header['n_trees']}; save the index again"
            )
        return index

    # ------------------------------------------------------------------
    # Search
    # ------------------------------------------------------------------

    def query(self, queries, k=10, search_k=None, exclude=None, items=None, exclude_items=None, bound_factor=None):
        """Find the ``k`` best indexed vectors for each row of ``queries`` (n_queries, dim).

        Parameters
        ----------
        queries : array-like (n_queries, dim)
        k : int, default 10
            Results per query; at most ``len(index)``.
        search_k : int, optional
            Distinct eligible candidates from the trees scored exactly per query,
            at least ``k``. Under "dot" each query also scores the up to 64
            largest-norm items, which stay out of the trees. More gives higher
            recall and slower queries. Default: the value chosen
            by :meth:`tune`, else ``2 * k * n_trees``. The same budget applies to
            every query, so with a fixed search_k the top-1 result is the first
            entry of the top-10 result. A query with no more than ``search_k`` eligible
            items scores all of them, which is exact. Under "dot", a budget of
            every eligible item runs exact search in decreasing norm order
            instead of the trees (see ``bound_factor``).
        exclude : sparse matrix, boolean array or list of id arrays, optional
            Items each query must not return, such as the items a user has
            already seen: a scipy.sparse matrix (any format) or a boolean array of
            shape (n_queries, len(index)), or a list of id arrays, one per query.
            Row i applies to the i-th query.
        items : array of ids or boolean mask, optional
            Allow-list: rank only these items. Results keep the original ids.
        exclude_items : array of ids or boolean mask, optional
            Deny-list for every query. It wins over ``items``.
        bound_factor : float in (0, 1], optional
            "dot" only, in place of ``search_k``: search without the trees.
            Each query scores the items in decreasing norm order and stops
            once ``bound_factor * |q| * |x|``, with ``x`` the next item, falls
            below its k-th best inner product. At 1 the stop follows from the
            Cauchy-Schwarz inequality and the result is exact. Below 1 the
            queries stop sooner, faster and with lower recall: 0.9 gave recall
            0.916 at 2.9 times the speed of 1 on the uniform data of
            BENCHMARKS.md, but on other data it can lose more:
            :meth:`tune_bound_factor` picks the factor for a target recall.
            Each query scores at least the 64 items of largest norm before
            its first stop check.

        Returns
        -------
        ids : int32 ndarray (n_queries, k)
            Row ids of the indexed vectors, best first. Only the filters exclude
            anything: a query equal to an indexed vector finds that vector.
        distances : float32 ndarray (n_queries, k)
            "euclidean": the Euclidean distance, ascending. "angular": the cosine
            distance 1 - cos(q, x) in [0, 2], ascending. "dot": the exact inner
            product q·x, descending (a score, not a distance).

        When fewer than ``k`` items are eligible, the row ends with id -1 and
        distance +inf (-inf for "dot"). Under "angular" a zero query gets a row of
        padding, because it has no direction.

        When ``queries`` is a dask array, ``ids`` and ``distances`` are dask arrays
        with the same row chunks, searched when they are computed.
        """
        self._check_built()
        bound_factor = _validation.check_bound_factor(bound_factor, self.metric, search_k)
        if _dask.is_dask_array(queries):
            return _dask.query(self, queries, k, search_k, exclude, items, exclude_items, bound_factor)
        queries = _validation.as_matrix(queries, "queries")
        _validation.check_same_dim(queries.shape[1], self._dim, "queries", "the indexed vectors")
        k = _validation.check_count(k, "k", len(self), "the number of indexed vectors")
        # NOTE: under "dot" on clustered items, excluding a query's many best items
        # leaves the walk, and the trees, far from the rest: recall can collapse
        # where exact search with bound_factor does not.
        walk = self._adjacency is not None
        search_k = self._effective_search_k(k, search_k, walk)
        exclusions = _filters.exclusions_to_csr(exclude, queries.shape[0], len(self), "queries")
        allowed = _filters.eligible_mask(self._indexed, items, exclude_items)
        if bound_factor is not None or (
            self.metric == "dot" and not walk and search_k >= int(np.count_nonzero(allowed))
        ):
            ids, keys = self._search_exact(queries, exclusions, allowed, k, bound_factor or 1.0)
            return ids, self._distances(keys)
        self_ids = np.full(queries.shape[0], -1, dtype=np.int32)
        ids, keys = self._search(queries, self_ids, exclusions, allowed, k, search_k, "queries", walk)
        return ids, self._distances(keys)

    def neighbors(
        self,
        ids=None,
        k=10,
        search_k=None,
        exclude_self=False,
        exclude=None,
        items=None,
        exclude_items=None,
    ):
        """Find the ``k`` best indexed vectors for indexed vectors, by row id.

        ``ids`` is one id, an array of ids, or None for every row. With
        ``exclude_self=False`` (the default) each row lists the vector itself
        first, as Annoy's ``get_nns_by_item`` does. Its distance is 0, and an exact
        duplicate follows it at distance 0 too. Under "dot" the vector itself is
        ranked by its own inner product like any other item. With
        ``exclude_self=True`` the vector itself never appears, but its duplicates
        do. The filters (``exclude`` with one row per id, ``items``,
        ``exclude_items``) apply to the other results, as in :meth:`query`, which
        describes the return value.
        """
        self._check_built()
        n_vectors = len(self)
        if ids is None:
            row_ids = np.arange(n_vectors, dtype=np.int64)
        else:
            row_ids = _validation.check_ids(ids, n_vectors, "ids")
        if exclude_self:
            if n_vectors == 1:
                raise ValueError("exclude_self=True needs an index of at least 2 vectors; this one has 1")
            k = _validation.check_count(k, "k", n_vectors - 1, "the number of indexed vectors minus the vector itself")
        else:
            k = _validation.check_count(k, "k", n_vectors, "the number of indexed vectors")
        _validation.check_optional_positive(search_k, "search_k")
        exclusions = _filters.exclusions_to_csr(exclude, len(row_ids), n_vectors, "ids")
        allowed = _filters.eligible_mask(self._indexed, items, exclude_items)

        if ids is None and self.uses_graph(k, search_k=search_k, exclude=exclude, items=items,
                                           exclude_items=exclude_items):
            found_ids, keys = self._graph_neighbors(k)
        else:
            search_k = self._effective_search_k(k, search_k)
            queries = np.ascontiguousarray(self._vectors[row_ids])
            self_ids = row_ids.astype(np.int32)
            found_ids, keys = self._search(queries, self_ids, exclusions, allowed, k, search_k, "vectors")
        distances = self._distances(keys)
        if exclude_self:
            return found_ids, distances
        return self._put_self_first(row_ids, found_ids, distances, k)

    # ------------------------------------------------------------------
    # Recall control
    # ------------------------------------------------------------------

    def recall(self, queries, k=10, search_k=None):
        """Return the mean recall@k of :meth:`query` against exact search on ``queries``.

        Exact search scores every indexed vector, so a sample of a few thousand
        queries is usually enough.
        """
        self._check_built()
        queries = _validation.as_matrix(queries, "queries")
        _validation.check_same_dim(queries.shape[1], self._dim, "queries", "the indexed vectors")
        k = _validation.check_count(k, "k", self.n_indexed, "the number of indexed vectors")
        truth = _tuning.exact_top_k(self.metric, self._vectors, self._indexed, queries, k)
        found, _ = self.query(queries, k=k, search_k=search_k)
        return _tuning.mean_recall(found, truth)

    def tune(
        self,
        queries,
        target_recall=0.95,
        k=10,
        sample=_defaults.TUNE_SAMPLE,
        random_state=0,
        exclude=None,
        items=None,
        exclude_items=None,
        max_search_k=None,
    ):
        """Choose the smallest ``search_k`` whose estimated recall@k reaches ``target_recall``.

        Estimates recall on up to ``sample`` rows of ``queries`` against exact
        search and stores the choice as a number of candidates per result, so
        later queries without ``search_k`` use ``ratio * k``. Logs the choice and
        the estimate, and returns ``(search_k, estimated_recall)``. The estimate
        comes from a sample, so the recall on other queries can be a little lower.

        Pass the filters that later queries will use (``exclude`` with one row per
        query, ``items``, ``exclude_items``, as in :meth:`query`). Filters change
        the items a search must find, so a choice made without them can miss the
        target with them. On an index built with ``graph=True`` the choice is the
        graph walk's candidate list, and :meth:`neighbors` for ids, which
        searches the trees, keeps its own default.

        ``max_search_k`` stops the search at that budget: when even it misses the
        target, ``tune`` returns it with the lower estimate. Otherwise the search
        goes on until every indexed vector is scored, which is exact.
        """
        search_k, estimate, n_sample = self._tune(
            queries, target_recall, k, sample, random_state, exclude, items, exclude_items, max_search_k
        )
        if estimate < target_recall:
            log_step(
                self.verbose,
                "target recall not reached: search_k=%d (max_search_k) gives estimated recall@%d %.3f "
                "on %d sample queries (target %.3f); raise max_search_k for more recall",
                search_k,
                k,
                estimate,
                n_sample,
                target_recall,
            )
            return search_k, estimate
        log_choice(self.verbose, search_k, k, estimate, n_sample, target_recall)
        return search_k, estimate

    def tune_bound_factor(
        self,
        queries,
        target_recall=0.95,
        k=10,
        sample=_defaults.TUNE_SAMPLE,
        random_state=0,
        exclude=None,
        items=None,
        exclude_items=None,
    ):
        """Choose the smallest ``bound_factor``, in steps of 0.01, whose estimated recall@k reaches ``target_recall``.

        For metric "dot" only. Estimates recall on up to ``sample`` rows of
        ``queries`` against exact search, logs the choice and the estimate, and
        returns ``(bound_factor, estimated_recall)``. Pass the factor to
        :meth:`query`: unlike :meth:`tune`, this method stores nothing. The
        filters apply as in :meth:`tune`. The estimate comes from a sample, and
        how much recall a factor costs depends on the data.
        """
        if self.metric != "dot":
            raise ValueError(
                f"tune_bound_factor applies to metric 'dot' only, and this index uses {self.metric!r}. "
                "Use tune() to choose search_k instead"
            )
        queries, exclusions, allowed = self._tuning_inputs(queries, exclude, items, exclude_items)
        factor, estimate, n_sample = _tuning.choose_bound_factor(
            self, queries, target_recall, k, sample, random_state, exclusions, allowed
        )
        log_step(
            self.verbose,
            "bound_factor=%.2f: estimated recall@%d %.3f on %d sample queries (target %.3f)",
            factor,
            k,
            estimate,
            n_sample,
            target_recall,
        )
        return factor, estimate

    def _tuning_inputs(self, queries, exclude, items, exclude_items):
        """Return the queries as a float32 matrix, the exclusions as CSR or None, and the item mask or None."""
        self._check_built()
        queries = _validation.as_matrix(queries, "queries")
        _validation.check_same_dim(queries.shape[1], self._dim, "queries", "the indexed vectors")
        exclusions = None
        if exclude is not None:
            exclusions = _filters.exclusions_to_csr(exclude, queries.shape[0], len(self), "queries")
        allowed = None
        if items is not None or exclude_items is not None:
            allowed = _filters.eligible_mask(self._indexed, items, exclude_items)
        return queries, exclusions, allowed

    def _tune(self, queries, target_recall, k, sample, random_state, exclude, items, exclude_items, max_search_k):
        """Run :meth:`tune` without logging and return (search_k, estimate, sample size)."""
        queries, exclusions, allowed = self._tuning_inputs(queries, exclude, items, exclude_items)
        max_search_k = _validation.check_optional_positive(max_search_k, "max_search_k")
        search_k, estimate, n_sample = _tuning.choose_search_k(
            self, queries, target_recall, k, sample, random_state, exclusions, allowed, max_search_k
        )
        # Queries on a graph walk it, and neighbors() for ids searches the trees.
        if self._adjacency is not None:
            self._walk_search_k_per_result = search_k / k
        else:
            self._search_k_per_result = search_k / k
        return search_k, estimate, n_sample

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def uses_graph(self, k, search_k=None, exclude=None, items=None, exclude_items=None):
        """Return whether ``neighbors(None, k, ...)`` with these options reads a neighbour graph.

        The graph covers every vector at once, so it serves only calls for all rows
        with the default search effort and no filter or exclusion.
        """
        self._check_built()
        return (
            self.metric in ("euclidean", "angular")
            and search_k is None
            and self._search_k_per_result is None
            and exclude is None
            and items is None
            and exclude_items is None
            and self.n_indexed >= GRAPH_MIN_VECTORS
            and k + 1 < self.n_indexed
        )

    def _graph_neighbors(self, k):
        """Return the top k of every vector, itself left out, from a graph refined by neighbour descent."""
        degree = max(k + GRAPH_EXTRA_DEGREE, (3 * k + 1) // 2)
        log_step(self.verbose, "building a %d-neighbour graph by neighbour descent", degree)
        bar = progress_bar(self.show_progress, _graph.MAX_ROUNDS, "neighbour descent", "round")
        try:
            graph_ids, graph_keys = _graph.build_knn_graph(
                self._forest,
                self._vectors,
                _METRIC_CODES[self.metric],
                degree,
                self._graph_seed,
                n_init_trees=GRAPH_INIT_TREES,
                progress=bar,
            )
        finally:
            if bar is not None:
                bar.close()
        return _graph.sorted_neighbors(graph_ids, graph_keys, k)

    def _effective_search_k(self, k, search_k, walk=False):
        search_k = _validation.check_optional_positive(search_k, "search_k")
        if search_k is None:
            return self.default_search_k(k, walk)
        return max(search_k, k)

    def _search_exact(self, queries, exclusions, allowed, k, bound_factor):
        """Search with exact search in place of the trees. A ``bound_factor`` below 1 stops it sooner.

        Under "dot" this is faster than the trees at a budget of every item:
        exact search needs no traversal, and its norm bound stops each query early.
        """
        _validation.check_inner_product_range(queries, self._max_norm)
        if self._visit is None:
            self._visit = _tuning.visit_order(self.metric, self._vectors)
        bar = progress_bar(self.show_progress, queries.shape[0], "searching", "queries")
        try:
            ids, keys = _tuning.exact_top_k(
                self.metric,
                self._vectors,
                self._indexed,
                queries,
                k,
                exclusions,
                allowed,
                True,
                bar,
                self._visit,
                bound_factor=bound_factor,
            )
        finally:
            if bar is not None:
                bar.close()
        return ids.astype(np.int32), keys

    def _search(self, queries, self_ids, exclusions, allowed, k, search_k, unit, walk=False):
        """Run the kernels; return ids and raw keys (smaller is better)."""
        metric_code = _METRIC_CODES[self.metric]
        valid = np.ones(queries.shape[0], dtype=bool)
        if self.metric == "euclidean":
            _check_euclidean_range(queries, "queries", self._vectors)
            tree_queries = rank_queries = queries
        elif self.metric == "angular":
            rank_queries, zero = _transform.unit_rows(queries)
            valid = ~zero
            tree_queries = rank_queries
        else:
            _validation.check_inner_product_range(queries, self._max_norm)
            # The transformed query is (q, 0); scaling it to unit norm keeps the
            # ranking and puts it on the same sphere as the transformed items.
            tree_queries, _ = _transform.unit_rows(queries)
            rank_queries = queries

        bar = progress_bar(self.show_progress, queries.shape[0], "searching", unit)
        try:
            if walk:
                return _graph.search_graph(
                    self._forest,
                    self._vectors,
                    metric_code,
                    tree_queries,
                    rank_queries,
                    valid,
                    exclusions,
                    allowed,
                    self._head_ids,
                    self._adjacency,
                    k,
                    search_k,
                    int(GRAPH_SEED_SHARE * search_k),
                    GRAPH_SEED_TREES,
                    bar,
                )
            return _forest.search_forest(
                self._forest,
                self._vectors,
                metric_code,
                tree_queries,
                rank_queries,
                self_ids,
                valid,
                exclusions,
                allowed,
                self._head_ids,
                k,
                search_k,
                bar,
            )
        finally:
            if bar is not None:
                bar.close()

    def _distances(self, keys):
        """Turn kernel keys into the documented distances (or scores for "dot")."""
        padding = ~np.isfinite(keys)
        if self.metric == "euclidean":
            distances = np.sqrt(np.maximum(keys, 0))
        elif self.metric == "angular":
            # The keys are -cos, and rounding can push |cos| a little past 1.
            distances = np.clip(1 + keys, 0, 2)
            distances[padding] = np.inf
        else:
            distances = -keys
        return distances.astype(np.float32)

    def _self_distances(self, row_ids):
        if self.metric == "dot":
            vectors = self._vectors[row_ids].astype(np.float32)
            return np.einsum("ij,ij->i", vectors, vectors).astype(np.float32)
        return np.zeros(len(row_ids), dtype=np.float32)

    def _put_self_first(self, row_ids, found_ids, distances, k):
        """Merge each query's own id into its row at its exact rank, keeping k entries.

        For "euclidean" and "angular" its distance is 0, so it goes first, ahead of
        exact duplicates. Rows of zero vectors under "angular" stay padding.
        """
        self_distances = self._self_distances(row_ids)
        if self.metric == "dot":
            # Scores descend, and the vector itself goes ahead of equal scores.
            positions = np.sum(distances > self_distances[:, None], axis=1)
        else:
            positions = np.sum(distances < self_distances[:, None], axis=1)
        columns = np.arange(k + 1)[None, :]
        before = columns < positions[:, None]
        at = columns == positions[:, None]
        # Column c of the merged row is found[c] before the insertion point and
        # found[c - 1] after it.
        same_column_ids = np.concatenate([found_ids, found_ids[:, :1]], axis=1)
        same_column_distances = np.concatenate([distances, distances[:, :1]], axis=1)
        shifted_ids = np.concatenate([found_ids[:, :1], found_ids], axis=1)
        shifted_distances = np.concatenate([distances[:, :1], distances], axis=1)
        merged_ids = np.where(before, same_column_ids, shifted_ids).astype(np.int32)
        merged_distances = np.where(before, same_column_distances, shifted_distances).astype(np.float32)
        merged_ids[at] = row_ids.astype(np.int32)
        merged_distances[at] = self_distances
        merged_ids = np.ascontiguousarray(merged_ids[:, :k])
        merged_distances = np.ascontiguousarray(merged_distances[:, :k])
        if self.metric == "angular":
            not_indexed = ~self._indexed[row_ids]
            merged_ids[not_indexed] = -1
            merged_distances[not_indexed] = np.inf
        return merged_ids, merged_distances


def _is_plain_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_euclidean_range(vectors, name, other=None):
    """Raise when squared distances could overflow or underflow float32 in the kernels."""
    largest = float(np.abs(vectors).max())
    if other is not None:
        largest = max(largest, float(np.abs(other).max()))
    if 4.0 * largest * largest * vectors.shape[1] > _validation.FLOAT32_MAX:
        raise ValueError(
            f"{name} contain values up to {largest:.3g}, too large for float32 squared "
            "distances; rescale the vectors (for example divide them by their largest norm)"
        )
    if 0.0 < largest * largest < _validation.FLOAT32_SMALLEST_KEY:
        raise ValueError(
            f"{name} contain values no larger than {largest:.3g}, too small for float32 squared "
            "distances, which underflow to zero; rescale the vectors (for example divide them "
            "by their largest norm)"
        )


def log_choice(verbose, search_k, k, estimate, n_sample, target_recall):
    """Log the search_k that a tuning chose and its estimated recall."""
    log_step(
        verbose,
        "chose search_k=%d for k=%d: estimated recall@%d %.3f on %d sample queries (target %.3f)",
        search_k,
        k,
        k,
        estimate,
        n_sample,
        target_recall,
    )
