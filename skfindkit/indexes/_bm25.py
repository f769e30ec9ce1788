"""BM25Index: Okapi BM25 lexical ranking over term counts, as an index.

BM25 weighs the two sides of a match differently: an indexed document's term
counts are saturated (``k1``) and normalised by the document's length
(``b``), a query's are not. A transformer cannot do that without breaking
``fit_transform == fit().transform``, so the asymmetry lives in the index:
it indexes raw term counts (e.g. from
:class:`~sklearn.feature_extraction.text.CountVectorizer`) and weighs them
itself, and queries are the same counts, unweighted.

**Exactness.** Scores are computed in float64 (a sparse product of the
queries' counts with the weighted collection) and the ``k`` best are chosen
among *all* documents from those scores, ties at the ``k``-th broken by the
lower id (scikit-learn's rule): no prefilter, no float32. Each score is a sum
of ``n_q`` positive terms ``q_t w(t, d)`` (``n_q``: the query's distinct
terms). For integer counts (document lengths, their total and the document
frequencies are then exact in float64) each weight is the real one times at
most ``(1 + u)^15`` (``u = 2**-53``; three roundings in the IDF, seven in the
length normalisation, four products and quotients, one for ``q_t w``), and a
sum of positive terms in any order errs by at most ``gamma(n) * sum``, so by
:func:`~skfindkit.indexes._fp_bounds.gamma`

    |s_computed - s| <= gamma(n_q + 15, U64) * s,

about ``(n_q + 15) * 1.1e-16`` relative: two documents whose real scores
differ by more than twice that are never swapped, and identical documents score
exactly alike (the same terms summed in the same order), so they tie and
come out by id.
"""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from ..utils._sklearn_compat import Interval

from ._base import BaseIndex
from ._brute import _top_candidates
from ._distances import check_float32_range
from ._sparse import _default_batch_size, empty_rows

__all__ = ["BM25Index", "bm25_document_weights"]


def _top_k_lowest_ids(S, k):
    """Column ids of each row's ``k`` largest scores, ties at the ``k``-th by the lower id."""
    cand = np.array(_top_candidates(S, k))
    kth = np.take_along_axis(S, cand, axis=1).min(axis=1)
    for r in np.flatnonzero((S >= kth[:, None]).sum(axis=1) > k):  # more tie at the k-th
        above = np.flatnonzero(S[r] > kth[r])
        tied = np.flatnonzero(S[r] == kth[r])[: k - above.size]
        cand[r] = np.concatenate([above, tied])
    return cand


def bm25_document_weights(counts, k1, b, n_docs=None):
    """BM25 weights of indexed term counts (CSR in, CSR out).

    ``w(t, d) = idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))`` with
    ``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))``; ``N`` (``n_docs``,
    default: the rows) is the number of live documents, and ``avgdl`` their
    mean length: removed documents are empty rows that count in neither.
    """
    n_docs = counts.shape[0] if n_docs is None else n_docs
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    length = np.asarray(counts.sum(axis=1)).ravel()
    avgdl = length.sum() / n_docs if length.sum() > 0 else 1.0
    norm = k1 * (1.0 - b + b * length / avgdl)  # per document
    tf = counts.data
    row_norm = np.repeat(norm, np.diff(counts.indptr))
    weights = counts.copy()
    weights.data = idf[counts.indices] * tf * (k1 + 1.0) / (tf + row_norm)
    return weights


class _BM25Matrix:
    """The weighted collection, term-major for the query products."""

    def __init__(self, counts, k1, b, n_docs=None):
        self.weights_t = bm25_document_weights(counts, k1, b, n_docs).T.tocsr()

    def scores(self, queries, out):
        out[:] = 0.0
        (queries @ self.weights_t).toarray(out=out)
        return out


