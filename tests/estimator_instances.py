"""Every public estimator of skfindkit, as the instances the contract suite checks.

Adding an estimator to skfindkit means adding at least one instance here; the
suite in ``test_estimators.py`` fails when a public estimator is missing.
Estimators whose optional backend is not installed in the running environment
are not built by ``available_instances``; ``unavailable_instances`` stands in
for them so that their checks are reported as skipped, with the reason (the
MXNet ones run in their own environment, see the README).
"""

import hashlib
import inspect
import os
import tempfile

from ._optional import MXNET_REASON, has as _has


def index_instances():
    from skfindkit import ExactIndex

    out = [
        ExactIndex(),
        ExactIndex(metric="cosine", mode="connectivity"),
        ExactIndex(metric="inner_product", batch_size=7),
    ]
    # --- approximate indexes (issue 6) are listed below this line ---
    if _has("annoy"):
        from skfindkit import AnnoyIndex

        out += [
            AnnoyIndex(random_state=0),
            AnnoyIndex(metric="cosine", mode="connectivity", n_trees=5, search_k=200, random_state=0),
            AnnoyIndex(metric="inner_product", random_state=0),
        ]
    if _has("nmslib"):
        from skfindkit import NMSLibIndex

        out += [
            NMSLibIndex(),
            NMSLibIndex(metric="cosine", method="sw-graph", mode="connectivity"),
            NMSLibIndex(metric="inner_product", method="seq_search"),
        ]
    if _has("hnswlib"):
        from skfindkit import HNSWIndex

        out += [
            HNSWIndex(random_state=0),
            HNSWIndex(metric="cosine", mode="connectivity", M=8, ef_search=20, random_state=0),
            HNSWIndex(metric="inner_product", random_state=0),
            HNSWIndex(metric="cosine", keep_vectors=False, refine=2, random_state=0),
        ]
    # --- sharded indexes (issue 10): exact shards, and approximate ones ---
    from skfindkit import ShardedIndex

    out += [
        ShardedIndex(),
        ShardedIndex(ExactIndex(metric="cosine"), n_shards=3, mode="connectivity", n_jobs=2),
        ShardedIndex(ExactIndex(metric="inner_product", batch_size=7), n_shards=2),
    ]
    if _has("hnswlib"):
        from skfindkit import HNSWIndex

        out.append(ShardedIndex(HNSWIndex(random_state=0), n_shards=3))
    if _has("faiss"):
        from skfindkit import FaissIndex

        out += [
            FaissIndex(),
            FaissIndex(factory="IVF1024,Flat", nprobe=4, metric="cosine", random_state=0),
            FaissIndex(factory="Flat", metric="inner_product", mode="connectivity"),
            FaissIndex(factory="HNSW16,SQ8", ef_search=32),
        ]
    if _has("pymilvus") and _has("milvus_lite"):
        from skfindkit import MilvusIndex

        out += [  # one embedded Milvus Lite store per process, a collection per fit
            MilvusIndex(index_type="FLAT"),
            MilvusIndex(metric="cosine", mode="connectivity", M=8, ef_search=32),
            MilvusIndex(metric="inner_product", index_type="IVF_FLAT", nlist=8, nprobe=8),
        ]
    return out


def text_index_instances():
    """Indexes of term counts (non-negative sparse input): not in the dense contract tests."""
    from skfindkit import BM25Index

    return [BM25Index(), BM25Index(n_neighbors=3, k1=0.9, b=0.4, mode="connectivity", batch_size=7)]


