"""Input validation and accepted input layouts of the public API, and index files."""

import copy
import pickle
import struct

import numpy as np
import pytest
from conftest import exact_top_k_dot, exact_top_k_euclidean

from hyperscale import VectorIndex, hyperscale

DIM = 16
NON_FINITE = [np.nan, np.inf, -np.inf]
METRIC_NAMES = ["angular", "euclidean", "dot"]


def quiet(random_state=0, **kwargs):
    return hyperscale(random_state=random_state, show_progress=False, verbose=False, **kwargs)


def quiet_index(metric="angular", random_state=0, **kwargs):
    return VectorIndex(metric=metric, random_state=random_state, show_progress=False, verbose=False, **kwargs)


def normal_matrix(n_rows, dim, seed):
    return np.random.default_rng(seed).standard_normal((n_rows, dim)).astype(np.float32)


@pytest.fixture(scope="module")
def index16():
    """An angular index over 100 vectors of dimension 16."""
    return quiet_index().build(normal_matrix(100, DIM, seed=1))


# Each entry maps a case to (call, name). The call passes its argument in one
# position and valid arrays everywhere else, and the error message must use that name.
CALLS = {
    "recommend_users": (lambda index, bad: quiet().recommend(bad, normal_matrix(50, DIM, 2)), "user_vectors"),
    "recommend_items": (lambda index, bad: quiet().recommend(normal_matrix(5, DIM, 3), bad, n_vectors=1), "item_vectors"),
    "find_similar_vectors": (lambda index, bad: quiet().find_similar_vectors(bad, n_vectors=1), "vectors"),
    "build_vector_index": (lambda index, bad: quiet().build_vector_index(bad), "vectors"),
    "augment_vectors": (lambda index, bad: quiet().augment_vectors(bad), "item_vectors"),
    "index_build": (lambda index, bad: quiet_index().build(bad), "vectors"),
    "index_query": (lambda index, bad: index.query(bad, k=1), "queries"),
}


def call_with(index, call_name, bad):
    call, _ = CALLS[call_name]
    return call(index, bad)


# ---------------------------------------------------------------------------
# NaN and infinity
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("call_name", list(CALLS))
def test_non_finite_row_named(index16, call_name, value):
    bad = normal_matrix(20, DIM, seed=4)
    bad[13, 7] = value
    name = CALLS[call_name][1]

    with pytest.raises(ValueError, match=rf"{name} contains NaN or infinity in rows \[13\]"):
        call_with(index16, call_name, bad)


@pytest.mark.parametrize("call_name", list(CALLS))
def test_non_finite_rows_listed(index16, call_name):
    bad = normal_matrix(20, DIM, seed=5)
    bad[[0, 2, 4, 6, 8, 10, 19], 0] = np.nan

    with pytest.raises(ValueError, match=r"rows \[0, 2, 4, 6, 8, … \(2 more\)\]"):
        call_with(index16, call_name, bad)


def test_non_finite_in_python_list():
    rows = normal_matrix(10, 4, seed=6).tolist()
    rows[3][1] = float("nan")

    with pytest.raises(ValueError, match=r"vectors contains NaN or infinity in rows \[3\]"):
        quiet().find_similar_vectors(rows, n_vectors=2)


def test_float32_overflow_rejected():
    vectors = normal_matrix(10, 4, seed=7).astype(np.float64)
    vectors[6, 2] = 1e300

    with pytest.raises(ValueError, match=r"values up to 1e\+300 in rows \[6\], beyond float32"):
        quiet().find_similar_vectors(vectors, n_vectors=2)


def test_float32_underflow_rejected():
    users = normal_matrix(20, 4, seed=8).astype(np.float64)
    users[[2, 5]] *= 1e-50
    items = normal_matrix(30, 4, seed=9)

    with pytest.raises(ValueError, match=r"rows \[2, 5\] whose values.*round to zero in float32"):
        quiet().recommend(users, items)


def test_zero_rows_still_accepted():
    users = normal_matrix(20, 4, seed=10)
    users[3] = 0
    ids = quiet().recommend(users, normal_matrix(30, 4, seed=11), n_vectors=3)
    assert ids.shape == (20, 3)


# ---------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("call_name", list(CALLS))
def test_one_dimensional_rejected(index16, call_name):
    name = CALLS[call_name][1]

    with pytest.raises(ValueError, match=rf"{name} must be a 2-D array .*got shape \(16,\).*reshape\(1, -1\)"):
        call_with(index16, call_name, normal_matrix(1, DIM, seed=8)[0])


