"""The matrix an exact search multiplies queries with, built or taken from a saved index.

For euclidean the rows are cut into groups far apart from each other
(:func:`_partition`: a far outlier, clusters 1e6 apart), each centred on its
own mean, with the column ``-|y - c|^2 / 2`` appended; cosine and inner
product use the rows themselves. :class:`BruteForceMatrix` builds it once
(at the first query) or takes it from the arrays a saved index stored
(:meth:`BruteForceMatrix.from_stored`, structure checked against the rows);
:mod:`skfindkit.indexes._brute` searches with it and says why the search is
exact.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..utils._mapped import peek, release, values_checked
from ._fp_bounds import TINY, U32

__all__ = ["BruteForceMatrix"]


class _Prepared:
    """What a block of queries is multiplied with, and what bounds its errors.

    ``matrix`` holds the rows in ``perm`` order (None: the stored order), cut
    into groups ``starts[g]:starts[g + 1]``, each centred on its own centre
    (euclidean) with the column ``-|y - c|^2 / 2`` appended; ``norms`` are the
    float64 norms of the matrix rows (centred rows), ``group_max`` their
    maximum per group, ``group_of`` each position's group.
    """

    def __init__(self, matrix, norms, perm=None, starts=None, centres=None):
        n = matrix.shape[0]
        self.matrix, self.norms, self.perm = matrix, norms, perm
        self.starts = np.array([0, n]) if starts is None else np.asarray(starts)
        self.centres = centres
        self.n_groups = len(self.starts) - 1
        self.group_max = np.array([
            norms[a:b].max() if b > a else 0.0 for a, b in zip(self.starts[:-1], self.starts[1:])
        ])
        self.group_of = (None if self.n_groups == 1 else
                         np.repeat(np.arange(self.n_groups), np.diff(self.starts)))

    def ids(self, positions):
        """Row numbers in the stored data of matrix positions."""
        return positions if self.perm is None else self.perm[positions]

    def stored(self):
        """The arrays a saved index keeps to skip the build (see :func:`_from_stored`).

        Cosine and inner product search the data themselves: only their norms.
        """
        if self.centres is None:
            return {"norms": self.norms}
        arrays = {"matrix": self.matrix, "norms": self.norms, "starts": self.starts,
                  "centres": self.centres}
        if self.perm is not None:
            arrays["perm"] = self.perm
        return arrays


class BruteForceMatrix:
    """The matrix a block of queries is multiplied with, per metric.

    Building it costs a few passes over the data (for euclidean, a test of
    whether the rows fall into far-apart groups, each then centred on its
    own mean); an index keeps it between queries (it is
    :class:`~skfindkit.ExactIndex`'s native structure). It is built at the
    first query, or taken from the arrays a saved index stored
    (:meth:`from_stored`): a mapped load then searches the file's pages,
    shared by every process that maps it, and builds nothing.
    """

    def __init__(self, data, metric):
        self.data = data
        self.metric = metric
        self._prepared = None
        self._lock = threading.Lock()

    @classmethod
    def from_stored(cls, data, metric, arrays):
        """The matrix of ``data`` from the arrays of ``prepared.stored()``, checked.

        Raises
        ------
        ValueError
            If the arrays do not describe a search matrix of ``data``.
        """
        matrix = cls(data, metric)
        matrix._prepared = _from_stored(data, metric, arrays)
        return matrix

    @property
    def prepared(self):
        if self._prepared is None:
            with self._lock:  # concurrent first queries build it once
                if self._prepared is None:
                    self._prepared = self._build()
        return self._prepared

    @property
    def matrix(self):
        return self.prepared.matrix

    def _build(self):
        data = self.data
        if self.metric != "euclidean":
            return _Prepared(data, _row_norms(data))
        n, d = data.shape
        groups = _partition(data)
        perm = None if len(groups) == 1 else np.concatenate(groups)
        starts = np.concatenate([[0], np.cumsum([g.size for g in groups])])
        centres = np.empty((len(groups), d), dtype=np.float32)
        # several groups: a last column of ones takes each query's -|q - c|^2 / 2
        matrix = np.empty((n, d + 1 + (len(groups) > 1)), dtype=np.float32)
        matrix[:, d + 1:] = 1.0
        for g, ids in enumerate(groups):
            rows = data if perm is None else data[ids]
            centres[g] = rows.mean(axis=0, dtype=np.float64) if ids.size else 0.0
            block = matrix[starts[g]:starts[g + 1]]
            np.subtract(rows, centres[g], out=block[:, :d])
            block[:, d] = -0.5 * np.einsum("ij,ij->i", block[:, :d], block[:, :d],
                                           dtype=np.float64)
        return _Prepared(matrix, _row_norms(matrix[:, :d]), perm, starts, centres)

    def scores(self, queries, out):
        """Scores (larger is nearer) of queries against every matrix position, into ``out``.

        Returns the float64 norms of the (centred) queries per group, shape
        ``(n_queries, n_groups)``, which bound the scores' errors. Euclidean
        scores are ``<q - c, y - c> - |y - c|^2 / 2``, which is
        ``(|q - c|^2 - |q - y|^2) / 2``; with several groups each group's
        ``|q - c|^2 / 2`` is subtracted too (a last column of the product), so
        that scores compare across groups.
        """
        prep = self.prepared
        if self.metric != "euclidean":
            np.matmul(queries, prep.matrix.T, out=out)
            return _row_norms(queries)[:, None]
        n_q, d = queries.shape
        qn = np.empty((n_q, prep.n_groups))
        Qc = np.empty((n_q, prep.matrix.shape[1]), dtype=np.float32)
        Qc[:, d] = 1.0
        for g in range(prep.n_groups):
            a, b = prep.starts[g], prep.starts[g + 1]
            np.subtract(queries, prep.centres[g], out=Qc[:, :d])
            qn[:, g] = _row_norms(Qc[:, :d])
            if prep.n_groups > 1:
                Qc[:, d + 1] = -0.5 * qn[:, g] ** 2
            # BLAS writes into the block of columns in place (no temporary)
            np.matmul(Qc, prep.matrix[a:b].T, out=out[:, a:b])
        return qn


def _row_norms(X):
    return np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))


def _stored_array(arrays, name, dtype, shape):
    value = arrays[name]
    if not (isinstance(value, np.ndarray) and value.dtype == dtype and value.shape == shape):
        raise ValueError(f"the stored {name} are not {np.dtype(dtype)} values of shape {shape}")
    return value


def _from_stored(data, metric, arrays):
    """:class:`_Prepared` from saved arrays, their structure checked against ``data``.

    Shapes, dtypes, the groups' bounds, the permutation and the finiteness of
    the norms and centres are checked, then every row against ``data``
    (:func:`_checked`: a matrix saved with other rows, or edited anywhere, is
    refused).
    """
    n, d = data.shape
    wanted = {"norms"} if metric != "euclidean" else {"matrix", "norms", "starts", "centres"}
    if not isinstance(arrays, dict) or set(arrays) - {"perm"} != wanted:
        raise ValueError("the stored search structure does not have the arrays of a "
                         f"{metric} index")
    norms = _stored_array(arrays, "norms", np.float64, (n,))
    if not (np.isfinite(norms).all() and (norms >= 0).all()):
        raise ValueError("the stored norms are not finite values >= 0")
    if metric != "euclidean":
        return _checked(_Prepared(data, norms), data)
    starts = arrays["starts"]
    if not (isinstance(starts, np.ndarray) and starts.dtype.kind == "i" and starts.ndim == 1
            and 2 <= starts.size <= _MAX_GROUPS + 1 and starts[0] == 0 and starts[-1] == n
            and (np.diff(starts) >= 0).all()):
        raise ValueError("the stored group bounds do not cut the rows into groups")
    n_groups = starts.size - 1
    centres = _stored_array(arrays, "centres", np.float32, (n_groups, d))
    matrix = _stored_array(arrays, "matrix", np.float32, (n, d + 1 + (n_groups > 1)))
    if not (np.isfinite(centres).all() and matrix.flags.c_contiguous):
        raise ValueError("the stored centres or matrix are malformed")
    perm = arrays.get("perm")
    if (perm is not None) != (n_groups > 1):
        raise ValueError("the stored permutation does not match the number of groups")
    if perm is not None:
        perm = _stored_array(arrays, "perm", np.intp, (n,))
        if perm.min() < 0 or perm.max() >= n or not (np.bincount(perm, minlength=n) == 1).all():
            raise ValueError("the stored permutation is not a permutation of the rows")
    return _checked(_Prepared(matrix, norms, perm, starts.astype(np.intp), centres), data)


#: rows per piece of the check of a stored matrix (bounded temporaries), and the
#: threads that check pieces at once
_CHECK_ROWS = 1 << 15
_CHECK_THREADS = min(4, os.cpu_count() or 1)


def _checked(prep, data):
    """``prep`` if every row of its matrix and every norm is what ``data`` makes.

    The search's error bounds hold for the matrix the rows make, so nothing of
    a stored one is taken on trust: the centred rows must be the float32
    differences ``fl(y - c)`` bit for bit, the column ``-|y - c|^2 / 2``
    within its float32 rounding (``u |y - c|^2 / 2``, what the bounds allow),
    a grouped matrix's last column all ones, the float64 norms within
    ``1e-12``. One pass over the rows and the matrix in pieces (a mapped
    array's pages handed back), checked by up to 4 threads. Arrays of a mapped file verified before and
    unchanged since (:mod:`skfindkit.utils._verified`) were checked then:
    only their first and last rows are recomputed.
    """
    if values_checked(data) and values_checked(prep.matrix):
        return _spot_checked(prep, data)
    n = data.shape[0]
    starts = range(0, n, _CHECK_ROWS)
    workers = min(len(starts), _CHECK_THREADS)
    if workers > 1:  # numpy's loops release the GIL: pieces checked side by side
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda start: _check_rows(prep, data, start), starts):
                pass
    else:
        for start in starts:
            _check_rows(prep, data, start)
    if prep.perm is not None:
        release(data)
    release(prep.norms)
    return prep


def _check_rows(prep, data, start):
    """Check matrix rows ``start:start + _CHECK_ROWS`` (see :func:`_checked`)."""
    n, d = data.shape
    stop = min(n, start + _CHECK_ROWS)
    rows = data[start:stop] if prep.perm is None else data[prep.perm[start:stop]]
    if prep.centres is not None:
        group = 0 if prep.group_of is None else prep.group_of[start:stop]
        rows = rows - prep.centres[group]
    squares = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    if prep.centres is not None:
        block = prep.matrix[start:stop]
        column = -0.5 * squares
        if not (np.array_equal(block[:, :d], rows)
                and (np.abs(block[:, d] - column) <= U32 * np.abs(column) * (1 + 1e-9)
                     + TINY).all()
                and (block.shape[1] == d + 1 or (block[:, d + 1] == 1.0).all())):
            raise ValueError("the stored search matrix was not made from the stored rows")
        release(block)
    if not np.allclose(prep.norms[start:stop], np.sqrt(squares), rtol=1e-12, atol=0.0):
        raise ValueError("the stored norms are not those of the stored rows")
    if prep.perm is None:
        release(data[start:stop])


def _spot_checked(prep, data, n_rows=32):
    """``prep`` if its first and last ``n_rows`` rows are those ``data`` makes."""
    n, d = data.shape
    pos = np.unique(np.r_[0:min(n, n_rows), max(0, n - n_rows):n])
    rows = peek(data, prep.ids(pos))
    if prep.centres is not None:  # the centred rows exactly (one float32 subtraction)
        group = np.searchsorted(prep.starts, pos, side="right") - 1
        rows = rows - prep.centres[group]
        if not np.array_equal(peek(prep.matrix, pos)[:, :d], rows):
            raise ValueError("the stored search matrix was not made from the stored rows")
    if not np.allclose(prep.norms[pos], _row_norms(rows), rtol=1e-12, atol=0.0):
        raise ValueError("the stored norms are not those of the stored rows")
    return prep


#: Two groups whose centres are farther apart than this many times their
#: radius are searched apart, each centred on its own mean.
_SPLIT_RATIO = 16.0
_MAX_GROUPS = 64
_SAMPLE = 1024


def _partition(data):
    """Row ids cut into groups far apart from each other (one group for most data).

    float32 scores err in proportion to the norms of the centred rows: rows
    around one centre but far from the rest (an outlier at 1e6, two clusters
    1e6 apart) would make every score's error larger than the distances it
    must tell apart. Groups are found by repeated 2-means splits (on a sample,
    seeded by the row farthest from the group's mean) kept only where the two
    centres are more than ``_SPLIT_RATIO`` radii apart. Any partition gives
    exact results; a good one keeps the bounds tight enough for the fast path.
    """
    n = data.shape[0]
    todo, done = [np.arange(n)], []
    rng = np.random.default_rng(0)
    while todo and len(done) + len(todo) < _MAX_GROUPS:
        ids = todo.pop()
        parts = _split(data, ids, rng)
        if parts is None:
            done.append(ids)
        else:
            todo.extend(parts)
    return done + todo


def _split(data, ids, rng):
    if ids.size < 2:
        return None
    rows = data[ids] if ids.size < data.shape[0] else data
    mean = rows.mean(axis=0, dtype=np.float64)
    far = int(np.argmax(np.einsum("ij,ij->i", rows - mean.astype(np.float32),
                                  rows - mean.astype(np.float32), dtype=np.float64)))
    sample = (np.arange(ids.size) if ids.size <= _SAMPLE
              else np.union1d(rng.choice(ids.size, _SAMPLE, replace=False), [far]))
    X = rows[sample].astype(np.float64)
    a = X[np.searchsorted(sample, far)]
    b = X[np.argmax(((X - a) ** 2).sum(axis=1))]
    centres = np.stack([a, b])
    for _ in range(4):  # Lloyd's iterations
        label = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        if label.min() == label.max():
            return None
        centres = np.stack([X[label == j].mean(axis=0) for j in (0, 1)])
    radius = max(np.sqrt(((X[label == j] - centres[j]) ** 2).sum(axis=1).mean()) for j in (0, 1))
    if np.linalg.norm(centres[0] - centres[1]) <= _SPLIT_RATIO * radius:
        return None
    # every row to the nearer centre: |y - c0|^2 < |y - c1|^2 <=> <y, c1 - c0> < (|c1|^2 - |c0|^2) / 2
    side = rows.astype(np.float64) @ (centres[1] - centres[0]) > 0.5 * (
        centres[1] @ centres[1] - centres[0] @ centres[0])
    if side.all() or not side.any():
        return None
    return [ids[~side], ids[side]]