class BM25Index(BaseIndex):
    """Okapi BM25 ranking of indexed documents, with ``KNeighborsTransformer``'s contract.

    Index term counts of documents (rows of
    :class:`~sklearn.feature_extraction.text.CountVectorizer`, sparse or
    dense, non-negative), query with the counts of the queries' terms from
    the same fitted vectorizer. The score of document ``d`` for query ``q`` is

    .. math::

        s(q, d) = \\sum_t q_t \\, \\mathrm{idf}(t) \\,
        \\frac{f_{t,d} (k_1 + 1)}{f_{t,d} + k_1 (1 - b + b |d| / \\mathrm{avgdl})},
        \\qquad \\mathrm{idf}(t) = \\ln\\left(1 + \\frac{N - n_t + 0.5}{n_t + 0.5}\\right)

    with ``q_t`` the query's count of term ``t`` (a repeated query term counts
    as often as it appears), ``f_{t,d}`` its count in ``d``, ``|d|`` the sum
    of ``d``'s counts, ``N`` the number of indexed documents and ``n_t`` how
    many contain ``t``. This IDF (Lucene's) is always positive, so no
    flooring is needed (``rank_bm25.BM25Okapi`` uses ``ln((N - n + 0.5) /
    (n + 0.5))`` floored at a fraction of the mean IDF instead).

    The reported distance is ``1 / (1 + s)``: in ``(0, 1]``, decreasing with
    the score (the most relevant document is the nearest), 1 for a document
    sharing no term with the query; graphs from ``transform`` are therefore
    valid non-negative ``metric="precomputed"`` input. A document is not
    necessarily its own nearest neighbour (as with inner products), so
    ``kneighbors(X=None)`` drops the document itself where it ranks and
    otherwise the best-ranked document (scikit-learn's rule).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of documents returned per query.
    k1 : float, default=1.5
        Term-frequency saturation: 0 ignores counts (binary match), larger
        values let repeated terms count longer.
    b : float, default=0.75
        Length normalisation, from 0 (none) to 1 (full).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    batch_size : int, default=None
        Queries scored per block; the block's dense scores take
        ``8 * batch_size * n_samples_fit`` bytes. None chooses it from
        scikit-learn's ``working_memory`` (at most 256).

    Attributes
    ----------
    n_samples_fit_ : int
        Number of indexed documents.
    n_features_in_ : int
        Size of the vocabulary the index was fitted on.

    Notes
    -----
    Documents without any term are indexed (they score 0 and are found only
    after every matching document); a query without any term of the
    vocabulary has no ranking and is refused. :meth:`partial_fit` recomputes
    the IDF and the average length over all documents, so existing scores
    change exactly as after a new ``fit``. The search is exact (a sparse
    product per block of queries), single threaded.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> from sklearn.pipeline import make_pipeline
    >>> from skfindkit import BM25Index
    >>> docs = ["the cat sat", "the dog sat on the log", "cats and dogs", "a log cabin"]
    >>> search = make_pipeline(CountVectorizer(), BM25Index(n_neighbors=2)).fit(docs)
    >>> dist, ind = search[-1].kneighbors(search[0].transform(["log cabin"]))
    >>> ind
    array([[3, 1]])
    >>> (1 / dist - 1).round(3)  # the BM25 scores
    array([[2.35 , 0.525]])
    """

    _backend = "bm25"
    _native_distance = "exact"
    _nonnegative_data = True  # term counts
    _accepts_sparse = True
    metric = "bm25"  # not a parameter: the only ranking of this index
    supported_metrics = ("bm25",)

    _parameter_constraints: dict = {
        "n_neighbors": BaseIndex._parameter_constraints["n_neighbors"],
        "mode": BaseIndex._parameter_constraints["mode"],
        "k1": [Interval(Real, 0, None, closed="left")],
        "b": [Interval(Real, 0, 1, closed="both")],
        "batch_size": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=5, *, k1=1.5, b=0.75, mode="distance", batch_size=None):
        self.n_neighbors = n_neighbors
        self.k1 = k1
        self.b = b
        self.mode = mode
        self.batch_size = batch_size

    def _is_exact(self):
        return True

    def _n_threads(self):
        return 1

    def _data_scale(self, X):
        return 1.0  # counts: never rescaled (BM25 is not scale-free)

    def _prepare(self, X, name="X"):
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        check_float32_range(X.data, name)
        if X.data.size and X.data.min() < 0:
            raise ValueError(
                f"Negative values in data passed to BM25Index: {name} must hold term counts "
                "(non-negative), e.g. from CountVectorizer."
            )
        return X

    def _check_query(self, X):
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) == 2 and shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {shape[1]} features, but BM25Index is expecting "
                f"{self.n_features_in_} features as input: queries must be counted over "
                "the fitted vocabulary (transform them with the CountVectorizer fitted "
                "on the indexed documents)."
            )
        X = super()._check_query(X)
        empty = empty_rows(X)
        if empty.size:
            raise ValueError(
                f"BM25Index: {empty.size} query row(s) of X contain no term of the "
                f"fitted vocabulary (rows {empty[:5].tolist()}...): every document "
                "scores 0, so there is no ranking. Remove empty queries first."
            )
        return X

    def _build(self, X):
        removed = self._removed_mask()
        if removed is not None and X is self._fit_X:  # removed documents leave the statistics
            self._erase_removed()
            X = self._fit_X
        n_docs = None if removed is None else int((~removed).sum())
        return _BM25Matrix(X, self._fitted_param("k1"), self._fitted_param("b"), n_docs)

    def _compact(self):
        self._index = self._build(self._fit_X)

    def _search(self, X, k):
        return self._search_among(X, k, None)

    def _search_among(self, X, k, allowed):
        """The ``k`` best-scored documents among ``allowed`` (None: all), ties by id."""
        n = self.n_samples_fit_
        step = self.batch_size or _default_batch_size(X.shape[0], n)
        dist = np.empty((X.shape[0], k))
        ind = np.empty((X.shape[0], k), dtype=np.intp)
        buffer = np.empty((min(step, max(X.shape[0], 1)), n))
        for start in range(0, X.shape[0], step):
            S = self._index.scores(X[start:start + step], buffer[: min(step, X.shape[0] - start)])
            if allowed is not None:
                S = S[:, allowed]
            cand = _top_k_lowest_ids(S, min(S.shape[1], k))
            d = 1.0 / (1.0 + np.take_along_axis(S, cand, axis=1))
            order = np.lexsort((cand, d), axis=1)[:, :k]  # by distance, then id
            dist[start:start + step] = np.take_along_axis(d, order, axis=1)
            cand = np.take_along_axis(cand, order, axis=1)
            ind[start:start + step] = cand if allowed is None else allowed[cand]
        return dist, ind

    def _exact_search(self, X, k):
        return self._search(X, k)  # the search is exact

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags
