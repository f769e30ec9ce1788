"""Pickling of indexes: the whole fitted state sealed, checked before native code.

:class:`SealedIndexState` is mixed into :class:`~skfindkit.indexes.BaseIndex`
(first, so that its ``__getstate__``/``__setstate__`` wrap scikit-learn's).
Pickling replaces the native index by its bytes (``_serialize``) in a
:class:`~skfindkit.utils._persist.NativeBlob` and seals every field of the
state with XXH3-128 (:func:`~skfindkit.utils._persist.seal_state`). Unpickling
checks, in this order, before the native library sees a byte: the checksums
(naming the field that failed), the stored data/labels/keys against the saved
dimensions, the native bytes' own header and structure (``_check_native_bytes``); then
it loads them (``_deserialize``), checks the loaded index's structure where
the library exposes it (``_check_loaded_index``, before any query) and its
size (``_native_shape``) against ``n_samples_fit_`` and ``n_features_in_``.

Where the native index holds the indexed vectors exactly
(``_vectors_in_native()``: hnswlib, annoy, nmslib with its data, faiss
Flat/HNSW-Flat/IVF-Flat), the float32 data ``_fit_X`` is sealed but not
written a second time: unpickling reads it back from the native bytes
(``_vectors_from_bytes``, before the native library sees them) or from the
loaded index (``_vectors_from_index``, before any query) and checks it
against its sealed digest, which also binds the native bytes to the data.

Attributes listed in ``_transient_attrs`` (locks, caches) are never pickled
and are recreated by ``_init_transient`` after unpickling.

An index made of indexes (:class:`~skfindkit.ShardedIndex`) lists the
attributes that hold its parts in ``_child_attrs``: they are stored as the
estimators they are (each seals and checks its own state; the safe format
writes them as objects of its tree, never as bytes), left out of this
index's seal, and checked against it by ``_check_children`` once loaded.

Pickling (and :func:`skfindkit.io.save`, which reads the same state) is a
snapshot: it runs in the read section of the index's lock
(:mod:`._lock`), so a ``fit`` or ``partial_fit`` in another thread waits for
it, and the data, counters and native bytes saved are those of one state.
Where the native library's save changes the native index itself (annoy
reloads the file it wrote), ``_save_mutates_native`` makes it the write
section, so that no query runs meanwhile.
"""

import copy

import numpy as np

from ._fp_bounds import U32
from ._lock import runtime_state
from ..utils._mapped import release, scan, values_checked
from ..utils._persist import (
    CorruptIndexError,
    NativeBlob,
    matches_digest,
    seal_state,
    verify_state,
)

__all__ = ["SealedIndexState"]


