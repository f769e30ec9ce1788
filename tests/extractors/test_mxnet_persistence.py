"""Pickled MXNet/Gluon extractors: corrupt model bytes are refused before MXNet reads them.

Runs in the MXNet environment (numpy<2, ``nox -s tests_mxnet``); elsewhere it is
reported as skipped, with the reason.
"""

import pickle

import numpy as np
import pytest

from skfindkit import GluonFeatureExtractor, MXNetFeatureExtractor
from skfindkit.utils._persist import CorruptFileError, NativeBlob

from .._optional import require_mxnet

mx = require_mxnet()  # skfindkit.extractors.import_mxnet(), or a skip with the reason


def _symbol_extractor(X):
    data = mx.sym.var("data")
    x = mx.sym.FullyConnected(mx.sym.flatten(data), num_hidden=6, name="fc1")
    out = mx.sym.Activation(x, act_type="tanh", name="tanh1")
    rng = np.random.RandomState(0)
    arg = {"fc1_weight": mx.nd.array(rng.randn(6, 64)), "fc1_bias": mx.nd.array(rng.randn(6))}
    return MXNetFeatureExtractor(out, arg_params=arg, batch_size=8).fit(X)


def _gluon_extractor(X):
    mx.random.seed(0)
    net = mx.gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(mx.gluon.nn.Flatten(), mx.gluon.nn.Dense(6, activation="tanh"))
    net.initialize(mx.init.Xavier())
    return GluonFeatureExtractor(net, batch_size=8).fit(X)


@pytest.fixture(scope="module")
def items(digits):
    return digits[0][:20]


@pytest.mark.parametrize("make", [_symbol_extractor, _gluon_extractor], ids=["module", "gluon"])
def test_round_trip_identical_and_every_corrupt_model_refused(make, items):
    ext = make(items)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ext)).transform(items),
                                  ext.transform(items))
    state = ext.__getstate__()
    owner = type(ext).__name__
    blobs = [k for k, v in state.items() if isinstance(v, NativeBlob)]
    assert blobs  # the symbol, its parameters (and the block) travel as sealed bytes
    for key in blobs:
        payload = state[key].payload.tobytes()
        for bad in (payload[:-1], payload[: len(payload) // 2],
                    payload[:40] + bytes([payload[40] ^ 4]) + payload[41:]):
            broken = dict(state, **{key: NativeBlob(owner, bad)})
            with pytest.raises(CorruptFileError, match=f"'{key}' failed the XXH3-128 checksum"):
                type(ext).__new__(type(ext)).__setstate__(broken)


@pytest.mark.parametrize("make", [_symbol_extractor, _gluon_extractor], ids=["module", "gluon"])
def test_bit_flips_in_a_pickled_extractor_never_load_silently(make, items):
    ext = make(items)
    reference = ext.transform(items)
    data = pickle.dumps(ext, protocol=5)
    rng = np.random.RandomState(0)
    silent = []
    for pos in rng.randint(0, len(data), 40):
        bad = bytearray(data)
        bad[pos] ^= 1 << (pos % 8)
        try:
            got = pickle.loads(bytes(bad)).transform(items)
        except Exception:  # noqa: BLE001 - refused: what we want
            continue
        if not np.array_equal(got, reference):
            silent.append(int(pos))
    assert not silent, f"flips at {silent} loaded silently with different features"
