"""The approximate-index base: shared parameters, and hooks that read the fitted state.

A backend's hooks read what the native index was built with through
``ApproximateIndex._fitted``; only the query-time knobs it names in
``_query_time_params`` are read live. The scan below finds any other
``self.<parameter>`` read outside ``__init__``.
"""

import ast
import inspect
import pickle
import textwrap

import numpy as np
import pytest

from skfindkit.indexes import BaseIndex
from skfindkit.indexes._approximate import _SHARED_DOC, ApproximateIndex
from skfindkit.utils.discovery import all_estimators

from .._backends import needs

APPROXIMATE = [cls for _, cls in all_estimators("index") if issubclass(cls, ApproximateIndex)]
SHARED = ("random_state", "refine", "keep_vectors")


def _live_param_reads(cls):
    """``(method, parameter)`` of each ``self.<constructor parameter>`` read in the
    class's own methods except ``__init__``, other than its query-time knobs."""
    params = set(cls._get_param_names()) - set(cls._query_time_params)
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    reads = []
    for method in ast.walk(tree):
        if not isinstance(method, ast.FunctionDef) or method.name == "__init__":
            continue
        for node in ast.walk(method):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                    and isinstance(node.value, ast.Name) and node.value.id == "self"
                    and node.attr in params):
                reads.append((method.name, node.attr))
    return reads


def test_the_four_backends_derive_from_the_base():
    assert {cls.__name__ for cls in APPROXIMATE} == {
        "AnnoyIndex", "FaissIndex", "HNSWIndex", "NMSLibIndex"}
    # every index taking a shared parameter derives from the base, which owns its constraint
    for _, cls in all_estimators("index"):
        taken = set(cls._get_param_names()) & set(SHARED)
        assert not taken or issubclass(cls, ApproximateIndex), cls
        for name in taken:
            assert cls._parameter_constraints[name] is \
                ApproximateIndex._parameter_constraints[name]
    assert not set(SHARED) & set(BaseIndex._parameter_constraints)


@pytest.mark.parametrize("cls", APPROXIMATE, ids=lambda c: c.__name__)
def test_hooks_read_no_constructor_parameter(cls):
    assert _live_param_reads(cls) == []


def test_the_scan_finds_a_live_read():
    class Careless(ApproximateIndex):
        _query_time_params = ("ef_search",)

        def __init__(self, n_neighbors=5, *, metric="euclidean", mode="distance",
                     n_jobs=None, M=16, ef_search=10, refine=None):
            super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode,
                             n_jobs=n_jobs, refine=refine)
            self.M = M
            self.ef_search = ef_search

        def _build(self, X):
            return (X, self.M, self.metric, self.ef_search)

        def _search(self, X, k):
            return self.refine

    assert sorted(_live_param_reads(Careless)) == [
        ("_build", "M"), ("_build", "metric"), ("_search", "refine")]
    index = Careless(refine=2)
    assert not hasattr(index, "random_state") and not hasattr(index, "keep_vectors")
    assert index.get_params()["refine"] == 2


@pytest.mark.parametrize("cls", APPROXIMATE, ids=lambda c: c.__name__)
def test_shared_documentation(cls):
    for name in set(cls._get_param_names()) & set(SHARED):
        first = _SHARED_DOC[name].splitlines()[0]
        assert cls.__doc__.count(first) == 1, (cls.__name__, name)


@pytest.mark.parametrize("cls", APPROXIMATE, ids=lambda c: c.__name__)
def test_metric_set_after_fit_survives_pickling(cls):
    """The fitted metric answers after ``set_params(metric=...)`` and a pickle round trip."""
    needs(cls)
    rng = np.random.RandomState(0)
    X, Q = rng.rand(80, 6).astype(np.float32), rng.rand(5, 6).astype(np.float32)
    params = {"random_state": 0} if "random_state" in cls._get_param_names() else {}
    index = cls(n_neighbors=4, metric="euclidean", **params).fit(X)
    before = index.kneighbors(Q)
    index.set_params(metric="inner_product")
    again = pickle.loads(pickle.dumps(index))
    for fitted in (index, again):
        dist, ind = fitted.kneighbors(Q)
        np.testing.assert_array_equal(ind, before[1])
        np.testing.assert_allclose(dist, before[0], rtol=1e-6)
