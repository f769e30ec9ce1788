"""Kinds of items: which files are images, sounds or texts, and what a pipeline searches.

Image files are those Pillow opens (its registry of readable formats), sound
files those libsndfile reads (soundfile's registry) plus MP3; texts are plain
text files. :func:`describe_pipeline` is the one place that decides what a
fitted pipeline takes as a query: the command line, the service and the demo
all ask it.
"""

import functools
import os
from dataclasses import dataclass

__all__ = ["KINDS", "PipelineSpec", "describe_pipeline", "file_endings", "kind_of_file"]

KINDS = ("audio", "image", "text")
TEXT_ENDINGS = (".txt", ".text", ".md", ".rst")
# soundfile's format names that are not the files' endings
_AUDIO_ALIASES = {"aiff": (".aif", ".aiff", ".aifc"), "ogg": (".ogg", ".oga", ".opus"),
                  "ircam": (".sf",), "svx": (".iff", ".8svx"), "nist": (".nist", ".sph"),
                  "wavex": (".wav",), "mpc2k": (".mpc",), "mp3": (".mp3",)}
_NOT_FILES = {"raw", "mat4", "mat5"}  # header-less samples, Matlab data: not sound files
# Pillow formats it does not decode itself: EPS runs Ghostscript, MPEG is only identified
_NOT_DECODED = {"EPS", "MPEG"}


@functools.cache
def _image_endings():
    try:
        from PIL import Image, ImageFile
    except ImportError:  # the image extra is missing: no file is an image here
        return ()
    Image.init()
    readable = {name for name, (factory, _) in Image.OPEN.items()
                if name not in _NOT_DECODED and not (
                    isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))}
    return tuple(sorted(ending for ending, name in Image.registered_extensions().items()
                        if name in readable))


@functools.cache
def _audio_endings():
    try:
        import soundfile
    except (ImportError, OSError):  # no libsndfile
        return ()
    endings = set()
    for name in [*soundfile.available_formats(), "MP3"]:  # MP3: the fallback decoder
        name = name.lower()
        if name not in _NOT_FILES:
            endings.update(_AUDIO_ALIASES.get(name, ("." + name,)))
    return tuple(sorted(endings))


def file_endings(kind):
    """The file name endings (lower case, with the dot) of ``kind``'s files."""
    if kind == "image":
        return _image_endings()
    if kind == "audio":
        return _audio_endings()
    if kind == "text":
        return TEXT_ENDINGS
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def kind_of_file(path):
    """``"image"``, ``"audio"``, ``"text"`` or ``"file"`` from a file name."""
    ending = os.path.splitext(str(path))[1].lower()
    for kind in ("image", "audio", "text"):
        if ending and ending in file_endings(kind):
            return kind
    return "file"


@dataclass(frozen=True)
class PipelineSpec:
    """How a pipeline is queried.

    Attributes
    ----------
    kind : {"image", "audio", "text", "file", "vector"}
        What the indexed items are ("file": a loader of unknown files).
    query : {"file", "text", "vector"}
        The request body a search takes: a file upload, a text or a vector.
    extensions : tuple of str
        File name endings accepted for uploads (empty: any).
    text_input : {"content", "filename", None}
        For text pipelines, whether the first step reads texts or text files.
    n_features : int or None
        Length of a vector query.
    """

    kind: str
    query: str
    extensions: tuple
    text_input: object = None
    n_features: object = None


def _first_step(pipeline):
    return pipeline.steps[0][1] if hasattr(pipeline, "steps") else pipeline


def _text_input(step):
    """``"content"``/``"filename"`` when ``step`` turns texts into vectors, else None."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

    from ..extractors import SklearnFeatureExtractor
    from ..loaders import Doc2VecLoader

    if isinstance(step, Doc2VecLoader):
        return step.input
    if isinstance(step, SklearnFeatureExtractor):
        step = step.estimator
    parts = [step] + [s for _, s in getattr(step, "steps", [])]
    for part in parts:
        if isinstance(part, (CountVectorizer, HashingVectorizer)):  # TF-IDF too
            return part.input if part.input in ("content", "filename") else None
    return None


def describe_pipeline(pipeline):
    """The :class:`PipelineSpec` of a pipeline, from its first step.

    An image loader, or a function loader whose function reads images, takes
    image files; an audio loader takes sound files; a Doc2Vec loader or a
    text vectorizer (TF-IDF) takes texts or text files; another loader takes
    files of any kind; a pipeline without a loader takes feature vectors.
    """
    from ..loaders import (BaseVectorLoader, EssentiaVectorLoader, FunctionVectorLoader,
                           ImageLoader, STFTVectorLoader)

    first = _first_step(pipeline)
    reads = getattr(first, "func", None) if isinstance(first, FunctionVectorLoader) else None
    if isinstance(first, ImageLoader) or getattr(reads, "kind", None) == "image":
        return PipelineSpec("image", "file", file_endings("image"))
    if isinstance(first, (STFTVectorLoader, EssentiaVectorLoader)) or getattr(
            reads, "kind", None) == "audio":
        return PipelineSpec("audio", "file", file_endings("audio"))
    text_input = _text_input(first)
    if text_input is not None:
        return PipelineSpec("text", "text", file_endings("text"), text_input=text_input)
    if isinstance(first, BaseVectorLoader):
        return PipelineSpec("file", "file", ())
    n_features = getattr(pipeline, "n_features_in_", None)
    return PipelineSpec("vector", "vector", (), n_features=n_features)
