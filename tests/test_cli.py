"""Tests of the ``hyperscale`` command line and of the demo helpers in ``_demo``."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hyperscale
from hyperscale import _demo
from hyperscale.cli import main

N_USERS = 200
N_ITEMS = 2000
DIM = 8
K = 10


@pytest.fixture(scope="module")
def factors():
    return _demo.make_factors(N_USERS, N_ITEMS, DIM, seed=1)


@pytest.fixture
def factor_files(tmp_path, factors):
    users, items = factors
    users_path = tmp_path / "users.npy"
    items_path = tmp_path / "items.npy"
    np.save(users_path, users)
    np.save(items_path, items)
    return users_path, items_path


def full_sort_top_k(scores, k):
    """Return the ids of the k largest scores in each row, by sorting whole rows."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def exact_similar(vectors, metric, k):
    vectors = vectors.astype(np.float64)
    if metric == "euclidean":
        squared = (vectors**2).sum(axis=1)
        scores = -(squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T)
    elif metric == "angular":
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        scores = unit @ unit.T
    else:
        scores = vectors @ vectors.T
    return full_sort_top_k(scores, k)


def recall(found, exact):
    hits = 0
    for row_found, row_exact in zip(found, exact):
        hits += len(set(row_found.tolist()) & set(row_exact.tolist()))
    return hits / exact.size


def run_cli(capsys, arguments):
    """Run main() in this process and return (exit code, stdout, stderr)."""
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------
# recommend
# ----------------------------------------------------------------------


def test_recommend_writes_int32_top_k(tmp_path, capsys, factors, factor_files):
    users, items = factors
    users_path, items_path = factor_files
    output = tmp_path / "recs.npy"

    code, _, err = run_cli(
        capsys,
        ["recommend", "--users", users_path, "--items", items_path, "-k", K, "-o", output, "--seed", 0, "--quiet"],
    )

    assert code == 0, err
    ids = np.load(output)
    assert ids.dtype == np.int32
    assert ids.shape == (N_USERS, K)
    assert ids.min() >= 0
    assert ids.max() < N_ITEMS
    exact = full_sort_top_k(users.astype(np.float64) @ items.T.astype(np.float64), K)
    assert recall(ids, exact) >= 0.9


def test_recommend_same_seed_same_output(tmp_path, capsys, factor_files):
    users_path, items_path = factor_files
    outputs = [tmp_path / "first.npy", tmp_path / "second.npy"]
    for output in outputs:
        code, _, err = run_cli(
            capsys,
            ["recommend", "--users", users_path, "--items", items_path, "-o", output, "--seed", 7, "--quiet"],
        )
        assert code == 0, err

    np.testing.assert_array_equal(np.load(outputs[0]), np.load(outputs[1]))


# pytest's log capture takes the log records, so the tests below read them from
# caplog. The library's fallback handler would print them on stderr otherwise.


def test_recommend_quiet_prints_nothing(tmp_path, capsys, caplog, factor_files):
    users_path, items_path = factor_files
    output = tmp_path / "recs.npy"

    code, out, err = run_cli(
        capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", output, "--quiet"]
    )

    assert code == 0
    assert err == ""
    assert out == ""
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO] == []
    assert output.exists()


