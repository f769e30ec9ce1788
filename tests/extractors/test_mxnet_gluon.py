"""GluonFeatureExtractor on a small HybridSequential CNN trained on sklearn digits.

Runs in the MXNet environment (numpy<2, ``pip install 'skfindkit[mxnet]'``,
``nox -s tests_mxnet``); elsewhere it is reported as skipped, with the reason.
"""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skfindkit import ExactIndex, GluonFeatureExtractor, ImageLoader
from .._optional import require_mxnet

mx = require_mxnet()  # skfindkit.extractors.import_mxnet(), or a skip with the reason
nn = mx.gluon.nn
# float32 forward passes of different batch sizes may round differently
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def net(digits):
    X, y = digits
    mx.random.seed(0)
    net = nn.HybridSequential(prefix="cnn_")
    with net.name_scope():
        net.add(nn.HybridLambda(lambda F, x: F.transpose(x, axes=(0, 3, 1, 2))),  # NHWC->NCHW
                nn.Conv2D(8, 3, padding=1, activation="relu"), nn.MaxPool2D(),
                nn.Flatten(), nn.Dense(32, activation="relu"), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(12):
        for i in range(0, len(X), 32):
            with mx.autograd.record():
                batch_loss = loss(net(mx.nd.array(X[i:i + 32])), mx.nd.array(y[i:i + 32]))
            batch_loss.backward()
            trainer.step(len(batch_loss))
    return net


@pytest.fixture(scope="module")
def prefix(net, tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("gluon") / "cnn")
    net.export(prefix, 2)
    return prefix


def _direct(net, upto, X):
    x = mx.nd.array(X)
    for block in list(net)[:upto + 1]:
        x = block(x)
    return x.asnumpy()


@pytest.mark.parametrize("upto, layer", [(1, "cnn_conv0"), (4, "cnn_dense0"), (5, None)])
def test_equals_block_called_directly(net, digits, upto, layer):
    X, _ = digits
    ext = GluonFeatureExtractor(net, layer=layer, batch_size=50).fit(X)
    np.testing.assert_allclose(ext.transform(X), _direct(net, upto, X).reshape(len(X), -1),
                               **TOL)
    assert ext._runner._active  # hybridized


def test_internal_output_name_and_pooling(net, digits):
    X, _ = digits
    ext = GluonFeatureExtractor(net, layer="cnn_conv0_fwd_output", pooling="max").fit(X)
    # the conv output before its relu, max-pooled over height and width (NCHW)
    conv = net[1]
    pre_relu = mx.nd.Convolution(mx.nd.array(X).transpose((0, 3, 1, 2)), conv.weight.data(),
                                 conv.bias.data(), kernel=(3, 3), pad=(1, 1), num_filter=8)
    np.testing.assert_allclose(ext.transform(X), pre_relu.asnumpy().max(axis=(2, 3)), **TOL)


def test_exported_files_equal_block(net, prefix, digits):
    X, _ = digits
    a = GluonFeatureExtractor(prefix, epoch=2, layer="cnn_dense0").fit(X).transform(X)
    b = GluonFeatureExtractor(net, layer="cnn_dense0").fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_pickle_and_joblib_round_trip_bit_identical(net, digits, tmp_path):
    X, _ = digits
    ext = GluonFeatureExtractor(net, layer="cnn_dense0", batch_size=64)
    expected = ext.fit(X).transform(X)
    again = pickle.loads(pickle.dumps(ext))
    assert "_runner" not in again.__dict__
    np.testing.assert_array_equal(again.transform(X), expected)
    # the HybridBlock param comes back as an equivalent SymbolBlock
    assert isinstance(again.block, mx.gluon.SymbolBlock)
    np.testing.assert_array_equal(again.block(mx.nd.array(X)).asnumpy(),
                                  net(mx.nd.array(X)).asnumpy())
    joblib.dump(ext, tmp_path / "ext.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ext.joblib").transform(X), expected)


def test_clone_deep_copies_the_block(net, digits):
    X, _ = digits
    ext = GluonFeatureExtractor(net, layer="cnn_dense0")
    twin = clone(ext)
    assert twin.block is not net
    np.testing.assert_array_equal(twin.fit(X).transform(X), ext.fit(X).transform(X))


def test_bad_input(net, digits, tmp_path):
    X, _ = digits
    with pytest.raises(ValueError, match=r"layer='fc7'.*available layers.*cnn_dense0_fwd_output"):
        GluonFeatureExtractor(net, layer="fc7").fit(X)
    with pytest.raises(ValueError, match=r"items of shape \(6, 6, 1\) do not fit the network"):
        GluonFeatureExtractor(net).fit(X[:, :6, :6])
    fresh = nn.HybridSequential()
    fresh.add(nn.Dense(3))
    with pytest.raises(ValueError, match="block: its parameters are not initialized"):
        GluonFeatureExtractor(fresh).fit(X)
    prefix = str(tmp_path / "half")
    net.export(prefix, 0)
    (tmp_path / "half-0000.params").unlink()
    with pytest.raises(FileNotFoundError, match="half-0000.params"):
        GluonFeatureExtractor(prefix).fit(X)
    with pytest.raises(TypeError, match="expected an mxnet.gluon.HybridBlock"):
        GluonFeatureExtractor(nn.Dense(3).collect_params()).fit(X)


def test_pipeline_grid_search_picks_the_layer_that_retrieves_best(net, digits):
    X, y = digits
    images = (X[..., 0] * 255).astype(np.uint8)
    pipe = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale")),
        ("extractor", GluonFeatureExtractor(net, pooling="max")),
        ("index", ExactIndex(n_neighbors=5)),
    ])
    search = GridSearchCV(pipe, {"extractor__layer": ["cnn_conv0", "cnn_dense0"]}, cv=3)
    search.fit(images, y)
    scores = dict(zip(search.cv_results_["param_extractor__layer"],
                      search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"extractor__layer": "cnn_dense0"}
    assert scores["cnn_dense0"] > 0.85 and scores["cnn_dense0"] > scores["cnn_conv0"] + 0.2
