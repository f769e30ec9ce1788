"""Search in one call: raw query items in, ranked results out.

A fitted retrieval pipeline (loader, extractor, index) maps raw items to
features; :func:`search` runs the queries through every step but the last and
asks the index for neighbours, returning ids, distances and -- when the
collection's own keys (file paths, document ids) were attached with
:func:`attach_keys` or are passed -- those keys. Keys attached to the index
travel with the pipeline through :func:`skfindkit.io.save` (and joblib:
loading a joblib/pickle file runs code, so trusted files only).
"""

from dataclasses import dataclass

import numpy as np

from .utils import features_for_index, final_index

__all__ = ["SearchResult", "attach_keys", "search"]


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
        The user's keys of the retrieved items (``indices`` if none).
    """

    indices: np.ndarray
    distances: np.ndarray
    keys: np.ndarray

    def __len__(self):
        return self.indices.shape[0]

    def __iter__(self):
        """Per query, a list of ``(key, distance)`` pairs, nearest first."""
        for keys, dists in zip(self.keys, self.distances):
            yield list(zip(keys.tolist(), dists.tolist()))

    def to_records(self):
        """Flat rows ``{"query", "rank", "index", "key", "distance"}``."""
        return [
            {"query": q, "rank": r + 1, "index": int(self.indices[q, r]),
             "key": self.keys[q, r].item() if hasattr(self.keys[q, r], "item") else self.keys[q, r],
             "distance": float(self.distances[q, r])}
            for q in range(self.indices.shape[0])
            for r in range(self.indices.shape[1])
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
    index.item_keys_ = keys
    return pipeline


def search(pipeline, queries, n_neighbors=None, *, keys=None, filter=None):
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
    filter : array-like or list of array-like, default=None
        Items each query may return, as the index's ``kneighbors`` takes it: a
        boolean mask over ids, an array of allowed ids, or one of those per
        query. Slots that fewer allowed items could fill have index -1,
        distance ``inf`` and key None.

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
    dist, ind = index.kneighbors(features, n_neighbors=n_neighbors, filter=filter)
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
        found = keys[np.maximum(ind, 0)]
        if (ind < 0).any():  # slots no allowed item filled
            found = found.astype(object)
            found[ind < 0] = None
    return SearchResult(indices=ind, distances=dist, keys=found)
