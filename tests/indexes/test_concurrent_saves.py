"""Saving an index while other threads grow it: every file written loads, consistent.

``skfindkit.io.save``, ``pickle.dumps`` and ``joblib.dump`` run in threads
while another thread runs ``partial_fit`` in a loop; each saved copy must load,
hold as many items natively as ``n_samples_fit_`` says, hold the first
``n_samples_fit_`` rows that were added, and answer queries. The threaded part
runs in a child process (``_isolation.run_isolated``): a native crash fails the
test instead of the run.
"""

import io as _bytes_io
import os
import pickle
import threading

import joblib
import numpy as np
import pytest

from skfindkit import ExactIndex, HNSWIndex, ShardedIndex, io

from .._backends import needs_mark
from .._isolation import run_isolated

_N_FIT, _BATCH, _N_BATCHES, _DIM = 300, 20, 30, 8


def _data():
    return np.random.RandomState(0).rand(_N_FIT + _BATCH * _N_BATCHES, _DIM).astype(np.float32)


def _make(name):
    import skfindkit

    if name == "ShardedIndex":
        return ShardedIndex(HNSWIndex(random_state=0), n_shards=2, n_neighbors=3)
    cls = getattr(skfindkit, name)
    index = cls(n_neighbors=3)
    if "random_state" in index.get_params():
        index.set_params(random_state=0)
    return index


def _native_count(index):
    """Items the native structure of a loaded index holds (what it searches)."""
    native = index._index
    if isinstance(index, ShardedIndex):
        return sum(_native_count(shard) for shard in native.indexes)
    if isinstance(index, ExactIndex):
        return index._fit_X.shape[0]
    shape = index._native_shape(native)[0]
    return shape if shape is not None else native.ntotal


def _check_copy(index, data, where):
    """Problems of one saved-and-loaded copy (empty: consistent and answering)."""
    n = index.n_samples_fit_
    problems = []
    if not _N_FIT <= n <= data.shape[0] or (n - _N_FIT) % _BATCH:
        return [f"{where}: n_samples_fit_={n} is not a state partial_fit went through"]
    if _native_count(index) != n:
        problems.append(f"{where}: n_samples_fit_={n} but the native index holds "
                        f"{_native_count(index)}")
    # each added row finds itself first, at distance 0 (the rows are distinct)
    rows = np.arange(0, n, 7)
    dist, ind = index.kneighbors(data[rows], n_neighbors=1)
    if not (np.array_equal(ind[:, 0], rows) and np.all(dist[:, 0] == 0)):
        problems.append(f"{where}: the saved items do not find themselves")
    exact = ExactIndex(n_neighbors=3).fit(data[:n]).kneighbors(data[:5] + 0.01,
                                                              return_distance=False)
    if not np.array_equal(index.exact_kneighbors(data[:5] + 0.01, return_distance=False), exact):
        problems.append(f"{where}: the saved rows are not the rows added")
    return problems


def save_while_growing(name, folder):
    """Threads save the index while one thread grows it; the problems of every copy."""
    data = _data()
    index = _make(name).fit(data[:_N_FIT])
    n_savers = 3
    start = threading.Barrier(n_savers + 1)
    grown = threading.Event()
    saved, errors = [], []

    def grow():
        try:
            start.wait()
            for b in range(_N_BATCHES):
                a = _N_FIT + b * _BATCH
                index.partial_fit(data[a:a + _BATCH])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"partial_fit: {exc!r}")
        finally:
            grown.set()

    def save(kind):
        try:
            start.wait()
            i = 0
            while not grown.is_set() or i < 2:  # at least twice, until growing ends
                if kind == "io":
                    path = os.path.join(folder, f"copy-{i}.skfk")
                    io.save(index, path)
                    saved.append((f"io.save #{i}", lambda p=path: io.load(p)))
                elif kind == "pickle":
                    blob = pickle.dumps(index)
                    saved.append((f"pickle #{i}", lambda b=blob: pickle.loads(b)))
                else:
                    buffer = _bytes_io.BytesIO()
                    joblib.dump(index, buffer)
                    saved.append((f"joblib #{i}", lambda b=buffer.getvalue():
                                  joblib.load(_bytes_io.BytesIO(b))))
                i += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{kind}: {exc!r}")

    threads = [threading.Thread(target=grow)] + [
        threading.Thread(target=save, args=(kind,)) for kind in ("io", "pickle", "joblib")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems = list(errors)
    for where, load in saved:
        try:
            copy = load()
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(f"{where} does not load: {exc!r}")
            continue
        problems += _check_copy(copy, data, where)
    return len(saved), problems


_NAMES = ("HNSWIndex", "AnnoyIndex", "NMSLibIndex", "FaissIndex", "ShardedIndex", "ExactIndex")


def _param(name):
    import skfindkit

    cls = getattr(skfindkit, "HNSWIndex" if name == "ShardedIndex" else name)  # its shards
    return pytest.param(name, marks=needs_mark(cls), id=name)


@pytest.mark.parametrize("name", [_param(n) for n in _NAMES])
def test_saves_during_partial_fit_load_consistent(name, tmp_path):
    n_saved, problems = run_isolated(save_while_growing, name, str(tmp_path))
    assert n_saved >= 6
    assert not problems, "\n".join(problems[:10])


def query_while_saving(name):
    """Threads query the index while others pickle it; the queries that differ."""
    data = _data()
    index = _make(name).fit(data)
    want = index.kneighbors(data[:20])
    start = threading.Barrier(4)
    saved = threading.Event()
    differ, errors = [], []

    def save():
        try:
            start.wait()
            for _ in range(15):
                pickle.loads(pickle.dumps(index))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"pickle: {exc!r}")
        finally:
            saved.set()

    def query():
        try:
            start.wait()
            while not saved.is_set():
                got = index.kneighbors(data[:20])
                if not (np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])):
                    differ.append(got)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"query: {exc!r}")

    threads = [threading.Thread(target=save)] + [threading.Thread(target=query) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors + [f"{len(differ)} queries differ from serial ones"] * bool(differ)


@pytest.mark.parametrize("name", [_param(n) for n in _NAMES])
def test_queries_during_saves_answer_as_serial(name):
    # annoy's own save unloads and remaps the index it saves
    problems = run_isolated(query_while_saving, name)
    assert not problems, "\n".join(problems[:10])