@pytest.mark.parametrize("call_name", list(CALLS))
def test_three_dimensional_rejected(index16, call_name):
    name = CALLS[call_name][1]
    bad = np.zeros((4, DIM, 2), dtype=np.float32)

    with pytest.raises(ValueError, match=rf"{name} must be a 2-D array .*got shape \(4, 16, 2\)"):
        call_with(index16, call_name, bad)


@pytest.mark.parametrize("call_name", list(CALLS))
def test_zero_rows_rejected(index16, call_name):
    name = CALLS[call_name][1]

    with pytest.raises(ValueError, match=rf"{name} must have at least one row and one column, got shape \(0, 16\)"):
        call_with(index16, call_name, np.empty((0, DIM), dtype=np.float32))


@pytest.mark.parametrize("call_name", list(CALLS))
def test_zero_columns_rejected(index16, call_name):
    name = CALLS[call_name][1]

    with pytest.raises(ValueError, match=rf"{name} must have at least one row and one column, got shape \(7, 0\)"):
        call_with(index16, call_name, np.empty((7, 0), dtype=np.float32))


def test_recommend_width_mismatch():
    users = normal_matrix(5, 16, seed=9)
    items = normal_matrix(50, 8, seed=10)

    with pytest.raises(ValueError, match=r"user_vectors have 16 dimensions but item_vectors have 8"):
        quiet().recommend(users, items)


def test_query_wrong_dimension(index16):
    with pytest.raises(ValueError, match=r"queries have 8 dimensions but the indexed vectors have 16"):
        index16.query(normal_matrix(3, 8, seed=11))


def test_query_wrong_dimension_after_load(index16, tmp_path):
    loaded = VectorIndex.load(index16.save(tmp_path / "index.hsx"), show_progress=False, verbose=False)

    with pytest.raises(ValueError, match=r"queries have 17 dimensions but the indexed vectors have 16"):
        loaded.query(normal_matrix(3, 17, seed=12))


# ---------------------------------------------------------------------------
# n_vectors and k
# ---------------------------------------------------------------------------

# Each entry calls one function over 100 items with n_vectors, or k, set to its argument.
COUNT_CALLS = {
    "recommend": lambda count: quiet().recommend(normal_matrix(5, 8, 13), normal_matrix(100, 8, 14), n_vectors=count),
    "find_similar_vectors": lambda count: quiet().find_similar_vectors(normal_matrix(100, 8, 14), n_vectors=count),
    "find_similar_one": lambda count: quiet().find_similar_vectors(
        normal_matrix(100, 8, 14), vector_id=3, n_vectors=count
    ),
    "index_query": lambda count: quiet_index().build(normal_matrix(100, 8, 14)).query(
        normal_matrix(5, 8, 13), k=count
    ),
    "index_neighbors": lambda count: quiet_index().build(normal_matrix(100, 8, 14)).neighbors(k=count),
}
COUNT_NAMES = {
    "recommend": "n_vectors",
    "find_similar_vectors": "n_vectors",
    "find_similar_one": "n_vectors",
    "index_query": "k",
    "index_neighbors": "k",
}


@pytest.mark.parametrize("count", [0, -1, -10])
@pytest.mark.parametrize("call_name", list(COUNT_CALLS))
def test_count_not_positive(call_name, count):
    name = COUNT_NAMES[call_name]

    with pytest.raises(ValueError, match=rf"{name} must be at least 1, got {count}"):
        COUNT_CALLS[call_name](count)


@pytest.mark.parametrize("count", [5.0, "5", True, np.float64(5), None], ids=["float", "str", "bool", "np.float64", "None"])
@pytest.mark.parametrize("call_name", list(COUNT_CALLS))
def test_count_not_integer(call_name, count):
    name = COUNT_NAMES[call_name]

    with pytest.raises(TypeError, match=rf"{name} must be an integer, got"):
        COUNT_CALLS[call_name](count)


@pytest.mark.parametrize("call_name", list(COUNT_CALLS))
def test_count_above_item_count(call_name):
    name = COUNT_NAMES[call_name]

    with pytest.raises(ValueError, match=rf"{name}=101 is larger than the number of .*\(100\)"):
        COUNT_CALLS[call_name](101)


