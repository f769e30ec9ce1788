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

__all__ = ["checked_columns", "column_kind", "columns_of_records", "extended_columns", "rows_of"]


_KINDS = {"b": "boolean", "i": "numeric", "u": "numeric", "f": "numeric", "U": "text", "O": "text"}


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
        # text stays an array of Python strings: each value costs its own length (a
        # fixed-width numpy string column would give every row the longest one's)
        array = np.array([str(v) for v in array.tolist()] if array.ndim == 1 else array,
                         dtype=object)
    elif array.dtype.kind == "U":
        array = array.astype(object)
    if array.dtype.kind not in "biufO":
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


def extended_columns(old, metadata, n_new):
    """The columns ``old`` (or None) extended by the new items' rows ``metadata`` (a
    DataFrame or a dict of arrays; None when the index has no metadata): the same
    column names, each value of its column's kind (numeric, boolean or text), else a
    ValueError naming what differs. None when neither has metadata."""
    if old is None and metadata is None:
        return None
    if old is None or metadata is None:
        raise ValueError("metadata: the index has metadata columns "
                         f"{sorted(old or ())}, the new items {sorted(metadata or ())}: "
                         "give the new items' rows of the same columns")
    new = checked_columns(metadata, n_new)
    if sorted(new) != sorted(old):
        missing, unknown = sorted(set(old) - set(new)), sorted(set(new) - set(old))
        raise ValueError(
            "metadata: " + "; ".join(
                [f"the new items lack the column(s) {missing}"] * bool(missing)
                + [f"the index has no column(s) {unknown}"] * bool(unknown))
            + f" (the index's columns: {sorted(old)})")
    for name, values in old.items():
        if column_kind(values) != column_kind(new[name]):
            raise ValueError(f"metadata: column {name!r} is {column_kind(values)} in the index, "
                             f"the new items give {column_kind(new[name])} values")
    return {name: np.concatenate([values, new[name]]) for name, values in old.items()}


def _value_kind(value):
    return "boolean" if isinstance(value, bool) else "text" if isinstance(value, str) else "numeric"


def _unstorable(value):
    """Why a JSON value cannot be stored as a metadata value (None if it can)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "which is not valid text (a lone surrogate has no UTF-8 form)"
    elif isinstance(value, float) and not np.isfinite(value):
        return "which is not a finite number"
    elif isinstance(value, int) and not isinstance(value, bool) and not (
            -(2**63) <= value < 2**63):
        return "which is beyond 64-bit integers"
    return None


def columns_of_records(records):
    """One record per item (a dict ``{column: value}``, as JSON gives them) -> a dict of
    columns. Every record names the same columns, each value a number, a boolean or a
    string, one kind per column; else a ValueError naming the item and the column."""
    names = sorted(set().union(*records)) if records else []
    columns = {name: [] for name in names}
    for i, record in enumerate(records):
        missing = [name for name in names if name not in record]
        if missing:
            raise ValueError(f"metadata: item #{i} has no value for the column(s) {missing}")
        for name in names:
            value = record[name]
            if not isinstance(value, (str, bool, int, float)):
                shown = "null" if value is None else type(value).__name__
                raise ValueError(f"metadata: item #{i} gives {shown} for column {name!r}; "
                                 "give a number, a boolean or a string")
            problem = _unstorable(value)
            if problem:
                raise ValueError(f"metadata: item #{i} gives {value!r:.60} for column {name!r}, "
                                 f"{problem}")
            columns[name].append(value)
    for name, values in columns.items():
        kinds = sorted({_value_kind(v) for v in values})
        if len(kinds) > 1:
            raise ValueError(f"metadata: column {name!r} mixes {' and '.join(kinds)} values")
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
