"""recommend and VectorIndex.query on dask arrays, on a real two-process LocalCluster.

Every result is compared for exact equality with the local call on the same
vectors and seed: a query's result depends only on that query, the index and
search_k, so chunking must not change a single id or score.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from hyperscale import VectorIndex, hyperscale  # noqa: E402  (after the dask checks)
from hyperscale import _defaults, _exact, _exact_kernels, _kernels  # noqa: E402
from hyperscale._exact import ExactItems  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

N_USERS, N_ITEMS, DIM = 2_000, 3_000, 16
# Uneven row chunks, so that a slicing error in the exclusions shows.
USER_CHUNKS = (700, 300, 1_000)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with 1 thread each, on loopback only.

    The workers receive the repository root in PYTHONPATH, so they import this
    checkout of hyperscale even when it is not installed. They inherit the rest
    of the environment, NUMBA_CACHE_DIR included.
    """
    with pytest.MonkeyPatch.context() as patch:
        paths = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        # The Active Memory Manager drops replicas it finds redundant soon after
        # the tasks end, which made the check of the broadcast copies flaky.
        no_memory_manager = dask.config.set({"distributed.scheduler.active-memory-manager.start": False})
        with no_memory_manager:
            cluster = distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
    dask_client = distributed.Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(40)
    items = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    users = rng.normal(size=(N_USERS, DIM))
    return users, items


@pytest.fixture(scope="module")
def seen():
    """Interactions with uneven rows: some users have none, some many."""
    matrix = sp.random(N_USERS, N_ITEMS, density=0.01, format="csr", random_state=41)
    matrix = sp.vstack([matrix[:650], sp.csr_matrix((100, N_ITEMS)), matrix[750:]]).tocsr()
    matrix.data[:] = 1.0
    return matrix


def quiet(**kwargs):
    return hyperscale(show_progress=False, verbose=False, **kwargs)


def as_dask(users, chunks=USER_CHUNKS):
    return da.from_array(users, chunks=(chunks, DIM))


@pytest.fixture()
def scatter_calls(client, monkeypatch):
    """Record the payload and the returned futures of every client.scatter call."""
    calls = []
    original = client.scatter

    def recording_scatter(data, *args, **kwargs):
        futures = original(data, *args, **kwargs)
        calls.append((data, futures))
        return futures

    monkeypatch.setattr(client, "scatter", recording_scatter)
    return calls


def is_index(data):
    return any(isinstance(item, (VectorIndex, ExactItems)) for item in data)


def index_keys_per_worker(client):
    return {
        worker: sorted(key for key in keys if str(key).startswith(("VectorIndex-", "ExactItems-")))
        for worker, keys in client.has_what().items()
    }


# ----------------------------------------------------------------------
# Import and dispatch
# ----------------------------------------------------------------------


def test_import_does_not_load_dask():
    script = "import sys\nimport hyperscale\nprint('dask' in sys.modules, 'distributed' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


@pytest.mark.parametrize("module", ["distributed", "dask.array"])
def test_missing_dask_raises_import_error(vectors, monkeypatch, module):
    users, items = vectors
    dask_users = as_dask(users)
    # A None entry makes the next import of that module raise ImportError.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r'pip install "hyperscale\[dask\]"'):
        quiet(random_state=0).recommend(dask_users, items)
    index = VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=False).build(items)
    with pytest.raises(ImportError, match=r'pip install "hyperscale\[dask\]"'):
        index.query(dask_users, k=5)


# ----------------------------------------------------------------------
# Exact equality with the local call, on the cluster
# ----------------------------------------------------------------------


def test_recommend_equals_local(client, vectors):
    users, items = vectors
    expected = quiet(random_state=0).recommend(users, items)
    ids = quiet(random_state=0).recommend(as_dask(users), items)
    assert isinstance(ids, da.Array)
    assert ids.dtype == np.int32
    assert ids.chunks == (USER_CHUNKS, (10,))
    np.testing.assert_array_equal(ids.compute(), expected)


