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

# When tuning needs more than 1/EXACT_SHARE of the items as candidates per user,
# recommend() scores every item exactly instead. On 100,000 x 16 uniform items,
# benchmarks/recall_defaults.py measured exact numpy search at about 6 ns per user
# and item, and benchmarks/compare.py the tree search at about 80 ns per candidate.
EXACT_SHARE = 16


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


def exact_threshold(n_indexed):
    """Return the largest search_k worth tuning before exact search is cheaper."""
    return max(1, n_indexed // EXACT_SHARE)

