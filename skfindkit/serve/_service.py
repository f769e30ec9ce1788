"""What the service does with requests: search, serve an item, add items (in worker threads).

A search runs on the event loop itself, without the hop to a worker thread and
back, when it is known to be short: a JSON vector query without ``where`` or
``filter``, on a pipeline that is only an index (feature steps may run any
code), whose previous search with the same ``k`` took under
``INLINE_SECONDS``, and only if the index's read section can be entered at
once (never waiting on the loop for an addition or removal). The first search
for each ``k``, and the next one after a slow one, run in a worker thread and
are timed there; every other request is served meanwhile.
"""

import hashlib
import math
import os
import time
from contextlib import ExitStack, nullcontext

import numpy as np

from .._app.pipeline_files import check_pipeline, save_pipeline
from .._app.items import add_items
from .._metadata import column_kind
from .._app.kinds import describe_pipeline
from ..loaders._base import failure_reason
from ..io import atomic_write
from ..search import search
from ._items import ItemStore, key_to_json
from ._lifecycle import hit_metadata, live_id, new_metadata, replaced_ids, restriction
from ._limits import DecodeSlots, check_uploads
from ._requests import ApiError, remove_files, write_uploads

__all__ = ["INLINE_SECONDS", "Service"]

INLINE_SECONDS = 0.001


