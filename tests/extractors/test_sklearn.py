"""SklearnFeatureExtractor: a scikit-learn estimator's output as retrieval features."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from skfindkit import SklearnFeatureExtractor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


def test_supervised_map_gets_y_and_equals_direct_call(digits):
    X, y = digits
    ext = SklearnFeatureExtractor(LinearDiscriminantAnalysis(n_components=4)).fit(X, y)
    direct = LinearDiscriminantAnalysis(n_components=4).fit(X, y).transform(X)
    np.testing.assert_array_equal(ext.transform(X), direct)
    assert ext.n_features_out_ == 4 and ext.n_features_in_ == 64
    assert ext.estimator_ is not ext.estimator  # a fitted clone, the param is untouched
    assert not hasattr(ext.estimator, "scalings_")


@pytest.mark.parametrize("method, width", [("predict_proba", 10), ("predict", 1),
                                           ("decision_function", 10)])
def test_prediction_methods_are_columns(digits, method, width):
    X, y = digits
    clf = LogisticRegression(max_iter=300)
    ext = SklearnFeatureExtractor(clf, method=method, batch_size=64).fit(X, y)
    out = ext.transform(X)
    expected = getattr(LogisticRegression(max_iter=300).fit(X, y), method)(X)
    np.testing.assert_allclose(out, expected.reshape(len(X), -1), rtol=1e-12)
    assert out.shape == (len(X), width)


def test_batching_and_progress_do_not_change_output(digits):
    X, _ = digits
    whole = SklearnFeatureExtractor(PCA(8, random_state=0)).fit(X).transform(X)
    batched = SklearnFeatureExtractor(PCA(8, random_state=0), batch_size=33, verbose=1)
    np.testing.assert_allclose(batched.fit(X).transform(X), whole, rtol=1e-10, atol=1e-10)


def test_prefit_uses_fitted_estimator_as_is(digits):
    X, y = digits
    pca = PCA(5).fit(X[:100])
    ext = SklearnFeatureExtractor(pca, prefit=True).fit(X[100:])
    np.testing.assert_allclose(ext.transform(X), pca.transform(X))
    frozen = SklearnFeatureExtractor(FrozenEstimator(pca)).fit(X[100:])
    np.testing.assert_allclose(frozen.transform(X), pca.transform(X))
    with pytest.raises(NotFittedError):
        SklearnFeatureExtractor(PCA(5), prefit=True).fit(X)


def test_missing_method_lists_available_ones(digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"method='predict_proba'.*PCA.*'transform'"):
        SklearnFeatureExtractor(PCA(2), method="predict_proba").fit(X)
    with pytest.raises(InvalidParameterError, match="method"):
        SklearnFeatureExtractor(PCA(2), method="embed").fit(X)
    with pytest.raises(ValueError, match="requires y"):
        SklearnFeatureExtractor(LogisticRegression(), method="predict_proba").fit(X)


def test_feature_names(digits):
    X, y = digits
    assert list(SklearnFeatureExtractor(PCA(2)).fit(X).get_feature_names_out()) == [
        "pca0", "pca1"]
    ext = SklearnFeatureExtractor(LogisticRegression(max_iter=300), method="predict_proba")
    names = ext.fit(X[y < 3], y[y < 3]).get_feature_names_out()
    assert list(names) == ["predict_proba_0", "predict_proba_1", "predict_proba_2"]


def test_pickle_and_joblib_round_trip(digits, tmp_path):
    X, y = digits
    ext = SklearnFeatureExtractor(LinearDiscriminantAnalysis(n_components=3)).fit(X, y)
    again = pickle.loads(pickle.dumps(ext))
    np.testing.assert_array_equal(again.transform(X), ext.transform(X))
    joblib.dump(ext, tmp_path / "ext.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ext.joblib").transform(X),
                                  ext.transform(X))


def test_grid_search_over_wrapped_estimator_params(digits):
    X, y = digits
    pipe = Pipeline([("extractor", SklearnFeatureExtractor(PCA(random_state=0))),
                     ("knn", KNeighborsClassifier(5))])
    search = GridSearchCV(pipe, {"extractor__estimator__n_components": [1, 16]}, cv=3)
    search.fit(X, y)
    # one component cannot separate ten digits; sixteen can
    assert search.best_params_ == {"extractor__estimator__n_components": 16}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.3
