"""Concurrent queries, memory-mapped loading and thread-count independence."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hyperscale import VectorIndex

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_concurrent_queries_equal_serial():
    rng = np.random.default_rng(3)
    items = rng.normal(size=(20_000, 16)).astype(np.float32)
    queries = [rng.normal(size=(500, 16)).astype(np.float32) for _ in range(8)]
    index = VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=False).build(items)
    serial = [index.query(q, k=10) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda q: index.query(q, k=10), queries))
    for (serial_ids, serial_scores), (ids, scores) in zip(serial, concurrent):
        np.testing.assert_array_equal(ids, serial_ids)
        np.testing.assert_array_equal(scores, serial_scores)


def test_load_mmap_keeps_arrays_in_file(tmp_path):
    rng = np.random.default_rng(4)
    items = rng.normal(size=(3_000, 8)).astype(np.float32)
    index = VectorIndex(metric="angular", random_state=0, show_progress=False, verbose=False).build(items)
    path = index.save(tmp_path / "index.hsx")
    mapped = VectorIndex.load(path, mmap=True, show_progress=False)
    in_memory = VectorIndex.load(path, mmap=False, show_progress=False)
    assert isinstance(mapped._vectors, np.memmap)
    assert isinstance(mapped._forest.hyperplanes, np.memmap)
    assert not isinstance(in_memory._vectors, np.memmap)
    for a, b in zip(mapped.query(items[:100], k=5), in_memory.query(items[:100], k=5)):
        np.testing.assert_array_equal(a, b)


THREAD_SCRIPT = """
import hashlib, sys
import numpy as np
import scipy.sparse as sp
from hyperscale import VectorIndex, hyperscale
rng = np.random.default_rng(26)
users = rng.normal(size=(2_000, 32)).astype(np.float32)
items = rng.normal(size=(5_000, 32)).astype(np.float32)
seen = sp.random(2_000, 5_000, density=0.01, format="csr", random_state=26)
hs = hyperscale(random_state=1234, show_progress=False, verbose=False)
ids, scores = hs.recommend(users, items, exclude=seen, return_scores=True)
similar = hs.find_similar_vectors(items, metric="angular")
index = VectorIndex(metric="euclidean", random_state=1234, show_progress=False, verbose=False).build(items)
index.save(sys.argv[1])
digest = hashlib.sha256()
for array in (ids, scores, similar):
    digest.update(np.ascontiguousarray(array).tobytes())
digest.update(open(sys.argv[1], "rb").read())
print(digest.hexdigest())
"""


def test_results_identical_across_thread_counts(tmp_path):
    digests = []
    for threads in ("1", "2", "4"):
        result = subprocess.run(
            [sys.executable, "-c", THREAD_SCRIPT, str(tmp_path / f"index{threads}.hsx")],
            cwd=REPO_ROOT,
            env={**os.environ, "NUMBA_NUM_THREADS": threads},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr
        digests.append(result.stdout.strip())
    assert digests[0] == digests[1]
    assert digests[0] == digests[2]
