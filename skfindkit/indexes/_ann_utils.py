"""Glue shared by the approximate-index backends (annoy, nmslib, hnswlib, faiss).

Small, backend-agnostic helpers: turning ``random_state`` into the integer
seed native libraries take, stacking ragged per-query results into the
``(dist, ind)`` arrays the base expects (``-1`` ids where a backend found
fewer than ``k`` items, which the base completes by exact search), and moving
native indexes that only save to files in and out of bytes.
"""

import os
import struct
import tempfile

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["native_seed", "stack_padded", "files_to_bytes", "bytes_to_files"]

_MAX_SEED = 2**31 - 1


def native_seed(random_state):
    """Integer seed for a native library from an sklearn ``random_state``.

    ``None`` draws a fresh seed (non-reproducible builds, as in scikit-learn);
    an int or a ``RandomState`` gives a reproducible one.
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % _MAX_SEED
    return int(check_random_state(random_state).randint(_MAX_SEED))


def stack_padded(ids, dists, k):
    """Stack per-query id/distance lists (possibly shorter than ``k``).

    Returns ``(dist, ind)`` of shape ``(n_queries, k)``: float64 distances
    (``inf`` where missing) and intp ids (``-1`` where missing).
    """
    if all(len(i) == k for i in ids):  # the usual case: one conversion, no loop
        return np.asarray(dists, dtype=np.float64), np.asarray(ids, dtype=np.intp)
    n = len(ids)
    ind = np.full((n, k), -1, dtype=np.intp)
    dist = np.full((n, k), np.inf)
    for row, (i, d) in enumerate(zip(ids, dists)):
        m = min(len(i), k)
        ind[row, :m] = i[:m]
        dist[row, :m] = d[:m]
    return dist, ind


def files_to_bytes(save, n_files=1):
    """Bytes of the file(s) ``save(path)`` writes (extra files: ``path + ".dat"``).

    Several files are concatenated, each prefixed by its length (u64).
    """
    with tempfile.TemporaryDirectory(prefix="skfindkit-") as tmp:
        path = os.path.join(tmp, "index")
        save(path)
        parts = []
        for name in [path, path + ".dat"][:n_files]:
            with open(name, "rb") as fh:
                parts.append(fh.read())
    if n_files == 1:
        return parts[0]
    return b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def bytes_to_files(payload, load, n_files=1):
    """Write ``payload`` back to temporary file(s) and return ``load(path)``.

    The files are removed once ``load`` returns (a library that memory-maps
    them keeps its mapping: on POSIX an unlinked file lives while mapped).
    """
    if n_files == 1:
        parts = [payload]
    else:
        parts, pos = [], 0
        for _ in range(n_files):
            (size,) = struct.unpack_from("<Q", payload, pos)
            parts.append(payload[pos + 8:pos + 8 + size])
            pos += 8 + size
    with tempfile.TemporaryDirectory(prefix="skfindkit-") as tmp:
        path = os.path.join(tmp, "index")
        for name, part in zip([path, path + ".dat"], parts):
            with open(name, "wb") as fh:
                fh.write(part)
        return load(path)