class SealedIndexState:
    """Mixin: sealed pickling for indexes (see the module docstring)."""

    #: Attributes never pickled (locks, caches), recreated by ``_init_transient``.
    _transient_attrs = ()
    #: Attributes holding child estimators, stored as such (see the module docstring).
    _child_attrs = ()

    #: Whether ``_serialize`` changes the native index (then saving excludes queries too).
    _save_mutates_native = False

    def __getstate__(self):
        lock = runtime_state(self).lock
        with lock.write() if self._save_mutates_native else lock.read():
            return self._sealed_state()

    def _sealed_state(self):
        """The sealed state of the index (called inside its lock)."""
        state = dict(super().__getstate__())
        for name in self._transient_attrs:
            state.pop(name, None)
        children = {name: state.pop(name) for name in self._child_attrs if name in state}
        index = state.pop("_index", None)
        detach = ()
        if index is not None:
            payload = self._serialize()
            # None: the index is cheap to rebuild from the stored data
            state["_index_blob"] = None if payload is None else NativeBlob(self._backend, payload)
            if payload is not None and state.get("_fit_X") is not None and (
                self._vectors_in_native()
            ):
                detach = ("_fit_X",)  # read back from the native bytes on load
        state = seal_state(state, detach)
        # children are snapshots taken inside this lock: the pickler (or the safe
        # format) reads them after it is released, while a partial_fit in another
        # thread may change the originals
        state.update({name: _snapshot(value) for name, value in children.items()})
        return state

    def __setstate__(self, state):
        owner = type(self).__name__
        detached = {"_fit_X": None}
        state = dict(state)
        children = {name: state.pop(name) for name in self._child_attrs if name in state}
        # before anything reaches native code
        state = verify_state(state, owner, detached=detached)
        fitted = "_index_blob" in state
        blob = state.pop("_index_blob", None)
        super().__setstate__({**state, **children})
        self._init_transient()
        self._check_children(owner)
        if not fitted:
            return
        data_digest = detached["_fit_X"]
        if data_digest is not None and blob is None:
            raise self._no_vectors_error()
        self._check_stored_shapes(owner, data_digest is None)
        if blob is None:
            self._index = self._build(self._native_held_rows())
            return
        payload = blob.open(self._backend, owner)
        self._check_native_bytes(payload)
        if data_digest is not None:
            self._fit_X = self._checked_vectors(self._vectors_from_bytes(payload), data_digest)
        try:
            index = self._deserialize(payload)
        except (RuntimeError, OSError, ValueError, MemoryError) as exc:
            raise CorruptIndexError(
                f"{owner}: {self._backend} could not load its index ({exc})."
            ) from exc
        self._check_loaded_index(index)
        if data_digest is not None and self._fit_X is None:
            self._fit_X = self._checked_vectors(self._vectors_from_index(index), data_digest)
        shape = self._native_shape(index)
        expected = (self._n_native(), self.n_features_in_)
        for what, got, want in zip(("items", "features"), shape, expected):
            if got is not None and got != want:
                raise CorruptIndexError(
                    f"{owner}: the {self._backend} index holds {got} {what} but the "
                    f"saved state has {want}; the index does not belong to this state."
                )
        self._index = index

    def _checked_vectors(self, X, digest):
        """``X`` (read back from the native index) if it is the sealed ``_fit_X``."""
        if X is None:
            return None
        if not matches_digest(X, digest):
            raise CorruptIndexError(
                f"{type(self).__name__}: the vectors held by the {self._backend} index do "
                "not match the saved data's checksum: the index does not belong to this "
                "state, or is corrupted."
            )
        return X

    def _check_stored_shapes(self, owner, data_stored=True):
        """The fitted state is one a fit makes: counts, metric, scale, and the
        stored data, labels, keys and zero rows agree with the saved dimensions."""
        self._check_fitted_scalars(owner)
        expected = (self.n_samples_fit_, self.n_features_in_)
        problems = []
        keys = vars(self).get("_fit_keys")
        if keys is not None and (getattr(keys, "shape", None) != (self.n_samples_fit_,)
                                 or keys.dtype != np.uint64):
            problems.append("the stored row keys do not match the items")
        zero = vars(self).get("_zero_rows")
        if zero is not None and (
                not isinstance(zero, np.ndarray) or zero.dtype.kind not in "iu"
                or (zero.size and (zero.min() < 0 or zero.max() >= self.n_samples_fit_))):
            problems.append("the stored zero rows are not item ids")
        removed = vars(self).get("_removed")
        if removed is not None and (
                not isinstance(removed, np.ndarray) or removed.dtype != bool
                or removed.shape != (self.n_samples_fit_,) or removed.all()):
            problems.append("the removed items are not a mask over the items with one live")
        data = vars(self).get("_fit_X")
        if data_stored and data is not None and not _finite_data(data, self._nonnegative_data):
            problems.append("the stored data are not finite float values"
                            + (" >= 0" if self._nonnegative_data else ""))
        # backends that hold the rows themselves (MilvusIndex, ShardedIndex's
        # shards, keep_vectors=False) have no stored copy here: their native
        # checks cover them
        data = vars(self).get("_fit_X")
        if data_stored and data is not None and getattr(data, "shape", None) != expected:
            problems.append(f"the stored data has shape {getattr(data, 'shape', None)}")
        elif (data_stored and data is not None and not problems
              and vars(self).get("metric_") == "cosine"
              and not _unit_rows(data, zero, removed)):
            problems.append("the stored rows of a cosine index are not unit rows, with the "
                            "zero rows listed as such")
        for name in ("_fit_y", "item_keys_"):
            value = getattr(self, name, None)
            if value is not None and len(value) != self.n_samples_fit_:
                problems.append(f"{name} has {len(value)} entries")
        metadata = vars(self).get("item_metadata_")
        if metadata is not None and not (isinstance(metadata, dict) and all(
                isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind in "biufUO"
                and v.shape == (self.n_samples_fit_,)
                and (v.dtype.kind != "O" or all(isinstance(x, str) for x in v.tolist()))
                for k, v in metadata.items())):
            problems.append("the item metadata are not columns of one value per item")
        if problems:
            raise CorruptIndexError(
                f"{owner}: {'; '.join(problems)}, but the saved state has "
                f"{expected[0]} items of {expected[1]} features."
            )
        self._check_native_ids()

    #: Whether the stored data are counts (BM25): negative values are refused on load.
    _nonnegative_data = False

    def _check_fitted_scalars(self, owner):
        """Counts are positive integers, the metric one of the backend's, the scale
        a power of two: values a fit makes, checked before anything uses them."""
        def count(value):
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (
                0 < value <= 2**40)

        scale = getattr(self, "_scale", 1.0)
        problems = [
            f"{name}={getattr(self, name)!r}" for name in ("n_samples_fit_", "n_features_in_")
            if not count(getattr(self, name, None))
        ]
        metric = getattr(self, "metric_", None)
        if not isinstance(metric, str) or metric not in self.supported_metrics:
            problems.append(f"metric_={metric!r}")
        if not (isinstance(scale, (float, int)) and np.isfinite(scale) and scale > 0
                and np.frexp(scale)[0] == 0.5):
            problems.append(f"_scale={scale!r}")
        if problems:
            raise CorruptIndexError(
                f"{owner}: the saved state has values no fit makes ({', '.join(problems)}).")

    def _check_children(self, owner):
        """Check the loaded ``_child_attrs`` against this index's own state (composite hook).

        Raise :class:`CorruptIndexError` on a mismatch.
        """

    def _init_transient(self):
        """Recreate the attributes in ``_transient_attrs`` after unpickling."""

    def _native_held_rows(self):
        """The stored rows the native index holds, in its order (to rebuild it)."""
        return self._fit_X

    def _n_native(self):
        """Items the native index holds (backends that compact by rebuild: fewer than ids)."""
        return self.n_samples_fit_

    def _check_native_ids(self):
        """Check a loaded map from native positions to ids (backends that keep one)."""

    def _check_native_bytes(self, payload):
        """Check a native payload's own header against the state (backend hook).

        Called after the checksums passed and before the native library loads
        the bytes; raise :class:`CorruptIndexError` on a mismatch.
        """

    def _check_loaded_index(self, index):
        """Check a loaded native index's structure before any query (backend hook).

        Raise :class:`CorruptIndexError` on a problem.
        """

    def _vectors_in_native(self):
        """Whether the native bytes hold ``_fit_X`` exactly (then it is not saved twice).

        A backend returning True implements ``_vectors_from_bytes`` or
        ``_vectors_from_index``.
        """
        return False

    def _vectors_from_bytes(self, payload):
        """``_fit_X`` read from checked native bytes (numpy only); None: read it after loading."""
        return None

    def _vectors_from_index(self, index):
        """``_fit_X`` read back from the loaded native index."""
        raise self._no_vectors_error()

    def _no_vectors_error(self):
        return CorruptIndexError(
            f"{type(self).__name__}: '_fit_X' (the stored float32 data) is missing and "
            f"this {self._backend} index does not hold the vectors exactly."
        )

    def _native_shape(self, index):
        """``(n_items, n_features)`` of a loaded native index; None where unknown."""
        return None, None