def test_recommend_without_quiet_logs_steps(tmp_path, capsys, caplog, factor_files):
    users_path, items_path = factor_files
    output = tmp_path / "recs.npy"

    code, _, err = run_cli(capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", output])

    assert code == 0
    assert "exact search" in err
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert any(message.startswith(f"exact search for {N_USERS} users") for message in messages)
    assert f"saved int32 ids of shape ({N_USERS}, {K}) to {output}" in messages


def test_recommend_writes_exact_output_path(tmp_path, capsys, factor_files):
    users_path, items_path = factor_files
    output = tmp_path / "recs.ids"

    code, _, err = run_cli(
        capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", output, "--quiet"]
    )

    assert code == 0, err
    assert output.exists()
    assert not Path(f"{output}.npy").exists()
    assert np.load(output).shape == (N_USERS, K)


def test_recommend_passes_index_options(tmp_path, capsys, caplog, factor_files):
    users_path, items_path = factor_files
    output = tmp_path / "recs.npy"

    code, _, err = run_cli(
        capsys,
        [
            "recommend", "--users", users_path, "--items", items_path, "-o", output, "-k", 3,
            "--n-trees", 2, "--search-k", 50, "--seed", 0,
        ],
    )

    assert code == 0, err
    assert "building the index with 2 trees" in caplog.messages
    assert np.load(output).shape == (N_USERS, 3)


# ----------------------------------------------------------------------
# similar
# ----------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "angular", "dot"])
def test_similar_matches_exact_search(tmp_path, capsys, factors, factor_files, metric):
    _, items = factors
    _, items_path = factor_files
    output = tmp_path / "similar.npy"

    code, _, err = run_cli(
        capsys,
        ["similar", "--vectors", items_path, "-k", K, "-o", output, "--metric", metric, "--seed", 0, "--quiet"],
    )

    assert code == 0, err
    ids = np.load(output)
    assert ids.dtype == np.int32
    assert ids.shape == (N_ITEMS, K)
    assert recall(ids, exact_similar(items, metric, K)) >= 0.9


def test_similar_lists_vector_itself_first(tmp_path, capsys, factor_files):
    _, items_path = factor_files
    output = tmp_path / "similar.npy"

    code, _, err = run_cli(capsys, ["similar", "--vectors", items_path, "-o", output, "--quiet"])

    assert code == 0, err
    ids = np.load(output)
    np.testing.assert_array_equal(ids[:, 0], np.arange(N_ITEMS))


def test_similar_exclude_self(tmp_path, capsys, factor_files):
    _, items_path = factor_files
    output = tmp_path / "similar.npy"

    code, _, err = run_cli(capsys, ["similar", "--vectors", items_path, "-o", output, "--exclude-self", "--quiet"])

    assert code == 0, err
    ids = np.load(output)
    assert ids.shape == (N_ITEMS, K)
    assert not (ids == np.arange(N_ITEMS)[:, None]).any()


def test_similar_one_id(tmp_path, capsys, factors, factor_files):
    _, items = factors
    _, items_path = factor_files
    output = tmp_path / "similar.npy"

    code, _, err = run_cli(
        capsys, ["similar", "--vectors", items_path, "--id", 42, "-k", 5, "-o", output, "--seed", 0, "--quiet"]
    )

    assert code == 0, err
    ids = np.load(output)
    assert ids.dtype == np.int32
    assert ids.shape == (5,)
    assert ids[0] == 42
    exact = exact_similar(items, "euclidean", 5)[42]
    assert len(set(ids.tolist()) & set(exact.tolist())) >= 4


# ----------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------


def _write_nan_items(tmp_path, items):
    bad = items.copy()
    bad[17, 3] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, bad)
    return path


def _write_text_file(tmp_path, items):
    path = tmp_path / "text.npy"
    path.write_text("1,2,3\n")
    return path


def _write_one_dimensional(tmp_path, items):
    path = tmp_path / "row.npy"
    np.save(path, items[0])
    return path


def _write_npz(tmp_path, items):
    path = tmp_path / "items.npz"
    np.savez(path, items=items)
    return path


