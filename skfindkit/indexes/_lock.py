"""Thread safety of an index: a readers/writer lock kept beside each instance.

Queries (``kneighbors``, ``transform``, ...) run concurrently; ``fit`` and
``partial_fit`` wait for running queries to finish, run alone, and make new
queries wait (writers are preferred, so a stream of queries cannot starve
them). Both sides are re-entrant for the thread that holds them (``score``
queries, ``partial_fit`` of an unfitted index fits).

The lock lives in a side table keyed weakly by the index, not in the
estimator's ``__dict__``: pickling, ``clone`` and scikit-learn's checks never
see it, and a copy or an unpickled index gets a fresh one.
"""

import threading
import weakref
from contextlib import contextmanager

__all__ = ["ReadWriteLock", "runtime_state"]


class ReadWriteLock:
    """Many readers or one writer; re-entrant; writers preferred."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = {}  # thread id -> depth
        self._writer = None
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def read(self, wait=True):
        """Shared section; with ``wait=False``, BlockingIOError instead of waiting
        (for a writer that holds the lock or waits for it)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer != me and me not in self._readers:
                while self._writer is not None or self._writers_waiting:
                    if not wait:
                        raise BlockingIOError("the index is being written")
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._readers[me] -= 1
                if not self._readers[me]:
                    del self._readers[me]
                    self._cond.notify_all()

    @contextmanager
    def write(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                if me in self._readers:
                    raise RuntimeError(
                        "An index cannot be fitted from inside one of its own queries "
                        "(the thread holds it for reading)."
                    )
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
            self._writer_depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._cond.notify_all()

    def holds_read(self):
        """Whether the calling thread is inside a read (or write) section."""
        me = threading.get_ident()
        return me in self._readers or self._writer == me


class _RuntimeState:
    """What an index needs at run time but never persists."""

    def __init__(self):
        self.lock = ReadWriteLock()
        self.applied_query_params = None  # what the native index was last given
        self.row_lookup = None  # identical-row finder over the stored data (lazy)
        self.max_norm = None  # largest norm of a stored row (lazy; bounds flat scans)
        self.brute_matrix = None  # the exact path's search matrix of the stored rows (lazy)
        self.allowed_rows = None  # (ids, rows, matrix) of the last pre-filtered search
        self.owns_rows = False  # whether _fit_X is a copy this index may overwrite


_STATES = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def runtime_state(index):
    """The lock and applied query-time parameters of ``index`` (created on first use)."""
    with _STATES_LOCK:
        state = _STATES.get(index)
        if state is None:
            state = _STATES[index] = _RuntimeState()
        return state
