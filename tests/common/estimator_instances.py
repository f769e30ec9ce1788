"""Every public estimator of skfindkit, as the instances the contract suite checks.

Each class exported by ``skfindkit.indexes``, ``skfindkit.loaders`` or
``skfindkit.extractors`` (found by :func:`skfindkit.utils.discovery.all_estimators`)
has one line here: its name -> a function of the class returning its
instances (defaults and non-default configurations). The suite in
``tests/common/test_estimators.py`` fails when a public estimator is missing. Estimators
whose optional library (the class's ``_requires``) is not installed in the
running environment are not built by ``available_instances``;
``unavailable_instances`` stands in for them so that their checks are
reported as skipped, with the reason (the MXNet ones run in their own
environment, see the README).
"""

import hashlib
import importlib.metadata
import inspect
import os
import tempfile

from skfindkit.utils.discovery import all_estimators, requirements

from .._optional import MXNET_REASON, has as _has


def _sharded(cls):
    from skfindkit import ExactIndex, HNSWIndex

    out = [cls(), cls(ExactIndex(metric="cosine"), n_shards=3, mode="connectivity", n_jobs=2),
           cls(ExactIndex(metric="inner_product", batch_size=7), n_shards=2)]
    if not requires_missing_backend(HNSWIndex):
        out.append(cls(HNSWIndex(random_state=0), n_shards=3))
    return out


def _function_loaders(cls):
    import numpy as np

    return [cls(), cls(np.abs, n_jobs=2, on_error="zeros")]  # a ufunc: stable test ids


def _sklearn_extractors(cls):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    return [cls(PCA(n_components=1)),
            cls(LogisticRegression(), method="predict_proba", batch_size=7)]


# Dense indexes: the index contract tests and scikit-learn's checks.
INDEX_INSTANCES = {
    "ExactIndex": lambda cls: [cls(), cls(metric="cosine", mode="connectivity"),
                               cls(metric="inner_product", batch_size=7)],
    "AnnoyIndex": lambda cls: [
        cls(random_state=0),
        cls(metric="cosine", mode="connectivity", n_trees=5, search_k=200, random_state=0),
        cls(metric="inner_product", random_state=0)],
    "NMSLibIndex": lambda cls: [cls(), cls(metric="cosine", method="sw-graph", mode="connectivity"),
                                cls(metric="inner_product", method="seq_search")],
    "HNSWIndex": lambda cls: [
        cls(random_state=0),
        cls(metric="cosine", mode="connectivity", M=8, ef_search=20, random_state=0),
        cls(metric="inner_product", random_state=0),
        cls(metric="cosine", keep_vectors=False, refine=2, random_state=0)],
    "ShardedIndex": _sharded,
    "FaissIndex": lambda cls: [
        cls(), cls(factory="IVF1024,Flat", nprobe=4, metric="cosine", random_state=0),
        cls(factory="Flat", metric="inner_product", mode="connectivity"),
        cls(factory="HNSW16,SQ8", ef_search=32)],
    "MilvusIndex": lambda cls: [  # one embedded Milvus Lite store per process, a collection per fit
        cls(index_type="FLAT"), cls(metric="cosine", mode="connectivity", M=8, ef_search=32),
        cls(metric="inner_product", index_type="IVF_FLAT", nlist=8, nprobe=8)],
}
# Indexes of term counts (non-negative sparse input): not in the dense contract tests.
def _fusion(cls):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skfindkit import ExactIndex

    return [
        cls([("l2", ExactIndex()), ("cos", ExactIndex(metric="cosine"))]),
        cls([("scaled", make_pipeline(StandardScaler(), ExactIndex())),
             ("ip", ExactIndex(metric="inner_product"))],
            method="minmax", weights=[2.0, 1.0], depth=7, mode="connectivity"),
        cls([("l2", ExactIndex()), ("cos", ExactIndex(metric="cosine"))],
            method="zscore", n_neighbors=3, rrf_k=10),
    ]


# Meta-indexes whose answers are not one metric's neighbours (fused rankings):
# scikit-learn's checks, not the KNeighborsTransformer-equivalence tests.
FUSION_INDEX_INSTANCES = {"RankFusionIndex": _fusion}

