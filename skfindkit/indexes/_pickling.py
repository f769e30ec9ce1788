"""Pickling of indexes: the whole fitted state sealed, checked before native code.

:class:`SealedIndexState` is mixed into :class:`~skfindkit.indexes.BaseIndex`
(first, so that its ``__getstate__``/``__setstate__`` wrap scikit-learn's).
Pickling replaces the native index by its bytes (``_serialize``) in a
:class:`~skfindkit.utils._persist.NativeBlob` and seals every field of the
state with BLAKE3 (:func:`~skfindkit.utils._persist.seal_state`). Unpickling
checks, in this order, before the native library sees a byte: the checksums
(naming the field that failed), the stored data/labels/keys against the saved
dimensions, the native bytes' own header (``_check_native_bytes``); then it
loads them (``_deserialize``) and checks the loaded index's size
(``_native_shape``) against ``n_samples_fit_`` and ``n_features_in_``.

Attributes listed in ``_transient_attrs`` (locks, caches) are never pickled
and are recreated by ``_init_transient`` after unpickling.
"""

from ..utils._persist import CorruptIndexError, NativeBlob, seal_state, verify_state

__all__ = ["SealedIndexState"]


class SealedIndexState:
    """Mixin: sealed pickling for indexes (see the module docstring)."""

    #: Attributes never pickled (locks, caches), recreated by ``_init_transient``.
    _transient_attrs = ()

    def __getstate__(self):
        state = dict(super().__getstate__())
        for name in self._transient_attrs:
            state.pop(name, None)
        index = state.pop("_index", None)
        if index is not None:
            payload = self._serialize()
            # None: the index is cheap to rebuild from the stored data
            state["_index_blob"] = None if payload is None else NativeBlob(self._backend, payload)
        return seal_state(state)

    def __setstate__(self, state):
        owner = type(self).__name__
        state = verify_state(state, owner)  # before anything reaches native code
        fitted = "_index_blob" in state
        blob = state.pop("_index_blob", None)
        super().__setstate__(state)
        self._init_transient()
        if not fitted:
            return
        self._check_stored_shapes(owner)
        if blob is None:
            self._index = self._build(self._fit_X)
            return
        payload = blob.open(self._backend, owner)
        self._check_native_bytes(payload)
        try:
            index = self._deserialize(payload)
        except (RuntimeError, OSError, ValueError, MemoryError) as exc:
            raise CorruptIndexError(
                f"{owner}: {self._backend} could not load its index ({exc})."
            ) from exc
        shape = self._native_shape(index)
        expected = (self.n_samples_fit_, self.n_features_in_)
        for what, got, want in zip(("items", "features"), shape, expected):
            if got is not None and got != want:
                raise CorruptIndexError(
                    f"{owner}: the {self._backend} index holds {got} {what} but the "
                    f"saved state has {want}; the index does not belong to this state."
                )
        self._index = index

    def _check_stored_shapes(self, owner):
        """The stored data, labels and keys agree with the saved dimensions."""
        expected = (self.n_samples_fit_, self.n_features_in_)
        problems = []
        if self._keeps_vectors() and getattr(self._fit_X, "shape", None) != expected:
            problems.append(f"the stored data has shape {getattr(self._fit_X, 'shape', None)}")
        for name in ("_fit_y", "item_keys_"):
            value = getattr(self, name, None)
            if value is not None and len(value) != self.n_samples_fit_:
                problems.append(f"{name} has {len(value)} entries")
        if problems:
            raise CorruptIndexError(
                f"{owner}: {'; '.join(problems)}, but the saved state has "
                f"{expected[0]} items of {expected[1]} features."
            )

    def _init_transient(self):
        """Recreate the attributes in ``_transient_attrs`` after unpickling."""

    def _check_native_bytes(self, payload):
        """Check a native payload's own header against the state (backend hook).

        Called after the checksums passed and before the native library loads
        the bytes; raise :class:`CorruptIndexError` on a mismatch.
        """

    def _native_shape(self, index):
        """``(n_items, n_features)`` of a loaded native index; None where unknown."""
        return None, None
