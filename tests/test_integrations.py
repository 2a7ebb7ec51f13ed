"""Vectors from scikit-learn, Surprise, LightFM, implicit and gensim keep their meaning in hyperscale.

Each test trains the library's model on small generated interactions, passes the
vectors the library exposes to ``recommend`` or ``find_similar_vectors``, and
checks recall@10 against exact search and, where the library predicts scores,
that hyperscale's scores equal the library's own predictions.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import exact_top_k_dot, recall

from hyperscale import hyperscale

N_USERS = 400
N_ITEMS = 1_500
PER_USER = 40
# Half the items as candidates per query, because these tests check that each
# library's vectors keep their meaning, and test_recall.py checks recall at the
# default effort. Factors trained on this small generated data leave unrated
# items at or near zero, so the default effort of 2 * 10 * n_trees candidates
# falls short. It gave recall@10 0.83 on the TruncatedSVD factors here, against
# 1.0 on MovieLens-100k.
SEARCH_K = N_ITEMS // 2


def quiet():
    return hyperscale(random_state=0, show_progress=False, verbose=False)


def exact_top_k_excluding(users, items, exclude, k=10):
    """Exact top-k by inner product with the stored entries of ``exclude`` left out."""
    scores = np.asarray(users, dtype=np.float64) @ np.asarray(items, dtype=np.float64).T
    excluded = sp.coo_matrix(exclude)
    scores[excluded.row, excluded.col] = -np.inf
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


@pytest.fixture(scope="module")
def interactions():
    """Ratings from a clustered taste model: (users, items, ratings) arrays, PER_USER per user.

    Users and items get 8-dimensional tastes near one of 20 genre centres. Each
    user rates items drawn in proportion to exp(taste score + popularity), so the
    data has the low-rank, clustered structure of real ratings.
    """
    rng = np.random.default_rng(0)
    genres = 2 * rng.normal(size=(20, 8))
    user_taste = genres[rng.integers(0, 20, N_USERS)] + rng.normal(size=(N_USERS, 8))
    item_taste = genres[rng.integers(0, 20, N_ITEMS)] + rng.normal(size=(N_ITEMS, 8))
    popularity = rng.normal(scale=1.0, size=N_ITEMS)
    users, items, ratings = [], [], []
    for user in range(N_USERS):
        scores = item_taste @ user_taste[user] / 2 + popularity
        weights = np.exp(scores - scores.max())
        chosen = rng.choice(N_ITEMS, size=PER_USER, replace=False, p=weights / weights.sum())
        users.append(np.full(PER_USER, user))
        items.append(chosen)
        # Better-matching items get higher ratings, 1 to 5.
        ratings.append(np.clip(np.round(3 + scores[chosen] - scores[chosen].mean()), 1, 5))
    return np.concatenate(users), np.concatenate(items), np.concatenate(ratings)


@pytest.fixture(scope="module")
def seen(interactions):
    users, items, _ = interactions
    return sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(N_USERS, N_ITEMS))


def test_sklearn_truncated_svd_recall(interactions, seen):
    decomposition = pytest.importorskip("sklearn.decomposition")
    users, items, ratings = interactions
    matrix = sp.csr_matrix((ratings, (users, items)), shape=(N_USERS, N_ITEMS))
    svd = decomposition.TruncatedSVD(n_components=16, random_state=0)
    user_vectors = svd.fit_transform(matrix)
    item_vectors = svd.components_.T

    found = quiet().recommend(user_vectors, item_vectors, exclude=seen, search_k=SEARCH_K)
    assert recall(found, exact_top_k_excluding(user_vectors, item_vectors, seen)) >= 0.95


def test_sklearn_nmf_recall(interactions, seen):
    decomposition = pytest.importorskip("sklearn.decomposition")
    users, items, ratings = interactions
    matrix = sp.csr_matrix((ratings, (users, items)), shape=(N_USERS, N_ITEMS))
    nmf = decomposition.NMF(n_components=16, init="nndsvda", tol=1e-3, max_iter=500, random_state=0)
    user_vectors = nmf.fit_transform(matrix)
    item_vectors = nmf.components_.T

    found = quiet().recommend(user_vectors, item_vectors, exclude=seen, search_k=SEARCH_K)
    assert recall(found, exact_top_k_excluding(user_vectors, item_vectors, seen)) >= 0.95


def test_surprise_svd_with_biases(interactions, seen):
    surprise = pytest.importorskip("surprise")
    pd = pytest.importorskip("pandas")
    users, items, ratings = interactions
    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings})
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
    algo = surprise.SVD(n_factors=16, n_epochs=20, random_state=0)
    algo.fit(trainset)

    # Inner product of [p_u, 1, mean + b_u] and [q_i, b_i, 1] is Surprise's unclipped prediction.
    inner_users = np.array([trainset.to_inner_uid(user) for user in range(N_USERS)])
    user_vectors = np.column_stack(
        [algo.pu[inner_users], np.ones(N_USERS), trainset.global_mean + algo.bu[inner_users]]
    )
    item_vectors = np.column_stack([algo.qi, algo.bi, np.ones(trainset.n_items)])
    raw_items = np.array([trainset.to_raw_iid(inner) for inner in range(trainset.n_items)])
    inner_of_raw = {raw: inner for inner, raw in enumerate(raw_items)}
    seen_inner = sp.csr_matrix(
        (np.ones(len(users)), (users, [inner_of_raw[item] for item in items])),
        shape=(N_USERS, trainset.n_items),
    )

    ids, scores = quiet().recommend(
        user_vectors, item_vectors, exclude=seen_inner, return_scores=True, search_k=SEARCH_K
    )
    assert recall(ids, exact_top_k_excluding(user_vectors, item_vectors, seen_inner)) >= 0.95

    predicted = np.array(
        [[algo.predict(user, raw_items[inner], clip=False).est for inner in row] for user, row in enumerate(ids[:50])]
    )
    np.testing.assert_allclose(scores[:50], predicted, rtol=1e-4, atol=1e-4)


def test_lightfm_warp_with_biases(seen):
    lightfm = pytest.importorskip("lightfm")
    model = lightfm.LightFM(loss="warp", no_components=16, learning_rate=0.05, random_state=0)
    model.fit(seen.tocoo(), epochs=10)
    user_biases, user_embeddings = model.get_user_representations()
    item_biases, item_embeddings = model.get_item_representations()

    # Inner product of [e_u, 1, b_u] and [e_i, b_i, 1] is LightFM's score e_u·e_i + b_u + b_i.
    user_vectors = np.column_stack([user_embeddings, np.ones(N_USERS), user_biases])
    item_vectors = np.column_stack([item_embeddings, item_biases, np.ones(N_ITEMS)])

    ids, scores = quiet().recommend(user_vectors, item_vectors, exclude=seen, return_scores=True, search_k=SEARCH_K)
    assert recall(ids, exact_top_k_excluding(user_vectors, item_vectors, seen)) >= 0.95

    user_ids = np.repeat(np.arange(N_USERS, dtype=np.int32), ids.shape[1])
    predicted = model.predict(user_ids, ids.ravel()).reshape(ids.shape)
    np.testing.assert_allclose(scores, predicted, rtol=1e-4, atol=1e-4)


def test_implicit_als_recall(seen):
    als = pytest.importorskip("implicit.als")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # implicit checks the BLAS thread pool when the model is created and warns unless it has one thread.
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = als.AlternatingLeastSquares(factors=16, iterations=10, random_state=0)
        model.fit(seen.astype(np.float32), show_progress=False)
    user_vectors = model.user_factors
    item_vectors = model.item_factors
    assert isinstance(item_vectors, np.ndarray)

    found = quiet().recommend(user_vectors, item_vectors, exclude=seen, search_k=SEARCH_K)
    assert recall(found, exact_top_k_excluding(user_vectors, item_vectors, seen)) >= 0.95

    users = np.arange(N_USERS)
    from_implicit, _ = model.recommend(users, seen, N=10, filter_already_liked_items=True)
    assert recall(found, from_implicit) >= 0.95


def test_gensim_word2vec_angular(interactions):
    models = pytest.importorskip("gensim.models")
    users, items, _ = interactions
    sentences = [items[users == user].astype(str).tolist() for user in range(N_USERS)]
    model = models.Word2Vec(
        sentences, vector_size=16, window=10, min_count=2, sg=0, epochs=10, workers=1, seed=0
    )
    keys = model.wv.index_to_key
    raw_vectors = model.wv.vectors
    # The raw vectors differ in length, so cosine and Euclidean rankings differ.
    assert np.ptp(np.linalg.norm(raw_vectors, axis=1)) > 0.1

    found = quiet().find_similar_vectors(
        raw_vectors, metric="angular", exclude_self=True, search_k=SEARCH_K
    )

    unit = model.wv.get_normed_vectors()
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    exact = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert recall(found, exact) >= 0.95

    row_of_key = {key: row for row, key in enumerate(keys)}
    from_gensim = np.array([[row_of_key[key] for key, _ in model.wv.most_similar(key, topn=10)] for key in keys])
    assert recall(found, from_gensim) >= 0.95


def test_exact_reference_matches_conftest():
    # The filtered reference above must agree with the shared one when nothing is filtered.
    rng = np.random.default_rng(1)
    users = rng.normal(size=(50, 8))
    items = rng.normal(size=(300, 8))
    nothing = sp.csr_matrix((50, 300))
    assert recall(exact_top_k_excluding(users, items, nothing), exact_top_k_dot(users, items, 10)) == 1.0
