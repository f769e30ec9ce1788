"""Named feature sets: ready-made retrieval pipelines for folders of images, sounds and texts.

``skfindkit index --features NAME`` builds its pipeline here, and so can
Python code::

    from skfindkit.features import build_pipeline
    system = build_pipeline("image", "color-lbp-hog", n_neighbors=10)
    system.fit(list_of_image_paths)

Every feature set is made of the library's own estimators (a loader, maybe a
scaler or an extractor, and an index); the defaults were chosen by measuring
precision@k on labelled collections (``benchmarks/bench_defaults.py``,
results in ``benchmarks/results/defaults.md``). What each set computes and
when to choose another is in ``docs/cli.md``.
"""

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .extractors import KerasFeatureExtractor
from .loaders import Doc2VecLoader, ImageLoader, STFTVectorLoader
from .utils import import_optional
from .loaders._descriptors import ImageDescriptors
from .utils._safe_tree import loadable
from .utils.discovery import Requirement, requirements

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURE_SETS",
    "INDEXES",
    "ImageDescriptors",
    "build_index",
    "build_pipeline",
    "check_available",
]


# ------------------------------------------------------------------ images
def _image_descriptor_steps(parts, options):
    from .loaders import FunctionVectorLoader

    return [("loader", FunctionVectorLoader(ImageDescriptors(parts), **options["loader"]))]


def _image_pixel_steps(options):
    from .loaders import ImageLoader

    return [("loader", ImageLoader(size=(32, 32), flatten=True, **options["loader"]))]


def _keras_steps(options):
    from .extractors import KerasFeatureExtractor
    from .loaders import ImageLoader

    weights = options.get("weights")
    if weights is None:
        raise ValueError(
            "--features keras needs --weights PATH: the weights file of "
            "keras.applications.MobileNetV2 (include_top=False, 224x224); "
            "skfindkit downloads nothing"
        )
    keras = import_optional("keras", "keras")
    network = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), include_top=False, pooling="avg", weights=weights
    )
    return [
        ("loader", ImageLoader(size=(224, 224), scale="symmetric", **options["loader"])),
        ("extractor", KerasFeatureExtractor(network)),
    ]


# ------------------------------------------------------------------- audio
def _audio_steps(loader_params, scale, options):
    from sklearn.preprocessing import StandardScaler

    from .loaders import STFTVectorLoader

    steps = [("loader", STFTVectorLoader(**loader_params, **options["loader"]))]
    if scale:
        steps.append(("scale", StandardScaler()))
    return steps


# -------------------------------------------------------------------- text
@loadable  # skfindkit.io stores it by name
def _dense(X):
    """Sparse -> dense float32 rows (skfindkit indexes take dense arrays)."""
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


