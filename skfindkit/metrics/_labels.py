"""Label-based retrieval quality: precision, recall against exact search, average precision.

Label-based metrics take the label of each query (``y_true``, shape
``(n_queries,)``) and the labels of its retrieved items in rank order
(``retrieved``, shape ``(n_queries, n_retrieved)``); an item is relevant when
its label equals the query's. :func:`recall_at_k` needs no labels: it compares
the ids an approximate index returns with the exact neighbours.

:func:`make_retrieval_scorer` turns any of them into a scorer for
``GridSearchCV(scoring=...)`` over a pipeline that ends with an index.
"""

import numpy as np
from sklearn.utils.validation import column_or_1d

from ..utils import features_for_index, final_index

__all__ = [
    "average_precision",
    "make_retrieval_scorer",
    "mean_average_precision",
    "precision_at_k",
    "recall_at_k",
]


def _relevance(y_true, retrieved, k):
    y_true = column_or_1d(y_true)
    retrieved = np.asarray(retrieved)
    if retrieved.ndim != 2:
        raise ValueError(
            f"retrieved must be 2-D (n_queries, n_retrieved), got shape {retrieved.shape}."
        )
    if retrieved.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} queries but retrieved has {retrieved.shape[0]} rows."
        )
    if retrieved.shape[0] == 0:
        raise ValueError("No queries: y_true and retrieved are empty.")
    if k is not None:
        if k < 1 or k > retrieved.shape[1]:
            raise ValueError(f"k={k} must be in [1, n_retrieved={retrieved.shape[1]}].")
        retrieved = retrieved[:, :k]
    return retrieved == y_true[:, None]


def precision_at_k(y_true, retrieved, k=None):
    """Mean fraction of the first ``k`` retrieved items that are relevant.

    Parameters
    ----------
    y_true : array-like of shape (n_queries,)
        Label of each query.
    retrieved : array-like of shape (n_queries, n_retrieved)
        Labels of the retrieved items, nearest first.
    k : int, default=None
        Cut-off; all retrieved items when None.

    Returns
    -------
    precision : float

    Examples
    --------
    >>> precision_at_k([0, 1], [[0, 0, 1], [0, 1, 1]])
    0.6666666666666666
    """
    return float(_relevance(y_true, retrieved, k).mean())


def average_precision(relevant, n_relevant=None):
    """Average precision of one ranked list.

    Parameters
    ----------
    relevant : array-like of bool, shape (n_retrieved,)
        Whether each retrieved item (nearest first) is relevant.
    n_relevant : int, default=None
        Number of relevant items in the whole collection (the denominator);
        the number of relevant retrieved items when None.

    Returns
    -------
    ap : float
        0 when nothing relevant exists.

    Examples
    --------
    >>> average_precision([True, False, True])
    0.8333333333333333
    """
    relevant = np.asarray(relevant, dtype=bool)
    if relevant.ndim != 1:
        raise ValueError(f"relevant must be 1-D, got shape {relevant.shape}.")
    hits = np.cumsum(relevant)
    total = hits[-1] if (n_relevant is None and relevant.size) else (n_relevant or 0)
    if total == 0:
        return 0.0
    ranks = np.arange(1, relevant.size + 1)
    return float(np.sum((hits / ranks)[relevant]) / total)


def mean_average_precision(y_true, retrieved, k=None, n_relevant=None):
    """Mean over queries of :func:`average_precision` of the first ``k`` items.

    Parameters
    ----------
    y_true : array-like of shape (n_queries,)
        Label of each query.
    retrieved : array-like of shape (n_queries, n_retrieved)
        Labels of the retrieved items, nearest first.
    k : int, default=None
        Cut-off; all retrieved items when None.
    n_relevant : array-like of shape (n_queries,), default=None
        Relevant items in the collection per query (e.g. the size of its
        class); when None, the relevant items among those retrieved.

    Returns
    -------
    map : float

    Examples
    --------
    >>> mean_average_precision([0, 1], [[0, 1, 0], [1, 1, 0]])
    0.9166666666666666
    """
    rel = _relevance(y_true, retrieved, k)
    totals = [None] * rel.shape[0] if n_relevant is None else column_or_1d(n_relevant)
    return float(np.mean([average_precision(r, t) for r, t in zip(rel, totals)]))


