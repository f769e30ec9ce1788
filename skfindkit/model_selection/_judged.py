"""JudgedRetrieval: a retrieval pipeline over a fixed corpus, scored on judged queries.

scikit-learn's model selection splits the samples given to ``fit``. In judged
retrieval the corpus is fixed and the *queries* are the samples: ``fit(queries)``
fits the pipeline on the corpus (the queries teach it nothing), and
``score(queries, judgments)`` retrieves for each query and measures the
ranking against its judgments. So ``GridSearchCV(JudgedRetrieval(...), grid)``
splits the queries into folds, fits the corpus once per candidate (the fits
of one candidate's folds are the same and are shared), and picks the
parameters that score best on held-out queries.
"""

import threading
from numbers import Integral

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..indexes._sparse import empty_rows
from ..metrics._judged import parse_measure
from ..metrics._qrels import Qrels
from ..utils import features_for_index, final_index
from ..utils._sklearn_compat import HasMethods, Interval, _fit_context, _num_samples

__all__ = ["JudgedRetrieval", "make_judged_scorer"]

#: depth of a measure without cut-off (``"map"``), as trec_eval's usual runs
UNCUT_DEPTH = 1000

_last_fit = {"key": None, "pipeline": None}
_last_fit_lock = threading.Lock()


def _measures(scoring):
    names = [scoring] if isinstance(scoring, str) else list(scoring)
    if not names:
        raise ValueError("scoring names no measure.")
    return {name: parse_measure(name) for name in names}


def _depth(measures):
    return max(UNCUT_DEPTH if k is None else k for _, k in measures.values())


def _judgments(y, n_queries):
    if y is None:
        raise ValueError("score needs the judgments of the queries: y[i] = {doc_id: grade} "
                         "for query i (Qrels.per_query gives them in order).")
    y = list(y)
    if len(y) != n_queries:
        raise ValueError(f"{n_queries} queries but {len(y)} judgments in y.")
    return Qrels({str(i): docs for i, docs in enumerate(y)})


