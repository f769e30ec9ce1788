"""FunctionVectorLoader: any item -> vector function as a parallel, fault-tolerant loader."""

from numbers import Number

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ..utils._sklearn_compat import _fit_context
from ._base import BaseVectorLoader

__all__ = ["FunctionVectorLoader"]


def _is_tabular(X):
    """True when ``X`` must be validated as a 2-D numeric array (rows are items).

    2-D arrays, nested lists of numbers, DataFrames and sparse matrices are tabular; so are numeric arrays
    that are not 3-D or more (a 1-D numeric array is rejected by the validation
    with sklearn's usual error). Lists and 1-D object arrays are sequences of
    items; numeric arrays of 3 or more dimensions are sequences of array items.
    """
    if isinstance(X, (list, tuple)):  # nested lists of numbers are a 2-D array
        first = X[0] if len(X) else None
        return isinstance(first, (list, tuple)) and all(
            isinstance(v, Number) for v in first
        )
    if isinstance(X, (str, bytes)):
        return False
    shape = getattr(X, "shape", None)
    if shape is None and hasattr(X, "__array__"):
        X = np.asarray(X)
        shape = X.shape
    if shape is None:
        return False
    if len(shape) == 2:
        return True
    dtype = getattr(X, "dtype", None)
    return dtype is not None and dtype.kind in "biufcb" and len(shape) < 3


class FunctionVectorLoader(BaseVectorLoader):
    """Map each item (path, text, array...) through ``func`` to a fixed-length vector.

    Items are mapped in parallel with joblib and stacked into an array of shape
    ``(n_items, n_features_out_)``. A failing item raises an
    :class:`~skfindkit.loaders.ItemLoadError` naming the item and its position
    (the original exception is chained), or, under another ``on_error`` policy,
    warns and gets an aligned placeholder row.

    Parameters
    ----------
    func : callable, default=None
        ``func(item) -> array-like``; its output is flattened with ``np.ravel``
        and must have the same length for every item. ``None`` flattens each
        item as it is (identity on the rows of a 2-D array). With ``n_jobs > 1``
        ``func`` must be picklable (a module-level function, or any function
        when joblib's default ``loky`` backend can pickle it with cloudpickle).
    n_jobs : int, default=None
        Number of joblib workers; ``None`` means 1, ``-1`` all cores.
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        Policy for items that fail: raise, or warn and put a row of NaN / zeros
        at their position (rows stay aligned with ``y``; no dropping policy
        exists because a Pipeline cannot drop rows of ``y``).

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of ``X`` when fitted on a 2-D array (absent when fitted
        on a sequence of items such as paths or texts).
    n_features_out_ : int
        Length of the vectors ``func`` returns, learnt in ``fit`` from the first
        item (``fit_transform``: from all items).

    See Also
    --------
    STFTVectorLoader : Audio files to pooled spectral vectors.
    Doc2VecLoader : Texts to Doc2Vec vectors.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import FunctionVectorLoader
    >>> loader = FunctionVectorLoader(len)
    >>> loader.fit_transform(["a", "abc", "ab"]).ravel()
    array([1., 3., 2.])
    >>> stats = FunctionVectorLoader(lambda row: [row.mean(), row.max()])
    >>> stats.fit_transform(np.array([[1.0, 3.0], [2.0, 6.0]]))
    array([[2., 3.],
           [4., 6.]])
    """

    _parameter_constraints = {
        **BaseVectorLoader._parameter_constraints,
        "func": [callable, None],
    }

    def __init__(self, func=None, *, n_jobs=None, verbose=0, on_error="raise"):
        self.func = func
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.on_error = on_error

    def _load_item(self, item, context):
        vector = item if self.func is None else self.func(item)
        vector = np.ravel(np.asarray(vector))
        if vector.dtype.kind not in "biufb":
            vector = vector.astype(np.float64)  # clear ValueError for non-numbers
        return vector.astype(np.float64, copy=False)

    def _item_shape(self):
        n = getattr(self, "n_features_out_", None)
        return None if n is None else (n,)

    def _input_items(self, X, *, reset):
        if _is_tabular(X) or (not reset and hasattr(self, "n_features_in_")):
            return list(validate_data(self, X, reset=reset))
        if reset and hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self._check_items(X)

    def _fit_items(self, items, y):
        """Learn the output length from the first item."""
        self.__dict__.pop("n_features_out_", None)
        self.n_features_out_ = self._map_items(items[:1]).shape[1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and map every item in one pass.

        Parameters
        ----------
        X : sequence of items or array-like of shape (n_items, n_features)
            Items to map; the rows of a 2-D array are items.
        y : None
            Ignored.

        Returns
        -------
        X_out : ndarray of shape (n_items, n_features_out_)
            One vector per item.
        """
        items = self._input_items(X, reset=True)
        self.__dict__.pop("n_features_out_", None)
        out = self._map_items(items)
        self.n_features_out_ = out.shape[1]
        return out

    def _feature_names(self):
        check_is_fitted(self)
        return [f"functionvectorloader{i}" for i in range(self.n_features_out_)]

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``functionvectorloader0``, ...

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        feature_names_out : ndarray of str
            One name per output column.
        """
        return np.asarray(self._feature_names(), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # arrays are validated like any sklearn input; strings and paths are
        # accepted as items too, but the "string" tag would make sklearn expect
        # object arrays holding dicts to be accepted, which they are not.
        tags.input_tags.two_d_array = True
        tags.input_tags.string = False
        tags.requires_fit = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "n_features_out_")
