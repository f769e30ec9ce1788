"""The contract suite: every public estimator of skfindkit, in one place.

Estimators join by being listed in ``tests/common/estimator_instances.py``; the suite then
runs scikit-learn's estimator checks on them, and the index-specific contract
(equivalence with ``KNeighborsTransformer``, pickling, bad input) on every
index.
"""

import inspect
import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.neighbors import KNeighborsTransformer
from sklearn.utils.estimator_checks import estimator_checks_generator

import skfindkit
from skfindkit import BaseIndex, ExactIndex
from skfindkit.utils._persist import CorruptIndexError, NativeBlob

from .._corruption import corrupted_payloads

from .estimator_instances import (
    available_instances,
    index_instances,
    listed_classes,
    unavailable_instances,
)


def _public_estimator_classes():
    out = []
    for name in skfindkit.__all__:
        obj = getattr(skfindkit, name)
        if inspect.isclass(obj) and hasattr(obj, "get_params") and not inspect.isabstract(obj):
            out.append(obj)
    return out


def test_every_public_estimator_is_listed():
    listed = listed_classes()
    missing = [cls.__name__ for cls in _public_estimator_classes() if cls.__name__ not in listed]
    assert not missing, f"add instances of {missing} to tests/common/estimator_instances.py"


def expected_failed_checks(estimator):
    """Checks an estimator declares it cannot pass, with the reason.

    Extractors whose framework rounds a row differently with the batch it is
    in declare it (``_batch_dependent_rounding``); scikit-learn's exact
    order/subset invariance checks are then expected to fail (not strictly:
    some CPUs pass them) and ``tests/extractors/test_contract.py`` checks invariance
    at a float32 tolerance on every CPU.
    """
    if type(estimator).__name__ == "BM25Index":
        return {"check_estimators_dtypes": (
            "its integer data (3 * uniform, 5 columns) has a row of zeros: a query without "
            "any term has no BM25 ranking and BM25Index refuses it (documented)")}
    reason = getattr(estimator, "_batch_dependent_rounding", None)
    if reason is None:
        return {}
    return {"check_methods_sample_order_invariance": reason,
            "check_methods_subset_invariance": reason}


# Checks whose outcome depends on a configuration's numbers (what fit stores,
# what queries return, dtypes, pickling of the fitted state). The first
# instance of each class runs scikit-learn's whole battery; its other
# configurations run these only: the API checks (parameters, tags, repr,
# cloning, error types) are properties of the class.
NUMERICAL_CHECKS = frozenset({
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_dtypes",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_readonly_memmap_input",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
})


def _check_name(check):
    return getattr(check, "func", check).__name__


def _check_cases():
    """sklearn's checks of every instance; those of a missing backend are skipped.

    The whole battery once per class, the numerical checks for its other
    configurations (``NUMERICAL_CHECKS``).
    """
    seen = set()
    for estimator in available_instances():
        first = type(estimator) not in seen
        seen.add(type(estimator))
        for case in estimator_checks_generator(
            estimator, legacy=True, mark="xfail",
            expected_failed_checks=expected_failed_checks(estimator),
        ):
            check = (case.values if hasattr(case, "values") else case)[1]
            if first or _check_name(check) in NUMERICAL_CHECKS:
                yield case
    for estimator, reason in unavailable_instances():
        with warnings.catch_warnings():  # sklearn's notes about input types: not run here
            warnings.simplefilter("ignore")
            checks = list(estimator_checks_generator(estimator, legacy=True))
        for est, check in checks:
            yield pytest.param(est, check, marks=pytest.mark.skip(reason=reason))


def _check_id(value):
    from sklearn.utils.estimator_checks import _get_check_estimator_ids

    return _get_check_estimator_ids(value)


@pytest.mark.parametrize("estimator, check", list(_check_cases()), ids=_check_id)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# The checks that need no data: scikit-learn skips every check for estimators
# whose input is not a 2-D array (loaders of paths and texts), so these API
# checks run here for every estimator, whatever its input.
_API_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_do_not_raise_errors_in_init_or_set_params",
]


