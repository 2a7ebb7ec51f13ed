"""Import time and first-call time of hyperscale in fresh processes, cold and warm.

Run 1 starts with an empty Numba cache (NUMBA_CACHE_DIR points to a new folder),
so it compiles every kernel. Runs 2 and 3 reuse that cache. Each run is a new
Python process that imports hyperscale and calls ``recommend`` once on 100 users x
2,000 items x 16 dims. The cache's file count after each run shows whether it
keeps growing.

``recommend`` with its defaults scores every item exactly for so few users, and
compiles only the exact-search kernel. The same runs are then repeated with a
second cache for the first tree index: ``VectorIndex("dot").build`` on the same
items and one ``query``, which compiles the build and search kernels.

Usage: python benchmarks/compile_latency.py [--runs 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
start = time.perf_counter()
import numpy as np
from hyperscale import VectorIndex, hyperscale
imported = time.perf_counter()
rng = np.random.default_rng(0)
users, items = rng.random((100, 16)), rng.random((2000, 16))
if sys.argv[1] == "recommend":
    hyperscale(random_state=0, show_progress=False, verbose=False).recommend(users, items)
else:
    index = VectorIndex("dot", random_state=0, show_progress=False, verbose=False).build(items)
    index.query(users, k=10)
print(json.dumps({"import": imported - start, "first_call": time.perf_counter() - imported}))
"""

CALLS = {
    "recommend": "first recommend (defaults)",
    "trees": "first tree build + query",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="number of fresh processes (default 3)")
    args = parser.parse_args()

    print("| call | run | cache | import (s) | first call (s) | cache files | cache size (KiB) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for call, label in CALLS.items():
        with tempfile.TemporaryDirectory() as cache:
            environment = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for run in range(1, args.runs + 1):
                output = subprocess.run(
                    [sys.executable, "-c", CHILD, call], env=environment, capture_output=True, text=True, check=True
                ).stdout
                times = json.loads(output)
                files = [path for path in Path(cache).rglob("*") if path.is_file()]
                size = sum(path.stat().st_size for path in files) / 1024
                state = "empty" if run == 1 else "warm"
                print(
                    f"| {label} | {run} | {state} | {times['import']:.2f} | {times['first_call']:.2f} | "
                    f"{len(files)} | {size:.0f} |",
                    flush=True,
                )

if __name__ == "__main__":
    main()