@pytest.mark.parametrize("call_name", list(COUNT_CALLS))
def test_count_numpy_integer_accepted(call_name):
    expected = COUNT_CALLS[call_name](7)

    for count in (np.int64(7), np.int32(7), np.uint8(7)):
        found = COUNT_CALLS[call_name](count)
        found_ids = found[0] if isinstance(found, tuple) else found
        expected_ids = expected[0] if isinstance(expected, tuple) else expected
        assert np.array_equal(found_ids, expected_ids), type(count).__name__


def test_count_at_item_count_accepted():
    items = normal_matrix(100, 8, seed=14)

    found = quiet().find_similar_vectors(items, n_vectors=100)

    assert found.shape == (100, 100)
    assert all(len(set(row)) == 100 for row in found.tolist())


def test_exclude_self_count_limit():
    items = normal_matrix(100, 8, seed=14)

    with pytest.raises(ValueError, match=r"n_vectors=100 is larger than the number of vectors minus the vector itself \(99\)"):
        quiet().find_similar_vectors(items, n_vectors=100, exclude_self=True)


def test_recommend_more_than_item_count():
    users = normal_matrix(5, 16, seed=15)
    items = normal_matrix(4, 16, seed=16)

    with pytest.raises(ValueError, match=r"n_vectors=10 is larger than the number of items \(4\)"):
        quiet().recommend(users, items, n_vectors=10)


# ---------------------------------------------------------------------------
# vector_id
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hundred_vectors():
    return normal_matrix(100, 8, seed=17)


def test_vector_id_integer_types_agree(hundred_vectors):
    expected = quiet().find_similar_vectors(hundred_vectors, vector_id=5)

    for vector_id in (np.int64(5), np.int32(5), np.uint8(5), np.intp(5)):
        found = quiet().find_similar_vectors(hundred_vectors, vector_id=vector_id)
        assert np.array_equal(found, expected), type(vector_id).__name__


def test_vector_id_row_of_batch(hundred_vectors):
    single = quiet().find_similar_vectors(hundred_vectors, vector_id=5)
    batch = quiet().find_similar_vectors(hundred_vectors)

    assert single.shape == (10,)
    assert np.array_equal(single, batch[5])


@pytest.mark.parametrize("vector_id", [5.0, "5", True, np.bool_(True), np.float32(5), [5]], ids=repr)
def test_vector_id_not_integer(hundred_vectors, vector_id):
    with pytest.raises(TypeError, match=r"vector_id must be an integer, got"):
        quiet().find_similar_vectors(hundred_vectors, vector_id=vector_id)


@pytest.mark.parametrize("vector_id", [100, 10**12, -1, -100, np.int64(-1), np.uint64(2**63)], ids=repr)
def test_vector_id_out_of_range(hundred_vectors, vector_id):
    with pytest.raises(IndexError, match=rf"vector_id {int(vector_id)} is out of range: valid ids are 0 to 99"):
        quiet().find_similar_vectors(hundred_vectors, vector_id=vector_id)


def test_neighbor_ids_out_of_range(hundred_vectors):
    index = quiet_index().build(hundred_vectors)

    with pytest.raises(IndexError, match=r"ids has ids out of range: \[-1, 100\]; valid ids are 0 to 99"):
        index.neighbors([3, -1, 100])


def test_neighbor_ids_not_integer(hundred_vectors):
    index = quiet_index().build(hundred_vectors)

    with pytest.raises(TypeError, match=r"ids must hold integers, got dtype float64"):
        index.neighbors([3.0, 4.0])


# ---------------------------------------------------------------------------
# metric
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "Angular", "l2", "", None, 1])
def test_unknown_metric(hundred_vectors, metric):
    expected = r"metric must be one of 'angular', 'euclidean', 'dot', got"

    with pytest.raises(ValueError, match=expected):
        quiet().find_similar_vectors(hundred_vectors, metric=metric)
    with pytest.raises(ValueError, match=expected):
        quiet().build_vector_index(hundred_vectors, metric=metric)
    with pytest.raises(ValueError, match=expected):
        VectorIndex(metric=metric)


# ---------------------------------------------------------------------------
# Accepted layouts and dtypes
# ---------------------------------------------------------------------------


def strided_copy(matrix):
    """Return a view of ``matrix`` with a column stride of two elements, and its base."""
    base = np.full(matrix.shape + (2,), -7.0, dtype=matrix.dtype)
    base[:, :, 0] = matrix
    return base[:, :, 0], base


def read_only_copy(matrix):
    result = matrix.copy()
    result.flags.writeable = False
    return result


