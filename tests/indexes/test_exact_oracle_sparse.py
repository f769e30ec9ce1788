"""Sparse ExactIndex and BM25Index against float64 oracles, on data built to break floating point.

The oracles are written out here in float64 numpy. Sparse indexes keep the
rows as float64 (the input's values converted exactly: float16, float32 and
integer inputs lose nothing; cosine rows normalized by
:func:`sklearn.preprocessing.normalize`, as the index stores them), so the
oracles are computed on those same float64 values; euclidean and cosine
distances from the rows' differences (exact to float64 rounding even for
near-duplicates), inner products as ``1 - q . y``.

What is checked: the same neighbours as the oracle, ties broken by the lower
id, ids differing only where the oracle's distances are equal up to float64
rounding (``1e-13`` relative); distances within ``1e-9`` relative (plus
float64's rounding of ``q . y`` for the inner product, whose distance
``1 - q . y`` cancels).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import normalize

from skfindkit import BM25Index, ExactIndex
from skfindkit.indexes import _sparse, _sparse_select
from skfindkit.indexes._fp_bounds import TINY, U32

METRICS = ("euclidean", "cosine", "inner_product")
FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
BIG = settings(max_examples=150, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
EPS = np.finfo(np.float64).eps

KINDS = ("near_duplicates", "outlier", "mixed_scales", "counts", "binary", "duplicates", "plain")


def _draw_values(rng, kind, shape, density):
    """Dense values of one adversarial ``kind``, zero outside a random sparsity pattern."""
    n, d = shape
    mask = rng.random(shape) < density
    if kind == "near_duplicates":  # one base row, relative jitter 1e-3..1e-7
        base = rng.uniform(0.5, 2.0, d) * 10.0 ** rng.integers(-2, 5)
        X = base * (1.0 + 10.0 ** -rng.uniform(3, 7) * rng.standard_normal(shape))
        mask = np.broadcast_to(rng.random(d) < max(density, 0.3), shape)
    elif kind == "outlier":  # unit-scale rows, some moved 1e3..1e8 away (one direction)
        X = rng.standard_normal(shape)
        far = rng.random(n) < 0.6
        X[far] += 10.0 ** rng.uniform(3, 8) * rng.uniform(0.5, 1.0, d)
    elif kind == "mixed_scales":  # per-feature scales 1e-6..1e6
        X = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6, d)
    elif kind == "counts":
        X = rng.poisson(2.0, shape).astype(np.float64)
    elif kind == "binary":
        X = np.ones(shape)
    elif kind == "duplicates":  # few distinct rows, repeated: exact ties
        distinct = rng.poisson(1.5, (max(1, n // 4), d)).astype(np.float64)
        X = distinct[rng.integers(0, distinct.shape[0], n)]
        return X * np.broadcast_to(rng.random(d) < max(density, 0.3), shape)
    else:
        X = rng.uniform(-1.0, 1.0, shape)
    return np.where(mask, X, 0.0)


@st.composite
def sparse_cases(draw, max_n=80):
    """``(X, Q)``: CSR collection and queries of one adversarial kind, width and dtype."""
    kind = draw(st.sampled_from(KINDS))
    n = draw(st.integers(2, max_n))
    n_q = draw(st.integers(1, 6))
    d = draw(st.sampled_from([1, 4, 30, 2100]))
    density = draw(st.sampled_from([0.05, 0.3, 1.0]))
    dtype = draw(st.sampled_from(["float64", "float32", "float16", "int64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = _draw_values(rng, kind, (n + n_q, d), density)
    if kind in ("near_duplicates", "duplicates") and draw(st.booleans()):
        A[n:] = A[rng.integers(0, n, n_q)]  # queries equal to indexed rows
    A[rng.random(n + n_q) < 0.1] = 0.0  # empty rows
    if dtype == "int64":
        A = np.round(A)
    elif dtype != "float64":
        with np.errstate(over="ignore"):
            cast = A.astype(dtype)
        A = cast if np.isfinite(cast).all() else A  # float16 overflows past 65504
    if A.dtype == np.float16:  # scipy has no float16 CSR: float16 values in float32
        # CSR, queries given dense in float16 (a sparse index converts them)
        return sp.csr_matrix(A[:n].astype(np.float32)), A[n:]
    A = sp.csr_matrix(A)
    return A[:n], A[n:]


def _oracle(X, Q, metric):
    """float64 distances between every query and item, on the values the index stores."""
    X = sp.csr_matrix(X, dtype=np.float64)
    Q = sp.csr_matrix(Q, dtype=np.float64)
    if metric == "inner_product":
        return 1.0 - Q.toarray() @ X.toarray().T
    if metric == "cosine":
        X, Q = normalize(X), normalize(Q)
    Xd, Qd = X.toarray(), Q.toarray()
    D = np.empty((Qd.shape[0], Xd.shape[0]))
    for r, q in enumerate(Qd):  # from the differences: exact for near-duplicates
        diff = Xd - q
        D[r] = np.einsum("ij,ij->i", diff, diff)
    if metric == "euclidean":
        return np.sqrt(D)
    D *= 0.5
    zero_q = np.diff(Q.indptr) == 0
    zero_x = np.diff(X.indptr) == 0
    D[zero_q] = 1.0
    D[:, zero_x] = 1.0
    return D


def _abs_noise(X, Q, metric):
    """float64 rounding of the oracle itself, per (query, item) pair (absolute)."""
    if metric == "inner_product":
        nx = np.sqrt(np.asarray(X.astype(np.float64).power(2).sum(axis=1)).ravel())
        nq = np.sqrt((np.asarray(Q, dtype=np.float64) ** 2).sum(axis=1)) if not sp.issparse(Q) \
            else np.sqrt(np.asarray(Q.astype(np.float64).power(2).sum(axis=1)).ravel())
        return 8 * X.shape[1] * EPS * (1.0 + nq[:, None] * nx[None, :])
    if metric == "cosine":
        return np.full((Q.shape[0], X.shape[0]), 16 * EPS)
    return np.zeros((Q.shape[0], X.shape[0]))


def assert_matches_oracle(dist, ind, D, noise, k, rtol=1e-9):
    """Same neighbours as the oracle ``D`` (ties by the lower id), distances within ``rtol``."""
    n = D.shape[1]
    ids = np.broadcast_to(np.arange(n), D.shape)
    want = np.lexsort((ids, D), axis=1)[:, :k]
    want_d = np.take_along_axis(D, want, axis=1)
    got_d = np.take_along_axis(D, ind, axis=1)  # the oracle's distance of each returned id
    pair_noise = np.take_along_axis(noise, want, axis=1) + np.take_along_axis(noise, ind, axis=1)
    differ = ind != want
    tied = np.abs(got_d - want_d) <= 1e-13 * np.abs(want_d) + pair_noise
    assert (tied | ~differ).all(), (
        f"neighbours differ from the oracle beyond float64 ties:\n{ind[differ.any(1)]}\n"
        f"{want[differ.any(1)]}\n{got_d[differ.any(1)]}\n{want_d[differ.any(1)]}"
    )
    for row in ind:
        assert np.unique(row).size == k
    err = np.abs(dist - want_d)
    assert (err <= rtol * np.abs(want_d) + np.take_along_axis(noise, want, axis=1)).all(), (
        f"distances beyond {rtol} relative: max error {err.max()}"
    )


def _check_exact(X, Q, metric, k):
    est = ExactIndex(n_neighbors=k, metric=metric).fit(X)
    dist, ind = est.kneighbors(Q)
    assert_matches_oracle(dist, ind, _oracle(X, Q, metric), _abs_noise(X, Q, metric), k)


@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(case=sparse_cases(), k=st.integers(1, 6))
def test_sparse_exact_matches_float64_oracle(metric, case, k):
    X, Q = case
    _check_exact(X, Q, metric, min(k, X.shape[0]))


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
@BIG
@given(case=sparse_cases(max_n=300), k=st.integers(1, 20))
def test_sparse_exact_matches_float64_oracle_big(metric, case, k):
    X, Q = case
    _check_exact(X, Q, metric, min(k, X.shape[0]))


@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(case=sparse_cases())
def test_float32_scores_are_within_the_stated_bound(metric, case):
    # the bound the search relies on, checked against scores in extended precision
    X, Q = case
    data = _sparse.prepare_sparse(X, metric)
    Qp = _sparse.prepare_sparse(sp.csr_matrix(np.asarray(Q, dtype=np.float64))
                                if not sp.issparse(Q) else Q, metric)
    matrix = _sparse.SparseBruteForce(data, metric)
    S = matrix.scores_t(Qp, np.empty((data.shape[0], Qp.shape[0]), dtype=np.float32)).T
    Xl, Ql = data.toarray().astype(np.longdouble), Qp.toarray().astype(np.longdouble)
    exact = Ql @ Xl.T
    if metric == "euclidean":
        exact -= 0.5 * (Xl * Xl).sum(axis=1)
    queries, items = np.indices(S.shape)
    error = _sparse_select.ScoreError(matrix, Qp, U32, TINY)(items.ravel(), queries.ravel())
    q_norm = np.sqrt(np.asarray(Qp.multiply(Qp).sum(axis=1)).ravel())
    # queries the float32 path answers (the others are scored in float64)
    usable = matrix.float32_ok & (q_norm * matrix.norms.max() + matrix.h.max() <= 3.4e38 / 4)
    bad = np.abs(S.astype(np.longdouble) - exact) > error.reshape(S.shape)
    assert not bad[usable].any()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("jitter", [1e-3, 1e-5, 1e-7])
def test_regression_near_duplicates_beyond_a_fixed_candidate_count(metric, jitter):
    # 300 jittered copies of one row: their float32 scores differ by less than
    # float32's rounding, so "the best 2k by float32 score" is a random pick
    rng = np.random.RandomState(0)
    base = rng.uniform(1, 2, 30)
    X = sp.csr_matrix(base * (1 + jitter * rng.randn(300, 30)))
    Q = sp.csr_matrix(base * (1 + jitter * rng.randn(4, 30)))
    _check_exact(X, Q, metric, 3)


def test_regression_far_cluster_rows():
    rng = np.random.RandomState(1)
    X = rng.randn(200, 40)
    offset = 1e4 * rng.uniform(0.5, 1.0, 40)
    X[::2] += offset  # a cluster 1e4 away: unit-scale differences on a large offset
    terms = rng.rand(40) < 0.5  # the same terms in every row
    X = sp.csr_matrix(np.where(terms, X, 0.0))
    Q = sp.csr_matrix(np.where(terms, rng.randn(5, 40) + offset, 0.0))
    for metric in METRICS:
        _check_exact(X, Q, metric, 4)


def test_duplicated_rows_tie_by_lower_id():
    rng = np.random.RandomState(2)
    row = sp.csr_matrix(rng.poisson(1.0, (1, 2100)).astype(float))
    other = sp.csr_matrix(rng.poisson(1.0, (5, 2100)).astype(float))
    X = sp.vstack([other, row, other, row, row, row, row], format="csr")  # row at 5, 11..14
    for metric in METRICS:
        dist, ind = ExactIndex(n_neighbors=3, metric=metric).fit(X).kneighbors(row)
        if metric != "inner_product":
            np.testing.assert_array_equal(ind, [[5, 11, 12]])
            assert (dist == 0.0).all()


def test_values_whose_squares_overflow_float64_are_refused():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1e200]]))
    with pytest.raises(ValueError, match="X contains values beyond"):
        ExactIndex(n_neighbors=1).fit(X)
    est = ExactIndex(n_neighbors=1).fit(sp.csr_matrix(np.eye(2)))
    with pytest.raises(ValueError, match="X contains values beyond"):
        est.kneighbors(X)


@pytest.mark.parametrize("metric", METRICS)
def test_float32_overflowing_scores_fall_back_to_float64(metric):
    # 1e20: within float32, but products and |y|^2 / 2 overflow float32 (1e40)
    rng = np.random.RandomState(5)
    base = np.array([1e20, 1.0, 3e19])
    X = np.vstack([base * (1 + 1e-3 * rng.randn(12, 3)), rng.randn(4, 3), [[0, 0, 1e19]]])
    Q = sp.csr_matrix(np.vstack([base * (1 + 1e-3 * rng.randn(2, 3)), [[1.0, 1.0, 0.0]]]))
    X = sp.csr_matrix(X)
    _check_exact(X, Q, metric, 2)


# ------------------------------------------------------------------- BM25
def bm25_oracle(counts, queries, k1, b):
    """float64 BM25 distances ``1 / (1 + s)`` written out from the formula (dense)."""
    C = counts.toarray().astype(np.float64)
    Qd = queries.toarray().astype(np.float64)
    N = C.shape[0]
    df = (C > 0).sum(axis=0)
    idf = np.log(1.0 + (N - df + 0.5) / (df + 0.5))
    length = C.sum(axis=1)
    avgdl = length.mean() if length.mean() > 0 else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        W = idf * C * (k1 + 1.0) / (C + k1 * (1.0 - b + b * length[:, None] / avgdl))
    W[C == 0] = 0.0
    S = Qd @ W.T
    return 1.0 / (1.0 + S), S


@st.composite
def bm25_cases(draw, max_n=40):
    n = draw(st.integers(1, max_n))
    n_q = draw(st.integers(1, 5))
    d = draw(st.sampled_from([3, 20, 2100]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1, 3, 1000]))
    C = rng.poisson(0.5, (n, d)) * rng.integers(1, scale + 1, (n, d))
    if draw(st.booleans()):  # duplicated documents: exact ties
        C = C[rng.integers(0, max(1, n // 3), n)]
    C[rng.random(n) < 0.1] = 0  # empty documents
    Qc = rng.poisson(0.3, (n_q, d))
    Qc[np.arange(n_q), rng.integers(0, d, n_q)] += 1  # no empty query
    dtype = draw(st.sampled_from(["int64", "float64", "float32"]))
    return sp.csr_matrix(C.astype(dtype)), sp.csr_matrix(Qc.astype(dtype))


def _check_bm25(C, Qc, k, k1=1.5, b=0.75):
    dist, ind = BM25Index(n_neighbors=k, k1=k1, b=b).fit(C).kneighbors(Qc)
    D, S = bm25_oracle(C, Qc, k1, b)
    # sums of positive terms: float64 errs by at most n u s on each score
    noise = 4 * Qc.shape[1] * EPS * np.abs(S) * D
    assert_matches_oracle(dist, ind, D, noise, k)


@FAST
@given(case=bm25_cases(), k=st.integers(1, 8), k1=st.sampled_from([0.0, 1.2, 2.0]),
       b=st.sampled_from([0.0, 0.75, 1.0]))
def test_bm25_matches_float64_oracle(case, k, k1, b):
    C, Qc = case
    _check_bm25(C, Qc, min(k, C.shape[0]), k1, b)


@pytest.mark.slow
@BIG
@given(case=bm25_cases(max_n=300), k=st.integers(1, 20))
def test_bm25_matches_float64_oracle_big(case, k):
    C, Qc = case
    _check_bm25(C, Qc, min(k, C.shape[0]))


def test_regression_bm25_tied_documents_by_lower_id():
    rng = np.random.RandomState(3)
    doc = rng.poisson(1.0, (1, 50))
    other = rng.poisson(1.0, (300, 50))
    C = np.vstack([other] + [doc] * 40)  # 40 identical documents, ids 300..339
    dist, ind = BM25Index(n_neighbors=5).fit(sp.csr_matrix(C)).kneighbors(sp.csr_matrix(doc))
    D, _ = bm25_oracle(sp.csr_matrix(C), sp.csr_matrix(doc), 1.5, 0.75)
    want = np.lexsort((np.arange(C.shape[0]), D[0]))[:5]
    assert (D[0, want] == D[0, 300]).all()  # the tied copies are the best
    np.testing.assert_array_equal(ind[0], want)  # 300..304, the lowest ids


def test_bm25_agrees_with_rank_bm25_given_the_same_idf():
    rank_bm25 = pytest.importorskip("rank_bm25")
    rng = np.random.RandomState(4)
    vocab = [f"w{i}" for i in range(30)]
    docs = [list(rng.choice(vocab, rng.randint(1, 15))) for _ in range(60)]
    docs += docs[:5]  # duplicates
    query = ["w1", "w2", "w2", "w7"]
    C = sp.csr_matrix(np.array([[doc.count(w) for w in vocab] for doc in docs], dtype=float))
    Qc = sp.csr_matrix(np.array([[query.count(w) for w in vocab]], dtype=float))
    okapi = rank_bm25.BM25Okapi(docs, k1=1.5, b=0.75)
    # rank_bm25's IDF is ln((N - n + 0.5) / (n + 0.5)), floored; its term-frequency
    # saturation and length normalisation are BM25's: compare those with our IDF
    N = len(docs)
    for word in okapi.idf:
        n = sum(word in doc for doc in docs)
        okapi.idf[word] = np.log1p((N - n + 0.5) / (n + 0.5))
    scores = okapi.get_scores(query)
    dist, ind = BM25Index(n_neighbors=10).fit(C).kneighbors(Qc)
    want = np.lexsort((np.arange(N), -scores))[:10]
    np.testing.assert_array_equal(ind[0], want)
    np.testing.assert_allclose(1.0 / dist[0] - 1.0, scores[want], rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_many_exact_ties_are_reranked_in_pieces(monkeypatch, metric):
    # 400 copies of one row: the float32 bound keeps them all, float64 too
    # (exact ties); they are re-ranked a few pairs and queries at a time
    monkeypatch.setattr(_sparse, "_PAIRS", 50)
    monkeypatch.setattr(_sparse, "_FLOAT64_SCORES", 900)
    rng = np.random.RandomState(6)
    row = rng.poisson(2.0, (1, 60)).astype(float)
    X = sp.csr_matrix(np.vstack([rng.poisson(2.0, (30, 60)), np.repeat(row, 400, axis=0)]))
    Q = sp.csr_matrix(np.vstack([row, row, rng.poisson(2.0, (3, 60))]))
    _check_exact(X, Q, metric, 5)
    if metric != "inner_product":
        ind = ExactIndex(n_neighbors=5, metric=metric).fit(X).kneighbors(Q[:1])[1]
        np.testing.assert_array_equal(ind, [np.arange(30, 35)])
