"""Shared machinery of every loader: item validation, parallel map, progress, errors.

A loader turns a sequence of raw items (file paths, texts, arrays, bytes...)
into one fixed-shape array per item and stacks them. Subclasses implement
:meth:`BaseVectorLoader._load_item` and optionally the other hooks:

- ``_check_params()``: checks that ``_parameter_constraints`` cannot express
  (run after scikit-learn's parameter validation, in ``fit`` and ``transform``);
- ``_fit_items(items, y)``: what a loader that learns (Doc2Vec, Function)
  learns from the validated items; stateless loaders learn nothing;
- ``_input_items(X, reset)``: ``X`` as a list of items (default: any sequence);
- ``_prepare()``: per-worker state such as essentia algorithm instances;
- ``_item_shape()``, ``_output_dtype()``, ``_finish(out)``: the output's shape,
  dtype and a vectorised last pass.

Everything else -- ``fit``/``transform``, the joblib map over worker processes,
the tqdm bar, the ``on_error`` policy, file checks and shape checks -- lives here
once.
"""

import os
from abc import ABCMeta, abstractmethod
import warnings
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..utils import progress
from ..utils._sklearn_compat import StrOptions, _fit_context
from ._shared import SharedLoader, chunk_bounds, worker_state

__all__ = ["BaseVectorLoader", "ItemLoadError", "ItemLoadWarning"]


class _ItemFailure:
    """What :class:`ItemLoadError` and :class:`ItemLoadWarning` carry besides their text."""

    def __init__(self, message, position=None, item=None, reason=None):
        super().__init__(message)
        self.position = position
        self.item = item
        self.reason = message if reason is None else reason

    def __reduce__(self):  # keep attributes through pickling (joblib workers)
        return type(self), (self.args[0], self.position, self.item, self.reason)

    def shifted(self, offset, where=None):
        """The same failure with ``position`` moved by ``offset`` (a chunk's start in a
        whole collection), its message saying so, prefixed by ``where``."""
        message = self.args[0]
        position = self.position
        if position is not None:
            position += offset
            message = message.replace(f" could not load item {self.position} (",
                                      f" could not load item {position} (", 1)
        if where:
            message = f"{where}: {message}"
        return type(self)(message, position, self.item, self.reason)


class ItemLoadError(_ItemFailure, ValueError):
    """An item could not be turned into a vector.

    The message names the item and its position in the input; the original
    exception is chained as ``__cause__``.

    Attributes
    ----------
    position : int or None
        Index of the failing item in the input sequence (None: no single item).
    item : object
        The failing item itself.
    reason : str
        Why, in plain words, without the loader's and the item's names (for a
        loader that calls another loader, the innermost reason).
    """


class ItemLoadWarning(_ItemFailure, UserWarning):
    """An item failed and was replaced by a placeholder row (``on_error != "raise"``).

    Attributes
    ----------
    position, item, reason
        As for :class:`ItemLoadError`.
    """


def failure_reason(exc):
    """Why ``exc`` happened, in plain words (an ItemLoadError's own reason)."""
    if isinstance(exc, _ItemFailure):
        return exc.reason
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename!r}" if exc.filename else "")
    if not text:
        return type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def describe_item(item, limit=80):
    """Short human-readable name of an item for error messages.

    File paths are shown whole (a cut path loses the file name); long texts
    keep their beginning and end.
    """
    if isinstance(item, os.PathLike):
        return repr(os.fspath(item))
    if isinstance(item, str):
        text = repr(item)
        if len(text) <= limit or ("\n" not in item and len(item) <= 1024):
            return text  # short, or one line (most likely a path): whole
        head = (limit - 3) // 3
        return text[:head] + "..." + text[-(limit - 3 - head):]
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>"
    if isinstance(item, np.ndarray):
        return f"<array of shape {item.shape}, dtype {item.dtype}>"
    return f"<{type(item).__name__}>"


