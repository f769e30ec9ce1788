"""Per-item metadata columns on a fitted index: stored, checked, looked up by id.

:func:`skfindkit.attach_metadata` stores the columns on the index as
``item_metadata_``, a dict ``{name: 1-D array}`` with one row per id (ids of
removed items included, so that ids index it directly), next to
``item_keys_``: both are saved with the index (pickle and the safe format).
Columns are numpy arrays of numbers, booleans or text (``str``); a column of
other Python objects, or mixing strings with numbers (as a list or as a
DataFrame column alike), is refused (the safe format would store it item by
item, and a condition could not compare it).
"""

import numpy as np

__all__ = ["checked_columns", "column_kind", "rows_of"]


_KINDS = {"b": "boolean", "i": "numeric", "u": "numeric", "f": "numeric", "U": "text"}


def column_kind(array):
    """``"numeric"``, ``"boolean"`` or ``"text"``: what a stored column compares with."""
    return _KINDS[array.dtype.kind]


def _column(name, values, n_rows):
    if hasattr(values, "to_numpy"):  # a pandas Series
        values = values.to_numpy()
    if not isinstance(values, np.ndarray):
        # numpy would turn a list mixing strings and numbers into strings: look first
        values = np.array(values, dtype=object)
        if values.ndim != 1 or not any(isinstance(v, str) for v in values.tolist()):
            values = np.asarray(values.tolist())
    array = np.asarray(values)
    if array.dtype.kind == "O":
        if not all(isinstance(v, str) for v in array.ravel().tolist()):
            raise ValueError(f"metadata column {name!r} holds Python objects; give numbers, "
                             "booleans or strings (missing text as '', numbers as NaN)")
        array = array.astype(str)
    if array.dtype.kind not in "biufU":
        raise ValueError(f"metadata column {name!r} has dtype {array.dtype}, not numbers, "
                         "booleans or text")
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise ValueError(f"metadata column {name!r} has shape {array.shape}; expected one "
                         f"value per item id ({n_rows},)")
    return array


def checked_columns(data, n_rows):
    """``data`` (a pandas DataFrame or a dict of 1-D arrays) as ``{name: array}``."""
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a DataFrame
        items = [(name, data[name]) for name in data.columns]
    elif isinstance(data, dict):
        items = list(data.items())
    else:
        raise TypeError(f"metadata: expected a pandas DataFrame or a dict of arrays, got "
                        f"{type(data).__name__}")
    if not items:
        raise ValueError("metadata: no columns given")
    columns = {}
    for name, values in items:
        if not isinstance(name, str) or not name:
            raise ValueError(f"metadata column names must be non-empty strings, got {name!r}")
        columns[name] = _column(name, values, n_rows)
    return columns


def rows_of(columns, ids):
    """Each column's values at ``ids`` (any shape; -1 marks an empty slot: None there)."""
    ids = np.asarray(ids)
    empty = ids < 0
    out = {}
    for name, values in columns.items():
        found = values[np.where(empty, 0, ids)]
        if empty.any():
            found = found.astype(object)
            found[empty] = None
        out[name] = found
    return out
