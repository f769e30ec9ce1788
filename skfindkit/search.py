"""Search in one call: raw query items in, ranked results out.

A fitted retrieval pipeline (loader, extractor, index) maps raw items to
features; :func:`search` runs the queries through every step but the last and
asks the index for neighbours, returning ids, distances and -- when the
collection's own keys (file paths, document ids) were attached with
:func:`attach_keys` or are passed -- those keys, and the metadata columns
attached with :func:`attach_metadata`. Keys and metadata attached to the index
travel with the pipeline through :func:`skfindkit.io.save` (and joblib:
loading a joblib/pickle file runs code, so trusted files only).
:func:`upsert` adds items by key (the same key again replaces the item) and
:func:`remove_keys` removes them by key (:mod:`skfindkit._keys`).

A search can be restricted to some items: ``filter=`` (a boolean mask over
ids, an array of allowed ids, or one of those per query, as the index's
``kneighbors`` takes it) and ``where=`` (a condition on the metadata columns,
e.g. ``"shop == 'a' and year >= 2020"``: :mod:`skfindkit._where`,
``docs/metadata.md``); both given, an item must pass both. A row has fewer
than ``k`` results only when fewer than ``k`` items pass: the empty slots hold
id ``-1``, distance ``inf``, key and metadata None.
"""

from dataclasses import dataclass, field

import numpy as np

from ._keys import ids_of_keys, remove_keys, upsert
from ._metadata import checked_columns, rows_of
from ._where import where_mask
from .indexes._removal import parse_filter
from .utils import features_for_index, final_index

__all__ = ["SearchResult", "attach_keys", "attach_metadata", "ids_of_keys", "remove_keys",
           "search", "upsert"]


@dataclass(frozen=True)
class SearchResult:
    """Ranked results of :func:`search`, one row per query, nearest first.

    Attributes
    ----------
    indices : ndarray of shape (n_queries, k)
        Row numbers of the retrieved items in the indexed collection.
    distances : ndarray of shape (n_queries, k)
        Their distances, in the index metric's units.
    keys : ndarray of shape (n_queries, k)
        The user's keys of the retrieved items (``indices`` if none; None in
        empty slots, whose index is -1).
    metadata : dict of str to ndarray of shape (n_queries, k)
        Each metadata column attached with :func:`attach_metadata`, at the
        retrieved items (empty dict if none; None in empty slots).
    """

    indices: np.ndarray
    distances: np.ndarray
    keys: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __len__(self):
        return self.indices.shape[0]

    def __iter__(self):
        """Per query, a list of ``(key, distance)`` pairs, nearest first (empty slots left out)."""
        for ids, keys, dists in zip(self.indices, self.keys, self.distances):
            yield [(key, dist) for i, key, dist in zip(ids.tolist(), keys.tolist(),
                                                       dists.tolist()) if i >= 0]

    def to_records(self):
        """Flat rows ``{"query", "rank", "index", "key", "distance"}`` and the
        metadata columns (empty slots left out)."""
        def plain(value):
            return value.item() if hasattr(value, "item") else value

        return [
            {"query": q, "rank": r + 1, "index": int(self.indices[q, r]),
             "key": plain(self.keys[q, r]), "distance": float(self.distances[q, r]),
             **{name: plain(values[q, r]) for name, values in self.metadata.items()}}
            for q in range(self.indices.shape[0])
            for r in range(self.indices.shape[1])
            if self.indices[q, r] >= 0
        ]


def attach_keys(pipeline, keys):
    """Store the collection's keys (e.g. file paths) on the pipeline's index.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted; its final step is an skfindkit index.
    keys : array-like of shape (n_samples_fit,)
        One key per indexed item, in fit order.

    Returns
    -------
    pipeline : the same object, for chaining.
    """
    index = final_index(pipeline)
    keys = np.asarray(list(keys) if not hasattr(keys, "__len__") else keys)
    if keys.ndim != 1 or keys.shape[0] != index.n_samples_fit_:
        raise ValueError(
            f"keys must be 1-D with one key per indexed item: got shape {keys.shape}, "
            f"the index holds {index.n_samples_fit_} items."
        )
    # text keys as Python strings: each costs its own length (a fixed-width numpy
    # string array would give every key the longest one's width)
    index.item_keys_ = keys.astype(object) if keys.dtype.kind == "U" else keys
    return pipeline


