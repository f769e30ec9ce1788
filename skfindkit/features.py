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

from .utils import import_optional
from .utils._safe_tree import loadable

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
def _l2(vector):
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _color_histogram(rgb, bins=(8, 4, 4)):
    """Joint HSV histogram, square-rooted (Hellinger) and L2-normalised."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(rgb).reshape(-1, 3)
    hist, _ = np.histogramdd(hsv, bins=bins, range=((0, 1), (0, 1), (0, 1)))
    return _l2(np.sqrt(hist.ravel() / hsv.shape[0]))


def _lbp_histogram(gray):
    """Uniform local binary patterns at two radii (rotation-invariant texture)."""
    from skimage.feature import local_binary_pattern

    gray = np.round(gray * 255).astype(np.uint8)
    parts = []
    for points, radius in ((8, 1), (16, 2)):
        codes = local_binary_pattern(gray, points, radius, method="uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=points + 2)
        parts.append(np.sqrt(hist / codes.size))
    return _l2(np.concatenate(parts))


def _hog_symmetric(gray):
    """HOG of the image plus HOG of its mirror image (mirror-invariant shape)."""
    from skimage.feature import hog

    options = dict(orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2),
                   feature_vector=True)
    return _l2(hog(gray, **options) + hog(gray[:, ::-1], **options))


_IMAGE_PARTS = {"color": _color_histogram, "lbp": _lbp_histogram, "hog": _hog_symmetric}


@loadable  # skfindkit.io stores it by name (its state: parts and size)
class ImageDescriptors:
    """Item -> concatenated hand-crafted descriptors (a picklable function).

    Used as the ``func`` of a :class:`~skfindkit.FunctionVectorLoader`: the
    image is decoded and resized by an :class:`~skfindkit.ImageLoader` and
    each part is L2-normalised and weighted so that every part counts the
    same in a cosine or euclidean distance.

    Parameters
    ----------
    parts : tuple of {"color", "lbp", "hog"}
        ``"color"``: joint HSV colour histogram (8 x 4 x 4 bins);
        ``"lbp"``: uniform local-binary-pattern histograms at radii 1 and 2;
        ``"hog"``: histogram of oriented gradients (16-pixel cells) summed
        with that of the mirrored image, so a mirrored photo matches.
    size : int
        Side of the square the image is resized to first.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit.features import ImageDescriptors
    >>> image = np.random.RandomState(0).randint(0, 256, (40, 50, 3), dtype=np.uint8)
    >>> ImageDescriptors(("color", "lbp"))(image).shape
    (156,)
    """

    def __init__(self, parts=("color", "lbp", "hog"), size=128):
        self.parts = tuple(parts)
        self.size = size

    def __call__(self, item):
        from .loaders import ImageLoader

        rgb = ImageLoader(size=(self.size, self.size)).transform([item])[0].astype(np.float64)
        gray = rgb @ np.array([0.2125, 0.7154, 0.0721])
        blocks = [
            _IMAGE_PARTS[part](rgb if part == "color" else gray) for part in self.parts
        ]
        return np.concatenate(blocks) / np.sqrt(len(blocks))

    def __repr__(self):
        return f"ImageDescriptors(parts={self.parts!r}, size={self.size})"


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


def _tfidf_steps(options):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from .extractors import SklearnFeatureExtractor

    vectorizer = TfidfVectorizer(
        input="filename", encoding=options["encoding"], decode_error="strict",
        sublinear_tf=True, max_features=2**14, dtype=np.float32,
    )
    densify = FunctionTransformer(_dense, accept_sparse=True)
    return [("extractor", SklearnFeatureExtractor(make_pipeline(vectorizer, densify)))]


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


_IMAGE_EXTRAS = (("PIL.Image", "image", "pillow"), ("skimage", "image", "scikit-image"))
_AUDIO_EXTRAS = (("soundfile", "audio", None), ("librosa", "audio", None))
_LEVEL = dict(normalize="rms", top_db=30)

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
        "pixels": FeatureSet("raw 32x32 RGB pixels (the old default)", "cosine",
                             _image_pixel_steps, _IMAGE_EXTRAS[:1]),
        "keras": FeatureSet(
            "MobileNetV2 (ImageNet) embeddings from a weights file given with --weights",
            "cosine", _keras_steps, _IMAGE_EXTRAS[:1] + (("keras", "keras", None),)),
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
            "MFCCs + deltas pooled over 3 time segments, standardised (the old default)",
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
            _tfidf_steps),
        "doc2vec": FeatureSet(
            "Doc2Vec paragraph vectors (64-d, trained on the folder; the old default)",
            "cosine", _doc2vec_steps, (("gensim", "text", None),), safe=False),
    },
}

DEFAULT_FEATURES = {"image": "color-lbp-hog", "audio": "mfcc", "text": "tfidf"}

# name -> (class name in skfindkit.indexes, module, extra, PyPI package)
INDEXES = {
    "exact": ("ExactIndex", None, None, None),
    "hnsw": ("HNSWIndex", "hnswlib", "hnswlib", None),
    "annoy": ("AnnoyIndex", "annoy", "annoy", None),
    "nmslib": ("NMSLibIndex", "nmslib", "nmslib", None),
    "faiss": ("FaissIndex", "faiss", "faiss", "faiss-cpu"),
}


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
    _, module, extra, package = INDEXES[index]
    for module_, extra_, package_ in feature_set.extras + ((module, extra, package),):
        if module_ is not None:
            import_optional(module_, extra_, package=package_)


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

    if index not in INDEXES:
        raise ValueError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")
    return getattr(indexes, INDEXES[index][0])(n_neighbors=n_neighbors, metric=metric)


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
        Nearest-neighbour index (all but ``"exact"`` need their extra).
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
    steps.append(("index", build_index(index, n_neighbors=n_neighbors,
                                       metric=metric or feature_set.metric)))
    return Pipeline(steps)