TEXT_INDEX_INSTANCES = {
    "BM25Index": lambda cls: [cls(), cls(n_neighbors=3, k1=0.9, b=0.4, mode="connectivity",
                                         batch_size=7)],
}
LOADER_INSTANCES = {
    "FunctionVectorLoader": _function_loaders,
    "ImageLoader": lambda cls: [cls(), cls((8, 8), color_mode="grayscale", flatten=True, n_jobs=2)],
    "STFTVectorLoader": lambda cls: [
        cls(), cls(representation="mfcc", deltas=1, n_segments=3, n_jobs=2)],
    "EssentiaVectorLoader": lambda cls: [cls(descriptors=["mfcc", "tonal"], pooling="mean")],
    "Doc2VecLoader": lambda cls: [cls(), cls(dm=0, vector_size=16, n_jobs=2)],
}
EXTRACTOR_INSTANCES = {
    "SklearnFeatureExtractor": _sklearn_extractors,
    "KerasFeatureExtractor": lambda cls: _keras_instances(cls),
    "MXNetFeatureExtractor": lambda cls: _mxnet_instances(
        cls, "any-width-mxnet", _save_mxnet, "tanh", "max"),
    "GluonFeatureExtractor": lambda cls: _mxnet_instances(
        cls, "any-width-gluon", _save_gluon, "net_conv0", "avg"),
}


def _instances(family, table, exclude=()):
    out = []
    for name, cls in all_estimators(family):
        if name in table and name not in exclude and not requires_missing_backend(cls):
            out += table[name](cls)
    return out


def index_instances():
    return _instances("index", INDEX_INSTANCES, exclude=TEXT_INDEX_INSTANCES)


def fusion_index_instances():
    return _instances("index", FUSION_INDEX_INSTANCES)


def text_index_instances():
    """Indexes of term counts (non-negative sparse input): not in the dense contract tests."""
    return _instances("index", TEXT_INDEX_INSTANCES)


def loader_instances():
    return _instances("loader", LOADER_INSTANCES)


def extractor_instances():
    return _instances("extractor", EXTRACTOR_INSTANCES)


def listed_classes():
    """Names of the estimators that have a line in one of the tables above."""
    return {*INDEX_INSTANCES, *TEXT_INDEX_INSTANCES, *FUSION_INDEX_INSTANCES, *LOADER_INSTANCES,
            *EXTRACTOR_INSTANCES}


# Tiny networks that accept any number of features (the checks vary it),
# given as files: a path param hashes stably, a model object does not.
def _write(path, save):  # one file per content, written atomically
    tmp = f"{path}.{os.getpid()}.tmp"
    save(tmp)
    os.replace(tmp, path)


def _save_keras(path):
    import keras

    inputs = keras.Input(shape=(None,))
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Conv1D(4, 1, activation="tanh", name="conv")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    keras.Model(inputs, keras.layers.Dense(3, name="dense")(x)).save(path + ".keras")
    os.replace(path + ".keras", path)


#: model files named by instances but written only when a test uses them
#: (tests/conftest.py): collecting the suite then never imports TensorFlow
_LAZY_FILES = {}


def ensure_model_files(params):
    """Write the not yet written model files that the estimators in ``params`` name."""
    for value in params:
        if isinstance(value, type) or not hasattr(value, "get_params"):
            continue  # classes and other parameters name no file
        path = value.get_params(deep=False).get("model")
        if isinstance(path, str) and path in _LAZY_FILES and not os.path.exists(path):
            _write(path, _LAZY_FILES[path])


def _keras_instances(cls):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras_path = _model_path("any-width.keras", _save_keras, "keras")
    _LAZY_FILES[keras_path] = _save_keras
    return [cls(keras_path), cls(keras_path, layer="conv", pooling="max", batch_size=7)]


