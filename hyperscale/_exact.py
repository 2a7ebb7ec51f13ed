"""Exact inner-product search over items, for the calls where it beats a tree index."""

import numpy as np

from . import _defaults, _filters, _tuning, _validation
from ._log import log_step, progress_bar


class ExactItems:
    """Items searched exactly, with the ``query`` interface that recommend's Dask tasks call.

    ``items`` must be a C-contiguous float32 matrix, such as ``as_matrix`` returns.
    It is kept, not copied.
    """

    def __init__(self, items, verbose=False, show_progress=False):
        self.items = items
        self.verbose = verbose
        self.show_progress = show_progress
        # Computed by the first query, so that a caller that ends up building
        # trees instead pays nothing for them.
        self._max_norm = None
        self._visit = None

    def __len__(self):
        return int(self.items.shape[0])

    @property
    def nbytes(self):
        """Bytes of the items, and of their norm order once a query has built it."""
        visit_bytes = 0 if self._visit is None else sum(array.nbytes for array in self._visit)
        return int(self.items.nbytes + visit_bytes)

    def _visit_order(self):
        if self._visit is None:
            self._visit = _tuning.visit_order("dot", self.items)
        return self._visit

    def scored_share(self, queries, k, sample=_defaults.EXACT_SAMPLE, random_state=0):
        """Return the mean share of the items that exact search for the top ``k`` scores, on up to ``sample`` rows.

        A larger ``k`` stops later, so the share must come from the call's own
        ``k``. The sample is searched with no filters, which leave the share
        about the same.
        """
        rng = np.random.default_rng(random_state)
        n_sample = min(int(sample), queries.shape[0])
        rows = np.sort(rng.choice(queries.shape[0], size=n_sample, replace=False))
        visited = np.empty(n_sample, dtype=np.int64)
        every_item = np.ones(len(self), dtype=bool)
        _tuning.exact_top_k(
            "dot", self.items, every_item, queries[rows], k, visit=self._visit_order(), visited=visited
        )
        return float(visited.sum()) / (n_sample * len(self))

    def query(self, queries, k=10, search_k=None, exclude=None, items=None, exclude_items=None):
        """Return the exact top-k ids (int32) and inner products (float32), best first.

        ``search_k`` is accepted and ignored, since every item is scored. The
        filters are those of :meth:`VectorIndex.query`.
        """
        if self._max_norm is None:
            # The first bound of the visit is the largest norm, rounded up a little.
            self._max_norm = float(self._visit_order()[1][0])
        # A tree search checks the same range, and an overflow here would turn into padding.
        _validation.check_inner_product_range(queries, self._max_norm)
        n_items = self.items.shape[0]
        exclusions = None
        if exclude is not None:
            exclusions = _filters.exclusions_to_csr(exclude, queries.shape[0], n_items, "user_vectors")
        every_item = np.ones(n_items, dtype=bool)
        allowed = None
        if items is not None or exclude_items is not None:
            allowed = _filters.eligible_mask(every_item, items, exclude_items)
        bar = progress_bar(self.show_progress, queries.shape[0], "exact search", "user")
        try:
            ids, keys = _tuning.exact_top_k(
                "dot",
                self.items,
                every_item,
                queries,
                k,
                exclusions,
                allowed,
                True,
                progress=bar,
                visit=self._visit_order(),
            )
        finally:
            if bar is not None:
                bar.close()
        return ids.astype(np.int32), -keys


def prefers_exact(exact, users, n_users, k, n_trees, search_k):
    """Return (whether exact search costs less than the trees recommend() would build, those trees, share).

    Only a call that gives neither ``n_trees`` nor ``search_k`` is switched. For
    any other the result is (False, None, None). ``users`` contains the rows to
    sample, all or some of the call's ``n_users``. ``share`` is the share of the
    items exact search scored on the sample, or None when the users are too
    few to need one: they never pay for a tree.
    """
    if not _defaults.replaces_trees(n_trees, search_k):
        return False, None, None
    n_items, dim = exact.items.shape
    planned = _defaults.recommend_trees(None, dim, tuned=True)
    if n_users <= _defaults.EXACT_SAMPLE:
        return True, planned, None
    share = exact.scored_share(users, k)
    return _defaults.exact_is_cheaper(n_users, n_items, dim, k, planned, share), planned, share


def log_exact_choice(verbose, n_users, planned, share, n_sample):
    """Log that recommend() searches exactly instead of building ``planned`` trees, with the share measured on ``n_sample`` users."""
    if share is None:
        log_step(verbose, "exact search for %d users: cheaper than building %d trees", n_users, planned)
        return
    log_step(
        verbose,
        "exact search for %d users: cheaper than building %d trees and searching them "
        "(on %d sample users it scored %.1f %% of the items)",
        n_users,
        planned,
        n_sample,
        100 * share,
    )
