"""MXNetFeatureExtractor (Module API) on a small CNN trained on sklearn digits.

Runs in the MXNet environment (numpy<2, ``pip install 'skfindkit[mxnet]'``,
``nox -s tests_mxnet``); elsewhere it is reported as skipped, with the reason.
"""

import os
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skfindkit import ExactIndex, ImageLoader, MXNetFeatureExtractor
from .._optional import require_mxnet

mx = require_mxnet()  # skfindkit.extractors.import_mxnet(), or a skip with the reason
# float32 forward passes of different batch sizes may round differently
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def net(digits):
    """(symbol, arg_params, aux_params) of a CNN taking NHWC 8x8x1 images."""
    X, y = digits
    mx.random.seed(0)
    data = mx.sym.transpose(mx.sym.var("data"), axes=(0, 3, 1, 2), name="nchw")
    x = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="conv1")
    x = mx.sym.Activation(x, act_type="relu", name="relu1")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    x = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=32, name="fc1"),
                          act_type="relu", name="relu2")
    out = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=10, name="fc2"),
                               name="softmax")
    module = mx.mod.Module(out, data_names=["data"], label_names=["softmax_label"])
    module.fit(mx.io.NDArrayIter(X, y.astype("float32"), batch_size=32, shuffle=True),
               num_epoch=12, optimizer="adam", optimizer_params={"learning_rate": 0.01},
               initializer=mx.init.Xavier())
    arg, aux = module.get_params()
    return out, arg, aux


@pytest.fixture(scope="module")
def prefix(net, tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("mxnet") / "cnn")
    mx.model.save_checkpoint(prefix, 3, *net)
    return prefix


def _direct(net, layer, X):
    symbol, arg, aux = net
    module = mx.mod.Module(symbol.get_internals()[layer], label_names=None)
    module.bind([("data", X.shape)], for_training=False)
    module.set_params(arg, aux, allow_extra=True)
    module.forward(mx.io.DataBatch([mx.nd.array(X)]), is_train=False)
    return module.get_outputs()[0].asnumpy()


@pytest.mark.parametrize("layer", ["conv1_output", "fc1", "relu2"])
def test_equals_module_called_directly_with_padded_last_batch(net, digits, layer):
    X, _ = digits
    X = X[:130]  # 130 = 4 * 32 + 2: the last batch is padded, then trimmed
    symbol, arg, aux = net
    ext = MXNetFeatureExtractor(symbol, arg_params=arg, aux_params=aux, layer=layer)
    out = ext.fit(X).transform(X)
    name = layer if layer.endswith("_output") else f"{layer}_output"
    np.testing.assert_allclose(out, _direct(net, name, X).reshape(len(X), -1), **TOL)
    assert out.shape[0] == 130 and ext.layer_ == name


def test_default_layer_is_network_output(net, digits):
    X, _ = digits
    ext = MXNetFeatureExtractor(net[0], arg_params=net[1], aux_params=net[2]).fit(X)
    assert ext.layer_ == "softmax_output"
    proba = ext.transform(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_pooling_is_channels_first(net, digits, pooling, reduce):
    X, _ = digits
    ext = MXNetFeatureExtractor(net[0], arg_params=net[1], aux_params=net[2], layer="conv1",
                                pooling=pooling).fit(X)
    expected = reduce(_direct(net, "conv1_output", X), axis=(2, 3))
    np.testing.assert_allclose(ext.transform(X), expected, **TOL)
    assert ext.n_features_out_ == 8


def test_checkpoint_prefix_equals_symbol_and_params(net, prefix, digits):
    X, _ = digits
    a = MXNetFeatureExtractor(prefix, epoch=3, layer="fc1").fit(X).transform(X)
    b = MXNetFeatureExtractor(net[0], arg_params=net[1], layer="fc1").fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("from_prefix", [False, True])
def test_pickle_and_joblib_round_trip_bit_identical(net, prefix, digits, tmp_path,
                                                    from_prefix):
    X, _ = digits
    if from_prefix:
        ext = MXNetFeatureExtractor(prefix, epoch=3, layer="fc1", batch_size=50)
    else:
        ext = MXNetFeatureExtractor(net[0], arg_params=net[1], aux_params=net[2], layer="fc1")
    expected = ext.fit(X).transform(X)
    again = pickle.loads(pickle.dumps(ext))
    assert "_runner" not in again.__dict__  # the bound module is not pickled
    np.testing.assert_array_equal(again.transform(X), expected)
    joblib.dump(ext, tmp_path / "ext.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ext.joblib").transform(X), expected)
    np.testing.assert_array_equal(clone(ext).fit(X).transform(X), expected)


