"""Recall@10 and time of ``recommend`` with default settings, against exact search.

Workloads: the quickstart data (uniform [0, 1) items 100,000 x 16, users 10,000 x
16, seed 42) and, when the data folder is present, the trained factors of
MovieLens-100k (SVD, NMF, ALS) and Gowalla (ALS, 64 dims). With ``--w3``, also
W3 of ``compare.py``: 1,000,000 x 64 items shaped like matrix-factorisation
output and 10,000 users (several minutes and about 2 GB). Exact top-10 comes from
numpy: one BLAS matrix product and argpartition per block of users (per tile for
W3). The kernels are compiled by a warm-up call first, so the times exclude
compilation. The table names the path each call took, from its log, and the share
of the items that exact search scored for 256 sampled users at k = 10.

Usage: python benchmarks/recall_defaults.py [--data ../shared/data] [--w3]
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from hyperscale import LOGGER_NAME, hyperscale
from hyperscale._demo import exact_top_k, recall_at_k
from hyperscale._exact import ExactItems


def w3_workload():
    # compare.py owns the W3 generator and its tiled exact search.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare import exact_top_k_tiled, factors_w3

    items, users = factors_w3(quick=False)
    return "W3 (1M x 64, MF-like)", users, items, lambda: exact_top_k_tiled(users, items, 10)


def workloads(data_dir):
    rng = np.random.default_rng(42)
    items = rng.random((100_000, 16), dtype=np.float32)
    users = rng.random((10_000, 16), dtype=np.float32)
    yield "quickstart uniform", users, items
    factors = data_dir / "factors"
    if not factors.is_dir():
        return
    for name in ("svd64", "nmf64", "als64"):
        yield f"ml-100k {name}", np.load(factors / f"ml100k_{name}_users.npy"), np.load(
            factors / f"ml100k_{name}_items.npy"
        )
    yield "gowalla als64", np.load(factors / "gowalla_als64_users.npy"), np.load(
        factors / "gowalla_als64_items.npy"
    )


def describe_path(messages):
    """Name the path a recommend() call took, from its log lines."""
    if any(message.startswith("exact search for") for message in messages):
        return "exact"
    if any(message.startswith("switching to exact search") for message in messages):
        return "trees, then exact"
    return "tuned trees"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("HYPERSCALE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", default=default_data, help="real-data folder (default: $HYPERSCALE_DATA or ../shared/data)")
    parser.add_argument("--w3", action="store_true", help="only W3, the 1,000,000-item workload of compare.py")
    args = parser.parse_args()

    hs = hyperscale(random_state=0, show_progress=False, verbose=True)
    rng = np.random.default_rng(0)
    hs.recommend(rng.random((100, 8)), rng.random((2_000, 8)))
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    # The steps also go to stderr, and the table to stdout.
    logging.getLogger(LOGGER_NAME).addHandler(Collect())

    print("| workload | users | items | dim | path taken | share scored | recommend (s) | exact numpy (s) | recall@10 |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    if args.w3:
        cases = [w3_workload()]
    else:
        cases = [(name, users, items, None) for name, users, items in workloads(Path(args.data))]
    for name, users, items, exact in cases:
        messages.clear()
        start = time.perf_counter()
        found = hs.recommend(users, items)
        seconds = time.perf_counter() - start
        path = describe_path(messages)
        # The share that the call's choice sampled, measured again outside the timed call.
        sampled = ExactItems(np.ascontiguousarray(items, dtype=np.float32))
        share = sampled.scored_share(np.ascontiguousarray(users, dtype=np.float32), 10)
        start = time.perf_counter()
        truth = exact() if exact is not None else exact_top_k(users, items, 10)
        exact_seconds = time.perf_counter() - start
        print(
            f"| {name} | {users.shape[0]:,} | {items.shape[0]:,} | {items.shape[1]} | {path} | {100 * share:.1f} % | "
            f"{seconds:.2f} | {exact_seconds:.2f} | {recall_at_k(found, truth):.3f} |"
        )


if __name__ == "__main__":
    main()
