"""RankFusionIndex: fused rankings against hand computations and brute force,
the neighbours contract, tuning, pickling and the safe format."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skfindkit import BM25Index, ExactIndex, RankFusionIndex, io


def _column(j):
    return FunctionTransformer(lambda X: np.asarray(X)[:, j:j + 1])


def _two_views(**params):
    """Member "a" ranks by the first coordinate, "b" by the second."""
    return RankFusionIndex([("a", make_pipeline(_column(0), ExactIndex())),
                            ("b", make_pipeline(_column(1), ExactIndex()))], **params)


X4 = np.array([[0.0, 3.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
# for the query (0, 0): "a" ranks 0, 1, 2, 3 and "b" ranks 1, 2, 3, 0


def test_rrf_matches_a_hand_computed_case():
    dist, ind = _two_views(n_neighbors=4).fit(X4).kneighbors([[0.0, 0.0]])
    fused = {0: 1 / 61 + 1 / 64, 1: 1 / 62 + 1 / 61, 2: 1 / 63 + 1 / 62, 3: 1 / 64 + 1 / 63}
    assert ind.tolist() == [[1, 0, 2, 3]]
    np.testing.assert_allclose(dist[0], [1 - fused[i] / (2 / 61) for i in (1, 0, 2, 3)],
                               rtol=0, atol=1e-15)


def test_weighted_rrf_and_rrf_k_by_hand():
    index = _two_views(n_neighbors=4, weights=[3.0, 1.0], rrf_k=1).fit(X4)
    ind = index.kneighbors([[0.0, 0.0]], return_distance=False)
    fused = {0: 3 / 2 + 1 / 5, 1: 3 / 3 + 1 / 2, 2: 3 / 4 + 1 / 3, 3: 3 / 5 + 1 / 4}
    assert ind.tolist() == [sorted(fused, key=lambda i: (-fused[i], i))]


def test_minmax_and_zscore_by_hand():
    # query (0.5, 0): "a" distances 0.5, 0.5, 1.5, 2.5; "b" distances 3, 0, 1, 2
    da, db = np.array([0.5, 0.5, 1.5, 2.5]), np.array([3.0, 0.0, 1.0, 2.0])
    for method, norm in [("minmax", lambda s: (s - s.min()) / (s.max() - s.min())),
                         ("zscore", lambda s: (s - s.mean()) / s.std())]:
        dist, ind = _two_views(n_neighbors=4, method=method).fit(X4).kneighbors([[0.5, 0.0]])
        fused = (norm(-da) + norm(-db)) / 2
        order = sorted(range(4), key=lambda i: (-fused[i], i))
        assert ind[0].tolist() == order, method
        top = 1.0 if method == "minmax" else np.sqrt(3)
        np.testing.assert_allclose(dist[0], 1 - fused[order] / top, atol=1e-12)


def test_ties_go_to_the_lower_id():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])  # "a" ranks 1, 0 and "b" ranks 0, 1 for (0, 0)
    for method in ("rrf", "minmax", "zscore"):
        ind = _two_views(n_neighbors=2, method=method).fit(X).kneighbors(
            [[0.0, 0.0]], return_distance=False)
        assert ind.tolist() == [[0, 1]], method  # mirrored rankings: equal fused scores


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore"])
def test_fusing_two_identical_rankings_gives_the_ranking(method):
    X = np.random.RandomState(0).rand(60, 4)
    Q = np.random.RandomState(1).rand(9, 4)
    alone = ExactIndex(n_neighbors=8).fit(X)
    fused = RankFusionIndex([("x", ExactIndex()), ("y", ExactIndex())], method=method,
                            n_neighbors=8, depth=20).fit(X)
    np.testing.assert_array_equal(fused.kneighbors(Q)[1], alone.kneighbors(Q)[1])
    np.testing.assert_array_equal(fused.kneighbors()[1], alone.kneighbors()[1])  # self excluded
    dist = fused.kneighbors(Q)[0]
    assert (np.diff(dist, axis=1) >= 0).all() and (dist >= 0).all()
    if method != "zscore":
        assert (dist[:, 0] <= 1e-15).all()  # ranked first by every member


def _brute_rrf(rankings, weights, rrf_k, n):
    fused = np.zeros((rankings[0].shape[0], n))
    for ranking, w in zip(rankings, weights):
        for q, row in enumerate(ranking):
            fused[q, row] += w / (rrf_k + np.arange(1, row.size + 1))
    return fused


def test_rrf_over_full_depth_equals_brute_force():
    rng = np.random.RandomState(0)
    X, Q = rng.rand(40, 3), rng.rand(7, 3)
    members = [("l2", ExactIndex()), ("cos", ExactIndex(metric="cosine")),
               ("ip", ExactIndex(metric="inner_product"))]
    weights = [1.0, 0.5, 2.0]
    fused = RankFusionIndex(members, weights=weights, depth=40, n_neighbors=10).fit(X)
    rankings = [clone(est).fit(X).kneighbors(Q, 40)[1] for _, est in members]
    scores = _brute_rrf(rankings, weights, 60, 40)
    expected = np.array([sorted(range(40), key=lambda i: (-row[i], i))[:10] for row in scores])
    np.testing.assert_array_equal(fused.kneighbors(Q)[1], expected)


def test_depth_is_raised_to_n_neighbors_and_limits_candidates():
    X = np.random.RandomState(0).rand(30, 2)
    index = _two_views(n_neighbors=6, depth=1).fit(X)
    ind = index.kneighbors(X[:3], return_distance=False)
    assert ind.shape == (3, 6) and all(len(set(row)) == 6 for row in ind)
    graph = index.transform(X)
    assert graph.shape == (30, 30) and (np.diff(graph.indptr) == 7).all()
    assert index.kneighbors_graph(None).shape == (30, 30)


def test_invalid_members_and_weights_are_refused():
    X = np.random.RandomState(0).rand(10, 2)
    with pytest.raises(ValueError, match="weights"):
        _two_views(weights=[1.0]).fit(X)
    with pytest.raises(ValueError, match="weights"):
        _two_views(weights=[0.0, 0.0]).fit(X)
    with pytest.raises(TypeError, match="index"):
        RankFusionIndex([("a", ExactIndex()), ("b", _column(0))]).fit(X)
    with pytest.raises(ValueError, match="members"):
        RankFusionIndex([]).fit(X)
    with pytest.raises(ValueError, match="n_neighbors"):
        _two_views(n_neighbors=10).fit(X).kneighbors()


DOCS = ["the cat sat on the mat", "dogs chase cats in the yard", "a log cabin in the woods",
        "the dog sat on the log", "cats and dogs play together", "wood fire in the cabin",
        "a mat for the yard", "the woods are dark"] * 3
LABELS = [0, 1, 2, 1, 1, 2, 0, 2] * 3


def _lexical_dense(**params):
    lexical = make_pipeline(CountVectorizer(), BM25Index())
    dense = make_pipeline(TfidfVectorizer(), TruncatedSVD(4, random_state=0),
                          ExactIndex(metric="cosine"))
    return RankFusionIndex([("bm25", lexical), ("lsa", dense)], **params)


def test_lexical_and_dense_members_over_the_same_texts(tmp_path):
    fused = _lexical_dense(method="minmax", weights=[1.0, 0.5], n_neighbors=3).fit(DOCS)
    queries = ["cat on a mat", "fire in the woods"]
    expected = fused.kneighbors(queries)
    path = tmp_path / "fused.skf"
    io.save(fused, path)
    for copy in (io.load(path), pickle.loads(pickle.dumps(fused))):
        got = copy.kneighbors(queries)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=0)
    # BM25 alone (weight 0 for the dense member) ranks as the BM25 pipeline does
    alone = fused.members_[0][1]
    np.testing.assert_array_equal(
        clone(fused).set_params(weights=[1.0, 0.0], depth=24).fit(DOCS).kneighbors(
            queries, return_distance=False)[:, :1],
        alone[-1].kneighbors(alone[0].transform(queries), 1)[1])


def test_grid_search_tunes_weights_and_member_parameters():
    search = GridSearchCV(
        _lexical_dense(n_neighbors=2),
        {"weights": [[1.0, 0.0], [1.0, 1.0]], "bm25__bm25index__k1": [0.9, 1.5]},
        cv=[(np.arange(16), np.arange(16, 24))])
    search.fit(DOCS, LABELS)
    assert set(search.best_params_) == {"weights", "bm25__bm25index__k1"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_edge_cases_one_item_duplicates_and_k_equal_n():
    one = _two_views(n_neighbors=1).fit([[1.0, 2.0]])
    assert one.kneighbors([[0.0, 0.0]])[1].tolist() == [[0]]
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        one.kneighbors()
    same = _two_views(n_neighbors=5, method="zscore").fit(np.ones((5, 2)))
    dist, ind = same.kneighbors([[1.0, 1.0]])
    assert ind.tolist() == [[0, 1, 2, 3, 4]] and np.isfinite(dist).all()
    for bad in (0, -1, 2.5, True):
        with pytest.raises((TypeError, ValueError)):
            same.kneighbors([[1.0, 1.0]], n_neighbors=bad)


def _edit_fitted_state(src, dst, change):
    from skfindkit.utils._safe_tree import walk

    from .._safe_file_cases import edited_tree_file

    def edit(tree):
        found = []
        walk(tree, found)
        node, = [n for n in found if n.get("class") == "skfindkit.indexes._fusion.RankFusionIndex"]
        change(node["state"]["items"])

    edited_tree_file(src, dst, edit)


@pytest.mark.parametrize("change", ["size", "members"])
def test_a_file_whose_members_do_not_match_is_refused(tmp_path, change):
    src = tmp_path / "fused.skf"
    io.save(_lexical_dense(n_neighbors=2).fit(DOCS), src)

    def edit(items):
        for item in items:
            if change == "size" and item[0] == "n_samples_fit_":
                item[1] = 30
            if change == "members" and item[0] == "members_":
                item[1] = item[1][:1]

    _edit_fitted_state(src, tmp_path / "edited.skf", edit)
    with pytest.raises(io.CorruptFileError):
        io.load(tmp_path / "edited.skf")


def test_search_and_item_keys_work_on_a_fused_system(tmp_path):
    from skfindkit import attach_keys, search

    fused = _lexical_dense(n_neighbors=2).fit(DOCS)
    attach_keys(fused, [f"doc{i}" for i in range(len(DOCS))])
    io.save(fused, tmp_path / "fused.skf")
    result = search(io.load(tmp_path / "fused.skf"), ["cat on a mat"])
    assert result.keys.tolist() == [[f"doc{i}" for i in result.indices[0]]]
    assert result.indices[0, 0] == 0
