"""``set_params`` on a fitted index: every later operation answers, or refuses clearly.

For every index instance of ``estimator_instances`` and every parameter, the
fitted index gets another valid value of that parameter (derived from its
``_parameter_constraints``); then queries, a pickle round trip, an
``skfindkit.io`` round trip and ``partial_fit`` must each either answer as
documented -- build-time parameters take effect at the next ``fit`` (results
equal those of the index as fitted), query-time knobs at once (results equal a
fresh index fitted with the new value) -- or raise a ``ValueError`` naming the
parameter. A ``ZeroDivisionError``, an ``AssertionError``, a native
``RuntimeError`` or a copy that cannot be loaded fails the test.

Where two builds differ (nmslib has no seed) the reference is a copy of the
fitted index; where growing differs (nmslib rebuilds, Milvus re-clusters its
IVF segments) any answer after ``partial_fit`` is right, an error is not.
"""

import os
import pickle
import tempfile
import warnings
from numbers import Integral

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions

from skfindkit import ExactIndex, io
from skfindkit.indexes import BaseIndex

from .estimator_instances import index_instances, text_index_instances

# values no constraint can produce: strings with a meaning
_NAMED_VALUES = {
    "factory": ["Flat", "HNSW16"],
    "collection_name": ["skfindkit_renamed"],
}


def _ints(interval, current):
    """The interval's ends (2**31, past a C int, for an open end above), and a
    neighbour of the current value, inside the interval."""
    values = [interval.left, interval.right if interval.right is not None else 2**31]
    if current is not None:
        values += [current + 1 if interval.is_satisfied_by(current + 1) else current - 1]
    return [v for v in values if v is not None and interval.is_satisfied_by(v)]


def _reals(interval, current):
    values = [interval.left, interval.right, None if current is None else current / 2]
    return [float(v) for v in values if v is not None and interval.is_satisfied_by(v)]


def candidates(index, name):
    """Valid values of ``name`` other than the current one, from its constraints."""
    current = index.get_params(deep=False)[name]
    if name in _NAMED_VALUES:
        return [_Hashable(v) for v in _NAMED_VALUES[name] if v != current]
    out = []
    for c in index._parameter_constraints[name]:
        if c is None and current is not None:
            out.append(None)
        elif isinstance(c, StrOptions):
            out += sorted(o for o in c.options if o != current and o not in c.deprecated)
        elif isinstance(c, Interval) and c.type is Integral:
            out += _ints(c, current)
        elif isinstance(c, Interval):
            out += _reals(c, current)
        elif c == "boolean":
            out.append(not current)
        elif c == "random_state":
            out.append(1 if current != 1 else 2)
        elif c == "verbose":
            out.append(0 if current else 1)
        elif c is BaseIndex:
            out.append(ExactIndex(metric="cosine") if current is None else None)
    return [v for v in dict.fromkeys(map(_Hashable, out)) if v.value != current]


