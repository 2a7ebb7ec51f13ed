"""MovieLens-100k for the example notebooks: find the ratings, split them, score the results.

The ratings are not part of the repository, because the GroupLens terms forbid
redistributing them. ``load_ratings`` reads ``ml-100k/u.data`` from a local folder
and, when that is missing, tries the downloader of the library a notebook uses.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

DATA_ENV = "HYPERSCALE_DATA"
# The tests read the same folder: shared/data beside the repository.
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"


def data_folder(data_dir=None):
    """Return the folder expected to contain ``ml-100k/u.data``.

    An explicit ``data_dir`` wins, then the environment variable ``HYPERSCALE_DATA``,
    then ``shared/data`` in the folder that contains the repository.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return DEFAULT_DATA


def load_ratings(data_dir=None, download=None, source=None):
    """Load the 100,000 MovieLens-100k ratings as a DataFrame.

    Columns: ``user_id``, ``item_id`` (the MovieLens ids), ``user`` and ``item``
    (zero-based row numbers for matrices and vectors), ``rating`` (1 to 5), and
    ``timestamp`` when the source has one.

    ``download`` is a function that fetches the ratings through a library's own
    downloader and returns a DataFrame with ``user_id``, ``item_id`` and
    ``rating``. It runs only when the local file is missing. ``source`` names that
    library in the error raised when both ways fail.
    """
    folder = data_folder(data_dir)
    path = folder / "ml-100k" / "u.data"
    if path.is_file():
        columns = ["user_id", "item_id", "rating", "timestamp"]
        ratings = pd.read_csv(path, sep="\t", names=columns, dtype="int64")
        print(f"Read {len(ratings):,} ratings from {path}")
        return _add_row_numbers(ratings)

    if download is None:
        fallback = f"{source or 'This example library'} has no MovieLens downloader."
    else:
        try:
            ratings = download()
        except OSError as error:  # network failures from urllib and requests are OSErrors
            fallback = f"Downloading them through {source or 'the example library'} failed: {error}."
        else:
            print(f"Downloaded {len(ratings):,} ratings through {source or 'the example library'}")
            return _add_row_numbers(ratings)

    raise FileNotFoundError(
        f"MovieLens-100k ratings not found: {path} does not exist. {fallback} "
        f"To fix this, download {ML100K_URL}, unzip it into a folder FOLDER so that "
        f"FOLDER/ml-100k/u.data exists, and set the environment variable {DATA_ENV}=FOLDER "
        "(or DATA_DIR in the notebook's parameter cell)."
    )


def _add_row_numbers(ratings):
    ratings = ratings.copy()
    # Sorted unique ids map to 0..n-1, so MovieLens id 1 becomes row 0.
    ratings["user"] = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)[1]
    ratings["item"] = np.unique(ratings["item_id"].to_numpy(), return_inverse=True)[1]
    return ratings.reset_index(drop=True)


def movie_titles(data_dir=None):
    """Return a Series of movie titles indexed by MovieLens item id, or None without ``u.item``."""
    path = data_folder(data_dir) / "ml-100k" / "u.item"
    if not path.is_file():
        return None
    # u.item is Latin-1 text with '|' between fields: id, title, dates, URL, genre flags.
    table = pd.read_csv(path, sep="|", header=None, encoding="latin-1", usecols=[0, 1])
    return pd.Series(table[1].to_numpy(), index=table[0].to_numpy(), name="title")


def split_ratings(ratings, n_test=5, seed=0):
    """Hold out ``n_test`` random ratings of every user; return ``(train, test)``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ratings))
    shuffled = ratings.iloc[order]
    rank = shuffled.groupby("user").cumcount()
    test = shuffled[rank < n_test].sort_index()
    train = shuffled[rank >= n_test].sort_index()
    return train, test


def interaction_matrix(ratings, shape, min_rating=None, binary=False):
    """Return a users x items CSR matrix of the ratings (or of ones with ``binary=True``).

    With ``min_rating``, ratings below it are left out.
    """
    if min_rating is not None:
        ratings = ratings[ratings["rating"] >= min_rating]
    values = np.ones(len(ratings)) if binary else ratings["rating"].to_numpy(dtype=np.float64)
    rows = ratings["user"].to_numpy()
    columns = ratings["item"].to_numpy()
    return sp.csr_matrix((values, (rows, columns)), shape=shape)


def exact_top_k(user_vectors, item_vectors, k=10, exclude=None):
    """Return the exact top-k item ids by inner product, best first, as a numpy reference.

    ``exclude`` is a users x items sparse matrix whose stored entries are left out,
    the same rule as the ``exclude=`` filter of hyperscale.
    """
    scores = np.asarray(user_vectors, dtype=np.float64) @ np.asarray(item_vectors, dtype=np.float64).T
    if exclude is not None:
        excluded = sp.coo_matrix(exclude)
        scores[excluded.row, excluded.col] = -np.inf
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(found, truth):
    """Return the mean share of each exact top-k row that ``found`` also contains."""
    hits = [len(set(row.tolist()) & set(true_row.tolist())) for row, true_row in zip(found, truth)]
    return float(np.mean(hits)) / truth.shape[1]


def hit_rate_at_k(recommended, users, test, min_rating=4):
    """Return the share of users with a held-out rating >= ``min_rating`` among their recommendations.

    Row i of ``recommended`` contains the item rows recommended to user ``users[i]``.
    Users without such a held-out rating are left out of the share.
    """
    relevant = test[test["rating"] >= min_rating].groupby("user")["item"].apply(set)
    hits = []
    for user, row in zip(users, recommended):
        if user in relevant.index:
            hits.append(bool(relevant[user] & set(row.tolist())))
    return float(np.mean(hits))
