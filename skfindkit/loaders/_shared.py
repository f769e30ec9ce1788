"""Parallel plumbing: the loader sent once per worker, and the chunk schedule.

Mapping items in chunks over worker processes naively pickles the whole loader
(for :class:`Doc2VecLoader`, the whole gensim model) into every chunk task and
rebuilds its per-worker state (``_prepare``: essentia algorithm objects, windows,
filters...) for every chunk. Here, instead, the parent pickles the loader once into a
payload -- the pickle bytes, or for large loaders the path of a temporary file
holding them -- tagged with a token unique to one parallel map. A worker
unpickles the payload and calls ``_prepare`` on its first chunk of that map,
keeps the result in a per-thread cache slot keyed by the token, and reuses it
for its later chunks, so a chunk task carries only the token, the payload
reference and its items.

The cache holds one entry per worker thread (the latest map's loader); it is
replaced by the next map and dropped when the worker exits (loky shuts down
idle workers after a few minutes).

Without psutil, loky runs ``gc.collect()`` in a worker after a task whenever a
second has passed since the last one. With librosa, essentia or gensim
imported, that full collection walks about 10^5 objects and takes 45-70 ms,
in both workers at once, at least once per map: 5-25% of a map's time on two
cores. So the first load in a worker *process* ends with ``gc.collect()`` and
``gc.freeze()``: the objects alive then (modules, the first loader) move to
the permanent generation, and later collections only walk newer objects.
"""

import gc
import multiprocessing
import os
import pickle
import tempfile
import threading
import uuid

try:  # joblib < 1.5 vendors cloudpickle
    from joblib.externals import cloudpickle
except ImportError:  # newer joblib depends on the cloudpickle package
    import cloudpickle

__all__ = ["SharedLoader", "chunk_bounds", "worker_state"]

# pickles larger than this go through a temporary file read once per worker
INLINE_BYTES = 1 << 20

_cache = threading.local()
_gc_frozen = False


class SharedLoader:
    """A loader pickled once, to be sent by reference to every chunk task.

    Use as a context manager: the temporary file of a large payload is removed
    on exit, once every chunk has been loaded.

    Parameters
    ----------
    loader : BaseVectorLoader
        The loader; pickled with cloudpickle (so a lambda ``func`` works).
    inline_bytes : int, default=None
        Pickles up to this size travel inside each task; larger ones are
        written to a temporary file whose path travels instead. ``None``:
        :data:`INLINE_BYTES` (1 MiB).

    Attributes
    ----------
    token : str
        Identifier of this map, keying the workers' caches.
    payload : bytes or str
        The pickle itself, or the path of the file holding it.
    """

    def __init__(self, loader, inline_bytes=None):
        self.token = uuid.uuid4().hex
        blob = cloudpickle.dumps(loader, protocol=pickle.HIGHEST_PROTOCOL)
        self._path = None
        if len(blob) <= (INLINE_BYTES if inline_bytes is None else inline_bytes):
            self.payload = blob
            return
        fd, self._path = tempfile.mkstemp(prefix="skfindkit-loader-", suffix=".pkl")
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        self.payload = self._path

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._path is not None:
            try:
                os.remove(self._path)
            except FileNotFoundError:
                pass
            self._path = None


def worker_state(token, payload):
    """The ``(loader, context)`` of the map ``token`` in this worker thread.

    Unpickles ``payload`` and calls the loader's ``_prepare`` on the first call
    with a new token; later calls with the same token return the cached pair.

    Parameters
    ----------
    token : str
        :attr:`SharedLoader.token`.
    payload : bytes or str
        :attr:`SharedLoader.payload`.

    Returns
    -------
    loader : BaseVectorLoader
        This worker's copy of the loader.
    context : object
        What ``loader._prepare()`` returned in this worker.
    """
    if getattr(_cache, "token", None) != token:
        _cache.token = _cache.state = None  # free the previous map's loader first
        if isinstance(payload, str):
            with open(payload, "rb") as handle:
                payload = handle.read()
        loader = pickle.loads(payload)
        _cache.state = (loader, loader._prepare())
        _cache.token = token
        _freeze_imports()
    return _cache.state


def _freeze_imports():
    """Once per worker process (never in the main one): collect, then ``gc.freeze()``."""
    global _gc_frozen
    if not _gc_frozen and multiprocessing.parent_process() is not None:
        gc.collect()
        gc.freeze()
        _gc_frozen = True


# largest chunk (progress granularity, memory of one result) and the divisor of
# the guided schedule: a chunk holds 1 / (_GUIDED * n_workers) of the items left
_MAX_CHUNK = 64
_GUIDED = 2


def chunk_bounds(n_items, n_workers):
    """Guided schedule: ``(start, stop)`` of chunks that shrink as work runs out.

    Large first chunks keep the per-task cost (a loky round trip, about 1 ms
    on 2 cores) rare; small last chunks keep the workers finishing together.

    Parameters
    ----------
    n_items, n_workers : int

    Returns
    -------
    bounds : list of (int, int)
        Consecutive, covering ``range(n_items)``.
    """
    smallest = max(1, min(8, n_items // (8 * n_workers)))
    bounds, start = [], 0
    while start < n_items:
        left = n_items - start
        size = min(_MAX_CHUNK, max(smallest, -(-left // (_GUIDED * n_workers))))
        bounds.append((start, min(n_items, start + size)))
        start += size
    return bounds
