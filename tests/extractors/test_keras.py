"""KerasFeatureExtractor on a small CNN trained on sklearn digits in a few seconds.

keras (TensorFlow) is imported by the ``keras`` fixture, when the first test
runs, not when the module is collected: every pytest worker collects every
module, and only the one that runs these tests pays the import.
"""

import os
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skfindkit import ExactIndex, ImageLoader, KerasFeatureExtractor

# TensorFlow's import and models: left to CI and `nox` (not `nox -s quick`)
pytestmark = pytest.mark.slow

# float32 forward passes of different batch sizes may round differently
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def cnn(keras, digits):
    X, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="dense_1"),
        keras.layers.Dense(10, activation="softmax", name="dense_2"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def cnn_path(cnn, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "cnn.keras"
    cnn.save(path)
    return str(path)


def _direct(model, layer, X):
    import keras  # imported by the cnn fixture already

    return keras.Model(model.inputs, model.get_layer(layer).output).predict(X, verbose=0)


@pytest.mark.parametrize("layer", ["conv1", "dense_1", "dense_2"])
def test_equals_keras_called_directly(cnn, digits, layer):
    X, _ = digits
    out = KerasFeatureExtractor(cnn, layer=layer, batch_size=50).fit(X).transform(X)
    expected = _direct(cnn, layer, X).reshape(len(X), -1)
    np.testing.assert_allclose(out, expected, **TOL)
    assert out.dtype == np.float32


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_global_pooling_channels_last(cnn, digits, pooling, reduce):
    X, _ = digits
    ext = KerasFeatureExtractor(cnn, layer="conv2", pooling=pooling).fit(X)
    out = ext.transform(X)
    np.testing.assert_allclose(out, reduce(_direct(cnn, "conv2", X), axis=(1, 2)), **TOL)
    assert out.shape == (len(X), 16) and ext.n_features_out_ == 16
    assert list(ext.get_feature_names_out())[:2] == ["kerasfeatureextractor0",
                                                     "kerasfeatureextractor1"]


def test_default_layer_is_model_output_and_flat_input_is_reshaped(cnn, digits):
    X, _ = digits
    ext = KerasFeatureExtractor(cnn).fit(X.reshape(len(X), -1))
    assert ext.layer_ == "dense_2" and ext.input_shape_ == (8, 8, 1)
    np.testing.assert_allclose(ext.transform(X.reshape(len(X), -1)), cnn.predict(X, verbose=0),
                               **TOL)


def test_sub_model_is_built_once_and_cached(cnn, digits):
    X, _ = digits
    ext = KerasFeatureExtractor(cnn, layer="dense_1").fit(X)
    sub = ext._feature_model
    ext.transform(X[:10])
    ext.transform(X[10:20])
    assert ext._feature_model is sub
    assert ext.set_params(layer="conv1").fit(X)._feature_model is not sub


def test_preprocess_is_applied_per_batch(cnn, digits):
    X, _ = digits
    out = KerasFeatureExtractor(cnn, layer="dense_1", preprocess=np.negative).fit(X).transform(X)
    np.testing.assert_allclose(out, _direct(cnn, "dense_1", -X), **TOL)


def test_model_from_path_equals_model_object(cnn, cnn_path, digits):
    X, _ = digits
    from_path = KerasFeatureExtractor(cnn_path, layer="dense_1").fit(X).transform(X)
    from_obj = KerasFeatureExtractor(cnn, layer="dense_1").fit(X).transform(X)
    np.testing.assert_array_equal(from_path, from_obj)


@pytest.mark.parametrize("as_path", [False, True])
def test_pickle_and_joblib_round_trip_bit_identical(cnn, cnn_path, digits, tmp_path, as_path):
    X, _ = digits
    ext = KerasFeatureExtractor(cnn_path if as_path else cnn, layer="conv2", pooling="max")
    expected = ext.fit(X).transform(X)
    again = pickle.loads(pickle.dumps(ext))
    assert "_feature_model" not in again.__dict__  # the cached sub-model is not pickled
    np.testing.assert_array_equal(again.transform(X), expected)
    joblib.dump(ext, tmp_path / "ext.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ext.joblib").transform(X), expected)
    if not as_path:  # param and fitted model are one object, restored as one
        assert again.model is again.model_


def test_pickle_does_not_need_the_model_file_any_more(cnn, digits, tmp_path):
    X, _ = digits
    path = tmp_path / "gone.keras"
    cnn.save(path)
    ext = KerasFeatureExtractor(str(path), layer="dense_1").fit(X)
    blob = pickle.dumps(ext)
    os.remove(path)
    np.testing.assert_array_equal(pickle.loads(blob).transform(X), ext.transform(X))


def test_clone_deep_copies_a_model_object(cnn, digits):
    X, _ = digits
    ext = KerasFeatureExtractor(cnn, layer="dense_1")
    twin = clone(ext)
    assert twin.model is not cnn
    assert [layer.name for layer in twin.model.layers] == [layer.name for layer in cnn.layers]
    np.testing.assert_array_equal(twin.fit(X).transform(X), ext.fit(X).transform(X))


def test_unknown_layer_lists_available_layers(cnn, digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"layer='fc7'.*available layers.*'conv1'.*'dense_2'"):
        KerasFeatureExtractor(cnn, layer="fc7").fit(X)


def test_wrong_input_shape_says_expected_and_got(cnn, digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"expects items of shape \(8, 8, 1\).*got items of "
                                         r"shape \(10,\)"):
        KerasFeatureExtractor(cnn).fit(np.zeros((4, 10), "float32"))
    ext = KerasFeatureExtractor(cnn).fit(X)
    with pytest.raises(ValueError, match="expects items of shape"):
        ext.transform(np.zeros((4, 8, 7, 1), "float32"))


def test_missing_file_and_wrong_framework_file(keras, tmp_path, digits):
    X, _ = digits
    missing = tmp_path / "nope.keras"
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        KerasFeatureExtractor(str(missing)).fit(X)
    mxnet_like = tmp_path / "net-symbol.json"
    mxnet_like.write_text('{"nodes": []}')
    with pytest.raises(ValueError, match="not a Keras model file"):
        KerasFeatureExtractor(str(mxnet_like)).fit(X)
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="not a Keras model file"):
        KerasFeatureExtractor(str(fake)).fit(X)
    with pytest.raises(TypeError, match="expected a keras.Model"):
        KerasFeatureExtractor(object()).fit(X)