def attach_metadata(pipeline, data):
    """Store per-item metadata columns on the pipeline's index.

    They are returned with every :func:`search` result, can restrict it
    (``where=``), and are saved with the pipeline (:func:`skfindkit.io.save`).
    Attaching again replaces them.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted; its final step is an skfindkit index.
    data : pandas.DataFrame or dict of str to array-like
        One row per item id (``n_samples_fit_`` rows, in fit order; removed
        items' rows included), columns of numbers, booleans or strings.

    Returns
    -------
    pipeline : the same object, for chaining.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import ExactIndex, search
    >>> from skfindkit.search import attach_metadata
    >>> index = ExactIndex(n_neighbors=1).fit(np.eye(4))
    >>> _ = attach_metadata(index, {"shop": ["a", "b", "a", "b"], "year": [2019, 2020, 2021, 2022]})
    >>> search(index, [[0.0, 1.0, 0.0, 0.0]], where="shop == 'a' and year > 2020").indices
    array([[2]])
    """
    index = final_index(pipeline)
    index.item_metadata_ = checked_columns(data, index.n_samples_fit_)
    return pipeline


def _allowed(index, filter, where, n_queries):
    """``filter`` and the mask of ``where``, combined: what ``kneighbors`` takes."""
    if where is None:
        return filter
    columns = getattr(index, "item_metadata_", None) or {}
    mask = where_mask(where, columns)
    if filter is None:
        return mask
    masks = parse_filter(filter, index.n_samples_fit_, n_queries)
    return masks & mask


def _n_rows(features):
    return features.shape[0] if hasattr(features, "shape") else len(features)


def search(pipeline, queries, n_neighbors=None, *, keys=None, filter=None, where=None):
    """Retrieve the nearest indexed items of raw queries.

    Parameters
    ----------
    pipeline : Pipeline or index
        A fitted retrieval pipeline whose final step is an index (or an
        index alone, for queries that are already feature vectors).
    queries : list or array-like
        Raw query items, in whatever form the pipeline's first step takes
        (file paths, texts, arrays).
    n_neighbors : int, default=None
        Results per query; the index's ``n_neighbors`` when None.
    keys : array-like of shape (n_samples_fit,), default=None
        Keys of the indexed items; defaults to those attached with
        :func:`attach_keys`, else the ids themselves.
    filter : array-like, or list of array-like, default=None
        Items a query may return: a boolean mask over ids, an array of
        allowed ids, or one of those per query (see the index's
        ``kneighbors``).
    where : str, default=None
        A condition on the metadata columns (:func:`attach_metadata`), e.g.
        ``"shop == 'a' and year >= 2020"`` or ``"label in ['x', 'y']"``;
        ``docs/metadata.md`` gives the form. Combined with ``filter`` by
        "and".

    Returns
    -------
    result : SearchResult

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from skfindkit import ExactIndex, SklearnFeatureExtractor, search
    >>> X, y = load_digits(return_X_y=True)
    >>> system = make_pipeline(SklearnFeatureExtractor(PCA(16)), ExactIndex()).fit(X[:1000])
    >>> result = search(system, X[1000:1002], n_neighbors=3)
    >>> result.indices.shape
    (2, 3)
    """
    index = final_index(pipeline)
    features = features_for_index(pipeline, queries)
    allowed = _allowed(index, filter, where, _n_rows(features))
    dist, ind = index.kneighbors(features, n_neighbors=n_neighbors, filter=allowed)
    if keys is None:
        keys = getattr(index, "item_keys_", None)
    if keys is None:
        found = ind
    else:
        keys = np.asarray(keys)
        if keys.shape[0] != index.n_samples_fit_:
            raise ValueError(
                f"keys has {keys.shape[0]} entries, the index holds {index.n_samples_fit_} items."
            )
        found = rows_of({"keys": keys}, ind)["keys"]
    metadata = rows_of(getattr(index, "item_metadata_", None) or {}, ind)
    return SearchResult(indices=ind, distances=dist, keys=found, metadata=metadata)