def _every_instance():
    return [*available_instances(), *(
        pytest.param(est, marks=pytest.mark.skip(reason=reason))
        for est, reason in unavailable_instances()
    )]


@pytest.mark.parametrize("estimator", _every_instance(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check_name", _API_CHECKS)
def test_api_checks_for_every_input_type(estimator, check_name):
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check_name)(type(estimator).__name__, clone(estimator))


# ----------------------------------------------------------------- indexes
def _index_id(est):
    return f"{type(est).__name__}-{est.metric}-{est.mode}"


INDEXES = index_instances()


def _clustered(n=300, d=8, centers=6, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=4.0, size=(centers, d))
    labels = rng.integers(0, centers, n)
    return c[labels] + rng.normal(size=(n, d)), labels


def test_exactness_is_declared_by_the_backends():
    exact = {_index_id(i) for i in INDEXES if i._is_exact()}
    assert {"ExactIndex-euclidean-distance", "ExactIndex-inner_product-distance"} <= exact
    assert not any(i._is_exact() for i in INDEXES if "HNSW" in type(i).__name__)


def _reference_transformer(metric, mode, n_neighbors, X):
    """sklearn's KNeighborsTransformer for ``metric``, and the input it takes.

    sklearn has no inner-product metric: ``1 - <x, y>`` is given as a
    precomputed matrix shifted to be non-negative (a shift keeps the order).
    Returns ``(transformer, its input, shift to subtract from its distances)``.
    """
    if metric != "inner_product":
        return KNeighborsTransformer(n_neighbors=n_neighbors, mode=mode, metric=metric), X, 0.0
    X32 = X.astype(np.float32).astype(np.float64)
    D = 1.0 - X32 @ X32.T
    shift = -D.min()
    ref = KNeighborsTransformer(n_neighbors=n_neighbors, mode=mode, metric="precomputed")
    return ref, D + shift, shift


@pytest.mark.parametrize(
    "index",
    # approximate indexes are compared on recall in their own tests
    [i for i in INDEXES if i._is_exact()],
    ids=_index_id,
)
def test_exact_indexes_match_kneighbors_transformer(index):
    X, _ = _clustered()
    for mode in ("distance", "connectivity"):
        est = clone(index).set_params(mode=mode, n_neighbors=7)
        ref, Xref, shift = _reference_transformer(index.metric, mode, 7, X)
        G, R = est.fit_transform(X), ref.fit_transform(Xref)
        assert G.shape == R.shape and G.format == "csr"
        assert (G.indptr == R.indptr).all()
        np.testing.assert_array_equal(G.indices, R.indices)
        R_data = R.data - shift if mode == "distance" else R.data
        np.testing.assert_allclose(G.data, R_data, rtol=1e-5, atol=1e-5)
        if index.metric == "inner_product":
            continue  # sklearn's self-exclusion assumes self is nearest: see test_ip_self_exclusion
        # kneighbors(None) excludes self; kneighbors_graph(None) too
        d1, i1 = est.kneighbors()
        d2, i2 = ref.kneighbors()
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-6)
        G0 = est.kneighbors_graph(None, mode="distance")
        assert G0.shape == (X.shape[0], X.shape[0]) and G0.diagonal().max() == 0


@pytest.mark.parametrize(
    "index",
    # inner product: an item is at 1 - |x|^2 from itself, not 0 (documented)
    [i for i in INDEXES if i.metric != "inner_product"],
    ids=_index_id,
)
def test_self_is_first_at_exactly_zero(index):
    X, _ = _clustered()
    est = clone(index).set_params(mode="distance", n_neighbors=5)
    G = est.fit_transform(X)
    assert G.shape == (X.shape[0], X.shape[0])
    assert np.diff(G.indptr).tolist() == [6] * X.shape[0]
    first = G.indices[G.indptr[:-1]]
    np.testing.assert_array_equal(first, np.arange(X.shape[0]))
    assert (G.data[G.indptr[:-1]] == 0.0).all()
    # rows sorted by distance
    rows = G.data.reshape(X.shape[0], 6)
    assert (np.diff(rows, axis=1) >= 0).all()


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_pickle_and_joblib_round_trip_identical(index, tmp_path):
    X, y = _clustered()
    est = clone(index).fit(X[:250], y[:250])
    d, i = est.kneighbors(X[250:])
    for restored in (
        pickle.loads(pickle.dumps(est)),
        _joblib_round_trip(est, tmp_path / "index.joblib"),
    ):
        d2, i2 = restored.kneighbors(X[250:])
        np.testing.assert_array_equal(i, i2)
        np.testing.assert_array_equal(d, d2)
        assert restored.score(X[250:], y[250:]) == est.score(X[250:], y[250:])


