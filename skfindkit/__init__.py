"""skfindkit: content-based information retrieval as scikit-learn pipelines.

A retrieval system is a plain :class:`sklearn.pipeline.Pipeline` of a loader
(raw items -> vectors), an optional feature extractor and an index (a
``KNeighborsTransformer``-compatible nearest-neighbour estimator)::

    from sklearn.pipeline import make_pipeline
    from sklearn.decomposition import PCA
    from skfindkit import SklearnFeatureExtractor, ExactIndex

    system = make_pipeline(SklearnFeatureExtractor(PCA(16)), ExactIndex(n_neighbors=10))

Save a fitted system with :func:`skfindkit.io.save` and load it with
:func:`skfindkit.io.load`, which runs no code from the file. Everything also
pickles (``joblib.dump``), but loading a pickle or joblib file runs code chosen
by whoever wrote it: ``joblib.load`` trusted files only.
"""

__version__ = "0.1.0"

from . import extractors, indexes, io, loaders, metrics, text  # noqa: E402
from .extractors import *  # noqa: E402,F401,F403
from .indexes import *  # noqa: E402,F401,F403
from .loaders import *  # noqa: E402,F401,F403
from .search import SearchResult, attach_keys, attach_metadata, search  # noqa: E402

__all__ = [
    "__version__",
    "metrics",
    "io",
    "text",
    "search",
    "attach_keys",
    "attach_metadata",
    "SearchResult",
    *indexes.__all__,
    *loaders.__all__,
    *extractors.__all__,
]