def recall_at_k(true_neighbors, approx_neighbors, k=None):
    """Fraction of the exact ``k`` nearest neighbours an index returned.

    Parameters
    ----------
    true_neighbors : array-like of shape (n_queries, k_true)
        Ids of the exact neighbours (e.g. from :class:`~skfindkit.ExactIndex`).
    approx_neighbors : array-like of shape (n_queries, k_approx)
        Ids returned by the index being evaluated.
    k : int, default=None
        Cut-off applied to both; ``min(k_true, k_approx)`` when None.

    Returns
    -------
    recall : float

    Examples
    --------
    >>> recall_at_k([[0, 1], [2, 3]], [[1, 0], [2, 5]])
    0.75
    """
    true_neighbors = np.asarray(true_neighbors)
    approx_neighbors = np.asarray(approx_neighbors)
    if true_neighbors.ndim != 2 or approx_neighbors.ndim != 2:
        raise ValueError("true_neighbors and approx_neighbors must be 2-D id arrays.")
    if true_neighbors.shape[0] != approx_neighbors.shape[0]:
        raise ValueError(
            f"true_neighbors has {true_neighbors.shape[0]} rows but approx_neighbors "
            f"has {approx_neighbors.shape[0]}."
        )
    if k is None:
        k = min(true_neighbors.shape[1], approx_neighbors.shape[1])
    if k < 1 or k > min(true_neighbors.shape[1], approx_neighbors.shape[1]):
        raise ValueError(f"k={k} exceeds the number of neighbours given.")
    t, a = true_neighbors[:, :k], approx_neighbors[:, :k]
    hits = (t[:, :, None] == a[:, None, :]).any(axis=2).sum()
    return float(hits / t.size)


_LABEL_METRICS = {"precision": precision_at_k, "map": mean_average_precision}


def make_retrieval_scorer(metric="precision", k=10):
    """A scorer for ``GridSearchCV(scoring=...)`` measuring retrieval quality.

    Parameters
    ----------
    metric : {"precision", "map", "recall"}, default="precision"
        ``"precision"``: mean precision@k of the retrieved items' labels;
        ``"map"``: mean average precision@k; both need the index fitted with
        labels (``y`` reaches it through the pipeline). ``"recall"``: recall@k
        of the index against exact search on the same indexed data -- needs
        no labels, and is the scorer for tuning approximate-index parameters.
    k : int, default=10
        Number of retrieved items per query.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, where ``estimator`` is a
        fitted index or a pipeline ending with one.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import cross_val_score
    >>> from skfindkit import ExactIndex
    >>> X, y = load_digits(return_X_y=True)
    >>> scorer = make_retrieval_scorer("precision", k=5)
    >>> cross_val_score(ExactIndex(), X, y, scoring=scorer, cv=3).mean() > 0.9
    np.True_
    """
    if metric not in ("precision", "map", "recall"):
        raise ValueError(f"metric must be 'precision', 'map' or 'recall', got {metric!r}.")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")

    def scorer(estimator, X, y=None):
        index = final_index(estimator)
        Xt = features_for_index(estimator, X)
        ind = index.kneighbors(Xt, n_neighbors=k, return_distance=False)
        if metric == "recall":
            true = index.exact_kneighbors(Xt, n_neighbors=k, return_distance=False)
            return recall_at_k(true, ind)
        if y is None:
            raise ValueError(
                f"The {metric!r} retrieval scorer needs labels: fit the pipeline "
                "with y and score with y (or use metric='recall')."
            )
        try:
            retrieved = index.labels_of(ind)
        except ValueError as exc:
            raise ValueError(
                f"The {metric!r} retrieval scorer needs labels: fit the pipeline "
                f"with y and score with y (or use metric='recall'). {exc}"
            ) from exc
        return _LABEL_METRICS[metric](y, retrieved)

    scorer.__name__ = f"retrieval_{metric}_at_{k}"
    return scorer
