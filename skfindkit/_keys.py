"""Items addressed by their keys: upsert (same key again replaces) and removal by key.

Keys (:func:`skfindkit.attach_keys`) and metadata
(:func:`skfindkit.attach_metadata`) are arrays over item *ids*: ids
never change and are never reused (removal leaves a tombstone, compaction
keeps the ids), so a removed item's key and metadata row stay in place,
unreachable, and the arrays stay aligned with the index through removals and
compaction. :func:`upsert` adds items with ``partial_fit`` (new ids after the
largest one), extends the keys and metadata, then removes the live items that
had the same keys; :func:`remove_keys` removes the live items of some keys.
"""

import warnings

import numpy as np

from ._metadata import extended_columns
from .indexes import UnknownItemError
from .utils import features_for_index, final_index

__all__ = ["ids_of_keys", "remove_keys", "upsert"]


def _attached_keys(index):
    keys = getattr(index, "item_keys_", None)
    if keys is None:
        raise ValueError("the index has no keys: attach them first with "
                         "skfindkit.attach_keys (one per item id)")
    return keys


def _new_keys(keys, n_items):
    keys = np.asarray(keys)
    if keys.ndim != 1 or keys.shape[0] != n_items:
        raise ValueError(f"keys must be 1-D with one key per item: got shape {keys.shape} "
                         f"for {n_items} items")
    uniq, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"keys given more than once: {uniq[counts > 1][:10].tolist()}")
    return keys


def ids_of_keys(pipeline, keys):
    """Ids of the live items with these keys (a key of no live item: absent).

    Returns
    -------
    ids : ndarray of int
        Sorted ids.
    """
    index = final_index(pipeline)
    with index._reading():  # not between a writer's partial_fit and its new keys
        found = np.isin(_attached_keys(index), np.asarray(keys)) & index.live_mask_
    return np.flatnonzero(found)


def remove_keys(pipeline, keys):
    """Remove the live items with these keys from the pipeline's index.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted, with keys attached (:func:`skfindkit.attach_keys`).
    keys : array-like
        Keys of live items.

    Returns
    -------
    ids : ndarray of int
        The ids removed.

    Raises
    ------
    UnknownItemError
        Naming the keys of no live item; nothing is removed then.
    """
    index = final_index(pipeline)
    keys = np.asarray(keys).ravel()
    with index._writing():  # keys looked up and removed in one step
        ids = ids_of_keys(index, keys)
        missing = np.setdiff1d(keys, _attached_keys(index)[ids])
        if missing.size:
            raise UnknownItemError(f"no live item has the keys {missing[:10].tolist()}")
        index.remove(ids)
    return ids


def upsert(pipeline, items, keys, *, y=None, metadata=None):
    """Add items by key; an item whose key is already live replaces it.

    The new items get new ids (after the largest id ever assigned); the items
    they replace are removed (their ids are never reused). Keys and metadata
    are extended to the new ids.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted, with keys attached (:func:`skfindkit.attach_keys`).
    items : list or array-like
        Raw items, in whatever form the pipeline's first step takes.
    keys : array-like of shape (n_items,)
        Their keys, all different.
    y : array-like of shape (n_items,), default=None
        Labels, for an index fitted with labels.
    metadata : pandas.DataFrame or dict of arrays, default=None
        The new items' rows of the index's metadata columns (required when
        the index has metadata), each of the column's kind (numeric, boolean
        or text): a value of another kind is refused, nothing is added.

    Returns
    -------
    ids : ndarray of int
        The new items' ids.
    """
    index = final_index(pipeline)
    with index._reading():  # fail before extracting features; a writer may be mid-upsert
        _attached_keys(index)
    features = features_for_index(pipeline, items)
    n_new = features.shape[0] if hasattr(features, "shape") else len(features)
    keys = _new_keys(keys, n_new)
    # one step for queries and other writers: they see the old items or the new ones
    with index._writing():
        old_keys = _attached_keys(index)
        columns = extended_columns(getattr(index, "item_metadata_", None), metadata, n_new)
        replaced = ids_of_keys(index, keys)
        first = index.n_samples_fit_
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="partial_fit added items")
            index.partial_fit(features, y)
        keys = keys.astype(object) if keys.dtype.kind == "U" else keys  # as attach_keys
        index.item_keys_ = np.concatenate([old_keys, keys])
        if columns is not None:
            index.item_metadata_ = columns
        if replaced.size:
            index.remove(replaced)
        return np.arange(first, index.n_samples_fit_)
