"""Keys of indexed files, and adding items to a fitted pipeline.

The command line keys each indexed file by its path relative to the folder it
indexed, and records that folder on the index (``items_root_``): the service
serves the files from there, ``skfindkit query`` shows them.
"""

import os
import warnings

import numpy as np

from .._metadata import extended_columns
from ..utils import final_index

__all__ = ["add_items", "common_folder", "items_root", "key_path", "relative_keys"]


def common_folder(paths):
    """The folder that holds every one of ``paths`` (files or folders)."""
    folders = [os.path.abspath(p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)))
               for p in paths]
    return os.path.commonpath(folders)


def relative_keys(files, root):
    """``files`` relative to ``root`` with ``/`` separators; absolute outside it."""
    keys = []
    for path in files:
        relative = os.path.relpath(os.path.abspath(path), root)
        inside = relative != os.pardir and not relative.startswith(os.pardir + os.sep)
        keys.append(relative.replace(os.sep, "/") if inside else os.path.abspath(path))
    return keys


def items_root(pipeline):
    """The folder the pipeline's keys are relative to (recorded by the CLI), or None."""
    root = getattr(final_index(pipeline), "items_root_", None)
    return root if isinstance(root, str) else None


def key_path(key, root):
    """The file a key names: joined to ``root`` when relative."""
    key = str(key)
    return key if os.path.isabs(key) or root is None else os.path.join(root, key)


def _plain(key):
    """A numpy scalar key as the Python value (str, int...) it holds."""
    return key.item() if isinstance(key, np.generic) else key


def add_items(pipeline, X, keys, metadata=None):
    """Append rows to a fitted pipeline's index, with their keys and metadata.

    Runs under the index's write lock: searches wait, and none sees the new
    rows without their keys and metadata rows.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted; its final step is a skfindkit index.
    X : array-like of shape (n_new, n_features)
        The new items' features (their rows after every step but the index).
    keys : sequence of length n_new
        The new items' keys.
    metadata : dict of str to array-like, default=None
        The new items' rows of the index's metadata columns (required when it
        has some, refused when it has none): the same columns, each value of
        its column's kind, as ``upsert`` (``from skfindkit.search import upsert``)
        checks them.

    Returns
    -------
    ids : range
        The new items' ids.
    """
    index = final_index(pipeline)
    keys = [_plain(key) for key in keys]
    if len(keys) != len(X):
        raise ValueError(f"add_items: {len(X)} rows but {len(keys)} keys")
    with index._writing():
        first = index.n_samples_fit_
        old = getattr(index, "item_keys_", None)
        old = [_plain(key) for key in old] if old is not None else list(range(first))
        columns = extended_columns(getattr(index, "item_metadata_", None), metadata, len(keys))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="partial_fit added items")  # set below
            index.partial_fit(X)
        index.item_keys_ = np.asarray(old + keys, dtype=object)
        if columns is not None:
            index.item_metadata_ = columns
    return range(first, first + len(keys))