def test_recommend_scores_equal_local(client, vectors):
    users, items = vectors
    expected_ids, expected_scores = quiet(random_state=0).recommend(users, items, n_vectors=7, return_scores=True)
    ids, scores = quiet(random_state=0).recommend(as_dask(users), items, n_vectors=7, return_scores=True)
    assert isinstance(ids, da.Array)
    assert isinstance(scores, da.Array)
    assert scores.dtype == np.float32
    computed_ids, computed_scores = dask.compute(ids, scores)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_scores, expected_scores)


def test_recommend_exclude_equals_local(client, vectors, seen, scatter_calls):
    users, items = vectors
    expected_ids, expected_scores = quiet(random_state=0).recommend(users, items, exclude=seen, return_scores=True)
    ids, scores = quiet(random_state=0).recommend(as_dask(users), items, exclude=seen, return_scores=True)
    computed_ids, computed_scores = dask.compute(ids, scores)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_scores, expected_scores)

    seen_pairs = set(zip(*seen.nonzero()))
    returned_pairs = {(user, item) for user, row in enumerate(computed_ids) for item in row}
    assert not seen_pairs & returned_pairs


def test_exclude_split_by_user_chunk(client, vectors, seen, scatter_calls):
    users, items = vectors
    ids = quiet(random_state=0).recommend(as_dask(users), items, exclude=seen)
    exclusion_calls = [(data, futures) for data, futures in scatter_calls if not is_index(data)]
    assert len(exclusion_calls) == 1
    parts, futures = exclusion_calls[0]
    assert [part.shape for part in parts] == [(rows, N_ITEMS) for rows in USER_CHUNKS]
    bounds = np.cumsum((0,) + USER_CHUNKS)
    for part, low, high in zip(parts, bounds[:-1], bounds[1:]):
        assert (part != seen[low:high]).nnz == 0

    # Each worker stores the slices as they were scattered: one chunk's rows each.
    keys = {future.key for future in futures}
    shapes_per_worker = client.run(
        lambda dask_worker: {key: value.shape for key, value in dask_worker.data.items() if key in keys}
    )
    shapes = sorted(shape for on_worker in shapes_per_worker.values() for shape in on_worker.values())
    assert shapes == sorted((rows, N_ITEMS) for rows in USER_CHUNKS)
    assert ids.compute().shape == (N_USERS, 10)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda m: m.tocoo(), id="coo"),
        pytest.param(lambda m: m.toarray().astype(bool), id="boolean"),
        pytest.param(lambda m: [row.indices for row in m], id="list"),
    ],
)
def test_recommend_exclude_formats(client, vectors, seen, convert):
    users, items = vectors
    exclude = convert(seen)
    expected = quiet(random_state=0).recommend(users, items, exclude=exclude)
    ids = quiet(random_state=0).recommend(as_dask(users), items, exclude=exclude)
    np.testing.assert_array_equal(ids.compute(), expected)


@pytest.mark.parametrize("metric", ["dot", "angular", "euclidean"])
def test_query_equals_local(client, vectors, metric):
    users, items = vectors
    index = VectorIndex(metric=metric, random_state=2, show_progress=False, verbose=False).build(items)
    expected_ids, expected_values = index.query(users, k=5)
    ids, values = index.query(as_dask(users), k=5)
    assert isinstance(ids, da.Array)
    assert isinstance(values, da.Array)
    assert ids.chunks == (USER_CHUNKS, (5,))
    computed_ids, computed_values = dask.compute(ids, values)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_values, expected_values)


def test_query_item_filters_equal_local(client, vectors, seen):
    users, items = vectors
    index = VectorIndex(metric="dot", random_state=3, show_progress=False, verbose=False).build(items)
    allowed = np.arange(0, N_ITEMS, 3)
    denied = allowed[:50]
    options = dict(k=8, search_k=200, items=allowed, exclude_items=denied, exclude=seen)
    expected_ids, expected_values = index.query(users, **options)
    ids, values = index.query(as_dask(users), **options)
    computed_ids, computed_values = dask.compute(ids, values)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_values, expected_values)
    assert np.isin(computed_ids[computed_ids >= 0], allowed).all()
    assert not np.isin(computed_ids, denied).any()


