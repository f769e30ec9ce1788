"""Removal, upsert and restricted searches for the service (``DELETE /items/{id}``,
``POST /items`` with keys and metadata, ``where``/``filter`` of ``/search``).

Ids are the index's: they never change and are never reused, so an id of a
removed item is answered 404, and a search's empty slots (fewer items pass a
condition than ``k``) are left out of its results.
"""

import numpy as np

from .._metadata import columns_of_records
from ._items import UnknownItem
from ._requests import ApiError

__all__ = ["check_restriction", "hit_metadata", "live_id", "new_metadata", "replaced_ids",
           "restriction"]

_MAX_FILTER_IDS = 100_000
_MAX_ID_DIGITS = 18  # any id of more digits is beyond int64, hence unknown


def _filter_ids(value, n_ids):
    """A ``filter`` (a list of ids, or the text ``"1,2,3"``) as an int array of existing ids."""
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise ApiError(422, "filter must be item ids separated by commas, e.g. 1,5,9")
        if any(len(p) > _MAX_ID_DIGITS for p in parts):
            raise ApiError(422, f"filter names item ids out of range (ids are 0 to {n_ids - 1})")
        value = [int(p) for p in parts]
    if not isinstance(value, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise ApiError(422, "filter must be a list of item ids")
    if len(value) > _MAX_FILTER_IDS:
        raise ApiError(413, f"filter lists more than {_MAX_FILTER_IDS} ids")
    bad = [i for i in value if not 0 <= i < n_ids]
    if bad:
        shown = bad[:10] if all(abs(i) < 10**_MAX_ID_DIGITS for i in bad[:10]) else "out of range"
        raise ApiError(422, f"filter names unknown item ids {shown} (ids are 0 to {n_ids - 1})")
    return np.asarray(value, dtype=np.int64)


def check_restriction(where, filter):
    """The ``where`` / ``filter`` fields of a request, type-checked (422 otherwise)."""
    if where is not None and (not isinstance(where, str) or len(where) > 2000):
        raise ApiError(422, "where must be a condition text of at most 2000 characters")
    if filter is not None and not isinstance(filter, (str, list)):
        raise ApiError(422, "filter must be a list of item ids")
    return where, filter


def restriction(index, where, filter):
    """``search``'s ``where=`` and ``filter=`` for a request's fields."""
    return {"where": where,
            "filter": None if filter is None else _filter_ids(filter, index.n_samples_fit_)}


def live_id(store, index, item_id):
    """The id in ``item_id`` (a URL segment) if it is a live item, else UnknownItem (404)."""
    number = store.parse_id(item_id, index.n_samples_fit_)
    if not index.is_live(number):
        raise UnknownItem(f"item {number} was removed")
    return number


def replaced_ids(index, keys):
    """Ids of the live items whose keys are among ``keys`` (they are replaced by an upsert)."""
    attached = getattr(index, "item_keys_", None)
    if attached is None or not keys:
        return np.zeros(0, dtype=np.intp)
    attached = [str(k) for k in attached.tolist()]
    wanted = {str(k) for k in keys}
    found = np.fromiter((k in wanted for k in attached), dtype=bool, count=len(attached))
    return np.flatnonzero(found & index.live_mask_)


def new_metadata(value, n_items):
    """The ``metadata`` of a ``POST /items`` (an object for one item, or a list of objects,
    one per item) as columns for ``add_items``; None when not given."""
    if value is None:
        return None
    records = [value] if isinstance(value, dict) else value
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApiError(422, "metadata must be an object of column values (one item) or a list "
                            "of such objects, one per item")
    if len(records) != n_items:
        raise ApiError(422, f"metadata: {len(records)} objects for {n_items} items; give one "
                            "per item, in order")
    try:
        return columns_of_records(records)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from exc


def _json_value(value):
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def hit_metadata(result, rank):
    """The metadata columns of the first query's hit at ``rank`` (0-based), JSON-ready."""
    return {name: _json_value(values[0, rank]) for name, values in result.metadata.items()}