def _joblib_round_trip(est, path):
    joblib.dump(est, path)
    return joblib.load(path)


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_partial_fit_appends_ids(index):
    X, y = _clustered()
    est = clone(index).fit(X[:200], y[:200])
    est.partial_fit(X[200:], y[200:])
    assert est.n_samples_fit_ == X.shape[0]
    full = clone(index).fit(X, y)
    # the added items are found under their new ids
    ind = est.kneighbors(X[200:], n_neighbors=1, return_distance=False)
    if index.metric != "inner_product":
        assert np.mean(ind[:, 0] == np.arange(200, X.shape[0])) > 0.95
    assert est.score(X, y) == pytest.approx(full.score(X, y), abs=0.05)
    with pytest.raises(ValueError, match="y is required"):
        est.partial_fit(X[:3])


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_corrupt_blob_never_reaches_native_code(index):
    X, _ = _clustered()
    est = clone(index).fit(X)
    if getattr(est, "shards_", None):  # stored as indexes, each checking its own state
        est = est.shards_[-1]
    state = est.__getstate__()
    blob = state.get("_index_blob")
    if blob is None:  # nothing native: the stored data is what answers
        data = state["_fit_X"]
        bad = [("_fit_X", data[:-1]), ("_fit_X", np.where(data == data.flat[7], 0, data))]
    else:
        bad = [("_index_blob", NativeBlob(blob.kind, p)) for p in corrupted_payloads(blob)]
    for key, value in bad:
        fresh = type(est).__new__(type(est))
        with pytest.raises(CorruptIndexError, match=repr(key)):
            fresh.__setstate__({**state, key: value})


def _bad_inputs():
    return [
        ("nan", lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
         ValueError, "NaN"),
        ("inf", lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X),
         ValueError, "infinity"),
        ("1-D", lambda X: X[0], ValueError, "2D array"),
        ("empty", lambda X: X[:0], ValueError, "0 sample"),
        ("sparse", lambda X: sparse.csr_matrix(X), TypeError, "[Ss]parse"),
        ("object", lambda X: np.array([["a"] * X.shape[1]] * 3, dtype=object), ValueError,
         "could not convert"),
    ]


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
@pytest.mark.parametrize("name,make,exc,match", _bad_inputs(), ids=lambda v: str(v)[:8])
def test_bad_input_is_refused_clearly(index, name, make, exc, match):
    X, _ = _clustered(n=40)
    if name == "sparse" and index._accepts_sparse:
        pytest.skip("accepts sparse input: covered by tests/indexes/test_text_indexes.py")
    if name == "sparse":  # the refusal names the indexes that take sparse input
        match = "does not accept sparse input X.*ExactIndex.*BM25Index"
    with pytest.raises(exc, match=match):
        clone(index).fit(make(X))
    est = clone(index).fit(X)
    with pytest.raises(exc, match=match):
        est.kneighbors(make(X))


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_contract_errors(index):
    X, y = _clustered(n=40)
    est = clone(index)
    with pytest.raises(Exception, match="not fitted"):
        est.kneighbors(X)
    est.fit(X, y)
    with pytest.raises(ValueError, match="7 features.*expecting 8"):
        est.kneighbors(X[:, :-1])
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        est.kneighbors(X, n_neighbors=41)
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        est.kneighbors(None, n_neighbors=40)
    with pytest.raises(ValueError, match="n_neighbors > 0"):
        est.kneighbors(X, n_neighbors=0)
    with pytest.raises(ValueError, match="n_neighbors"):
        clone(index).set_params(n_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="mode"):
        est.kneighbors_graph(X, mode="bogus")
    with pytest.raises(ValueError, match="labels"):
        clone(index).fit(X).score(X, y)


