"""``keep_vectors=False``: no float32 copy, rows read back from the native index, same answers."""

import pickle

import numpy as np
import pytest


CASES = [
    ("hnswlib", "HNSWIndex", {"random_state": 0}),
    ("faiss", "FaissIndex", {"factory": "Flat"}),
    ("faiss", "FaissIndex", {"factory": "IVF8,Flat", "nprobe": 2, "random_state": 0}),
    ("faiss", "FaissIndex", {"factory": "HNSW16"}),
    ("annoy", "AnnoyIndex", {"n_trees": 5, "random_state": 0}),
]


def _make(module, name, params, **extra):
    pytest.importorskip(module)
    import skfindkit

    return getattr(skfindkit, name)(**params, **extra)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
@pytest.mark.parametrize("module,name,params", CASES, ids=lambda v: str(v))
def test_without_the_copy_every_feature_gives_the_same_answer(module, name, params, metric):
    rng = np.random.RandomState(0)
    X, Q = rng.randn(500, 16), rng.randn(20, 16)
    kept = _make(module, name, params, metric=metric).fit(X[:400])
    lean = _make(module, name, params, metric=metric, keep_vectors=False).fit(X[:400])
    assert lean._fit_X is None and kept._fit_X is not None
    features = {
        "kneighbors": lambda e: e.kneighbors(Q),
        "kneighbors(X=None)": lambda e: e.kneighbors(),
        "exact_kneighbors": lambda e: e.exact_kneighbors(Q),
        "refine": lambda e: e.set_params(refine=3).kneighbors(Q),
    }
    for feature, run in features.items():
        (d1, i1), (d2, i2) = run(kept), run(lean)
        np.testing.assert_array_equal(i1, i2, err_msg=feature)
        np.testing.assert_allclose(d1, d2, atol=1e-6, err_msg=feature)
    kept.partial_fit(X[400:])
    lean.partial_fit(X[400:])
    np.testing.assert_array_equal(kept.kneighbors(Q)[1], lean.kneighbors(Q)[1])
    restored = pickle.loads(pickle.dumps(lean))
    assert restored._fit_X is None
    np.testing.assert_array_equal(restored.kneighbors(Q)[1], lean.kneighbors(Q)[1])


def test_lossy_faiss_codes_need_the_copy():
    index = _make("faiss", "FaissIndex", {"factory": "IVF8,PQ4", "random_state": 0},
                  keep_vectors=False)
    with pytest.raises(ValueError, match="keep_vectors=False needs a factory that stores"):
        index.fit(np.random.RandomState(0).randn(500, 16))


def test_the_fitted_choice_holds_until_the_next_fit():
    X = np.random.RandomState(0).randn(100, 8)
    index = _make("hnswlib", "HNSWIndex", {"random_state": 0}, keep_vectors=False).fit(X)
    index.set_params(keep_vectors=True)
    assert index._fit_X is None and not index._keeps_vectors()
    assert index.kneighbors(n_neighbors=2)[1].shape == (100, 2)
    assert index.fit(X)._fit_X is not None
