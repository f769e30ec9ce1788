"""Crash-prone index cases run in a child process (``_isolation.run_isolated``).

Threads racing in native code, thread counts past the machine's and reloaded
native states die by a signal when they go wrong; each function here runs in
the reused child of :func:`_isolation.run_isolated` (a crash fails one test,
not the run) and raises ``AssertionError`` on a wrong answer.
"""

import pickle
import threading

import numpy as np


def native_count(index):
    """How many items the backend's own structure holds."""
    name = type(index).__name__
    native = index._index
    if name == "ExactIndex":
        return native.matrix.shape[0]
    if name == "AnnoyIndex":
        return native.get_n_items()
    if name == "NMSLibIndex":
        return len(native)
    if name == "HNSWIndex":
        return native.get_current_count()
    return native.ntotal


def _index_class(name):
    import skfindkit

    return getattr(skfindkit, name)


def partial_fit_while_querying(name, loaded, n=3000, n_new=1000, batch=25):
    """``partial_fit`` in batches while another thread queries: the share of the new
    items that find themselves (unpickled: the index starts from loaded bytes)."""
    rng = np.random.RandomState(0)
    X = rng.rand(n, 32).astype(np.float32)
    new = rng.rand(n_new, 32).astype(np.float32)
    index = _index_class(name)(n_neighbors=5).fit(X)
    if loaded:
        index = pickle.loads(pickle.dumps(index))
    stop, errors = threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                index.kneighbors(X[:50])
            except Exception as exc:  # noqa: BLE001 - what the test reports
                errors.append(exc)
                break

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for start in range(0, n_new, batch):
            index.partial_fit(new[start:start + batch])
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert index.n_samples_fit_ == n + n_new == native_count(index), (
        index.n_samples_fit_, native_count(index))
    found = index.kneighbors(new, n_neighbors=1, return_distance=False)[:, 0]
    return float((found == np.arange(n, n + n_new)).mean())


def two_writers(name):
    """Two threads ``partial_fit`` labelled rows: none lost, labels in step with rows."""
    rng = np.random.RandomState(0)
    X = rng.rand(1000, 16)
    X[:, 0] = np.arange(1000)  # the label is in the row: alignment is checkable
    index = _index_class(name)(n_neighbors=3).fit(X[:500], np.arange(500))
    errors = []

    def writer(part):
        try:
            for i in range(10):
                rows = np.arange(500 + 250 * part + 25 * i, 500 + 250 * part + 25 * (i + 1))
                index.partial_fit(X[rows], rows)
        except Exception as exc:  # noqa: BLE001 - what the test reports
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert index.n_samples_fit_ == 1000 == native_count(index), (
        index.n_samples_fit_, native_count(index))
    dist, ids = index.exact_kneighbors(X, n_neighbors=1)
    assert (dist[:, 0] == 0).all()
    assert (index.labels_of(ids[:, 0]) == np.arange(1000)).all(), "labels out of step with rows"
    return True


def more_threads_than_cpus():
    """Thread counts past the machine's are clamped (faiss, nmslib and annoy abort on them)."""
    from joblib import cpu_count

    import skfindkit

    X = np.random.RandomState(0).rand(200, 8)
    for name in ("FaissIndex", "NMSLibIndex", "AnnoyIndex", "HNSWIndex", "ExactIndex"):
        for n_jobs in (1000, 10**6, -10**6):
            index = getattr(skfindkit, name)(n_jobs=n_jobs).fit(X)
            assert 1 <= index._n_threads() <= cpu_count(), (name, n_jobs, index._n_threads())
            index.kneighbors(X[:5])
            index.partial_fit(X[:10])
            assert index.n_samples_fit_ == 210
    sharded = skfindkit.ShardedIndex(skfindkit.FaissIndex(n_jobs=10**6), n_jobs=10**6).fit(X)
    sharded.partial_fit(X[:10]).kneighbors(X[:5])
    return True


def reloaded_saves_and_loads_again(name):
    """A pickled copy of a pickled copy answers alike, grows, and is pickled again."""
    X = np.random.RandomState(0).randn(75, 6)
    index = _index_class(name)(n_neighbors=3).fit(X[:60])
    want = index.kneighbors(X[70:], return_distance=False)
    for _ in range(3):
        index = pickle.loads(pickle.dumps(index))
        assert (index.kneighbors(X[70:], return_distance=False) == want).all()
    index.partial_fit(X[60:70])
    index = pickle.loads(pickle.dumps(index))
    assert index.n_samples_fit_ == 70
    found = index.kneighbors(X[60:70], n_neighbors=1, return_distance=False)[:, 0]
    assert (found == np.arange(60, 70)).all()
    return True