def check_file(path):
    """Raise a clear error for a missing path, a directory or a zero-byte file.

    Parameters
    ----------
    path : str or os.PathLike
        Path of a file to read.

    Returns
    -------
    path : str
        The path as a string.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory, not a file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is an empty (zero-byte) file")
    return path


def _load_items(loader, context, start, items):
    """Load ``items`` (positions ``start...``); never raises per item."""
    out = []
    for offset, item in enumerate(items):
        try:
            out.append(loader._load_item(item, context))
        except Exception as exc:  # reported with its position by the caller
            out.append(_Failure(start + offset, exc))
    return out


def _load_shared_chunk(token, payload, start, items):
    """Process task: the loader and its state come from the worker's cache."""
    loader, context = worker_state(token, payload)
    return _load_items(loader, context, start, items)


class _Failure:
    __slots__ = ("position", "exc")

    def __init__(self, position, exc):
        self.position = position
        self.exc = exc


class BaseVectorLoader(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of skfindkit loaders (not meant to be used directly).

    Parameters common to all loaders:

    n_jobs : int, default=None
        Number of joblib workers mapping items in parallel; ``None`` means 1,
        ``-1`` all cores.
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        What to do with an item that cannot be loaded. ``"raise"`` raises
        :class:`ItemLoadError` naming the item and its position. ``"nan"`` and
        ``"zeros"`` emit an :class:`ItemLoadWarning` naming the item and put a
        placeholder row (all NaN or all zeros) at its position, so rows stay
        aligned with ``y``. Indexes refuse NaN input with a clear error, so
        ``"nan"`` makes failures impossible to miss downstream, while
        ``"zeros"`` lets a pipeline run on with meaningless rows for the failed
        items. There is no policy that drops items: inside a Pipeline a
        transformer cannot drop rows of ``y``, so dropping would silently shift
        labels against vectors.
    """

    _parameter_constraints = {
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "on_error": [StrOptions({"raise", "nan", "zeros"})],
    }

    # human-readable name of what one item is, for progress bars
    _item_name = "item"

    # ---------------------------------------------------------------- hooks
    def _check_params(self):
        """Raise a ValueError naming the parameter for what constraints cannot say."""

    def _fit_items(self, items, y):
        """Learn from the validated ``items`` (loaders that learn override this)."""

    def _input_items(self, X, *, reset):
        """``X`` as a list of items; ``reset``: called from ``fit``."""
        return self._check_items(X)

    def _prepare(self):
        """Per-worker state (e.g. algorithm objects, windows, filters).

        Built once per serial map, and once per worker process in a parallel
        map (then reused for all of that worker's chunks). ``_load_item`` must leave it as it found
        it, so that results do not depend on how items are split in chunks.
        """
        return None

    @abstractmethod
    def _load_item(self, item, context):
        """Turn one item into an array (of the same shape for every item)."""

    def _item_shape(self):
        """Shape of one loaded item when known from the parameters, else None."""
        return None

    def _output_dtype(self):
        """Dtype of the stacked output; None: the items' common float dtype."""
        return None

    def _finish(self, out):
        """Turn the stacked item arrays into the output, once for the whole batch.

        Lets workers return compact arrays (e.g. ``uint8`` pixels) that are
        scaled here in one vectorised pass. Placeholder rows of failed items
        are written afterwards.
        """
        return out

    # --------------------------------------------------------------- inputs
    def _check_items(self, X):
        """Return ``X`` as a list of items; reject a lone string or an empty input."""
        if isinstance(X, (str, bytes, os.PathLike)):
            raise TypeError(
                f"{type(self).__name__} expects a sequence of items (e.g. a list of "
                f"file paths or texts), got a single {type(X).__name__}: "
                f"{describe_item(X)}. Wrap it in a list."
            )
        if hasattr(X, "iloc") and hasattr(X, "columns"):  # DataFrame: one column only
            if X.shape[1] != 1:
                raise ValueError(
                    f"X must be a sequence of items, got a DataFrame with {X.shape[1]} "
                    "columns; pass one column."
                )
            X = X.iloc[:, 0]
        try:
            items = list(X)
        except TypeError as exc:
            raise TypeError(
                f"X must be a sequence of items, got {type(X).__name__}"
            ) from exc
        if not items:
            raise ValueError(f"{type(self).__name__} got an empty sequence of items (X).")
        return items

    # ----------------------------------------------------------------- core
    def _map_items(self, items):
        """Load every item in parallel; apply the error policy; stack the results."""
        n_workers = min(effective_n_jobs(self.n_jobs), len(items))
        desc = f"{type(self).__name__}"
        if n_workers == 1:
            results = _load_items(self, self._prepare(), 0, progress(
                items, verbose=self.verbose, desc=desc, unit=self._item_name, warmup=True
            ))
            return self._stack(items, results)
        # cheap chunks (the loader travels once per worker process, see
        # _shared) in a guided schedule: balanced load, few round trips
        bounds = chunk_bounds(len(items), n_workers)
        # batch_size=1: joblib's auto-batching would merge chunks again
        parallel = Parallel(n_jobs=n_workers, batch_size=1, return_as="generator")
        with SharedLoader(self) as shared:
            tasks = (
                delayed(_load_shared_chunk)(shared.token, shared.payload, a, items[a:b])
                for a, b in bounds
            )
            results = []
            for chunk in progress(
                parallel(tasks), verbose=self.verbose, desc=desc, total=len(bounds),
                unit="chunk", warmup=True,
            ):
                results.extend(chunk)
        return self._stack(items, results)

    def _fail(self, position, item, exc):
        message = (
            f"{type(self).__name__} could not load item {position} "
            f"({describe_item(item)}): {type(exc).__name__}: {exc}"
        )
        reason = failure_reason(exc)
        if self.on_error == "raise":
            raise ItemLoadError(message, position, item, reason) from exc
        warnings.warn(
            ItemLoadWarning(
                f"{message}. It is replaced by a row of "
                f"{'NaN' if self.on_error == 'nan' else 'zeros'} (on_error={self.on_error!r}).",
                position, item, reason),
            stacklevel=4,
        )

    def _stack(self, items, results):
        shape = self._item_shape()
        fill = np.nan if self.on_error == "nan" else 0.0
        arrays, failed = [], []
        for position, (item, res) in enumerate(zip(items, results)):
            if isinstance(res, _Failure):
                self._fail(position, item, res.exc)
                failed.append(position)
                arrays.append(None)
                continue
            res = np.asarray(res)
            if shape is None:
                shape = res.shape
            elif res.shape != tuple(shape):
                exc = ValueError(
                    f"it gave an array of shape {res.shape} but the other items "
                    f"give {tuple(shape)}; every item must map to the same shape"
                )
                self._fail(position, item, exc)
                failed.append(position)
                arrays.append(None)
                continue
            arrays.append(res)
        if shape is None:
            raise ItemLoadError(
                f"{type(self).__name__} could not load any of the {len(items)} items, "
                "so the output shape is unknown."
            )
        dtype = self._output_dtype()
        if dtype is None:
            dtype = np.result_type(*[a.dtype for a in arrays if a is not None], np.float32)
        out = np.empty((len(items), *shape), dtype=dtype)
        for position, array in enumerate(arrays):
            out[position] = 0 if array is None else array
        out = self._finish(out)
        out[failed] = fill
        return out

    # ------------------------------------------------------------ estimator
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []
        return tags

    def __sklearn_is_fitted__(self):
        return True

    def _validate(self):
        """scikit-learn's parameter validation, then the loader's own checks."""
        self._validate_params()
        self._check_params()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and the items, and learn what the loader learns.

        Stateless loaders (files to pixels, audio to spectra) learn nothing.

        Parameters
        ----------
        X : sequence of items
            Items of the kind the loader reads (file paths, texts...).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The loader.
        """
        self._check_params()  # the parameter constraints are checked by _fit_context
        self._fit_items(self._input_items(X, reset=True), y)
        return self

    def transform(self, X):
        """Load every item of ``X`` into one row of the output.

        Parameters
        ----------
        X : sequence of items
            Items of the kind the loader reads (file paths, texts...).

        Returns
        -------
        X_out : ndarray of shape (n_items, ...)
            One row per item, in the order of ``X``.
        """
        check_is_fitted(self)
        self._validate()
        return self._map_items(self._input_items(X, reset=False))

    def _feature_names(self):
        shape = self._item_shape()
        if shape is None or len(shape) != 1:
            raise ValueError(
                f"{type(self).__name__} has no feature names for output of shape {shape}."
            )
        return [f"{type(self).__name__.lower()}{i}" for i in range(shape[0])]

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : None
            Ignored: loaders read raw items, which have no feature names.

        Returns
        -------
        feature_names_out : ndarray of str
            One name per output column.
        """
        self._validate()
        return np.asarray(self._feature_names(), dtype=object)
