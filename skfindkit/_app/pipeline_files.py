"""Pipeline files: suffixes, the safe-or-pickle choice, trust, saving, loading, checks.

Pipeline files are in skfindkit's safe format (:mod:`skfindkit.io`, ``.skfk``:
runs no code when loaded) unless a pickle is asked for by the file name
(``.joblib``, ``.pkl``, ``.pickle``). A pickle runs code when it is loaded, so
it is read only when the caller trusts it (``--trust-pickle``). Files are
written atomically (temporary file, fsync, rename), in the format an existing
file already has when it is saved back.
"""

import os

from ..utils import final_index

__all__ = ["PIPELINE_SUFFIX", "PICKLE_SUFFIXES", "TRUST_PICKLE_HELP", "check_pipeline",
           "load_pipeline", "pipeline_file_kind", "save_pipeline", "wants_pickle"]

PIPELINE_SUFFIX = ".skfk"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUST_PICKLE_HELP = ("also load a pickle/joblib pipeline file: pickles run code when "
                     "loaded, so only for files you trust (you wrote yourself)")


def wants_pickle(path):
    """Whether an output name asks for a pickle (``.joblib``, ``.pkl``, ``.pickle``)."""
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def save_pipeline(pipeline, path, kind=None):
    """Write ``pipeline`` to ``path`` atomically (temporary file, fsync, rename).

    ``kind``: ``"safe"`` (:func:`skfindkit.io.save`) or ``"pickle"`` (joblib);
    None chooses by the file name (a pickle only for ``PICKLE_SUFFIXES``).
    """
    from .. import io as skio

    if kind is None:
        kind = "pickle" if wants_pickle(path) else "safe"
    if kind == "safe":
        skio.save(pipeline, path)
        return
    import joblib

    with skio.atomic_write(path) as handle:
        joblib.dump(pipeline, handle)


def pipeline_file_kind(path):
    """``"safe"`` or ``"pickle"``: what the existing pipeline file at ``path`` is."""
    from .. import io as skio

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such pipeline file: {path!r}")
    kind = skio.file_kind(path)
    if kind is None:
        raise ValueError(f"{path!r} is not a skfindkit pipeline file (neither skfindkit's "
                         "safe format nor a joblib file)")
    return kind


def check_pipeline(pipeline, name="the pipeline"):
    """The final index of a fitted Pipeline ending with (or being) a skfindkit index.

    Raises a one-line ValueError naming ``name`` for anything else.
    """
    from ..indexes import BaseIndex

    try:
        index = final_index(pipeline)
    except (TypeError, ValueError, AttributeError, IndexError):  # not an index, or not fitted
        index = None
    if not isinstance(index, BaseIndex):
        raise ValueError(
            f"{name!s} holds a {type(pipeline).__name__}, not a skfindkit pipeline: a fitted "
            "Pipeline ending with a skfindkit index (make one with 'skfindkit index' or "
            "'skfindkit demo')"
        )
    return index


def load_pipeline(path, *, trust_pickle=False, check="pipeline", mmap_mode=None,
                  verify="once"):
    """Read a pipeline file (the safe format; a pickle only with ``trust_pickle``).

    Parameters
    ----------
    path : path-like
    trust_pickle : bool, default=False
        Also read a pickle/joblib file (which runs code when loaded).
    check : {"pipeline", "index"} or None, default="pipeline"
        ``"pipeline"``: refuse anything but a fitted Pipeline ending with a
        skfindkit index; ``"index"``: also accept a bare fitted index; None:
        no check.
    mmap_mode : {None, "r"}, default=None
        Passed to :func:`skfindkit.io.load` (and ``joblib.load``): ``"r"`` maps
        the large arrays read-only instead of reading them.
    verify : {"once", "always"}, default="once"
        Passed to :func:`skfindkit.io.load` (a safe file mapped).

    Raises
    ------
    FileNotFoundError, or a one-line ValueError saying what the file is not.
    """
    from .. import io as skio

    path = os.fspath(path)
    if pipeline_file_kind(path) == "pickle":
        if not trust_pickle:
            raise ValueError(
                f"{path!r} is a pickle/joblib file, which can run any code when loaded: "
                "skfindkit loads it only with --trust-pickle (for files you trust), or save "
                "it once in the safe format: skfindkit.io.save(joblib.load(PATH), "
                f"'pipeline{PIPELINE_SUFFIX}')"
            )
        import joblib

        try:
            pipeline = joblib.load(path, mmap_mode=mmap_mode)
        except Exception as exc:  # any unpickling failure: say what the file is not
            raise ValueError(f"{path!r} is not a readable skfindkit pipeline file "
                             f"({type(exc).__name__}: {exc})") from exc
    else:
        try:
            pipeline = skio.load(path, mmap_mode=mmap_mode, verify=verify)
        except skio.UntrustedTypeError as exc:
            raise ValueError(f"{exc} (skfindkit's command loads only skfindkit and "
                             "scikit-learn estimators)") from exc
    if check == "index":
        check_pipeline(pipeline, repr(path))
    elif check:
        try:
            fitted = (hasattr(pipeline, "steps")
                      and hasattr(final_index(pipeline), "n_samples_fit_"))
        except (TypeError, ValueError, AttributeError):  # not an index, or not fitted
            fitted = False
        if not fitted:
            raise ValueError(f"{path!r} holds a {type(pipeline).__name__}, not a fitted "
                             "pipeline ending with an skfindkit index (make one with "
                             "'skfindkit index')")
    return pipeline
