"""Integrity of pickled skfindkit estimators: a versioned, checksummed fitted state.

A native library (annoy, nmslib, hnswlib, faiss, Keras, MXNet) trusts the
bytes it loads, and an index answers queries from its stored data as much as
from its native structure: one flipped bit in either, or a native blob copied
from another index, changes answers or crashes the interpreter. So the WHOLE
state an estimator pickles is sealed, not only its native bytes:

- native objects travel as :class:`NativeBlob` (kind, format version, bytes as
  a uint8 array that pickle protocol 5 / joblib write without a copy);
- :func:`seal_state` adds ``_checksums``: the XXH3-128 checksum of every
  field of the state (stored float32 data, labels, keys, dimensions,
  parameters, native bytes...) and one over all of them, which binds the
  fields together;
- :func:`verify_state` recomputes them when unpickling and raises
  :class:`CorruptIndexError` (indexes) or :class:`CorruptFileError` naming
  the field that failed, before any native library sees a byte.

This is an integrity check against corruption and mix-ups, not a signature:
someone able to edit a pickle can run code through pickle itself (load
trusted pickles only; :mod:`skfindkit.io` has a format that runs no code).
The checksum is XXH3-128 (xxHash): 128 bits make an undetected accidental
corruption or mix-up practically impossible, and it runs at memory speed
(~30 GB/s on one core), so checking costs a small fraction of a save or
load. A cryptographic hash would add nothing here: a checksum stored in the
file is not a signature (whoever can alter the file can recompute it), and
cryptographic hashes run several times slower (BLAKE3, the format before
version 3, cost as much as a backend's own save + load on 2 cores).
"""

import pickle
import struct

import numpy as np
import scipy.sparse as sp
import xxhash
from sklearn.base import BaseEstimator

from ._mapped import is_verified

__all__ = [
    "CorruptFileError",
    "CorruptIndexError",
    "FORMAT_VERSION",
    "NativeBlob",
    "matches_digest",
    "seal_state",
    "verify_state",
]

#: Version of the sealed-state format; bumped when the layout changes.
FORMAT_VERSION = 3
CHECKSUM_KEY = "_checksums"

#: What a field holds, for error messages.
_FIELD_NAMES = {
    "_fit_X": "the stored float32 data",
    "_fit_y": "the labels",
    "item_keys_": "the item keys",
    "_index_blob": "the native index bytes",
    "n_features_in_": "the number of features",
    "n_samples_fit_": "the number of items",
    "_zero_rows": "the list of all-zero rows",
    "_removed": "the removed items",
    "metric": "the metric",
}


class CorruptFileError(ValueError):
    """A saved skfindkit object is truncated, altered or not an skfindkit file."""


class CorruptIndexError(CorruptFileError):
    """A serialized index is truncated, altered, mixed with another one or not an skfindkit blob."""


class NativeBlob:
    """Bytes of one native object (index, model) with its kind and format version.

    Parameters
    ----------
    kind : str
        Who wrote the bytes (e.g. ``"hnswlib"``, ``"keras"``); checked at load.
    payload : bytes-like or dict
        The native library's bytes, kept as a uint8 array (a view, no copy),
        or a dict of arrays and numbers for libraries that export their
        state that way (hnswlib).
    """

    def __init__(self, kind, payload):
        self.kind = kind
        self.version = FORMAT_VERSION
        if isinstance(payload, dict):  # a library's own state (e.g. hnswlib's arrays)
            self.payload = payload
        elif isinstance(payload, np.ndarray):
            self.payload = payload.reshape(-1).view(np.uint8)
        else:
            self.payload = np.frombuffer(payload, dtype=np.uint8)

    def __getstate__(self):
        return {"kind": self.kind, "version": self.version, "payload": self.payload}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def open(self, kind, owner, error=CorruptIndexError):
        """The payload, after checking who wrote it and the format version."""
        found = getattr(self, "kind", None)
        if found != kind:
            raise error(f"{owner}: the native bytes were written by {found!r}, not {kind!r}.")
        if getattr(self, "version", None) != FORMAT_VERSION:
            raise error(
                f"{owner}: the native bytes have format version {self.version}; this "
                f"skfindkit reads version {FORMAT_VERSION}. Rebuild and save again."
            )
        payload = getattr(self, "payload", None)
        if not isinstance(payload, dict) and (
            not isinstance(payload, np.ndarray) or payload.dtype != np.uint8
        ):
            raise error(f"{owner}: the native bytes are not a byte array.")
        return payload


#: Name of the checksum, for messages.
CHECKSUM_NAME = "XXH3-128"


def new_hash(data=b""):
    """The checksum every skfindkit file uses: XXH3-128 (non-cryptographic, ~30 GB/s)."""
    return xxhash.xxh3_128(data)