def _write_empty_file(tmp_path, items):
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make_items", "expected_words"),
    [
        (lambda tmp_path, items: tmp_path / "missing.npy", ["missing.npy", "not found"]),
        (_write_nan_items, ["nan.npy", "NaN", "[17]"]),
        (_write_text_file, ["text.npy", "not a .npy file"]),
        (_write_one_dimensional, ["row.npy", "shape (8,)", "2-D"]),
        (_write_npz, ["items.npz", ".npz archive"]),
        (_write_empty_file, ["empty.npy", "is empty"]),
    ],
    ids=["missing", "nan", "text", "one-dimensional", "npz", "empty"],
)
def test_recommend_bad_items_file(tmp_path, capsys, factors, factor_files, make_items, expected_words):
    _, items = factors
    users_path, _ = factor_files
    items_path = make_items(tmp_path, items)
    output = tmp_path / "recs.npy"

    code, out, err = run_cli(capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", output])

    assert code == 2
    assert out == ""
    assert err.startswith("hyperscale: error: --items file ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    for word in expected_words:
        assert word in err
    assert not output.exists()


def test_recommend_dimension_mismatch(tmp_path, capsys, factors, factor_files):
    users, _ = factors
    _, items_path = factor_files
    users_path = tmp_path / "narrow.npy"
    np.save(users_path, users[:, :3])

    code, _, err = run_cli(
        capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", tmp_path / "recs.npy"]
    )

    assert code == 2
    assert err.count("\n") == 1
    assert "3 dimensions" in err
    assert f"has {DIM}" in err


def test_recommend_k_larger_than_items(tmp_path, capsys, factor_files):
    users_path, items_path = factor_files

    code, _, err = run_cli(
        capsys,
        ["recommend", "--users", users_path, "--items", items_path, "-k", N_ITEMS + 1, "-o", tmp_path / "r.npy"],
    )

    assert code == 2
    expected = (
        f"hyperscale: error: -k {N_ITEMS + 1} is larger than the number of items in {items_path} "
        f"({N_ITEMS}); use -k {N_ITEMS} or less\n"
    )
    assert err == expected


def test_recommend_missing_output_directory(tmp_path, capsys, caplog, factor_files):
    users_path, items_path = factor_files
    output = tmp_path / "no-such-directory" / "recs.npy"

    code, _, err = run_cli(capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", output])

    assert code == 2
    assert "does not exist" in err
    assert err.count("\n") == 1
    # The check runs before the index is built.
    assert caplog.messages == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to make a write fail")
def test_recommend_failed_write_exits_1(capsys, factor_files):
    users_path, items_path = factor_files

    code, _, err = run_cli(
        capsys, ["recommend", "--users", users_path, "--items", items_path, "-o", "/dev/full", "--quiet"]
    )

    assert code == 1
    assert err.startswith("hyperscale: error: failed to write output /dev/full")
    assert err.count("\n") == 1


def test_similar_id_out_of_range(tmp_path, capsys, factor_files):
    _, items_path = factor_files

    code, _, err = run_cli(
        capsys, ["similar", "--vectors", items_path, "--id", N_ITEMS, "-o", tmp_path / "similar.npy"]
    )

    assert code == 2
    assert f"--id {N_ITEMS} is out of range" in err
    assert f"0 to {N_ITEMS - 1}" in err


def test_similar_exclude_self_k_too_large(tmp_path, capsys, factor_files):
    _, items_path = factor_files

    code, _, err = run_cli(
        capsys,
        ["similar", "--vectors", items_path, "-k", N_ITEMS, "--exclude-self", "-o", tmp_path / "similar.npy"],
    )

    assert code == 2
    assert f"use -k {N_ITEMS - 1} or less" in err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["recommend", "--users", "u.npy", "--items", "i.npy", "-o", "r.npy", "-k", "0"], "argument -k"),
        (["recommend", "--users", "u.npy", "--items", "i.npy", "-o", "r.npy", "--seed", "-1"], "argument --seed"),
        (["recommend", "--users", "u.npy", "-o", "r.npy"], "--items"),
        (["similar", "--vectors", "v.npy", "-o", "s.npy", "--metric", "cosine"], "argument --metric"),
        ([], "COMMAND"),
    ],
    ids=["k-zero", "negative-seed", "missing-items", "unknown-metric", "no-command"],
)
def test_usage_errors_exit_2(capsys, arguments, expected):
    code, _, err = run_cli(capsys, arguments)

    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_version_prints_version(capsys):
    code, out, _ = run_cli(capsys, ["--version"])

    assert code == 0
    assert out == f"hyperscale {hyperscale.__version__}\n"


# ----------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------