# Each entry turns a float32 matrix into another input with the same values.
LAYOUTS = {
    "float32": lambda matrix: matrix.copy(),
    "float64": lambda matrix: matrix.astype(np.float64),
    "list": lambda matrix: matrix.tolist(),
    "fortran": lambda matrix: np.asfortranarray(matrix),
    "strided": lambda matrix: strided_copy(matrix)[0],
    "read_only": read_only_copy,
    "read_only_fortran": lambda matrix: read_only_copy(np.asfortranarray(matrix)),
}


def array_layout(array):
    """Return the dtype, strides and flags of an array, or None for a list."""
    if isinstance(array, list):
        return None
    flags = array.flags
    return array.dtype, array.strides, flags.writeable, flags.c_contiguous, flags.f_contiguous, flags.owndata


def run_every_entry_point(users, items):
    """Return the results of every public call over ``users`` and ``items``, keyed by call.

    Eight trees keep the many builds fast: the tests compare results, not recall.
    """
    n_trees = 8
    results = {"recommend": quiet().recommend(users, items, n_vectors=10, n_trees=n_trees)}
    for metric in METRIC_NAMES:
        results[f"find_similar_{metric}"] = quiet().find_similar_vectors(
            items, n_vectors=10, n_trees=n_trees, metric=metric
        )
        ids, distances = quiet_index(metric, n_trees=n_trees).build(items).query(users, k=10)
        results[f"query_{metric}_ids"] = ids
        results[f"query_{metric}_distances"] = distances
    return results


@pytest.fixture(scope="module")
def float_inputs():
    users = normal_matrix(100, 32, seed=18)
    items = normal_matrix(2000, 32, seed=19)
    return users, items, run_every_entry_point(users, items)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_same_results(float_inputs, layout):
    users, items, expected = float_inputs

    found = run_every_entry_point(LAYOUTS[layout](users), LAYOUTS[layout](items))

    for key, value in expected.items():
        assert np.array_equal(found[key], value), key


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_input_unchanged(float_inputs, layout):
    users, items, _ = float_inputs
    user_input = LAYOUTS[layout](users)
    item_input = LAYOUTS[layout](items)
    user_before = copy.deepcopy(user_input)
    item_before = copy.deepcopy(item_input)
    user_layout = array_layout(user_input)
    item_layout = array_layout(item_input)

    run_every_entry_point(user_input, item_input)
    quiet().augment_vectors(item_input)

    if isinstance(item_input, list):
        assert user_input == user_before
        assert item_input == item_before
        return
    assert np.array_equal(user_input, user_before)
    assert np.array_equal(item_input, item_before)
    assert array_layout(user_input) == user_layout
    assert array_layout(item_input) == item_layout


def test_strided_base_unchanged(float_inputs):
    users, items, _ = float_inputs
    user_view, user_base = strided_copy(users)
    item_view, item_base = strided_copy(items)
    user_base_before = user_base.copy()
    item_base_before = item_base.copy()

    run_every_entry_point(user_view, item_view)

    assert np.array_equal(user_base, user_base_before)
    assert np.array_equal(item_base, item_base_before)


def test_strided_view_same_results():
    rng = np.random.default_rng(20)
    base = rng.standard_normal((2000, 32, 2)).astype(np.float32)
    view = base[:, :, 0]
    base_before = base.copy()

    found = quiet().find_similar_vectors(view, n_vectors=10)
    expected = quiet().find_similar_vectors(np.ascontiguousarray(view), n_vectors=10)

    assert not view.flags.c_contiguous
    assert np.array_equal(found, expected)
    assert np.array_equal(base, base_before)


def test_integer_arrays_same_results():
    rng = np.random.default_rng(21)
    users = rng.integers(0, 11, size=(100, 32))
    items = rng.integers(0, 11, size=(2000, 32))
    expected = run_every_entry_point(users.astype(np.float32), items.astype(np.float32))

    for dtype in (np.int64, np.int32, np.int8, np.uint8):
        found = run_every_entry_point(users.astype(dtype), items.astype(dtype))
        for key, value in expected.items():
            assert np.array_equal(found[key], value), f"{dtype.__name__}: {key}"


def test_integer_lists_same_results():
    rng = np.random.default_rng(22)
    users = rng.integers(-5, 6, size=(100, 32))
    items = rng.integers(-5, 6, size=(2000, 32))

    expected = run_every_entry_point(users.astype(np.float32), items.astype(np.float32))
    found = run_every_entry_point(users.tolist(), items.tolist())

    for key, value in expected.items():
        assert np.array_equal(found[key], value), key


