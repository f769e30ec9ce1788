"""The base of the approximate indexes: the parameters they share.

:class:`ApproximateIndex` owns ``random_state``, ``refine`` and
``keep_vectors``: their constraints, the ``__init__`` tail and their shared
documentation. Backend hooks read every constructor parameter through
``BaseIndex._fitted`` (its value at the last ``fit``), except the query-time
knobs named in ``_query_time_params`` (read live: they apply at once); a test
scans the backends for any other ``self.<parameter>`` read.
"""

from numbers import Integral

from ..utils._sklearn_compat import Interval
from ._base import BaseIndex

__all__ = ["ApproximateIndex"]

# parameter -> the shared description inserted under its line in a backend's docstring
_SHARED_DOC = {
    "random_state": """\
Seed of the native build's random choices:""",
    "refine": """\
Exact re-ranking: fetch ``refine * n_neighbors`` candidates from the
native index and return the ``n_neighbors`` nearest of them by exact
distance over the stored data (faiss's ``IndexRefine`` idea). None
keeps the native ranking. It raises recall where the native ranking
is approximate (faiss PQ/SQ codes) or where asking for more items
widens the search (hnswlib, faiss HNSW: ``ef = max(ef_search, k)``),
at the cost of one exact distance per candidate; where the native
distances are exact and the search does not grow with ``k`` (faiss
IVF-Flat, annoy with a fixed ``search_k``, nmslib) the answer is
unchanged (measured in ``benchmarks/results/ann.md``).""",
    "keep_vectors": """\
Keep the prepared float32 copy of the indexed rows beside the native
index (``4 * n_samples * n_features`` bytes). False drops it: the rows
a feature needs -- ``kneighbors(X=None)``, ``refine``, exact
completion of short rows, ``exact_kneighbors``, recomputed
distances, a rebuild where the library cannot grow -- are read back
from the native index, with the same answers, slower where many rows
are read.""",
}


def _with_shared_doc(doc, names):
    """``doc`` with each shared description inserted under its parameter's line."""
    lines = doc.splitlines(keepends=True)
    out = []
    for line in lines:
        out.append(line)
        name = line.strip().split(" : ")[0]
        if name in names and line.startswith("    ") and " : " in line:
            indent = line[:len(line) - len(line.lstrip())] + "    "
            out += [indent + text + "\n" for text in _SHARED_DOC[name].splitlines()]
    return "".join(out)


class ApproximateIndex(BaseIndex):
    """Base class of the approximate indexes (not to be used directly).

    Adds to :class:`BaseIndex` the parameters every approximate backend
    shares: ``random_state``, ``refine`` and ``keep_vectors``, each where
    the backend's ``__init__`` takes it.
    """

    #: Parameters read live by the query hooks (they apply at the next query).
    _query_time_params = ()

    _parameter_constraints: dict = {
        **BaseIndex._parameter_constraints,
        "random_state": ["random_state"],
        # exact re-ranking of refine * k candidates (KNeighborsQueryMixin._search_complete)
        "refine": [None, Interval(Integral, 1, None, closed="left")],
        "keep_vectors": ["boolean"],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            cls.__doc__ = _with_shared_doc(cls.__doc__, set(_SHARED_DOC))

    def __init__(self, n_neighbors=5, *, metric="euclidean", mode="distance", n_jobs=None,
                 random_state=None, refine=None, keep_vectors=True):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs)
        taken = self._get_param_names()
        for name, value in (("random_state", random_state), ("refine", refine),
                            ("keep_vectors", keep_vectors)):
            if name in taken:  # each backend takes those its library supports
                setattr(self, name, value)