def test_base_is_abstract():
    with pytest.raises(TypeError):
        BaseIndex()


def test_repr_and_params_round_trip():
    est = ExactIndex(n_neighbors=3, metric="cosine", batch_size=4)
    assert "metric='cosine'" in repr(est)
    assert clone(est).get_params() == est.get_params()
    buf = io.BytesIO()
    joblib.dump(est, buf)


@pytest.mark.parametrize(
    "index", [i for i in INDEXES if i.metric == "cosine"], ids=_index_id
)
def test_cosine_zero_vector_is_at_distance_one(index):
    X, _ = _clustered(n=60)
    X[5] = 0.0
    est = clone(index).set_params(n_neighbors=3).fit(X)
    d, i = est.kneighbors(np.zeros((1, X.shape[1])))
    np.testing.assert_allclose(d, 1.0)
    d, i = est.kneighbors(X[:20])
    assert not (i == 5).any() or np.allclose(d[i == 5], 1.0)
    G = est.kneighbors_graph(X[5:6], mode="distance")
    np.testing.assert_allclose(G.data, 1.0)


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_fast_and_validated_query_paths_agree(index):
    X, _ = _clustered(n=80)
    est = clone(index).fit(X)
    fast = est.kneighbors(X[:10])
    slow = est.kneighbors(X[:10].tolist())  # a list takes validate_data
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_allclose(fast[0], slow[0])
    with pytest.raises(ValueError, match="NaN"):
        est.kneighbors(np.full((2, X.shape[1]), np.nan))


@pytest.mark.parametrize("index", INDEXES, ids=_index_id)
def test_feature_names_out_as_kneighbors_transformer(index):
    X, _ = _clustered(n=40)
    est = clone(index).fit(X)
    ref = KNeighborsTransformer().fit(X)
    prefix = type(est).__name__.lower()
    names = est.get_feature_names_out()
    assert names.tolist() == [f"{prefix}{i}" for i in range(40)]
    assert len(ref.get_feature_names_out()) == len(names)


def test_base_classes_are_exported_side_by_side():
    from skfindkit import BaseFeatureExtractor, BaseVectorLoader
    from skfindkit.extractors import BaseFeatureExtractor as FromExtractors

    assert FromExtractors is BaseFeatureExtractor
    assert inspect.isabstract(BaseIndex) and inspect.isabstract(BaseFeatureExtractor)
    assert BaseVectorLoader.__name__ in skfindkit.__all__


# one name per concept across every index and loader (snake_case, sklearn's words)
_SHARED_VOCABULARY = {
    "graph degree": "M",
    "build-time candidate list": "ef_construction",
    "query-time candidate list": "ef_search",
    "threads or processes": "n_jobs",
    "seed": "random_state",
    "neighbours per query": "n_neighbors",
    "distance": "metric",
    "rows per block": "batch_size",
    "progress output": "verbose",
}
_FORBIDDEN = {
    "ef": "ef_search", "efSearch": "ef_search", "efConstruction": "ef_construction",
    "seed": "random_state", "workers": "n_jobs", "n_threads": "n_jobs", "threads": "n_jobs",
    "k": "n_neighbors", "num_threads": "n_jobs", "chunk_size": "batch_size",
    "verbosity": "verbose", "distance": "metric",
}


@pytest.mark.parametrize(
    "estimator",
    [e for e in available_instances()
     if not type(e).__name__.endswith("FeatureExtractor")],
    ids=lambda e: type(e).__name__,
)
def test_indexes_and_loaders_share_the_parameter_vocabulary(estimator):
    import re

    params = estimator.get_params(deep=False)
    for name in params:
        assert name not in _FORBIDDEN, (
            f"{type(estimator).__name__}({name}=...): the shared name is {_FORBIDDEN[name]!r}"
        )
        assert name == "M" or re.fullmatch(r"[a-z][a-z0-9_]*", name), (
            f"{type(estimator).__name__}({name}=...) is not snake_case"
        )
    assert set(params) & set(_SHARED_VOCABULARY.values()) or not params