def _text_steps(options, analyzer=None, bm25=False):
    """Word counts (``bm25``) or sublinear TF-IDF of the 16384 most frequent terms, dense."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from .extractors import SklearnFeatureExtractor
    from .text import TextAnalyzer

    vectorizer = (CountVectorizer if bm25 else partial(TfidfVectorizer, sublinear_tf=True))(
        input="filename", encoding=options["encoding"], decode_error="strict",
        max_features=2**14, dtype=np.float32,
        analyzer=TextAnalyzer(**analyzer) if analyzer is not None else "word",
    )
    densify = FunctionTransformer(_dense, accept_sparse=True)
    return [("extractor", SklearnFeatureExtractor(make_pipeline(vectorizer, densify)))]


def _bm25_index(n_neighbors):
    from .indexes import BM25Index

    return BM25Index(n_neighbors=n_neighbors)


def _doc2vec_steps(options):
    from .loaders import Doc2VecLoader

    return [("loader", Doc2VecLoader(input="filename", encoding=options["encoding"],
                                     min_count=1, vector_size=64, epochs=40,
                                     **options["loader"]))]


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class FeatureSet:
    """One named way to turn files of a kind into vectors."""

    summary: str
    metric: str
    steps: object  # callable(options) -> list of (name, estimator)
    extras: tuple = field(default=())  # (module, extra, package) that must import
    safe: bool = True  # skfindkit.io can save it (False: joblib only)
    index: object = None  # callable(n_neighbors) -> its own index (None: --index, --metric)


def _needs(*sources):
    """``(module, extra, package)`` of the libraries estimator classes declare
    (``_requires``) or of requirements given directly."""
    needed = [r for source in sources
              for r in ((source,) if isinstance(source, Requirement) else requirements(source))]
    return tuple(dict.fromkeys(
        (r.import_name, r.extra, None if r.library == r.import_name else r.library)
        for r in needed))


# the image descriptors' library (the loader decodes, scikit-image describes)
_SCIKIT_IMAGE = Requirement(library="scikit-image", import_name="skimage", extra="image")
_IMAGE_EXTRAS = _needs(ImageLoader, _SCIKIT_IMAGE)
_AUDIO_EXTRAS = _needs(STFTVectorLoader)
_LEVEL = dict(normalize="rms", top_db=30)
_STEMMED = dict(stop_words="english", stem=True)
_STEMMER_EXTRAS = (("Stemmer", "text", "PyStemmer"),)

FEATURE_SETS = {
    "image": {
        "hog": FeatureSet("mirror-symmetric histogram of oriented gradients", "cosine",
                          partial(_image_descriptor_steps, ("hog",)), _IMAGE_EXTRAS),
        "color-lbp-hog": FeatureSet(
            "HSV colour histogram + LBP texture + mirror-symmetric HOG shape (128x128)",
            "cosine", partial(_image_descriptor_steps, ("color", "lbp", "hog")),
            _IMAGE_EXTRAS),
        "hog-color": FeatureSet(
            "mirror-symmetric HOG shape + HSV colour histogram (128x128)", "cosine",
            partial(_image_descriptor_steps, ("hog", "color")), _IMAGE_EXTRAS),
        "color-lbp": FeatureSet(
            "HSV colour histogram + LBP texture (ignores layout: crops, flips, rotations)",
            "cosine", partial(_image_descriptor_steps, ("color", "lbp")), _IMAGE_EXTRAS),
        "color": FeatureSet("HSV colour histogram (8x4x4 bins)", "cosine",
                            partial(_image_descriptor_steps, ("color",)), _IMAGE_EXTRAS),
        "lbp": FeatureSet("local binary pattern texture histograms", "cosine",
                          partial(_image_descriptor_steps, ("lbp",)), _IMAGE_EXTRAS),
        "pixels": FeatureSet("raw 32x32 RGB pixels (a baseline)", "cosine",
                             _image_pixel_steps, _needs(ImageLoader)),
        "keras": FeatureSet(
            "MobileNetV2 (ImageNet) embeddings from a weights file given with --weights",
            "cosine", _keras_steps, _needs(ImageLoader, KerasFeatureExtractor)),
    },
    "audio": {
        "mel": FeatureSet(
            "64 log-mel bands, mean and std over the clip (RMS-normalised, silences "
            "quieter than 30 dB below the peak trimmed)",
            "cosine", partial(_audio_steps, dict(representation="mel", **_LEVEL), False),
            _AUDIO_EXTRAS),
        "mfcc": FeatureSet(
            "20 MFCCs, mean and std over the clip (RMS-normalised, trimmed at 30 dB)",
            "cosine", partial(_audio_steps, dict(representation="mfcc", n_mfcc=20, **_LEVEL),
                              False), _AUDIO_EXTRAS),
        "mfcc-segments": FeatureSet(
            "MFCCs + deltas pooled over 3 time segments, standardised",
            "euclidean", partial(_audio_steps, dict(representation="mfcc", n_mfcc=20,
                                                    normalize="rms", top_db=60, deltas=1,
                                                    n_segments=3), True), _AUDIO_EXTRAS),
        "stft": FeatureSet(
            "log STFT magnitudes (513 bins), mean and std over the clip", "cosine",
            partial(_audio_steps, dict(representation="log", **_LEVEL), False),
            _AUDIO_EXTRAS),
    },
    "text": {
        "tfidf": FeatureSet(
            "TF-IDF of words (sublinear counts, 16384 most frequent words)", "cosine",
            _text_steps),
        "tfidf-stem": FeatureSet(
            "TF-IDF of Snowball word stems (English stop words dropped, accents folded)",
            "cosine", partial(_text_steps, analyzer=_STEMMED), _STEMMER_EXTRAS),
        "bm25-stem": FeatureSet(
            "BM25 ranking (k1=1.5, b=0.75) of Snowball word stems (English stop words "
            "dropped, accents folded; its own index: --index and --metric do not apply)",
            "bm25", partial(_text_steps, analyzer=_STEMMED, bm25=True), _STEMMER_EXTRAS,
            index=_bm25_index),
        "doc2vec": FeatureSet(
            "Doc2Vec paragraph vectors (64-d, trained on the folder)",
            "cosine", _doc2vec_steps, _needs(Doc2VecLoader), safe=False),
    },
}

DEFAULT_FEATURES = {"image": "color-lbp-hog", "audio": "mfcc", "text": "tfidf"}


def _indexes():
    """name -> (class name in skfindkit.indexes, module, extra, PyPI package), from the
    indexes' own declarations (:func:`skfindkit.utils.discovery.index_backends`)."""
    from .utils.discovery import index_backends, requirements

    table = {}
    for name, cls in index_backends().items():
        first = (*requirements(cls), None)[0]
        table[name] = (cls.__name__, None, None, None) if first is None else (
            cls.__name__, first.import_name, first.extra,
            None if first.library == first.import_name else first.library)
    return table


