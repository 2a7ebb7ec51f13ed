"""Run every example notebook in notebooks/ top to bottom in a fresh Jupyter kernel.

A notebook fails its test on any cell error, including the recall checks the
notebooks assert. The MovieLens notebooks read ``$HYPERSCALE_DATA/ml-100k`` (the
``data_dir`` fixture) and are skipped when it or their library is missing.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import DEFAULT_DATA

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the examples extra")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the examples extra")
pytest.importorskip("ipykernel", reason="the notebook tests need the examples extra")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# The modules each notebook imports besides hyperscale, numpy and notebooks/movielens.py.
REQUIREMENTS = {
    "quickstart.ipynb": ["matplotlib"],
    "sklearn.ipynb": ["sklearn", "pandas", "scipy"],
    "surprise.ipynb": ["surprise", "pandas", "scipy"],
    "lightfm.ipynb": ["lightfm", "pandas", "scipy"],
    "implicit.ipynb": ["implicit", "pandas", "scipy", "threadpoolctl"],
    "gensim.ipynb": ["gensim", "pandas", "scipy"],
}
NEEDS_MOVIELENS = {name for name in REQUIREMENTS if name != "quickstart.ipynb"}
# Cells of these notebooks run in seconds, apart from the first Numba compilation.
CELL_TIMEOUT = 600


def execute(notebook_path):
    """Execute a notebook in its own folder and return it with its outputs."""
    notebook = nbformat.read(notebook_path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},
    )
    client.execute()
    return notebook


def missing_modules(names):
    return [name for name in names if importlib.util.find_spec(name) is None]


def test_every_notebook_has_requirements():
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == sorted(REQUIREMENTS)


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_notebook_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: clear the outputs before committing"
            assert cell.execution_count is None, f"{name}: clear the execution counts before committing"


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_notebook_runs(name, request, monkeypatch):
    missing = missing_modules(REQUIREMENTS[name])
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}: pip install '.[examples]' (README, Examples)")
    if name in NEEDS_MOVIELENS:
        data_dir = request.getfixturevalue("data_dir")
        if not (data_dir / "ml-100k" / "u.data").is_file():
            pytest.skip(f"MovieLens-100k not found at {data_dir / 'ml-100k' / 'u.data'}")
        monkeypatch.setenv("HYPERSCALE_DATA", str(data_dir))

    notebook = execute(NOTEBOOKS / name)

    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "recall@10" in printed


def test_notebook_without_data_explains_fix(tmp_path, monkeypatch):
    # scikit-learn has no MovieLens downloader, so the notebook raises the error at once.
    missing = missing_modules(REQUIREMENTS["sklearn.ipynb"])
    if missing:
        pytest.skip(f"sklearn.ipynb needs {', '.join(missing)}")
    monkeypatch.setenv("HYPERSCALE_DATA", str(tmp_path))

    with pytest.raises(nbclient.exceptions.CellExecutionError) as raised:
        execute(NOTEBOOKS / "sklearn.ipynb")

    message = str(raised.value)
    assert "FileNotFoundError" in message
    assert str(tmp_path / "ml-100k" / "u.data") in message
    assert "HYPERSCALE_DATA" in message


@pytest.fixture
def movielens_helper(monkeypatch):
    pytest.importorskip("pandas")
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    monkeypatch.delitem(sys.modules, "movielens", raising=False)
    import movielens

    return movielens


def test_load_ratings_reports_failed_download(movielens_helper, tmp_path):
    def offline():
        raise OSError("Name or service not known")

    with pytest.raises(FileNotFoundError) as raised:
        movielens_helper.load_ratings(tmp_path, download=offline, source="LightFM")

    message = str(raised.value)
    assert "through LightFM failed: Name or service not known" in message
    assert movielens_helper.ML100K_URL in message
    assert "HYPERSCALE_DATA" in message


def test_load_ratings_uses_download(movielens_helper, tmp_path):
    pd = pytest.importorskip("pandas")

    def download():
        return pd.DataFrame({"user_id": [7, 3, 7], "item_id": [10, 10, 42], "rating": [5, 4, 1]})

    ratings = movielens_helper.load_ratings(tmp_path, download=download, source="Surprise")

    assert ratings["user"].tolist() == [1, 0, 1]
    assert ratings["item"].tolist() == [0, 0, 1]


def test_data_folder_order(movielens_helper, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERSCALE_DATA", str(tmp_path / "from-env"))
    assert movielens_helper.data_folder(tmp_path / "given") == tmp_path / "given"
    assert movielens_helper.data_folder() == tmp_path / "from-env"
    monkeypatch.delenv("HYPERSCALE_DATA")
    assert movielens_helper.data_folder() == DEFAULT_DATA