def _save_mxnet(mx, path):  # data -> conv(k=1) -> tanh -> mean over width -> fc
    import numpy as np

    x = mx.sym.expand_dims(mx.sym.var("data"), axis=1)
    x = mx.sym.Convolution(x, kernel=(1,), num_filter=4, name="conv")
    x = mx.sym.mean(mx.sym.Activation(x, act_type="tanh", name="tanh"), axis=2)
    rs = np.random.RandomState(0)
    shapes = {"conv_weight": (4, 1, 1), "conv_bias": (4,), "fc_weight": (3, 4),
              "fc_bias": (3,)}
    mx.model.save_checkpoint(
        path, 0, mx.sym.FullyConnected(x, num_hidden=3, name="fc"),
        {k: mx.nd.array(rs.randn(*v)) for k, v in shapes.items()}, {})


def _save_gluon(mx, path):
    net = mx.gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(mx.gluon.nn.HybridLambda(lambda F, x: F.expand_dims(x, axis=1)),
                mx.gluon.nn.Conv1D(4, 1, activation="tanh"),
                mx.gluon.nn.GlobalAvgPool1D(), mx.gluon.nn.Dense(3))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.ones((2, 5)))
    net.export(path, 0)


def _mxnet_instances(cls, name, save, layer, pooling):
    """The default and a cut-and-pooled instance over a tiny checkpoint
    (files ``<prefix>-symbol.json`` and ``<prefix>-0000.params``)."""
    from skfindkit.extractors import import_mxnet

    mx = import_mxnet()
    prefix = _model_path(name, save, mx)
    if not os.path.exists(f"{prefix}-0000.params"):
        tmp = f"{prefix}.{os.getpid()}"
        save(mx, tmp)
        for suffix in ("-symbol.json", "-0000.params"):  # params last: complete
            os.replace(tmp + suffix, prefix + suffix)
    return [cls(prefix), cls(prefix, layer=layer, pooling=pooling, batch_size=7)]


def _model_path(name, save, library):
    """Cache path of a test model keyed by its content.

    The key hashes the source of the function that builds the model (layers,
    weights, seeds) and the framework's version, so a changed test network
    never silently reuses an old file; models are shared between the xdist
    workers and runs of one machine.
    """
    source = inspect.getsource(save).encode()
    version = (importlib.metadata.version(library) if isinstance(library, str)
               else getattr(library, "__version__", "")).encode()
    key = hashlib.sha256(source + b"\0" + version).hexdigest()[:16]
    cache = os.path.join(tempfile.gettempdir(), "skfindkit-test-models")
    os.makedirs(cache, exist_ok=True)
    root, ext = os.path.splitext(name)
    return os.path.join(cache, f"{root}-{key}{ext}")


def _mxnet_works():
    if not _has("mxnet"):
        return False
    from skfindkit.extractors import import_mxnet

    try:
        import_mxnet()
    except ImportError:  # e.g. installed next to numpy 2, which MXNet cannot use
        return False
    return True


def _missing_requirement(cls):
    """The first import name of ``cls``'s requirements not usable here, or None."""
    for requirement in requirements(cls):
        module = requirement.import_name
        if not (_mxnet_works() if module == "mxnet" else _has(module)):
            return module
    return None


def requires_missing_backend(cls):
    """True for estimators whose backend is not installed in this environment."""
    return _missing_requirement(cls) is not None


def missing_backend_reason(cls):
    """Why instances of ``cls`` cannot be built here (None: they can)."""
    module = _missing_requirement(cls)
    if module is None:
        return None
    if module == "mxnet":
        return MXNET_REASON
    return f"needs {module}: not installed in this environment"


def unavailable_instances():
    """``(instance, reason)`` standing in for each estimator whose backend is missing.

    The instance is built from the class alone (``__init__`` imports nothing),
    so scikit-learn can list the checks that are skipped; it is never fitted.
    """
    out = []
    for _, cls in all_estimators():
        reason = missing_backend_reason(cls)
        if reason is None:
            continue
        required = [p for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        out.append((cls(*[f"<{p.name}: {reason}>" for p in required]), reason))
    return out


def available_instances():
    return [*index_instances(), *text_index_instances(), *fusion_index_instances(),
            *loader_instances(), *extractor_instances()]
