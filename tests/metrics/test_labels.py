import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score

from skfindkit import ExactIndex
from skfindkit.metrics import (
    average_precision,
    make_retrieval_scorer,
    mean_average_precision,
    precision_at_k,
    recall_at_k,
)


def test_precision_at_k_by_hand():
    y = [0, 1]
    retrieved = [[0, 1, 0, 0], [1, 1, 1, 0]]
    assert precision_at_k(y, retrieved) == pytest.approx(6 / 8)
    assert precision_at_k(y, retrieved, k=2) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="k=5"):
        precision_at_k(y, retrieved, k=5)
    with pytest.raises(ValueError, match="queries"):
        precision_at_k([0], retrieved)


def test_average_precision_matches_sklearn_when_all_relevant_retrieved():
    rng = np.random.default_rng(0)
    rel = rng.random(30) < 0.4
    scores = -np.arange(30)  # ranked order
    assert average_precision(rel) == pytest.approx(average_precision_score(rel, scores))
    assert average_precision(np.zeros(5, bool)) == 0.0
    assert average_precision([True, False], n_relevant=4) == pytest.approx(0.25)


def test_mean_average_precision():
    assert mean_average_precision([0, 1], [[0, 1, 0], [1, 1, 0]]) == pytest.approx(
        (average_precision([1, 0, 1]) + average_precision([1, 1, 0])) / 2
    )


def test_recall_at_k():
    assert recall_at_k([[0, 1], [2, 3]], [[1, 0], [3, 9]]) == 0.75
    assert recall_at_k([[0, 1, 2]], [[0, 5, 1]], k=2) == 0.5
    with pytest.raises(ValueError, match="rows"):
        recall_at_k([[0]], [[0], [1]])


def test_scorers_on_an_index():
    X, y = load_digits(return_X_y=True)
    index = ExactIndex(n_neighbors=5).fit(X[:1500], y[:1500])
    prec = make_retrieval_scorer("precision", k=5)(index, X[1500:], y[1500:])
    assert prec == pytest.approx(index.score(X[1500:], y[1500:]))
    assert 0.9 < prec <= 1.0
    assert make_retrieval_scorer("map", k=5)(index, X[1500:], y[1500:]) >= prec
    assert make_retrieval_scorer("recall", k=5)(index, X[1500:]) == 1.0
    with pytest.raises(ValueError, match="labels"):
        make_retrieval_scorer("map")(ExactIndex().fit(X), X)
    with pytest.raises(ValueError, match="metric"):
        make_retrieval_scorer("f1")
    with pytest.raises(TypeError, match="index"):
        from sklearn.decomposition import PCA

        make_retrieval_scorer()(PCA().fit(X), X, y)
