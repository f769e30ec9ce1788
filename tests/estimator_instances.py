"""Every public estimator of skfindkit, as the instances the contract suite checks.

Adding an estimator to skfindkit means adding at least one instance here; the
suite in ``test_estimators.py`` fails when a public estimator is missing.
Estimators whose optional backend is not installed in the running environment
are left out by ``available_instances`` (the MXNet ones run in their own
environment, see the README).
"""

import importlib.util

# name of an optional module -> instances that need it are built only if present
def _has(module):
    return importlib.util.find_spec(module) is not None


def index_instances():
    from skfindkit import ExactIndex

    out = [
        ExactIndex(),
        ExactIndex(metric="cosine", mode="connectivity"),
        ExactIndex(metric="inner_product", batch_size=7),
    ]
    # --- approximate indexes (issue 6) are listed below this line ---
    return out


def loader_instances():
    import numpy as np

    from skfindkit import FunctionVectorLoader, ImageLoader

    out = [
        FunctionVectorLoader(),
        FunctionVectorLoader(np.sort, n_jobs=2, on_error="zeros"),
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
    import os
    import tempfile

    cache = os.path.join(tempfile.gettempdir(), "skfindkit-test-models")
    os.makedirs(cache, exist_ok=True)

    def saved(name, save):  # build once per machine, atomically (xdist workers)
        path = os.path.join(cache, name)
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

        keras_path = saved("any-width.keras", save_keras)
        out += [
            KerasFeatureExtractor(keras_path),
            KerasFeatureExtractor(keras_path, layer="conv", pooling="max", batch_size=7),
        ]
    return out


def requires_missing_backend(cls):
    """True for estimators whose backend is not installable in this environment."""
    return cls.__name__ in {"MXNetFeatureExtractor", "GluonFeatureExtractor"} and not _has("mxnet")


def available_instances():
    return [*index_instances(), *loader_instances(), *extractor_instances()]