def test_demo_small_reports_recall(capsys):
    code, out, err = run_cli(capsys, ["demo", "--n-items", 2000, "--n-users", 200, "--quiet"])

    assert code == 0
    assert err == ""
    lines = out.splitlines()
    step_names = [line.split(":")[0] for line in lines]
    assert step_names == ["generate", "warm-up", "recommend", "exact", "recall@10 against exact search"]
    assert lines[2].startswith("recommend: 200 users x 2,000 items x 16 dims in ")
    match = re.fullmatch(r"recall@10 against exact search: (\d\.\d{3})", lines[-1])
    assert match is not None, lines[-1]
    assert float(match.group(1)) >= 0.9


def test_demo_k_larger_than_items(capsys):
    code, out, err = run_cli(capsys, ["demo", "--n-items", 5, "--n-users", 3, "-k", 10])

    assert code == 2
    assert out == ""
    assert err == "hyperscale: error: -k 10 is larger than --n-items 5; use -k 5 or less\n"


def test_make_factors_shapes_and_seed():
    users, items = _demo.make_factors(50, 300, 6, seed=3)
    users_again, items_again = _demo.make_factors(50, 300, 6, seed=3)
    _, other_items = _demo.make_factors(50, 300, 6, seed=4)

    assert users.shape == (50, 6)
    assert items.shape == (300, 6)
    assert users.dtype == np.float32
    assert items.dtype == np.float32
    np.testing.assert_array_equal(users, users_again)
    np.testing.assert_array_equal(items, items_again)
    assert not np.array_equal(items, other_items)


def test_make_factors_norms_are_log_normal():
    users, items = _demo.make_factors(5000, 20000, 16, seed=0)
    item_log_norms = np.log(np.linalg.norm(items, axis=1))
    user_log_norms = np.log(np.linalg.norm(users, axis=1))

    assert abs(item_log_norms.mean()) < 0.05
    assert abs(item_log_norms.std() - _demo.ITEM_LOG_NORM_SIGMA) < 0.05
    assert abs(user_log_norms.std() - _demo.USER_LOG_NORM_SIGMA) < 0.05


def _share_of_close_pairs(vectors, min_cosine):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    upper = np.triu_indices(len(unit), 1)
    return float(((unit @ unit.T)[upper] > min_cosine).mean())


def test_make_factors_items_are_clustered():
    _, items = _demo.make_factors(10, 2000, 16, seed=0)
    uniform = np.random.default_rng(0).standard_normal((2000, 16))

    clustered_share = _share_of_close_pairs(items, 0.7)
    uniform_share = _share_of_close_pairs(uniform, 0.7)

    # Items of the same cluster often have cosine above 0.7. Uniform directions
    # in 16 dimensions rarely do (about 0.1 % of pairs).
    assert clustered_share > 10 * uniform_share


def test_exact_top_k_matches_full_sort(monkeypatch):
    users, items = _demo.make_factors(37, 500, 5, seed=2)
    # Force several blocks, including a short last one.
    monkeypatch.setattr(_demo, "EXACT_BLOCK_BYTES", 4 * 500 * 8)

    found = _demo.exact_top_k(users, items, 7)

    expected = full_sort_top_k(users @ items.T, 7)
    np.testing.assert_array_equal(found, expected)


def test_exact_top_k_rejects_k_above_items():
    users, items = _demo.make_factors(3, 5, 2, seed=0)

    with pytest.raises(ValueError, match="between 1 and the number of items"):
        _demo.exact_top_k(users, items, 6)


def test_recall_at_k_counts_shared_ids():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])

    assert _demo.recall_at_k(exact[:, ::-1], exact) == 1.0
    assert _demo.recall_at_k(np.array([[1, 2, 9, 9], [5, 6, 0, 0]]), exact) == 0.5
    assert _demo.recall_at_k(np.array([[-1, -1, -1, 1], [8, -1, -1, -1]]), exact) == 0.25


# ----------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------


def test_python_dash_m_help_runs():
    package_parent = str(Path(hyperscale.__file__).resolve().parent.parent)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, environment.get("PYTHONPATH")]))

    result = subprocess.run(
        [sys.executable, "-m", "hyperscale", "--help"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hyperscale ")
    for command in ["recommend", "similar", "demo"]:
        assert command in result.stdout
    assert result.stderr == ""
