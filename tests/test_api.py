"""The public API's contract: shapes, dtypes, logging, progress bars, batch = single."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hyperscale as package
from hyperscale import LOGGER_NAME, VectorIndex, hyperscale

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def factors():
    rng = np.random.default_rng(0)
    users = rng.normal(size=(300, 12)).astype(np.float32)
    items = rng.normal(size=(3_000, 12)).astype(np.float32)
    return users, items


def quiet(**kwargs):
    return hyperscale(show_progress=False, verbose=False, **kwargs)


def test_public_names():
    assert package.__version__ == "0.1.0"
    assert LOGGER_NAME == "⚡hyperscale"
    assert callable(hyperscale().recommend)


def test_recommend_shape_and_dtype(factors):
    users, items = factors
    found = quiet(random_state=0).recommend(users, items, n_vectors=7)
    assert found.shape == (300, 7)
    assert found.dtype == np.int32
    assert found.min() >= 0
    assert found.max() < 3_000


def test_recommend_rows_best_first(factors):
    users, items = factors
    found = quiet(random_state=0).recommend(users, items)
    scores = np.take_along_axis(users @ items.T, found.astype(np.int64), axis=1)
    assert (np.diff(scores, axis=1) <= 1e-5).all()


def test_recommend_default_n_trees_logged(factors, caplog):
    users, items = factors
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        hyperscale(random_state=0, show_progress=False).recommend(users, items, search_k=100)
    messages = [record.getMessage() for record in caplog.records if record.name == LOGGER_NAME]
    assert "augmenting vectors with the Euclidean transformation" in messages
    assert "building the index with 13 trees" in messages
    assert any(message.startswith("augmenting user vectors with an extra dimension") for message in messages)
    assert "finding top 10 for all 300 users" in messages


def test_recommend_logs_exact_choice(factors, caplog):
    users, items = factors
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        hyperscale(random_state=0, show_progress=False).recommend(users, items)
    messages = [record.getMessage() for record in caplog.records if record.name == LOGGER_NAME]
    assert any(message.startswith("exact search for 300 users: cheaper than") for message in messages)


def test_verbose_false_logs_nothing_at_info(factors, caplog):
    users, items = factors
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        quiet(random_state=0).recommend(users, items)
    assert [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno >= logging.INFO] == []


@pytest.mark.parametrize(
    ("options", "bars"),
    [({}, ["exact search"]), ({"search_k": 100}, ["building trees", "searching"])],
    ids=["exact", "trees"],
)
def test_progress_bars_on_stderr(factors, capsys, options, bars):
    users, items = factors
    hyperscale(random_state=0, verbose=False).recommend(users, items, **options)
    err = capsys.readouterr().err
    for bar in bars:
        assert bar in err


def test_show_progress_false_prints_nothing(factors, capsys):
    users, items = factors
    quiet(random_state=0).recommend(users, items)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_default_handler_prints_without_logging_config():
    script = (
        "import numpy as np\n"
        "from hyperscale import hyperscale\n"
        "rng = np.random.default_rng(0)\n"
        "hyperscale(random_state=0, show_progress=False).recommend(rng.random((20, 4)), rng.random((50, 4)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "⚡hyperscale: exact search for 20 users" in result.stderr


def test_default_handler_yields_to_root_handler():
    script = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='ROOT %(message)s')\n"
        "import numpy as np\n"
        "from hyperscale import hyperscale\n"
        "rng = np.random.default_rng(0)\n"
        "hyperscale(random_state=0, show_progress=False).recommend(rng.random((20, 4)), rng.random((50, 4)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "ROOT exact search for 20 users" in result.stdout
    assert "⚡hyperscale:" not in result.stderr


def test_import_compiles_nothing():
    script = (
        "import hyperscale._kernels as k\n"
        "import hyperscale\n"
        "compiled = [name for name in dir(k) if hasattr(getattr(k, name), 'signatures')"
        " and getattr(k, name).signatures]\n"
        "print(compiled)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_find_similar_all_and_single_agree(factors):
    _, items = factors
    hs = quiet(random_state=3)
    every = hs.find_similar_vectors(items, n_vectors=5)
    assert every.shape == (3_000, 5)
    assert every.dtype == np.int32
    for vector_id in (0, 17, 2_999):
        single = hs.find_similar_vectors(items, vector_id=vector_id, n_vectors=5)
        assert single.shape == (5,)
        np.testing.assert_array_equal(single, every[vector_id])


def test_find_similar_starts_with_self(factors):
    _, items = factors
    found = quiet(random_state=3).find_similar_vectors(items, n_vectors=4)
    np.testing.assert_array_equal(found[:, 0], np.arange(3_000))


def test_find_similar_exclude_self(factors):
    _, items = factors
    found = quiet(random_state=3).find_similar_vectors(items, n_vectors=4, exclude_self=True, search_k=400)
    assert not (found == np.arange(3_000)[:, None]).any()
    included = quiet(random_state=3).find_similar_vectors(items, n_vectors=5, search_k=400)
    np.testing.assert_array_equal(found, included[:, 1:])


def test_index_batch_equals_single(factors):
    users, items = factors
    index = VectorIndex(metric="dot", random_state=0, show_progress=False, verbose=False).build(items)
    batch_ids, batch_scores = index.query(users, k=10)
    for row in (0, 1, 150, 299):
        ids, scores = index.query(users[row : row + 1], k=10)
        np.testing.assert_array_equal(ids[0], batch_ids[row])
        np.testing.assert_array_equal(scores[0], batch_scores[row])


def test_index_properties(factors):
    _, items = factors
    index = VectorIndex(metric="euclidean", n_trees=4, leaf_size=20, random_state=0, show_progress=False)
    assert "not built" in repr(index)
    with pytest.raises(RuntimeError, match="not been built"):
        index.query(items[:2])
    index.build(items)
    assert len(index) == 3_000
    assert index.dim == 12
    assert index.metric == "euclidean"
    assert index.n_indexed == 3_000
    assert index.nbytes > items.nbytes
    assert "n_trees=4" in repr(index)
    assert index.default_search_k(10) == 2 * 10 * 4


def test_build_vector_index_default_metric_angular(factors):
    _, items = factors
    index = quiet(random_state=0).build_vector_index(items)
    assert index.metric == "angular"
    assert index._n_trees_built == 12


def test_build_vector_index_save(factors, tmp_path, caplog):
    _, items = factors
    path = tmp_path / "items.hsx"
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        index = hyperscale(random_state=0, show_progress=False).build_vector_index(items, save_index=path)
    assert path.is_file()
    assert any(str(path) in record.getMessage() for record in caplog.records)
    loaded = VectorIndex.load(path, show_progress=False)
    for a, b in zip(index.query(items[:50], k=5), loaded.query(items[:50], k=5)):
        np.testing.assert_array_equal(a, b)


def test_augment_vectors(factors):
    _, items = factors
    before = items.copy()
    augmented = quiet().augment_vectors(items)
    np.testing.assert_array_equal(items, before)
    assert augmented.shape == (3_000, 13)
    assert augmented.dtype == np.float32
    norms = np.linalg.norm(augmented.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, norms.max(), rtol=1e-5)
    assert (augmented[:, -1] >= 0).all()


def test_augment_vectors_float64_stays_float64():
    items = np.random.default_rng(1).normal(size=(10, 3))
    augmented = quiet().augment_vectors(items)
    assert augmented.dtype == np.float64
    np.testing.assert_array_equal(augmented[:, :3], items)