def test_negative_stride_same_as_contiguous(float_inputs):
    users, items, _ = float_inputs

    found = run_every_entry_point(users[::-1], items[::-1])
    expected = run_every_entry_point(np.ascontiguousarray(users[::-1]), np.ascontiguousarray(items[::-1]))

    for key, value in expected.items():
        assert np.array_equal(found[key], value), key


def test_negative_stride_exact_search(float_inputs):
    users, items, _ = float_inputs
    n_items = len(items)
    exhaustive = n_items

    # With search_k at least the number of items every item is scored, so the
    # result is exact and the ids of the reversed rows map back one to one.
    recommended = quiet().recommend(users[::-1], items[::-1], n_vectors=10, search_k=exhaustive)
    similar = quiet().find_similar_vectors(items[::-1], n_vectors=10, search_k=exhaustive)

    recommended_original = (n_items - 1 - recommended)[::-1]
    similar_original = (n_items - 1 - similar)[::-1]
    assert np.array_equal(recommended_original, exact_top_k_dot(users, items, 10))
    assert np.array_equal(similar_original, exact_top_k_euclidean(items, items, 10))


def test_vector_id_on_reversed_rows(float_inputs):
    _, items, _ = float_inputs
    n_items = len(items)

    found = quiet().find_similar_vectors(items[::-1], vector_id=n_items - 1 - 42, n_vectors=10, search_k=n_items)

    assert np.array_equal(n_items - 1 - found, exact_top_k_euclidean(items[42:43], items, 10)[0])


def test_augment_vectors_input_unchanged():
    items = read_only_copy(np.asfortranarray(normal_matrix(50, 8, seed=23)))
    before = items.copy()

    augmented = quiet().augment_vectors(items)

    assert np.array_equal(items, before)
    assert augmented.dtype == np.float32
    assert np.array_equal(augmented[:, :-1], before)


# ---------------------------------------------------------------------------
# Index files
# ---------------------------------------------------------------------------


@pytest.fixture()
def saved_index(tmp_path):
    """Return (path, bytes) of a saved angular index over 300 vectors of dimension 8."""
    path = tmp_path / "index.hsx"
    quiet_index("angular").build(normal_matrix(300, 8, seed=24)).save(path)
    return path, path.read_bytes()


def write_variant(tmp_path, data):
    path = tmp_path / "variant.hsx"
    path.write_bytes(bytes(data))
    return path


