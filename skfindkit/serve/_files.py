"""Reading and writing pipeline files for the service.

Pipelines are read and written in skfindkit's safe format
(:mod:`skfindkit.io`: runs no code when loaded), like the ``skfindkit``
command. A pickle/joblib pipeline is served only when the command is given
``--trust-pickle``: **a pickle runs code when it is loaded**, so only for
files you trust (that you wrote yourself). Additions (``POST /items``) are
saved back in the format the file already has, atomically.
"""

import os

from .._cli_io import load_pipeline, save_pipeline
from ..utils import final_index

__all__ = ["_load_pipeline", "_save_pipeline", "check_pipeline"]


def _load_pipeline(path, *, trust_pickle=False, mmap_mode=None):
    """The fitted skfindkit pipeline (or index) saved at ``path``.

    Raises FileNotFoundError or a one-line ValueError saying what the file is not
    (a pickle without ``trust_pickle``, a corrupt file, not a skfindkit pipeline).
    """
    path = os.fspath(path)
    pipeline = load_pipeline(path, trust_pickle=trust_pickle, check=False, mmap_mode=mmap_mode)
    check_pipeline(pipeline, repr(path))
    return pipeline


def check_pipeline(pipeline, name="the pipeline"):
    """Refuse anything but a fitted Pipeline ending with (or being) a skfindkit index."""
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


def _save_pipeline(pipeline, path, kind="safe"):
    """Write ``pipeline`` to ``path`` atomically, as ``"safe"`` or ``"pickle"``."""
    save_pipeline(pipeline, path, kind=kind)