class JudgedRetrieval(MetaEstimatorMixin, BaseEstimator):
    """A retrieval pipeline fitted on a fixed corpus, scored by judged measures on queries.

    Parameters
    ----------
    pipeline : estimator
        A pipeline ending with an index (or an index): it is fitted on
        ``corpus`` and queried with the queries; its parameters are tuned as
        ``pipeline__<step>__<param>``.
    corpus : array-like or list
        The documents, in the form the pipeline's first step takes.
    doc_ids : array-like of str, default=None
        The id of each document of ``corpus``, as the judgments name them;
        ``"0"``, ``"1"``, ... (positions) when None.
    scoring : str or list of str, default="ndcg@10"
        Measure of :meth:`score`: ``ndcg``, ``mrr``, ``recall`` or ``map``,
        with an optional cut-off (``"recall@100"``); with several, the first.
    depth : int, default=None
        Documents retrieved per query; None: the largest cut-off of
        ``scoring`` (1000 for ``map``).
    reuse_fit : bool, default=True
        Reuse the fitted pipeline of the previous :meth:`fit` in this process
        when the unfitted pipeline and the corpus are equal (a hash of both):
        grid search then fits the corpus once per candidate instead of once
        per fold. The last fitted pipeline stays in memory until the next
        fit; instances fitted alike share it. False fits every time.

    Attributes
    ----------
    pipeline_ : estimator
        The pipeline fitted on ``corpus``.
    doc_ids_ : ndarray of str
        The documents' ids.

    Notes
    -----
    A query whose sparse features hold no entry (no word of the vocabulary)
    retrieves nothing and scores 0. The measures follow trec_eval's
    conventions (:mod:`skfindkit.metrics`); a document's score in a run is
    minus its distance.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from skfindkit import BM25Index
    >>> docs = ["cats purr", "dogs bark", "cats and dogs", "birds sing"]
    >>> queries = ["purring cats", "barking dogs", "singing birds", "cats"]
    >>> judgments = [{"0": 1}, {"1": 1}, {"3": 1}, {"0": 1, "2": 1}]
    >>> model = JudgedRetrieval(make_pipeline(CountVectorizer(), BM25Index()), docs)
    >>> search = GridSearchCV(model, {"pipeline__bm25index__b": [0.0, 0.75]}, cv=2)
    >>> search.fit(queries, judgments).best_params_
    {'pipeline__bm25index__b': 0.75}
    >>> search.cv_results_["mean_test_score"].round(3)  # nDCG@10 on held-out queries
    array([0.815, 1.   ])
    >>> search.best_estimator_.retrieve(["barking dogs"], depth=2)
    {'0': {'1': -0.578..., '2': -0.623...}}
    """

    _parameter_constraints: dict = {
        "pipeline": [HasMethods(["fit"])],
        "corpus": ["array-like", "sparse matrix"],
        "doc_ids": [None, "array-like"],
        "scoring": [str, list, tuple],
        "depth": [None, Interval(Integral, 1, None, closed="left")],
        "reuse_fit": ["boolean"],
    }

    def __init__(self, pipeline, corpus, *, doc_ids=None, scoring="ndcg@10", depth=None,
                 reuse_fit=True):
        self.pipeline = pipeline
        self.corpus = corpus
        self.doc_ids = doc_ids
        self.scoring = scoring
        self.depth = depth
        self.reuse_fit = reuse_fit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X=None, y=None):
        """Fit the pipeline on the corpus; the queries ``X`` and ``y`` are not used.

        Parameters
        ----------
        X : ignored
            The training queries (cross-validation splits them; the fit does
            not depend on them).
        y : ignored

        Returns
        -------
        self : JudgedRetrieval
        """
        _measures(self.scoring)  # a bad name fails before the work
        n_docs = _num_samples(self.corpus)
        doc_ids = (np.arange(n_docs) if self.doc_ids is None else np.asarray(self.doc_ids))
        if doc_ids.shape != (n_docs,):
            raise ValueError(f"doc_ids has shape {doc_ids.shape}, corpus has {n_docs} "
                             "documents.")
        self.doc_ids_ = doc_ids.astype(str)
        if len(set(self.doc_ids_)) != n_docs:
            raise ValueError("doc_ids are not unique.")
        self.pipeline_ = self._fitted_pipeline()
        return self

    def _fitted_pipeline(self):
        pipeline = clone(self.pipeline)
        if not self.reuse_fit:
            return pipeline.fit(self.corpus)
        key = joblib.hash((pipeline, self.corpus))
        with _last_fit_lock:
            if _last_fit["key"] == key:
                return _last_fit["pipeline"]
            _last_fit.update(key=None, pipeline=None)  # free the previous one first
        pipeline.fit(self.corpus)
        with _last_fit_lock:
            _last_fit.update(key=key, pipeline=pipeline)
        return pipeline

    def retrieve(self, X, query_ids=None, depth=None):
        """A run: the best documents of each query, with scores.

        Parameters
        ----------
        X : array-like or list
            Queries, in the form the pipeline's first step takes.
        query_ids : sequence, default=None
            The id of each query; positions ``"0"``, ``"1"``... when None.
        depth : int, default=None
            Documents per query; the estimator's depth when None.

        Returns
        -------
        run : dict
            ``{query_id: {doc_id: score}}``, score = minus the distance;
            ``{}`` for a query whose sparse features hold no entry.
        """
        check_is_fitted(self, "pipeline_")
        n_queries = _num_samples(X)
        query_ids = [str(q) for q in (range(n_queries) if query_ids is None else query_ids)]
        if len(query_ids) != n_queries:
            raise ValueError(f"{n_queries} queries but {len(query_ids)} query ids.")
        index = final_index(self.pipeline_)
        depth = depth or self.depth or _depth(_measures(self.scoring))
        depth = min(depth, len(self.doc_ids_))
        Xt = features_for_index(self.pipeline_, X)
        run = {q: {} for q in query_ids}
        keep = np.arange(n_queries)
        if sp.issparse(Xt):  # rows without any entry (no word of the vocabulary): no ranking
            keep = np.setdiff1d(keep, empty_rows(Xt))
        else:
            Xt = np.asarray(Xt)
        if keep.size:
            dist, ind = index.kneighbors(Xt[keep], n_neighbors=depth)
            for row, d, i in zip(keep, dist, ind):
                run[query_ids[row]] = dict(zip(self.doc_ids_[i].tolist(), (-d).tolist()))
        return run

    def score(self, X, y):
        """The first measure of ``scoring``, averaged over the queries ``X``.

        Parameters
        ----------
        X : array-like or list
            Queries.
        y : sequence of dict
            ``y[i]``: the judgments ``{doc_id: grade}`` of query ``i``
            (:meth:`Qrels.per_query <skfindkit.metrics.Qrels.per_query>`).

        Returns
        -------
        score : float
        """
        name = next(iter(_measures(self.scoring)))
        return make_judged_scorer(name)(self, X, y)


def make_judged_scorer(measures="ndcg@10"):
    """A scorer of :class:`JudgedRetrieval` for ``GridSearchCV(scoring=...)``.

    Parameters
    ----------
    measures : str or list of str, default="ndcg@10"
        One measure name (the scorer returns a float) or several (it returns
        ``{name: value}``, one retrieval for all: give ``GridSearchCV`` a
        ``refit=`` name).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, queries, judgments)``.

    Examples
    --------
    >>> scorer = make_judged_scorer(["ndcg@10", "recall@100"])
    >>> scorer.__name__
    'judged_ndcg@10_recall@100'
    """
    parsed = _measures(measures)
    single = isinstance(measures, str)

    def scorer(estimator, X, y):
        qrels = _judgments(y, _num_samples(X))
        run = estimator.retrieve(X, depth=estimator.depth or _depth(parsed))
        values = {name: function(qrels, run, k) for name, (function, k) in parsed.items()}
        return values[measures] if single else values

    scorer.__name__ = "judged_" + "_".join(parsed)
    return scorer
