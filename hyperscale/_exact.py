"""Exact inner-product search over items, for the calls where it beats a tree index."""

import numpy as np

from . import _filters, _tuning, _validation
from ._log import progress_bar


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
        # trees instead pays nothing for it.
        self._max_norm = None

    def __len__(self):
        return int(self.items.shape[0])

    @property
    def nbytes(self):
        return int(self.items.nbytes)

    def query(self, queries, k=10, search_k=None, exclude=None, items=None, exclude_items=None):
        """Return the exact top-k ids (int32) and inner products (float32), best first.

        ``search_k`` is accepted and ignored, since every item is scored. The
        filters are those of :meth:`VectorIndex.query`.
        """
        if self._max_norm is None:
            self._max_norm = float(np.linalg.norm(self.items.astype(np.float64), axis=1).max())
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
        bar = progress_bar(self.show_progress, queries.shape[0], "scoring every item", "user")
        try:
            ids, keys = _tuning.exact_top_k(
                "dot", self.items, every_item, queries, k, exclusions, allowed, True, progress=bar
            )
        finally:
            if bar is not None:
                bar.close()
        return ids.astype(np.int32), -keys
