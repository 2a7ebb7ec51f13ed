"""Build and search a flat random-projection forest with the kernels of ``_kernels``."""

from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels
from ._parallel import run_parallel

# Deeper nodes become leaves whatever their size. Splits shrink a node by at least
# 1 % (two-means) or halve it (random split), so only very large or very
# degenerate inputs reach this depth.
MAX_DEPTH = 200

# Queries per kernel call: large enough to keep every core busy, small enough for
# the progress bar to move.
QUERY_BATCH = 4096


@dataclass
class Forest:
    """The flat arrays of a forest; ``_kernels`` describes the layout."""

    hyperplanes: np.ndarray
    offsets: np.ndarray
    children: np.ndarray
    leaf_bounds: np.ndarray
    leaf_indices: np.ndarray
    roots: np.ndarray

    @property
    def n_trees(self):
        return int(self.roots.shape[0])

    def arrays(self):
        return (
            self.hyperplanes,
            self.offsets,
            self.children,
            self.leaf_bounds,
            self.leaf_indices,
            self.roots,
        )

    @property
    def nbytes(self):
        return sum(array.nbytes for array in self.arrays())


def _node_seeds(tree_seeds, local_starts, depths):
    """Mix (tree seed, start inside the tree, depth) into one seed per node.

    The pair (start, depth) identifies a node within its tree, so every node gets
    its own stream whatever order the nodes are built in.
    """
    with np.errstate(over="ignore"):
        z = tree_seeds ^ (local_starts.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = z ^ (depths.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def build_forest(data, item_ids, tree_seeds, leaf_size, through_origin, progress=None):
    """Build one tree per seed over the rows ``item_ids`` of ``data``.

    ``data`` is float32 and C-contiguous; ``progress`` (a tqdm bar or None) advances
    by the number of points that reach a leaf.
    """
    n_trees = len(tree_seeds)
    n_items = len(item_ids)
    tree_dim = data.shape[1]
    leaf_indices = np.tile(item_ids.astype(np.int32), n_trees)

    # The open nodes of the current level. A parent of -1 marks a root.
    starts = np.arange(n_trees, dtype=np.int64) * n_items
    ends = starts + n_items
    trees = np.arange(n_trees, dtype=np.int64)
    parents = np.full(n_trees, -1, dtype=np.int64)
    parent_sides = np.zeros(n_trees, dtype=np.int64)

    roots = np.empty(n_trees, dtype=np.int32)
    hyperplane_levels, offset_levels, leaf_levels = [], [], []
    children = np.empty((0, 2), dtype=np.int32)
    n_splits = 0
    n_leaves = 0
    depth = 0

    while len(starts) > 0:
        sizes = ends - starts
        is_leaf = (sizes <= leaf_size) | (depth >= MAX_DEPTH)
        is_split = ~is_leaf

        # Number the new nodes and link them to their parents.
        refs = np.empty(len(starts), dtype=np.int64)
        leaf_numbers = n_leaves + np.cumsum(is_leaf) - 1
        split_numbers = n_splits + np.cumsum(is_split) - 1
        refs[is_leaf] = ~leaf_numbers[is_leaf]
        refs[is_split] = split_numbers[is_split]
        new_splits = int(is_split.sum())
        children = np.concatenate([children, np.empty((new_splits, 2), dtype=np.int32)])
        is_root = parents < 0
        roots[trees[is_root]] = refs[is_root]
        children[parents[~is_root], parent_sides[~is_root]] = refs[~is_root]

        leaf_levels.append(np.stack([starts[is_leaf], ends[is_leaf]], axis=1))
        n_leaves += int(is_leaf.sum())
        if progress is not None:
            progress.update(int(sizes[is_leaf].sum()))
        if new_splits == 0:
            break

        split_starts = starts[is_split]
        split_ends = ends[is_split]
        split_trees = trees[is_split]
        seeds = _node_seeds(
            tree_seeds[split_trees],
            split_starts - split_trees * n_items,
            np.full(new_splits, depth, dtype=np.int64),
        )
        hyperplanes = np.empty((new_splits, tree_dim), dtype=np.float32)
        offsets = np.empty(new_splits, dtype=np.float32)
        n_negative = np.empty(new_splits, dtype=np.int64)
        run_parallel(
            _kernels.split_level,
            data,
            leaf_indices,
            split_starts,
            split_ends,
            seeds,
            through_origin,
            hyperplanes,
            offsets,
            n_negative,
        )
        unbalanced = np.flatnonzero(n_negative < 0)
        if len(unbalanced):
            run_parallel(
                _kernels.median_split_level,
                data,
                leaf_indices,
                split_starts,
                split_ends,
                unbalanced,
                hyperplanes,
                offsets,
                n_negative,
            )
        hyperplane_levels.append(hyperplanes)
        offset_levels.append(offsets)

        # Each split opens its negative side, then its positive side.
        middles = split_starts + n_negative
        split_refs = refs[is_split]
        starts = np.stack([split_starts, middles], axis=1).ravel()
        ends = np.stack([middles, split_ends], axis=1).ravel()
        trees = np.repeat(split_trees, 2)
        parents = np.repeat(split_refs, 2)
        parent_sides = np.tile(np.array([0, 1], dtype=np.int64), new_splits)
        n_splits += new_splits
        depth += 1

    if hyperplane_levels:
        all_hyperplanes = np.concatenate(hyperplane_levels)
        all_offsets = np.concatenate(offset_levels)
    else:
        all_hyperplanes = np.empty((0, tree_dim), dtype=np.float32)
        all_offsets = np.empty(0, dtype=np.float32)
    return Forest(
        hyperplanes=np.ascontiguousarray(all_hyperplanes),
        offsets=all_offsets,
        children=np.ascontiguousarray(children),
        leaf_bounds=np.ascontiguousarray(np.concatenate(leaf_levels).astype(np.int64)),
        leaf_indices=leaf_indices,
        roots=roots,
    )


def search_forest(
    forest,
    vectors,
    metric,
    tree_queries,
    rank_queries,
    self_ids,
    valid,
    exclusions,
    allowed,
    head_ids,
    k,
    search_k,
    progress=None,
):
    """Search all queries in batches; return (ids int32, keys float32), best first.

    ``exclusions`` is a CSR pair (indptr, indices) with one row per query and
    ``allowed`` a uint8 mask of the items that may be returned. ``head_ids`` are
    items outside the trees that every query scores exactly. Keys are the
    kernel's ranking keys (smaller is better). Slots with no result hold id -1
    and key +inf.
    """
    n_queries = tree_queries.shape[0]
    out_ids = np.empty((n_queries, k), dtype=np.int32)
    out_keys = np.empty((n_queries, k), dtype=np.float32)
    if k == 0 or n_queries == 0:
        return out_ids, out_keys
    indptr, indices = exclusions
    allowed_ids = np.flatnonzero(allowed).astype(np.int32)
    n_threads = numba.get_num_threads()
    for low in range(0, n_queries, QUERY_BATCH):
        high = min(low + QUERY_BATCH, n_queries)
        n_chunks = min(high - low, 4 * n_threads)
        run_parallel(
            _kernels.search_batch,
            tree_queries[low:high],
            rank_queries[low:high],
            self_ids[low:high],
            valid[low:high],
            indptr[low : high + 1] - indptr[low],
            indices[indptr[low] : indptr[high]],
            allowed,
            allowed_ids,
            head_ids,
            vectors,
            *forest.arrays(),
            metric,
            search_k,
            n_chunks,
            out_ids[low:high],
            out_keys[low:high],
        )
        if progress is not None:
            progress.update(high - low)
    return out_ids, out_keys