@pytest.mark.parametrize("factor", [1.0, 0.8])
def test_query_bound_factor_equals_local(client, vectors, seen, factor):
    users, items = vectors
    index = VectorIndex(metric="dot", n_trees=1, random_state=3, show_progress=False, verbose=False).build(items)
    expected_ids, expected_values = index.query(users, k=8, exclude=seen, bound_factor=factor)
    ids, values = index.query(as_dask(users), k=8, exclude=seen, bound_factor=factor)
    computed_ids, computed_values = dask.compute(ids, values)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_values, expected_values)


def test_query_uses_tuned_search_k(client, vectors):
    users, items = vectors
    index = VectorIndex(metric="dot", random_state=4, show_progress=False, verbose=False).build(items)
    index.tune(users[:500], target_recall=0.9, k=10)
    expected_ids, _ = index.query(users, k=10)
    ids, _ = index.query(as_dask(users), k=10)
    np.testing.assert_array_equal(ids.compute(), expected_ids)


def test_target_recall_tunes_on_first_chunk(client, vectors):
    users, items = vectors
    n_trees = _defaults.recommend_trees(None, items.shape[1], tuned=True)
    tuned = VectorIndex(metric="dot", n_trees=n_trees, random_state=0, show_progress=False, verbose=False)
    search_k, _ = tuned.build(items).tune(users[: USER_CHUNKS[0]], target_recall=0.9, k=10)
    expected = quiet(random_state=0).recommend(users, items, n_trees=n_trees, search_k=search_k)
    ids = quiet(random_state=0).recommend(as_dask(users), items, n_trees=n_trees, target_recall=0.9)
    assert isinstance(ids, da.Array)
    np.testing.assert_array_equal(ids.compute(), expected)


def test_many_users_tune_on_first_chunk(client, vectors):
    _, items = vectors
    users = np.random.default_rng(41).normal(size=(_defaults.AUTO_TUNE_MIN_USERS, DIM))
    chunks = (1_000,) * (len(users) // 1_000)
    n_trees = _defaults.recommend_trees(None, items.shape[1], tuned=True)
    tuned = VectorIndex(metric="dot", n_trees=n_trees, random_state=0, show_progress=False, verbose=False)
    search_k, _ = tuned.build(items).tune(
        users[: chunks[0]], target_recall=_defaults.AUTO_TARGET_RECALL, k=10, sample=_defaults.AUTO_TUNE_SAMPLE
    )
    expected = quiet(random_state=0).recommend(users, items, n_trees=n_trees, search_k=search_k)
    ids = quiet(random_state=0).recommend(as_dask(users, chunks), items, n_trees=n_trees)
    np.testing.assert_array_equal(ids.compute(), expected)


def test_default_is_exact_when_cheaper(client, vectors):
    users, items = vectors
    assert _exact.prefers_exact(ExactItems(items.astype(np.float32)), users, len(users), 10, None, None)[0]
    ids, scores = quiet(random_state=0).recommend(as_dask(users), items, return_scores=True)
    exact = users.astype(np.float64) @ items.T.astype(np.float64)
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids.compute(), expected)
    np.testing.assert_allclose(scores.compute(), np.take_along_axis(exact, expected, axis=1), rtol=1e-5)


def test_column_chunks_are_merged(client, vectors):
    users, items = vectors
    expected = quiet(random_state=0).recommend(users, items)
    dask_users = da.from_array(users, chunks=(USER_CHUNKS, (10, 6)))
    ids = quiet(random_state=0).recommend(dask_users, items)
    assert ids.chunks == (USER_CHUNKS, (10,))
    np.testing.assert_array_equal(ids.compute(), expected)


# ----------------------------------------------------------------------
# What is shipped to the workers
# ----------------------------------------------------------------------


def test_index_scattered_once(client, vectors, scatter_calls):
    users, items = vectors
    before = index_keys_per_worker(client)
    many_chunks = tuple([100] * 20)
    ids, scores = quiet(random_state=0).recommend(as_dask(users, many_chunks), items, return_scores=True)
    dask.compute(ids, scores)

    assert len([data for data, _ in scatter_calls if is_index(data)]) == 1
    after = index_keys_per_worker(client)
    new_keys = {worker: set(after[worker]) - set(before.get(worker, [])) for worker in after}
    assert len(new_keys) == 2
    # broadcast=True: every worker stores the one copy, under the same key.
    assert all(len(keys) == 1 for keys in new_keys.values())
    assert len(set().union(*new_keys.values())) == 1