def __getattr__(name):
    if name == "INDEXES":  # computed: an index exported by skfindkit.indexes is listed
        return _indexes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_available(kind, features="default", index="exact"):
    """Import what a feature set and an index need; a one-line ImportError if missing.

    Parameters
    ----------
    kind : {"image", "audio", "text"}
    features : str, default="default"
        Name in ``FEATURE_SETS[kind]``, or ``"default"``.
    index : str, default="exact"
        Name in ``INDEXES``.
    """
    feature_set = _feature_set(kind, features)
    from . import indexes
    from .utils.discovery import requirements

    for module, extra, package in feature_set.extras:
        import_optional(module, extra, package=package)
    for requirement in requirements(getattr(indexes, _indexes()[index][0])):
        requirement.load()


def _feature_set(kind, features):
    if kind not in FEATURE_SETS:
        raise ValueError(f"kind must be one of {sorted(FEATURE_SETS)}, got {kind!r}")
    name = DEFAULT_FEATURES[kind] if features in (None, "default") else features
    if name not in FEATURE_SETS[kind]:
        raise ValueError(
            f"unknown {kind} feature set {name!r}; choose one of "
            f"{', '.join(FEATURE_SETS[kind])}"
        )
    return FEATURE_SETS[kind][name]


def build_index(index="exact", *, n_neighbors=10, metric="euclidean"):
    """An unfitted skfindkit index by short name (``INDEXES``)."""
    from . import indexes

    table = _indexes()
    if index not in table:
        raise ValueError(f"index must be one of {', '.join(table)}, got {index!r}")
    return getattr(indexes, table[index][0])(n_neighbors=n_neighbors, metric=metric)


def build_pipeline(kind, features="default", *, n_neighbors=10, metric=None, index="exact",
                   encoding="utf-8", weights=None, n_jobs=None, verbose=0, on_error="raise"):
    """A retrieval pipeline (loader [+ scaler/extractor] + index) for files of ``kind``.

    Parameters
    ----------
    kind : {"image", "audio", "text"}
        What the files hold.
    features : str, default="default"
        A name in ``FEATURE_SETS[kind]`` (``"default"``: ``DEFAULT_FEATURES[kind]``).
    n_neighbors : int, default=10
        Default results per query.
    metric : {"euclidean", "cosine", "inner_product"}, default=None
        Distance; ``None`` uses the feature set's own choice.
    index : {"exact", "hnsw", "annoy", "nmslib", "faiss"}, default="exact"
        Nearest-neighbour index (all but ``"exact"`` need their extra). A feature
        set that ranks with its own index (``"bm25-stem"``) takes neither
        ``index`` nor ``metric``: ``ValueError``.
    encoding : str, default="utf-8"
        Encoding of text files.
    weights : str, default=None
        Weights file of the ``"keras"`` image feature set.
    n_jobs, verbose, on_error
        Passed to the loader.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted; its first step takes file paths.

    Examples
    --------
    >>> from skfindkit.features import build_pipeline
    >>> [name for name, _ in build_pipeline("audio", "mfcc-segments").steps]
    ['loader', 'scale', 'index']
    """
    from sklearn.pipeline import Pipeline

    feature_set = _feature_set(kind, features)
    options = {"encoding": encoding, "weights": weights,
               "loader": dict(n_jobs=n_jobs, verbose=verbose, on_error=on_error)}
    steps = feature_set.steps(options)
    if feature_set.index is not None:  # a set that ranks with its own index
        if index != "exact" or metric not in (None, feature_set.metric):
            raise ValueError(
                f"the {kind} feature set {features!r} ranks with its own "
                f"{feature_set.metric} index: --index and --metric do not apply to it")
        steps.append(("index", feature_set.index(n_neighbors)))
    else:
        steps.append(("index", build_index(index, n_neighbors=n_neighbors,
                                           metric=metric or feature_set.metric)))
    return Pipeline(steps)