def fusion_index_instances():
    """Rank fusion over indexes or pipelines of the same items (dense input in the checks)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skfindkit import ExactIndex, RankFusionIndex

    return [
        RankFusionIndex([("l2", ExactIndex()), ("cos", ExactIndex(metric="cosine"))]),
        RankFusionIndex([("scaled", make_pipeline(StandardScaler(), ExactIndex())),
                         ("ip", ExactIndex(metric="inner_product"))],
                        method="minmax", weights=[2.0, 1.0], depth=7, mode="connectivity"),
        RankFusionIndex([("l2", ExactIndex()), ("cos", ExactIndex(metric="cosine"))],
                        method="zscore", n_neighbors=3, rrf_k=10),
    ]


def loader_instances():
    import numpy as np

    from skfindkit import FunctionVectorLoader, ImageLoader

    out = [
        FunctionVectorLoader(),
        FunctionVectorLoader(np.abs, n_jobs=2, on_error="zeros"),  # a ufunc: stable test ids
        ImageLoader(),
        ImageLoader((8, 8), color_mode="grayscale", flatten=True, n_jobs=2),
    ]
    if _has("librosa") and _has("soundfile"):
        from skfindkit import STFTVectorLoader

        out += [
            STFTVectorLoader(),
            STFTVectorLoader(representation="mfcc", deltas=1, n_segments=3, n_jobs=2),
        ]
    if _has("essentia") and _has("soundfile"):
        from skfindkit import EssentiaVectorLoader

        out.append(EssentiaVectorLoader(descriptors=["mfcc", "tonal"], pooling="mean"))
    if _has("gensim"):
        from skfindkit import Doc2VecLoader

        out += [Doc2VecLoader(), Doc2VecLoader(dm=0, vector_size=16, n_jobs=2)]
    # --- loaders (issue 5) are listed below this line ---
    return out


def extractor_instances():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from skfindkit import SklearnFeatureExtractor

    out = [
        SklearnFeatureExtractor(PCA(n_components=1)),
        SklearnFeatureExtractor(LogisticRegression(), method="predict_proba", batch_size=7),
    ]
    # --- extractors (issue 4) are listed below this line ---
    # Tiny networks that accept any number of features (the checks vary it),
    # given as files: a path param hashes stably, a model object does not.
    def saved(name, save, library):  # one file per content, written atomically
        path = _model_path(name, save, library)
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            save(tmp)
            os.replace(tmp, path)
        return path

    if _has("keras") and _has("tensorflow"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        from skfindkit import KerasFeatureExtractor

        def save_keras(path):
            inputs = keras.Input(shape=(None,))
            x = keras.layers.Reshape((-1, 1))(inputs)
            x = keras.layers.Conv1D(4, 1, activation="tanh", name="conv")(x)
            x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
            keras.Model(inputs, keras.layers.Dense(3, name="dense")(x)).save(path + ".keras")
            os.replace(path + ".keras", path)

        keras_path = saved("any-width.keras", save_keras, keras)
        out += [
            KerasFeatureExtractor(keras_path),
            KerasFeatureExtractor(keras_path, layer="conv", pooling="max", batch_size=7),
        ]
    if _mxnet_works():
        import numpy as np

        from skfindkit import GluonFeatureExtractor, MXNetFeatureExtractor
        from skfindkit.extractors import import_mxnet

        mx = import_mxnet()

        def save_mxnet(path):  # data -> conv(k=1) -> tanh -> mean over width -> fc
            x = mx.sym.expand_dims(mx.sym.var("data"), axis=1)
            x = mx.sym.Convolution(x, kernel=(1,), num_filter=4, name="conv")
            x = mx.sym.mean(mx.sym.Activation(x, act_type="tanh", name="tanh"), axis=2)
            rs = np.random.RandomState(0)
            shapes = {"conv_weight": (4, 1, 1), "conv_bias": (4,), "fc_weight": (3, 4),
                      "fc_bias": (3,)}
            mx.model.save_checkpoint(
                path, 0, mx.sym.FullyConnected(x, num_hidden=3, name="fc"),
                {k: mx.nd.array(rs.randn(*v)) for k, v in shapes.items()}, {})

        def save_gluon(path):
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

        def saved_prefix(name, save):  # checkpoint files <prefix>-symbol.json, -0000.params
            prefix = _model_path(name, save, mx)
            if not os.path.exists(f"{prefix}-0000.params"):
                tmp = f"{prefix}.{os.getpid()}"
                save(tmp)
                for suffix in ("-symbol.json", "-0000.params"):  # params last: complete
                    os.replace(tmp + suffix, prefix + suffix)
            return prefix

        mx_prefix = saved_prefix("any-width-mxnet", save_mxnet)
        gluon_prefix = saved_prefix("any-width-gluon", save_gluon)
        out += [
            MXNetFeatureExtractor(mx_prefix),
            MXNetFeatureExtractor(mx_prefix, layer="tanh", pooling="max", batch_size=7),
            GluonFeatureExtractor(gluon_prefix),
            GluonFeatureExtractor(gluon_prefix, layer="net_conv0", pooling="avg", batch_size=7),
        ]
    return out


# the module each optional estimator needs; the MXNet environment (numpy < 2)
# installs only mxnet and the image extra, the main one everything else
_BACKENDS = {
    "KerasFeatureExtractor": "keras",
    "MXNetFeatureExtractor": "mxnet",
    "GluonFeatureExtractor": "mxnet",
    "AnnoyIndex": "annoy",
    "NMSLibIndex": "nmslib",
    "HNSWIndex": "hnswlib",
    "FaissIndex": "faiss",
    "MilvusIndex": "milvus_lite",
    "Doc2VecLoader": "gensim",
    "EssentiaVectorLoader": "essentia",
    "STFTVectorLoader": "librosa",
    "ImageLoader": "PIL",
}


def _model_path(name, save, library):
    """Cache path of a test model keyed by its content.

    The key hashes the source of the function that builds the model (layers,
    weights, seeds) and the framework's version, so a changed test network
    never silently reuses an old file; models are shared between the xdist
    workers and runs of one machine.
    """
    source = inspect.getsource(save).encode()
    version = getattr(library, "__version__", "").encode()
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


def _backend_available(module):
    return _mxnet_works() if module == "mxnet" else _has(module)


def requires_missing_backend(cls):
    """True for estimators whose backend is not installed in this environment."""
    module = _BACKENDS.get(cls.__name__)
    return module is not None and not _backend_available(module)


def missing_backend_reason(cls):
    """Why instances of ``cls`` cannot be built here (None: they can)."""
    if not requires_missing_backend(cls):
        return None
    module = _BACKENDS[cls.__name__]
    if module == "mxnet":
        return MXNET_REASON
    return f"needs {module}: not installed in this environment"


def unavailable_instances():
    """``(instance, reason)`` standing in for each estimator whose backend is missing.

    The instance is built from the class alone (``__init__`` imports nothing),
    so scikit-learn can list the checks that are skipped; it is never fitted.
    """
    import skfindkit

    out = []
    for name in sorted(_BACKENDS):
        cls = getattr(skfindkit, name)
        reason = missing_backend_reason(cls)
        if reason is None:
            continue
        required = [p for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        out.append((cls(*[f"<{p.name}: {reason}>" for p in required]), reason))
    return out


def available_instances():
    return [*index_instances(), *text_index_instances(), *fusion_index_instances(),
            *loader_instances(),
            *extractor_instances()]