def _snapshot(children):
    """A copy of a list of child estimators, each copied through its own pickled state."""
    if isinstance(children, (list, tuple)):
        return type(children)(copy.deepcopy(child) for child in children)
    return copy.deepcopy(children)


#: how far a stored cosine row's norm may be from 1: a fit rounds each value of a row
#: divided by its float64 norm once to float32 (relative error <= u = 2**-24), so the
#: row's norm is within u of 1 (plus the float64 sums' rounding)
_UNIT_TOLERANCE = U32 + 1e-12
_ROWS_PER_PIECE = 1 << 15


def _unit_rows(data, zero_rows, removed):
    """A cosine index's stored rows are unit rows or zero rows, and its live zero rows
    are those listed in ``zero_rows`` (removed rows are erased: zeros, not listed).

    In pieces of rows (a mapped array's pages handed back); a mapped file verified
    before and unchanged since was checked then.
    """
    sparse = hasattr(data, "tocsr")
    values = data.data if sparse else data
    if values_checked(values):
        return True
    n = data.shape[0]
    zero = np.zeros(n, dtype=bool)
    for start in range(0, n, _ROWS_PER_PIECE):
        rows = data[start:start + _ROWS_PER_PIECE]
        if sparse:
            squares = np.asarray(rows.multiply(rows).sum(axis=1), dtype=np.float64).ravel()
        else:
            squares = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
            release(rows)
        norms = np.sqrt(squares)
        if not ((norms == 0) | (np.abs(norms - 1.0) <= _UNIT_TOLERANCE)).all():
            return False
        zero[start:start + _ROWS_PER_PIECE] = norms == 0
    listed = np.zeros(n, dtype=bool)
    listed[np.asarray(zero_rows if zero_rows is not None else [], dtype=np.int64)] = True
    live = np.ones(n, dtype=bool) if removed is None else ~removed
    return bool(np.array_equal(zero[live], listed[live]))


def _finite_data(data, nonnegative):
    """Stored rows (dense float32, or sparse) hold finite values (>= 0 for counts).

    Checked in pieces (:func:`~skfindkit.utils._mapped.scan`): bounded
    temporaries, and a mapped file's pages are not left resident.
    """
    values = data.data if hasattr(data, "tocsr") else data
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f":
        return False
    if not hasattr(data, "tocsr") and values.dtype != np.float32:
        return False
    return scan(values, lambda piece: bool(np.isfinite(piece).all() and (
        not nonnegative or not (piece < 0).any())))
