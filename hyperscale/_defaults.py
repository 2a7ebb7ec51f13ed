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

# Users sampled, before the choice, to measure the share of the items that exact
# search scores. Its norm bound stops each user early, and how early depends on
# the data, so the share is measured rather than assumed.
EXACT_SAMPLE = 256

# Costs that decide between exact search and a tree index, in nanoseconds on the
# machine of BENCHMARKS.md, measured by benchmarks/exact_crossover.py. Only their
# ratios matter, and those move less between machines than the times.
# Exact search, per user and item scored, plus per user, item scored and dimension.
# An upper envelope, not a fit: exact_crossover.py measured 2.9 to 4.3 ns per
# item scored on uniform vectors at 16 to 64 dimensions. The envelope leaves room
# for data where more of the items scored enter the top-k heaps.
# NOTE: since exact search regroups its queries between spans, a run measured
# 1.0 to 1.5 ns, and tree costs 2.4 to 3.4 times below their constants. At 64
# dimensions the model now leans toward the trees. It still chose exact search
# on every workload of BENCHMARKS.md.
EXACT_NS_PER_ITEM = 3.0
EXACT_NS_PER_ITEM_DIM = 0.09
# The build, per tree and item, plus per tree, item and dimension:
BUILD_NS_PER_ITEM = 514.0
BUILD_NS_PER_ITEM_DIM = 15.0
# The tree search, per user and candidate, plus per user, candidate and dimension:
SEARCH_NS_PER_CANDIDATE = 63.0
SEARCH_NS_PER_CANDIDATE_DIM = 0.8
# The tree search is costed at this many candidates per tree and per item
# returned: the budget the tuning chose for W1 of BENCHMARKS.md (search_k=320
# for 8 trees and k=10). NOTE: one measurement. Harder data needs more, and
# the tuning costs its own sample, so near the break-even the trees can lose.
TUNED_CANDIDATES_PER_TREE = 4


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


def exact_is_cheaper(n_users, n_items, dim, k, n_trees, share):
    """Return whether exact search costs less than building ``n_trees`` trees and searching them.

    ``share`` is the mean share of the items that exact search scores per user.
    """
    exact = n_users * n_items * share * exact_ns(dim)
    candidates = TUNED_CANDIDATES_PER_TREE * k * n_trees
    trees = n_trees * n_items * build_ns(dim) + n_users * min(candidates, n_items) * search_ns(dim)
    return exact <= trees


def replaces_trees(n_trees, search_k):
    """Return whether a recommend() call leaves the choice of exact search to the cost model.

    Only a call that gives neither ``n_trees`` nor ``search_k`` may be switched.
    """
    return n_trees is None and search_k is None


def exact_threshold(n_indexed, dim, share):
    """Return the largest search_k worth tuning before exact search is cheaper."""
    return max(1, int(n_indexed * share * exact_ns(dim) / search_ns(dim)))


def exact_ns(dim):
    return EXACT_NS_PER_ITEM + EXACT_NS_PER_ITEM_DIM * dim


def build_ns(dim):
    return BUILD_NS_PER_ITEM + BUILD_NS_PER_ITEM_DIM * dim


def search_ns(dim):
    return SEARCH_NS_PER_CANDIDATE + SEARCH_NS_PER_CANDIDATE_DIM * dim