@pytest.mark.parametrize(
    "options, kernel",
    [
        pytest.param({}, "exact", id="exact"),
        pytest.param({"n_trees": 8}, "trees", id="trees"),
    ],
)
def test_workers_load_kernels_from_cache(client, vectors, options, kernel):
    users, items = vectors
    quiet(random_state=0).recommend(users[:10], items, **options)
    ids = quiet(random_state=0).recommend(as_dask(users), items, **options)
    ids.compute()

    def kernel_stats():
        # Looked up on the worker: a pickled dispatcher would arrive with fresh stats.
        stats = (_exact_kernels.search_span if kernel == "exact" else _kernels.search_batch).stats
        return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())

    for hits, misses in client.run(kernel_stats).values():
        assert hits >= 1
        assert misses == 0


# ----------------------------------------------------------------------
# Local schedulers
# ----------------------------------------------------------------------


# A scheduler chosen with dask.config.set wins over the open client of the other
# tests, in dask as in hyperscale.
@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_local_scheduler_equals_local(client, vectors, seen, monkeypatch, scheduler):
    users, items = vectors

    def fail_scatter(*args, **kwargs):
        pytest.fail("client.scatter was called under a local scheduler")

    monkeypatch.setattr(distributed.Client, "scatter", fail_scatter)
    expected_ids, expected_scores = quiet(random_state=0).recommend(users, items, exclude=seen, return_scores=True)
    with dask.config.set(scheduler=scheduler):
        ids, scores = quiet(random_state=0).recommend(as_dask(users), items, exclude=seen, return_scores=True)
        computed_ids, computed_scores = dask.compute(ids, scores)
    np.testing.assert_array_equal(computed_ids, expected_ids)
    np.testing.assert_array_equal(computed_scores, expected_scores)


def test_without_client_equals_local():
    # A fresh process, because this module keeps a distributed client open.
    script = """
import dask.array as da
import distributed
import numpy as np
from hyperscale import hyperscale

rng = np.random.default_rng(42)
items = rng.normal(size=(1_000, 8)).astype(np.float32)
users = rng.normal(size=(300, 8))
hs = hyperscale(random_state=0, show_progress=False, verbose=False)
expected_ids, expected_scores = hs.recommend(users, items, return_scores=True)
ids, scores = hs.recommend(da.from_array(users, chunks=100), items, return_scores=True)
assert isinstance(ids, da.Array)
assert np.array_equal(ids.compute(), expected_ids)
assert np.array_equal(scores.compute(), expected_scores)
try:
    distributed.default_client()
except ValueError:
    print("equal without a client")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "equal without a client"


# ----------------------------------------------------------------------
# Errors raised before anything is built
# ----------------------------------------------------------------------


def test_unknown_chunk_sizes_raise(vectors):
    users, items = vectors
    dask_users = as_dask(users)
    filtered = dask_users[dask_users[:, 0] > 0]
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        quiet(random_state=0).recommend(filtered, items)
    index = VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=False).build(items)
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        index.query(filtered, k=5)


def test_exclude_shape_mismatch_raises(vectors, seen, caplog):
    users, items = vectors
    with pytest.raises(ValueError, match=r"\(2000, 3000\).*\(1999, 3000\)"):
        hs = hyperscale(random_state=0, show_progress=False)
        hs.recommend(as_dask(users[:-1], (999, 1000)), items, exclude=seen)
    assert "building the index" not in caplog.text


def test_dimension_mismatch_raises(vectors):
    users, items = vectors
    with pytest.raises(ValueError, match="have 15 dimensions but item_vectors have 16"):
        quiet(random_state=0).recommend(da.from_array(users[:, :15], chunks=500), items)


def test_nan_row_raises_with_chunk_start(client, vectors):
    users, items = vectors
    broken = users.copy()
    broken[705, 3] = np.nan
    ids = quiet(random_state=0).recommend(as_dask(broken), items)
    with pytest.raises(ValueError, match=r"NaN or infinity in rows \[5\].*starts at row 700 of user_vectors"):
        ids.compute()