class _Hashable:
    """A candidate value, deduplicated by its repr."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return hash(repr(self.value))

    def __eq__(self, other):
        return repr(self.value) == repr(other.value)


# the parameters whose new value applies at once (the others at the next fit)
_QUERY_TIME = {"n_neighbors", "mode", "refine", "ef_search", "nprobe", "search_k"}


def _data(index):
    rng = np.random.RandomState(0)
    if type(index).__name__ == "BM25Index":
        def counts(n, seed):
            return sp.random(n, 12, density=0.4, format="csr", random_state=seed,
                             data_rvs=lambda k: np.random.RandomState(seed).randint(1, 4, k))
        return counts(60, 0), counts(10, 1), counts(5, 2)
    centers = rng.randn(4, 6) * 3
    X = centers[rng.randint(4, size=75)] + rng.randn(75, 6)
    return X[:60], X[60:70], X[70:]


def _answers(index, Q):
    dist, ind = index.kneighbors(Q)
    return dist, ind, index.transform(Q).toarray()


def _same(got, want):
    return (got[1].shape == want[1].shape and np.array_equal(got[1], want[1])
            and np.allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
            and got[2].shape == want[2].shape
            and np.allclose(got[2], want[2], rtol=1e-5, atol=1e-6))


def _io_round_trip(index):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "index.skfk")
        io.save(index, path)
        return io.load(path)


_STEPS = {
    "query": lambda index, new: index,
    "pickle": lambda index, new: pickle.loads(pickle.dumps(index)),
    "io": lambda index, new: _io_round_trip(index),
    "partial_fit": lambda index, new: index.partial_fit(new),
}


def _check(instance, fitted, name, value, X, new, Q, expected):
    """Problems of one (parameter, value) change after fit (empty: none)."""
    problems = []
    index = (clone(instance).fit(X) if _reproducible(instance)
             else pickle.loads(pickle.dumps(fitted)))
    index.set_params(**{name: value})
    for step, run in _STEPS.items():
        try:
            got = _answers(run(index, new), Q)
        except ValueError as exc:
            if name not in str(exc):
                problems.append(f"{name}={value!r}, {step}: ValueError not naming "
                                f"{name!r}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - what the test reports
            problems.append(f"{name}={value!r}, {step}: {type(exc).__name__}: {exc}")
            continue
        want = expected[step == "partial_fit"]
        if want is _ANY_ANSWER:
            continue
        if want is None:
            problems.append(f"{name}={value!r}, {step}: answered, but a fresh index "
                            "with this value refuses it")
        elif not _same(got, want):
            problems.append(f"{name}={value!r}, {step}: answers differ from the expected ones")
    return problems


_ANY_ANSWER = object()  # expected where any answer (not an error) is right


def _reproducible(instance):
    """Whether two fits give the same index (nmslib's graphs have no seed)."""
    return type(instance).__name__ != "NMSLibIndex" or instance.method == "seq_search"


def _growth_reproducible(instance):
    """Whether two indexes grown alike answer alike (Milvus re-clusters its IVF
    segments with unseeded k-means)."""
    return _reproducible(instance) and not getattr(instance, "index_type", "").startswith("IVF")


def _fresh_answers(instance, fitted, name, value, X, new, Q):
    """Answers of a fresh index fitted with the new value (None: it refuses the value);
    for a backend whose builds are not reproducible, of a copy of ``fitted`` given it."""
    try:
        if _reproducible(instance):
            fresh = clone(instance).set_params(**{name: value}).fit(X)
        else:
            fresh = pickle.loads(pickle.dumps(fitted)).set_params(**{name: value})
        answers = _answers(fresh, Q)
        # where growing is not reproducible, any answer after partial_fit is right
        if not _growth_reproducible(instance):
            return {False: answers, True: _ANY_ANSWER}
        return {False: answers, True: _answers(fresh.partial_fit(new), Q)}
    except ValueError as exc:
        if name not in str(exc):
            raise
        return {False: None, True: None}


def _instances():
    return [pytest.param(i, id=repr(i).replace("\n", "").replace(" ", ""))
            for i in index_instances() + text_index_instances()]


@pytest.mark.parametrize("instance", _instances())
def test_set_params_after_fit_answers_or_refuses_clearly(instance):
    X, new, Q = _data(instance)
    problems = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # faiss starved k-means, short approximate rows
        fitted = clone(instance).fit(X)
        as_fitted = {False: _answers(fitted, Q), True: _ANY_ANSWER}
        if _growth_reproducible(instance):  # fitted again: a Milvus copy shares the collection
            as_fitted[True] = _answers(clone(instance).fit(X).partial_fit(new), Q)
        for name in sorted(instance.get_params(deep=False)):
            for value in (c.value for c in candidates(instance, name)):
                expected = as_fitted
                if name in _QUERY_TIME:
                    try:
                        expected = _fresh_answers(instance, fitted, name, value, X, new, Q)
                    except Exception as exc:  # noqa: BLE001 - what the test reports
                        problems.append(f"{name}={value!r}, fresh fit: "
                                        f"{type(exc).__name__}: {exc}")
                        continue
                problems += _check(instance, fitted, name, value, X, new, Q, expected)
    assert not problems, "\n".join(problems)
