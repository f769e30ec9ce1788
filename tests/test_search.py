"""A CBIR system is a plain Pipeline: grid search on retrieval quality, joblib, search."""

import importlib
import importlib.util
import re
import types
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer
from sklearn.pipeline import Pipeline, make_pipeline

from skfindkit import ExactIndex, SklearnFeatureExtractor, search
from skfindkit.metrics import make_retrieval_scorer
from skfindkit.search import attach_keys


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_grid_search_on_retrieval_quality_and_joblib_round_trip(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    pipe = Pipeline([
        ("extractor", SklearnFeatureExtractor(PCA(random_state=0))),
        ("index", ExactIndex(n_neighbors=10)),
    ])
    grid = GridSearchCV(
        pipe,
        {"extractor__estimator__n_components": [2, 16], "index__metric": ["euclidean", "cosine"]},
        cv=3,
    ).fit(X_train, y_train)
    scores = grid.cv_results_["mean_test_score"]
    # 2 PCA components retrieve digits far worse than 16: the search must see it
    assert grid.best_params_["extractor__estimator__n_components"] == 16
    assert scores.max() > 0.9 and scores.min() < 0.7
    best = grid.best_estimator_
    assert best.score(X_test, y_test) > 0.9
    joblib.dump(best, tmp_path / "cbir.joblib")
    restored = joblib.load(tmp_path / "cbir.joblib")
    d1, i1 = best[-1].kneighbors(best[:-1].transform(X_test))
    d2, i2 = restored[-1].kneighbors(restored[:-1].transform(X_test))
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)


def test_custom_scoring_map_and_precision(digits):
    X_train, _, y_train, _ = digits
    grid = GridSearchCV(
        make_pipeline(SklearnFeatureExtractor(PCA(8, random_state=0)), ExactIndex()),
        {"exactindex__n_neighbors": [5, 20]},
        scoring={"p@10": make_retrieval_scorer("precision", 10),
                 "map@10": make_retrieval_scorer("map", 10)},
        refit="map@10",
        cv=3,
    ).fit(X_train, y_train)
    assert set(grid.cv_results_) >= {"mean_test_p@10", "mean_test_map@10"}
    assert 0.8 < grid.best_score_ <= 1.0


def test_precomputed_classifier_as_in_sklearn_docs(digits):
    # https://scikit-learn.org/stable/auto_examples/neighbors/approximate_nearest_neighbors
    X_train, X_test, y_train, y_test = digits
    ours = make_pipeline(
        ExactIndex(n_neighbors=10, mode="distance"),
        KNeighborsClassifier(n_neighbors=10, metric="precomputed"),
    ).fit(X_train, y_train)
    ref = make_pipeline(
        KNeighborsTransformer(n_neighbors=10, mode="distance"),
        KNeighborsClassifier(n_neighbors=10, metric="precomputed"),
    ).fit(X_train, y_train)
    np.testing.assert_array_equal(ours.predict(X_test), ref.predict(X_test))
    assert ours.score(X_test, y_test) > 0.95


def test_search_returns_ranked_keys(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    system = make_pipeline(SklearnFeatureExtractor(PCA(16, random_state=0)),
                           ExactIndex(n_neighbors=4)).fit(X_train, y_train)
    keys = np.array([f"digit_{i:04d}.png" for i in range(len(X_train))])
    attach_keys(system, keys)
    joblib.dump(system, tmp_path / "s.joblib")
    system = joblib.load(tmp_path / "s.joblib")
    result = search(system, X_test[:3])
    assert result.indices.shape == result.distances.shape == result.keys.shape == (3, 4)
    np.testing.assert_array_equal(result.keys, keys[result.indices])
    assert (np.diff(result.distances, axis=1) >= 0).all()
    first = list(result)[0]
    assert first[0][0] == result.keys[0, 0] and first[0][1] == result.distances[0, 0]
    records = result.to_records()
    assert records[0]["rank"] == 1 and records[0]["key"] == result.keys[0, 0]
    # explicit keys win; wrong-length keys are refused
    assert search(system, X_test[:1], 2, keys=np.arange(len(X_train)) + 100).keys.min() >= 100
    with pytest.raises(ValueError, match="keys"):
        attach_keys(system, keys[:-1])
    # keys go stale after partial_fit: they are dropped with a warning
    with pytest.warns(UserWarning, match="keys"):
        system[-1].partial_fit(system[:-1].transform(X_test[:2]), [0, 1])
    assert search(system, X_test[:1]).keys.dtype.kind == "i"


def _resolve(dotted):
    """``dotted`` as user code reaches it: attributes, importing submodules of modules."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif isinstance(obj, types.ModuleType):
            obj = importlib.import_module(".".join(parts[:i + 1]))
        else:
            raise AttributeError(f"{'.'.join(parts[:i])} has no attribute {part!r}")
    return obj


def test_dotted_skfindkit_names_in_docs_and_messages_resolve():
    """``skfindkit.search`` is the search function: ``skfindkit.search.upsert`` is no name."""
    root = Path(__file__).parents[1]
    files = [root / "README.md", *(root / "docs").rglob("*.md"),
             *(root / "skfindkit").rglob("*.py")]
    broken = []
    for path in files:
        for name in sorted(set(re.findall(r"\bskfindkit(?:\.\w+)+", path.read_text()))):
            head = name.split(".")[1]
            if not (hasattr(importlib.import_module("skfindkit"), head)
                    or importlib.util.find_spec(f"skfindkit.{head}")):
                continue  # not a reference to skfindkit's API (a label, a property name)
            try:
                _resolve(name)
            except (AttributeError, ImportError) as error:
                broken.append(f"{path.relative_to(root)}: {name} ({error})")
    assert not broken, broken
