"""Wall time of ``recommend`` on a dask LocalCluster with 1 and 2 workers, and in one local process.

Each measurement runs in a fresh process. The item vectors are generated on the
client with numpy (seed 30). The user vectors are a dask array generated chunk by
chunk with ``dask.array.random.default_rng(31)``, so in the cluster runs they are
drawn on the workers and never reach the client. The local reference
computes the same users into one numpy array first (not timed).

- Cluster runs: a LocalCluster on 127.0.0.1 with N worker processes, 1 thread
  each and NUMBA_NUM_THREADS=1 in every worker, so N workers use N cores.
  "build + send" is the ``recommend`` call itself: the client builds the index
  (with all its Numba threads) and scatters it to the workers. "search" is the
  ``compute()`` of the lazy result, including the generation of the users.
- Local reference: ``VectorIndex(metric="dot").build`` then ``query``, the two
  steps of ``recommend``, in one process with NUMBA_NUM_THREADS=2.

Every run first searches a small warm-up set, so the time excludes the loading
of the compiled kernels. Users per second counts the search time only. The runs
must return identical ids (they share the seed), and the script prints
whether they do.

Usage: python benchmarks/dask_scaling.py [--users 1000000] [--items 100000] [--dim 32] [--chunk-rows 50000]
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# The children import hyperscale from this checkout, installed or not.
REPO_ROOT = Path(__file__).resolve().parent.parent

K = 10
ITEM_SEED = 30
USER_SEED = 31
SEED = 0


def generate(args):
    """Return the items (numpy, float32) and the users (dask array, float32)."""
    import dask.array as da
    import numpy as np

    items = np.random.default_rng(ITEM_SEED).normal(size=(args.items, args.dim)).astype(np.float32)
    users = da.random.default_rng(USER_SEED).standard_normal(
        size=(args.users, args.dim), chunks=(args.chunk_rows, args.dim), dtype=np.float32
    )
    return items, users


def peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_local(args):
    import numpy as np

    from hyperscale import VectorIndex

    items, users = generate(args)
    users = users.compute(scheduler="threads")
    warm_up = VectorIndex(metric="dot", random_state=SEED, show_progress=False, verbose=False)
    warm_up.build(items[:2_000]).query(users[:1_000], k=K)

    start = time.perf_counter()
    index = VectorIndex(metric="dot", random_state=SEED, show_progress=False, verbose=False).build(items)
    built = time.perf_counter()
    ids, _ = index.query(users, k=K)
    searched = time.perf_counter()
    return {
        "build_s": built - start,
        "search_s": searched - built,
        "ids_sha256": hashlib.sha256(np.ascontiguousarray(ids).tobytes()).hexdigest(),
        "index_mb": index.nbytes / 1e6,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_cluster(args):
    import numpy as np
    from distributed import Client, LocalCluster

    from hyperscale import hyperscale

    items, users = generate(args)
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    client = Client(cluster)
    try:
        hs = hyperscale(random_state=SEED, show_progress=False, verbose=False)
        # One small chunk per worker loads the kernels on every worker.
        warm_up = users[: 100 * args.workers].rechunk(100)
        hs.recommend(warm_up, items[:2_000], n_vectors=K).compute()

        start = time.perf_counter()
        lazy_ids = hs.recommend(users, items, n_vectors=K)
        sent = time.perf_counter()
        ids = lazy_ids.compute()
        searched = time.perf_counter()
        worker_rss = client.run(peak_rss_mib)
    finally:
        client.close()
        cluster.close()
    return {
        "build_s": sent - start,
        "search_s": searched - sent,
        "ids_sha256": hashlib.sha256(np.ascontiguousarray(ids).tobytes()).hexdigest(),
        "peak_rss_mib": max(worker_rss.values()),
    }


def run_child(args, mode, workers, numba_threads):
    """Run one measurement in a fresh process and return its JSON result."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--users",
        str(args.users),
        "--items",
        str(args.items),
        "--dim",
        str(args.dim),
        "--chunk-rows",
        str(args.chunk_rows),
        "--measure",
        mode,
        "--workers",
        str(workers),
    ]
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, NUMBA_NUM_THREADS=str(numba_threads), PYTHONPATH=python_path)
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"the {mode} measurement with {workers} worker(s) failed with exit code {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users to recommend for (default 1,000,000)")
    parser.add_argument("--items", type=int, default=100_000, help="items in the index (default 100,000)")
    parser.add_argument("--dim", type=int, default=32, help="dimensions of every vector (default 32)")
    parser.add_argument(
        "--chunk-rows", type=int, default=50_000, help="users per dask chunk, so per task (default 50,000)"
    )
    parser.add_argument("--measure", choices=["local", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure == "local":
        print(json.dumps(measure_local(args)))
        return
    if args.measure == "cluster":
        print(json.dumps(measure_cluster(args)))
        return

    import dask
    import numba

    local = run_child(args, "local", 1, numba_threads=2)
    one_worker = run_child(args, "cluster", 1, numba_threads=2)
    two_workers = run_child(args, "cluster", 2, numba_threads=2)

    command = (
        f"python benchmarks/dask_scaling.py --users {args.users} --items {args.items} "
        f"--dim {args.dim} --chunk-rows {args.chunk_rows}"
    )
    print(f"Command: `{command}`")
    print(
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"numba {numba.__version__}, dask {dask.__version__}. "
        f"Index: {local['index_mb']:.0f} MB (index.nbytes), k={K}, default search_k."
    )
    print()
    print("| setup | build + send (s) | search (s) | users/s | peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [
        ("local: 1 process, 2 Numba threads", local),
        ("dask: 1 worker x 1 thread", one_worker),
        ("dask: 2 workers x 1 thread", two_workers),
    ]
    for label, row in rows:
        print(
            f"| {label} | {row['build_s']:.1f} | {row['search_s']:.1f} | "
            f"{args.users / row['search_s']:,.0f} | {row['peak_rss_mib']:,.0f} |"
        )
    print()
    print("Peak RSS: the largest worker process for dask (the client not counted), the one process for local.")
    print(f"Scaling ratio, users/s of 2 workers / 1 worker: {one_worker['search_s'] / two_workers['search_s']:.2f}")
    identical = local["ids_sha256"] == one_worker["ids_sha256"] == two_workers["ids_sha256"]
    print(f"Identical ids in all three runs: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
