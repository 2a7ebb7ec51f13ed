"""The trees and search effort that ``recommend`` chooses when the caller gives none."""

# Queries that VectorIndex.tune() samples by default.
TUNE_SAMPLE = 1000

# A recommend() call that tunes its search effort builds half as many trees as
# dimensions, from RECOMMEND_MIN_TREES to RECOMMEND_MAX_TREES. One call pays for
# its index once, and the tuning makes up for the recall per candidate that fewer
# trees lose. benchmarks/recall_defaults.py measures the result at 16 and 64
# dimensions. NOTE: the count for other dimensions is interpolated, not measured.
RECOMMEND_MIN_TREES = 8
RECOMMEND_MAX_TREES = 16

# Given neither search_k nor target_recall, recommend() for at least
# AUTO_TUNE_MIN_USERS users tunes search_k on AUTO_TUNE_SAMPLE of them, aiming at
# AUTO_TARGET_RECALL. No fixed budget suits all data: 2 * k * n_trees overshot on
# the Gowalla factors and fell short of 0.95 on a million clustered factors
# (BENCHMARKS.md). The aim is above 0.95 because the estimate comes from a sample,
# and the first budget whose estimate passes the aim tends to land a little below
# it. Fewer users are not worth a sample.
AUTO_TUNE_MIN_USERS = 5_000
AUTO_TUNE_SAMPLE = 500
AUTO_TARGET_RECALL = 0.965

# Costs that decide between exact search and a tree index, in nanoseconds on the
# machine of BENCHMARKS.md, measured by benchmarks/exact_crossover.py. Only their
# ratios matter, and those move less between machines than the times.
# NOTE: fitted on uniform vectors. On the Gowalla factors, where more scores beat
# the running top-k thresholds, compare.py measured exact search at 4.6 ns per
# user and item at 64 dimensions, against 2.8 ns in exact_crossover.py. Near the
# break-even the trees can then be the faster choice.
# Exact search, per user and item, plus per user, item and dimension:
EXACT_NS_PER_ITEM = 0.32
EXACT_NS_PER_ITEM_DIM = 0.039
# The build, per tree and item, plus per tree, item and dimension:
BUILD_NS_PER_ITEM = 514.0
BUILD_NS_PER_ITEM_DIM = 15.0
# The tree search, per user and candidate, plus per user, candidate and dimension:
SEARCH_NS_PER_CANDIDATE = 63.0
SEARCH_NS_PER_CANDIDATE_DIM = 0.8
# The tree path is counted as this many builds: one for the build, one for the
# tuning and the search. NOTE: an allowance, not a measurement. The search costs
# more on data whose top k needs more candidates.
TREE_PATH_SHARE = 2.0

def recommend_trees(n_trees, dim, tuned):
    """Return the trees a recommend() call builds; None leaves the choice to VectorIndex."""
    if n_trees is not None or not tuned:
        return n_trees
    return min(max((dim + 1) // 2, RECOMMEND_MIN_TREES), RECOMMEND_MAX_TREES)


def recommend_target(search_k, target_recall, n_users):
    """Return (target recall or None, sample size) for tuning the search effort of recommend()."""
    if search_k is not None:
        return None, None
    if target_recall is not None:
        return target_recall, TUNE_SAMPLE
    if n_users >= AUTO_TUNE_MIN_USERS:
        return AUTO_TARGET_RECALL, AUTO_TUNE_SAMPLE
    return None, None


def users_per_tree(dim):
    """Return the users whose exact search costs as much as building one tree."""
    return (BUILD_NS_PER_ITEM + BUILD_NS_PER_ITEM_DIM * dim) / _exact_ns(dim)


def exact_is_cheaper(n_users, dim, n_trees):
    """Return whether scoring every item for every user costs less than the tree path.

    Both costs grow with the number of items, so it cancels. The tree path is
    counted as TREE_PATH_SHARE times its build, for the tuning and the search.
    """
    return n_users <= TREE_PATH_SHARE * users_per_tree(dim) * n_trees


def trees_replaced_by_exact(n_trees, search_k, n_users, dim):
    """Return the trees that exact search makes unnecessary, or None when the trees should be built.

    Only a call that gives neither ``n_trees`` nor ``search_k`` is switched.
    """
    if n_trees is not None or search_k is not None:
        return None
    planned = recommend_trees(None, dim, tuned=True)
    return planned if exact_is_cheaper(n_users, dim, planned) else None


def exact_threshold(n_indexed, dim):
    """Return the largest search_k worth tuning before exact search is cheaper."""
    per_candidate = SEARCH_NS_PER_CANDIDATE + SEARCH_NS_PER_CANDIDATE_DIM * dim
    return max(1, int(n_indexed * _exact_ns(dim) / per_candidate))


def _exact_ns(dim):
    return EXACT_NS_PER_ITEM + EXACT_NS_PER_ITEM_DIM * dim
