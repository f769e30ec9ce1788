"""ExactIndex: brute force (:mod:`skfindkit.indexes._brute`) as an index."""

from numbers import Integral

import scipy.sparse as sp

from ..utils._sklearn_compat import Interval
from ._base import BaseIndex
from ._brute_matrix import BruteForceMatrix
from ._sparse import SparseBruteForce

__all__ = ["ExactIndex"]


class ExactIndex(BaseIndex):
    """Exact nearest-neighbour index: the reference for approximate indexes.

    Brute force done fast: queries are processed in blocks of ``batch_size``
    with one float32 matrix product each, the top candidates of each row are
    found with a grouped-maximum prefilter instead of a full partition, and
    the candidates that a proven float32 error bound cannot rule out are
    re-ranked with exact float64 distances; a query the bound cannot settle
    (near-duplicates below float32's resolution, a query far from the data)
    is answered from more candidates, up to every item -- never from an
    unproven shortlist (see :mod:`skfindkit.indexes._brute`).

    The answer is exact for the stored values: the input rounded to float32
    (exact for float32, float16 and integers up to 2**24; unit rows for
    cosine), ties broken by the lower id, distances within a float64 sum's
    rounding. It equals :class:`sklearn.neighbors.NearestNeighbors` with
    ``algorithm="brute"`` on float32 data (up to the order of tied distances,
    and where scikit-learn's own float64 expansion ``|x|^2 - 2 <x, y> +
    |y|^2`` does not lose them), with distances exactly 0 between identical
    items. float64 data whose differences are below float32's resolution
    (relative 6e-8) are not told apart: use scikit-learn's brute force on
    float64 for those.

    Saved (:func:`skfindkit.io.save`, pickle), a dense index keeps its search
    matrix next to its rows, so that loading it builds nothing and a mapped
    load (``io.load(path, mmap_mode="r")``) searches the file's pages, shared
    by every process that maps it. That costs file size: for euclidean the
    matrix holds the rows again, centred, with one more column (about
    ``4 (2 d + 1) + 8`` bytes per item instead of ``4 d``: 2x), since the
    exact stage needs the stored rows bit for bit; cosine and inner product
    add only their norms (8 bytes per item). See ``docs/mmap.md``.

    Sparse input (CSR, e.g. TF-IDF from
    :class:`~sklearn.feature_extraction.text.TfidfVectorizer`) is searched
    sparse (:mod:`skfindkit.indexes._sparse`): the collection is never
    densified, each block of queries is scored in float32 (frequent terms by a
    csr x dense product, rare terms by a sparse x sparse one), every
    candidate that float32's proven rounding-error bound cannot exclude is
    re-ranked with exact float64 distances (queries where the bound keeps too
    many, or whose scores would overflow float32, are scored in float64), and
    the results equal ``KNeighborsTransformer`` on the same data. Queries
    are converted to the fitted format (dense queries of a sparse index become
    CSR and vice versa). With ``metric="cosine"``, rows without any non-zero
    value (empty documents) are at distance 1 from everything, as in
    scikit-learn.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance (see :class:`~skfindkit.indexes.BaseIndex` for the units).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        BLAS threads for the matrix products (restored afterwards). ``None``
        means 1 unless in a :func:`joblib.parallel_config` context; ``-1``
        means all processors. At most :func:`joblib.cpu_count` threads.
    batch_size : int, default=None
        Queries per block; memory grows as ``4 * batch_size * n_samples_fit``
        bytes (float32 scores, dense or sparse input). None chooses it from
        scikit-learn's ``working_memory`` setting (at most 512; the block's
        score buffer is reused).

    Attributes
    ----------
    metric_ : str
        The metric the index was fitted with; it answers every query
        (see :class:`~skfindkit.indexes.BaseIndex`).
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.

    See Also
    --------
    sklearn.neighbors.KNeighborsTransformer : The estimator whose behaviour
        every skfindkit index reproduces.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import ExactIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = ExactIndex(n_neighbors=2).fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    >>> index.transform(X).shape
    (4, 4)

    Text, searched sparse:

    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.pipeline import make_pipeline
    >>> docs = ["red apple pie", "green apple", "blue sky", "red sky at night"]
    >>> search = make_pipeline(TfidfVectorizer(), ExactIndex(n_neighbors=1, metric="cosine"))
    >>> search.fit(docs)[-1].kneighbors(search[0].transform(["apple tart"]),
    ...                                 return_distance=False)
    array([[1]])
    """

    _backend = "exact"
    _cli_name = "exact"
    _native_distance = "exact"
    _accepts_sparse = True

    _parameter_constraints: dict = {
        **BaseIndex._parameter_constraints,
        "batch_size": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self, n_neighbors=5, *, metric="euclidean", mode="distance", n_jobs=None, batch_size=None
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs)
        self.batch_size = batch_size

    def _is_exact(self):
        return True

    def _build(self, X):
        if sp.issparse(X):
            return SparseBruteForce(X, self.metric_)
        return BruteForceMatrix(X, self.metric_)

    def _search(self, X, k):
        return self._exact_search(X, k)  # the base's brute force, on the kept matrix

    def _serialize(self):
        # dense rows: the search matrix is saved next to them (built now if no query
        # built it), so that a load, mapped or not, builds nothing; sparse: rebuilt
        if not isinstance(self._index, BruteForceMatrix):
            return None
        return self._index.prepared.stored()

    def _deserialize(self, arrays):
        if sp.issparse(self._fit_X):
            raise ValueError("a sparse index has no stored search matrix")
        return BruteForceMatrix.from_stored(self._fit_X, self.metric_, arrays)

    def _compact(self):
        # removal is real: the rows are erased and searches skip their columns
        self._erase_removed()
        self._index = self._build(self._fit_X)
