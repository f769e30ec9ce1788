"""How many threads a query asks for, and what deciding it costs."""

import numpy as np
import pytest
from sklearn.base import clone

from skfindkit.indexes import _base

from ..common.estimator_instances import index_instances


def _single_threaded():
    return [pytest.param(index, id=type(index).__name__ + str(i))
            for i, index in enumerate(index_instances())
            if index.get_params().get("n_jobs", None) in (None, 1)]


@pytest.mark.parametrize("index", _single_threaded())
def test_one_thread_asks_for_no_cpu_count(index, monkeypatch):
    """``n_jobs`` None or 1 means one thread: no ``joblib.cpu_count`` per query (it reads
    the cgroup files, costing more than a small index's whole search)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    index = clone(index).fit(X)
    calls = []
    real = _base.cpu_count
    monkeypatch.setattr(_base, "cpu_count", lambda *a, **k: calls.append(1) or real(*a, **k))
    index.kneighbors(X[:3], n_neighbors=2)
    assert calls == []


def test_many_threads_are_bounded_by_the_cpus():
    from skfindkit import ExactIndex

    assert ExactIndex(n_jobs=1)._n_threads() == 1
    assert ExactIndex()._n_threads() == 1
    assert ExactIndex(n_jobs=-1)._n_threads() == _base.cpu_count()
    assert ExactIndex(n_jobs=10**6)._n_threads() == _base.cpu_count()
