"""The trees and search effort that ``recommend`` chooses when the caller gives none."""

# Queries that VectorIndex.tune() samples by default.
TUNE_SAMPLE = 1000

# A recommend() call that tunes its search effort builds at most
# RECOMMEND_MAX_TREES trees by default, because one call pays for its index once
# and the tuning makes up for the recall per candidate that fewer trees lose. On
# Gowalla ALS-64 factors (41,000 items, 29,858 users) tuned to recall@10 0.95,
# 16 trees took 4.1 s in all and 65 trees 8.8 s: their search was no faster.
RECOMMEND_MAX_TREES = 16

# Given neither search_k nor target_recall, recommend() for at least
# AUTO_TUNE_MIN_USERS users tunes search_k on AUTO_TUNE_SAMPLE of them, aiming at
# AUTO_TARGET_RECALL. No fixed budget suits all data: 2 * k * n_trees gave
# recall@10 0.982 on uniform items, 0.999 on the Gowalla factors at the cost of
# exact search, and 0.941 on a million clustered factors. The aim is above 0.95
# because the estimate comes from a sample. Fewer users are not worth a sample.
AUTO_TUNE_MIN_USERS = 5_000
AUTO_TUNE_SAMPLE = 500
AUTO_TARGET_RECALL = 0.96


def recommend_trees(n_trees, dim, tuned):
    """Return the trees a recommend() call builds; None leaves the choice to VectorIndex."""
    if n_trees is not None or not tuned:
        return n_trees
    return min(dim + 1, RECOMMEND_MAX_TREES)


def recommend_target(search_k, target_recall, n_users):
    """Return (target recall or None, sample size) for tuning the search effort of recommend()."""
    if search_k is not None:
        return None, None
    if target_recall is not None:
        return target_recall, TUNE_SAMPLE
    if n_users >= AUTO_TUNE_MIN_USERS:
        return AUTO_TARGET_RECALL, AUTO_TUNE_SAMPLE
    return None, None