def load_quietly(path, mmap):
    return VectorIndex.load(path, mmap=mmap, show_progress=False, verbose=False)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_empty_file(tmp_path, mmap):
    path = write_variant(tmp_path, b"")

    with pytest.raises(ValueError, match=r"is not a hyperscale index: the file is only 0 bytes long"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_wrong_magic(saved_index, tmp_path, mmap):
    _, data = saved_index
    path = write_variant(tmp_path, b"NOTINDEX" + data[8:])

    with pytest.raises(ValueError, match=r"is not a hyperscale index \(its first bytes are b'NOTINDEX'\)"):
        load_quietly(path, mmap)


TRUNCATED_HEADERS = [
    (10, r"is not a hyperscale index: the file is only 10 bytes long"),
    (20, r"is truncated: its header ends after 20 bytes"),
    (200, r"is truncated: its header ends after 200 bytes"),
]


@pytest.mark.parametrize(("kept", "message"), TRUNCATED_HEADERS, ids=["first_10_bytes", "first_20_bytes", "first_200_bytes"])
@pytest.mark.parametrize("mmap", [True, False])
def test_load_truncated_header(saved_index, tmp_path, mmap, kept, message):
    _, data = saved_index
    path = write_variant(tmp_path, data[:kept])

    with pytest.raises(ValueError, match=message):
        load_quietly(path, mmap)


@pytest.mark.parametrize("removed", [1, 64, 5000], ids=lambda removed: f"last_{removed}_bytes")
@pytest.mark.parametrize("mmap", [True, False])
def test_load_truncated_arrays(saved_index, tmp_path, mmap, removed):
    _, data = saved_index
    path = write_variant(tmp_path, data[:-removed])

    with pytest.raises(ValueError, match=rf"is truncated: it is {len(data) - removed} bytes long, but its header records {len(data)} bytes"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("added", [1, 64], ids=lambda added: f"{added}_bytes")
@pytest.mark.parametrize("mmap", [True, False])
def test_load_trailing_bytes(saved_index, tmp_path, mmap, added):
    _, data = saved_index
    path = write_variant(tmp_path, data + b"\x00" * added)

    with pytest.raises(ValueError, match=rf"is corrupt: it is {len(data) + added} bytes long, but its header records {len(data)} bytes"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_newer_format_version(saved_index, tmp_path, mmap):
    _, data = saved_index
    bumped = bytearray(data)
    (version,) = struct.unpack_from("<I", bumped, 8)
    struct.pack_into("<I", bumped, 8, version + 1)
    path = write_variant(tmp_path, bumped)

    with pytest.raises(ValueError, match=rf"uses index format version {version + 1}, but this hyperscale reads versions up to {version}"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_zero_format_version(saved_index, tmp_path, mmap):
    _, data = saved_index
    zeroed = bytearray(data)
    struct.pack_into("<I", zeroed, 8, 0)
    path = write_variant(tmp_path, zeroed)

    with pytest.raises(ValueError, match=r"has an invalid index format version 0"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_corrupt_header(saved_index, tmp_path, mmap):
    _, data = saved_index
    corrupt = bytearray(data)
    assert corrupt[16:17] == b"{"
    corrupt[16:17] = b"#"
    path = write_variant(tmp_path, corrupt)

    with pytest.raises(ValueError, match=r"has a corrupt header"):
        load_quietly(path, mmap)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_save_load_save_identical_bytes(tmp_path, metric, mmap):
    first = tmp_path / "first.hsx"
    second = tmp_path / "second.hsx"
    quiet_index(metric).build(normal_matrix(300, 8, seed=25)).save(first)

    load_quietly(first, mmap).save(second)

    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_loaded_index_same_results(tmp_path, metric, mmap):
    vectors = normal_matrix(300, 8, seed=26)
    queries = normal_matrix(40, 8, seed=27)
    index = quiet_index(metric).build(vectors)
    path = index.save(tmp_path / "index.hsx")

    loaded = load_quietly(path, mmap)
    found_ids, found_distances = loaded.query(queries, k=10)
    expected_ids, expected_distances = index.query(queries, k=10)

    assert np.array_equal(found_ids, expected_ids)
    assert np.array_equal(found_distances, expected_distances)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_pickle_same_results(tmp_path, metric):
    vectors = normal_matrix(300, 8, seed=28)
    queries = normal_matrix(40, 8, seed=29)
    index = quiet_index(metric).build(vectors)
    loaded = load_quietly(index.save(tmp_path / "index.hsx"), mmap=True)
    expected_ids, expected_distances = index.query(queries, k=10)
    expected_neighbors, _ = index.neighbors(k=10)

    for source in (index, loaded):
        restored = pickle.loads(pickle.dumps(source))
        found_ids, found_distances = restored.query(queries, k=10)
        found_neighbors, _ = restored.neighbors(k=10)
        assert np.array_equal(found_ids, expected_ids)
        assert np.array_equal(found_distances, expected_distances)
        assert np.array_equal(found_neighbors, expected_neighbors)


def test_as_matrix_copy_only_when_needed():
    from hyperscale import _validation

    matrix = normal_matrix(5, 3, seed=20).astype(np.float32)
    assert _validation.as_matrix(matrix, "items", copy=False) is matrix
    assert _validation.as_matrix(matrix, "items") is not matrix
    converted = _validation.as_matrix(matrix.astype(np.float64), "items", copy=False)
    assert converted.dtype == np.float32
    assert converted.flags.c_contiguous
    transposed = _validation.as_matrix(np.asfortranarray(matrix), "items", copy=False)
    assert transposed.flags.c_contiguous
    np.testing.assert_array_equal(transposed, matrix)


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_tiny_values_raise(metric):
    rng = np.random.default_rng(33)
    items = rng.random((500, 8), dtype=np.float32)
    queries = rng.random((5, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="underflow"):
        index = VectorIndex(metric=metric, show_progress=False, verbose=False).build(items * 1e-25)
        index.query(queries * 1e-25, k=5)


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_small_values_still_rank(metric):
    rng = np.random.default_rng(35)
    items = rng.random((500, 8), dtype=np.float32)
    queries = rng.random((5, 8), dtype=np.float32)
    index = VectorIndex(metric=metric, n_trees=4, show_progress=False, verbose=False)
    scaled = index.build(items * 1e-12).query(queries * 1e-12, k=5, search_k=500)[0]
    plain = VectorIndex(metric=metric, n_trees=4, show_progress=False, verbose=False)
    assert (scaled == plain.build(items).query(queries, k=5, search_k=500)[0]).all()