def test_pickle_does_not_need_the_checkpoint_any_more(net, digits, tmp_path):
    X, _ = digits
    prefix = str(tmp_path / "gone")
    mx.model.save_checkpoint(prefix, 0, *net)
    ext = MXNetFeatureExtractor(prefix, layer="fc1").fit(X)
    blob = pickle.dumps(ext)
    for suffix in ("-symbol.json", "-0000.params"):
        os.remove(prefix + suffix)
    np.testing.assert_array_equal(pickle.loads(blob).transform(X), ext.transform(X))


def test_unknown_layer_lists_available_layers(net, digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"layer='fc7'.*available layers.*'conv1_output'"):
        MXNetFeatureExtractor(net[0], arg_params=net[1], layer="fc7").fit(X)


def test_wrong_input_shape_says_expected_and_got(net, digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"items of shape \(8, 7, 1\) do not fit the network"):
        MXNetFeatureExtractor(net[0], arg_params=net[1], layer="fc1").fit(X[:, :, :7])
    ext = MXNetFeatureExtractor(net[0], arg_params=net[1], layer="conv1").fit(X)
    with pytest.raises(ValueError, match=r"fitted on items of shape \(8, 8, 1\), got items of "
                                         r"shape \(8, 6, 1\)"):
        ext.transform(X[:, :, :6])


def test_missing_files_and_wrong_framework(net, digits, tmp_path):
    X, _ = digits
    prefix = str(tmp_path / "half")
    net[0].save(prefix + "-symbol.json")  # weights never written
    with pytest.raises(FileNotFoundError, match="half-0000.params"):
        MXNetFeatureExtractor(prefix).fit(X)
    with pytest.raises(FileNotFoundError, match="nothing-symbol.json"):
        MXNetFeatureExtractor(str(tmp_path / "nothing")).fit(X)
    keras_file = tmp_path / "model.keras"
    import zipfile

    with zipfile.ZipFile(keras_file, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="Keras '.keras' archive, not an MXNet checkpoint"):
        MXNetFeatureExtractor(str(keras_file)).fit(X)
    bad = str(tmp_path / "bad")
    (tmp_path / "bad-symbol.json").write_text("not json")
    mx.nd.save(bad + "-0000.params", {})
    with pytest.raises(ValueError, match="not an MXNet symbol file"):
        MXNetFeatureExtractor(bad).fit(X)
    with pytest.raises(ValueError, match="arg_params: required"):
        MXNetFeatureExtractor(net[0]).fit(X)


def test_pipeline_grid_search_picks_the_layer_that_retrieves_best(net, digits):
    X, y = digits
    images = (X[..., 0] * 255).astype(np.uint8)
    pipe = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale")),
        ("extractor", MXNetFeatureExtractor(net[0], arg_params=net[1], aux_params=net[2],
                                            pooling="max")),
        ("index", ExactIndex(n_neighbors=5)),
    ])
    search = GridSearchCV(pipe, {"extractor__layer": ["conv1", "relu2"]}, cv=3).fit(images, y)
    scores = dict(zip(search.cv_results_["param_extractor__layer"],
                      search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"extractor__layer": "relu2"}
    assert scores["relu2"] > 0.85 and scores["relu2"] > scores["conv1"] + 0.2