class Service:
    """The loaded pipeline and everything that touches it (called from worker threads;
    short searches from the event loop)."""

    def __init__(self, pipeline, items_dir, access, save_path, added_dir, max_k, upload_dir,
                 save_kind, limits):
        self.pipeline = pipeline
        self.save_kind = save_kind
        self.upload_dir = upload_dir
        self.index = check_pipeline(pipeline)
        self.spec = describe_pipeline(pipeline)
        self.limits = limits
        self.store = ItemStore(self.spec, items_dir, also=[added_dir],
                               max_pixels=limits["max_pixels"])
        self.access = access
        self.save_path = save_path
        self.added_dir = added_dir
        self.max_k = max_k
        self.decodes = DecodeSlots(limits["max_decodes"])
        self._index_only = not (hasattr(pipeline, "steps") and len(pipeline.steps) > 1)
        self._took = {}  # k -> seconds the last vector search with that k took

    def _decoding(self, names):
        """Check the uploads' headers, then hold a decode slot (none needed for texts)."""
        if self.spec.query != "file":
            return nullcontext()
        check_uploads(names, self.spec.kind, self.limits["max_pixels"],
                      self.limits["max_seconds"])
        return self.decodes.hold()

    @property
    def n_items(self):
        return self.index.n_items_

    def keys(self):
        keys = getattr(self.index, "item_keys_", None)
        return keys if keys is not None else np.arange(self.index.n_samples_fit_)

    def metadata_columns(self):
        """``{column: "numeric" | "boolean" | "text"}`` of the index's metadata (``/info``)."""
        columns = getattr(self.index, "item_metadata_", None) or {}
        return {name: column_kind(values) for name, values in columns.items()}

    def check_k(self, k):
        n = self.n_items
        if k is None:
            return min(self.index.n_neighbors, n, self.max_k)
        top = min(n, self.max_k)
        if not 1 <= k <= top:
            raise ApiError(422, f"k must be between 1 and {top} (the index holds {n} items, "
                                f"the server returns at most {self.max_k}), got {k}")
        return k

    def _features(self, items):
        if hasattr(self.pipeline, "steps") and len(self.pipeline.steps) > 1:
            return self.pipeline[:-1].transform(items)
        return items

    # Searches hold the index's read section (``_reading``: which first applies its
    # query-time settings, e.g. a loaded HNSW graph's ef_search), additions and
    # removals its write section: the index's own lock, the one the library takes.

    def _timed(self, query):
        """Whether ``query`` is a search that may run on the event loop once known short."""
        return (self._index_only and query.vectors is not None and query.where is None
                and query.filter is None)

    def search(self, query, k, wait=True):
        """The hits for ``query``; with ``wait=False`` (on the event loop), None instead
        unless the search is known to be short and the index can be read at once."""
        timed = self._timed(query)
        if not wait and not (timed and self._took.get(k, math.inf) < INLINE_SECONDS):
            return None
        items, names = write_uploads(query, self.spec, self.upload_dir)
        try:
            with ExitStack() as held:
                held.enter_context(self._decoding(names))
                try:
                    held.enter_context(self.index._reading(wait))
                except BlockingIOError:  # only with wait=False: a writer holds or awaits it
                    return None
                started = time.perf_counter()
                restrict = restriction(self.index, query.where, query.filter)
                result = _readable_errors(
                    lambda: search(self.pipeline, items, n_neighbors=k, **restrict),
                    names, "query", self.spec.kind)
                if timed:
                    self._took[k] = time.perf_counter() - started
        finally:
            remove_files(names)
        hits = []
        for rank, (i, key, dist) in enumerate(zip(result.indices[0].tolist(),
                                                   result.keys[0].tolist(),
                                                   result.distances[0].tolist()), start=1):
            if i < 0:  # fewer items pass the condition than k
                break
            key = key_to_json(key)
            url = f"/items/{i}" if self.store.has_file(key) else None
            hits.append({"rank": rank, "id": i, "key": key, "distance": dist, "url": url,
                         **({"metadata": hit_metadata(result, rank - 1)} if result.metadata
                            else {})})
        return hits

    def item(self, item_id):
        with self.index._reading():
            number = live_id(self.store, self.index, item_id)
            key = key_to_json(self.keys()[number])
        path = self.store.path_of(key)
        if path is None:
            raise ApiError(404, f"item {number} (key {key!r}) has no file to show: keys name "
                                "files relative to the server's items folder (--items-dir)")
        kind = self.store.item_kind(path)
        with self.decodes.hold() if kind == "image" else nullcontext():
            try:
                return self.store.content(number, path)
            except (OSError, ValueError) as exc:  # an unreadable file in the items folder
                raise ApiError(422, f"item {number} could not be read as {kind} "
                                    f"({type(exc).__name__})") from exc

    def add(self, query):
        stored = self.spec.query == "file" or (self.spec.query == "text"
                                               and self.spec.text_input == "filename")
        if stored and query.keys is not None:
            raise ApiError(422, "added files are keyed by where the server stores them; "
                                "'key' is only for texts and vectors")
        for key in query.keys or ():
            self.store.check_key(key)
        metadata = new_metadata(query.metadata, len(query))
        items, names = write_uploads(query, self.spec, self.upload_dir)
        try:
            with self._decoding(names):
                if stored:
                    items = [self._keep(path) for path in items]
                with self.index._reading():
                    features = _readable_errors(lambda: self._features(items), names, "item",
                                                self.spec.kind)
        finally:
            remove_files(names)
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or not np.isfinite(features).all():
            raise ApiError(422, "the new items give non-finite features; nothing was added")
        with self.index._writing():
            first = self.index.n_samples_fit_
            new_keys = [key_to_json(k) for k in (
                items if stored else query.keys
                or [f"added #{first + i}" for i in range(len(features))])]
            replaced = replaced_ids(self.index, new_keys)  # the same key again: an update
            _readable_errors(lambda: add_items(self.pipeline, features, new_keys, metadata),
                             {}, "items")
            if replaced.size:
                self.index.remove(replaced)
            if self.save_path is not None:
                save_pipeline(self.pipeline, self.save_path, kind=self.save_kind)
            return {"added": [{"id": first + i, "key": k} for i, k in enumerate(new_keys)],
                    "items": self.n_items, "replaced": replaced.tolist(),
                    "saved": self.save_path is not None}

    def remove(self, item_id):
        """Remove one live item (``DELETE /items/{id}``) and save the pipeline."""
        with self.index._writing():
            number = live_id(self.store, self.index, item_id)
            if self.n_items == 1:
                raise ApiError(409, "the index holds one item: removing it would leave it empty")
            self.index.remove([number])
            if self.save_path is not None:
                save_pipeline(self.pipeline, self.save_path, kind=self.save_kind)
            return {"removed": number, "items": self.n_items,
                    "saved": self.save_path is not None}

    def _keep(self, path):
        """Copy an uploaded file into ``added_dir`` (content-addressed); its path."""
        with open(path, "rb") as handle:
            data = handle.read()
        os.makedirs(self.added_dir, exist_ok=True)
        target = os.path.join(os.path.abspath(self.added_dir),
                              hashlib.sha256(data).hexdigest()[:24] + os.path.splitext(path)[1])
        if not os.path.exists(target):
            with atomic_write(target) as handle:
                handle.write(data)
        return target


def _readable_errors(call, names, what, kind=None):
    """Run ``call``; a failure of the input becomes a 422 in one sentence naming the
    upload (never a temporary path)."""
    try:
        return call()
    except (ValueError, TypeError, OSError) as exc:
        message = failure_reason(exc)
        upload = names.get(os.fspath(exc.item)) if isinstance(
            getattr(exc, "item", None), (str, os.PathLike)) else None
        for path, name in names.items():
            message = message.replace(repr(path), repr(name)).replace(path, name)
        if upload is not None:
            raise ApiError(422, f"could not read {upload!r} as {_a(kind)}: "
                                f"{message.rstrip('.')}.") from exc
        raise ApiError(422, f"could not use the {what}: {message}") from exc


def _a(what):
    return {"image": "an image", "audio": "a sound", "text": "a text"}.get(what, "a query")