def _feed(h, value, legacy=False):
    """Hash ``value`` into ``h`` (type-tagged, so that 1, 1.0 and "1" differ).

    Object arrays are hashed item by item (numpy scalars among their items
    pickle differently once loaded). ``legacy=True``: as files written before
    this rule hashed them, through pickle; :func:`verify_state` accepts both.
    """
    if isinstance(value, np.ndarray) and value.dtype == object and not legacy:
        h.update(b"O%s" % repr(value.shape).encode())
        for item in value.ravel():
            _feed(h, item)
    elif isinstance(value, np.ndarray) and value.dtype != object:
        h.update(b"A%s%s" % (value.dtype.str.encode(), repr(value.shape).encode()))
        h.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif sp.issparse(value) and value.format in ("csr", "csc"):
        # by content (a pickle of the same matrix differs once loaded as memmaps)
        h.update(b"Z%s%s" % (value.format.encode(), repr(value.shape).encode()))
        for part in (value.data, value.indices, value.indptr):
            _feed(h, np.asarray(part), legacy)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        h.update(b"B%d:" % len(value))
        h.update(value)
    elif isinstance(value, NativeBlob):
        h.update(b"N%s:%d:" % (str(value.kind).encode(), value.version))
        _feed(h, value.payload, legacy)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(data))
        h.update(data)
    elif value is None or isinstance(value, (bool, int, float, complex)):
        h.update(b"R%s:%s;" % (type(value).__name__.encode(), repr(value).encode()))
    elif isinstance(value, np.generic):
        h.update(b"G%s:" % value.dtype.str.encode())
        h.update(value.tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(b"L%s%d:" % (type(value).__name__.encode(), len(value)))
        for item in value:
            _feed(h, item, legacy)
    elif isinstance(value, dict):
        h.update(b"D%d:" % len(value))
        for key, item in value.items():
            _feed(h, key, legacy)
            _feed(h, item, legacy)
    elif type(value) is np.random.RandomState:
        h.update(b"RS")
        _feed(h, value.get_state(), legacy)
    elif isinstance(value, BaseEstimator):
        # estimators (e.g. a fitted PCA inside an extractor): their state
        cls, state = type(value), value.__getstate__()
        h.update(b"O%s.%s:" % (cls.__module__.encode(), cls.__qualname__.encode()))
        _feed(h, state, legacy)
    else:  # anything else pickle can write (RandomState, functions by name...)
        h.update(b"P")
        h.update(pickle.dumps(value, protocol=4))


def _digest(value, legacy=False):
    h = new_hash()
    _feed(h, value, legacy)
    return h.digest()


def _matches(value, digest):
    return _digest(value) == digest or _digest(value, legacy=True) == digest


def _combined(fields):
    h = new_hash(b"skfindkit-state-v%d" % FORMAT_VERSION)
    for key, digest in fields.items():
        h.update(struct.pack("<I", len(key)) + key.encode("utf-8") + digest)
    return h.digest()


def seal_state(state, detach=()):
    """Add ``_checksums`` to a state dict (the fields' checksums and one over all).

    Fields named in ``detach`` are sealed, then left out of the state: the
    loader rebuilds them (e.g. the float32 data from a native index that holds
    the vectors exactly) and checks them with :func:`matches_digest` against
    the digest that :func:`verify_state` hands back.
    """
    fields = {key: _digest(value) for key, value in state.items() if key != CHECKSUM_KEY}
    for key in detach:
        del state[key]
    state[CHECKSUM_KEY] = {"version": FORMAT_VERSION, "fields": fields, "all": _combined(fields)}
    return state


def matches_digest(value, digest):
    """Whether ``value`` has the field digest ``digest`` recorded by :func:`seal_state`."""
    return _matches(value, digest)


def _in_checked_file(value):
    """Whether ``value``'s bytes all lie in a file mapping whose checksum was just
    verified (:func:`skfindkit.io.load` with ``mmap_mode``): hashing it again would
    read the whole mapping into memory."""
    if isinstance(value, NativeBlob):
        value = value.payload
    if isinstance(value, dict):  # a native state of arrays (all must be mapped)
        value = list(value.values())
    if sp.issparse(value):
        value = [value.data, value.indices, value.indptr]
    return is_verified(value)


def _what(key):
    return f"{key!r} ({_FIELD_NAMES[key]})" if key in _FIELD_NAMES else repr(key)


def verify_state(state, owner, error=CorruptIndexError, detached=None):
    """Check a state made by :func:`seal_state`; return it without ``_checksums``.

    ``detached``: a dict whose keys name the fields that may have been left
    out by ``seal_state(..., detach=...)``; for each one that is absent, its
    recorded digest is stored under its name (None where the field is
    present). The caller must rebuild and check those fields.

    Raises
    ------
    CorruptFileError (``error``)
        Naming what failed: the integrity record missing or of another
        version, a field missing, added or altered, or the record itself.
    """
    state = dict(state)
    record = state.pop(CHECKSUM_KEY, None)
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        raise error(
            f"{owner}: the saved state has no skfindkit integrity record: it was written "
            "by another skfindkit version, or altered. Rebuild and save again."
        )
    if record.get("version") != FORMAT_VERSION:
        raise error(
            f"{owner}: the saved state has format version {record.get('version')!r}; this "
            f"skfindkit reads version {FORMAT_VERSION}. Rebuild and save again."
        )
    fields = record["fields"]
    if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in fields.items()) or (
        _combined(fields) != record.get("all")
    ):
        raise error(f"{owner}: the integrity record itself is altered or corrupted.")
    for key in detached or ():
        detached[key] = None if key in state else fields.get(key)
    missing = [k for k in fields if k not in state and not (detached or {}).get(k)]
    extra = [k for k in state if k not in fields]
    if missing or extra:
        raise error(
            f"{owner}: the saved state does not match its integrity record: "
            + ", ".join([f"{_what(k)} is missing" for k in missing]
                        + [f"{_what(k)} was added" for k in extra]) + "."
        )
    altered = [key for key, value in state.items()
               if not _in_checked_file(value) and not _matches(value, fields[key])]
    if altered:
        raise error(
            f"{owner}: {', '.join(_what(k) for k in altered)} failed the {CHECKSUM_NAME} checksum: "
            "the file was altered or corrupted, or mixes parts of different saved "
            "objects. Nothing was passed to a native library."
        )
    return state
