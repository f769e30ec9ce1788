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
    return out


def available_instances():
    return [*index_instances(), *loader_instances(), *extractor_instances()]
