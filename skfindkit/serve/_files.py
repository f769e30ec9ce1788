"""Reading and writing pipeline files for the service (one place to switch).

Until the safe format ``skfindkit.io`` is merged, pipelines are joblib files.
**A joblib file runs code when it is loaded: serve only files you trust**
(ones you or ``skfindkit index`` / ``skfindkit demo`` wrote).
"""

import os
import tempfile

__all__ = ["_load_pipeline", "_save_pipeline"]


def _load_pipeline(path):
    """The fitted skfindkit pipeline (or index) saved at ``path``.

    Raises FileNotFoundError or a one-line ValueError saying what the file is not.
    """
    import joblib

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such pipeline file: {path!r}")
    try:
        pipeline = joblib.load(path)
    except Exception as exc:  # any unpickling failure: say what the file is not
        raise ValueError(
            f"{path!r} is not a skfindkit pipeline file ({type(exc).__name__}: {exc})"
        ) from exc
    check_pipeline(pipeline, path)
    return pipeline


def check_pipeline(pipeline, name="the pipeline"):
    """Refuse anything but a fitted Pipeline ending with (or being) a skfindkit index."""
    from ..indexes import BaseIndex

    index = pipeline.steps[-1][1] if hasattr(pipeline, "steps") and pipeline.steps else pipeline
    if not isinstance(index, BaseIndex) or not hasattr(index, "n_samples_fit_"):
        raise ValueError(
            f"{name!s} holds a {type(pipeline).__name__}, not a skfindkit pipeline: a fitted "
            "Pipeline ending with a skfindkit index (make one with 'skfindkit index' or "
            "'skfindkit demo')"
        )
    return index


def _save_pipeline(pipeline, path):
    """Write ``pipeline`` to ``path`` atomically (temp file, fsync, rename)."""
    import joblib

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skfindkit-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            joblib.dump(pipeline, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