def test_pipeline_grid_search_picks_the_layer_that_retrieves_best(cnn, digits):
    X, y = digits
    images = (X[..., 0] * 255).astype(np.uint8)  # raw 8x8 grayscale images
    pipe = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale")),
        ("extractor", KerasFeatureExtractor(cnn, pooling="max")),
        ("index", ExactIndex(n_neighbors=5)),
    ])
    search = GridSearchCV(pipe, {"extractor__layer": ["conv1", "dense_1"]}, cv=3)
    search.fit(images, y)
    scores = dict(zip(search.cv_results_["param_extractor__layer"],
                      search.cv_results_["mean_test_score"]))
    # max-pooled first conv layer has lost where strokes are; the trained
    # penultimate layer has not
    assert search.best_params_ == {"extractor__layer": "dense_1"}
    assert scores["dense_1"] > 0.85 and scores["dense_1"] > scores["conv1"] + 0.2


def test_one_batch_runs_the_compiled_step_without_building_a_data_pipeline(cnn, digits):
    # Keras's predict() builds a tf.data pipeline on every call (~0.2 s): a
    # service answering one query at a time must not pay it per query
    X, _ = digits
    ext = KerasFeatureExtractor(cnn, layer="dense_1", batch_size=32).fit(X)
    model = ext._feature_model
    calls = []
    predict = model.predict
    model.predict = lambda *a, **k: calls.append(len(a[0])) or predict(*a, **k)
    try:
        one = ext.transform(X[:5])
        assert calls == []
        several = ext.transform(X[:100])
        assert calls and sum(calls) == 100  # several batches: one predict call over them
    finally:
        del model.predict
    np.testing.assert_allclose(one, _direct(cnn, "dense_1", X[:5]), **TOL)
    np.testing.assert_allclose(several[:5], one, **TOL)
