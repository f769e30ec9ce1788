"""The FastAPI application: /search, /items, /info, /health and the page at /."""

import asyncio
import hashlib
import logging
import os
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import numpy as np

from ..io import atomic_write
from ..search import search
from .._cli_io import wants_pickle
from ._auth import Access, ReadGuard, authorization
from ._files import _save_pipeline, check_pipeline
from ._items import ItemStore, UnknownItem, describe_pipeline, key_to_json
from ._limits import (DEFAULT_MAX_PIXELS, DEFAULT_MAX_SECONDS, DecodeSlots, check_limits,
                      check_uploads)
from ._locks import ReadWriteLock
from ._requests import ApiError, BodyLimit, parse_body, remove_files, write_uploads

__all__ = ["create_app"]

logger = logging.getLogger("skfindkit.serve")
STATIC = Path(__file__).parent / "static"


class _Service:
    """The loaded pipeline and everything that touches it (called from worker threads)."""

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
        self.lock = ReadWriteLock()
        self.decodes = DecodeSlots(limits["max_decodes"])

    def _decoding(self, names):
        """Check the uploads' headers, then hold a decode slot (none needed for texts)."""
        if self.spec.query != "file":
            return nullcontext()
        check_uploads(names, self.spec.kind, self.limits["max_pixels"],
                      self.limits["max_seconds"])
        return self.decodes.hold()

    @property
    def n_items(self):
        return self.index.n_samples_fit_

    def keys(self):
        keys = getattr(self.index, "item_keys_", None)
        return keys if keys is not None else np.arange(self.n_items)

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

    def search(self, query, k):
        items, names = write_uploads(query, self.spec, self.upload_dir)
        try:
            with self._decoding(names), self.lock.read():
                result = _readable_errors(lambda: search(self.pipeline, items, n_neighbors=k),
                                          names, "query")
        finally:
            remove_files(names)
        hits = []
        for rank, (i, key, dist) in enumerate(zip(result.indices[0].tolist(),
                                                   result.keys[0].tolist(),
                                                   result.distances[0].tolist()), start=1):
            key = key_to_json(key)
            url = f"/items/{i}" if self.store.has_file(key) else None
            hits.append({"rank": rank, "id": i, "key": key, "distance": dist, "url": url})
        return hits

    def item(self, item_id):
        with self.lock.read():
            n, keys = self.n_items, self.keys()
            number = self.store.parse_id(item_id, n)
            key = key_to_json(keys[number])
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
        items, names = write_uploads(query, self.spec, self.upload_dir)
        try:
            with self._decoding(names):
                if stored:
                    items = [self._keep(path) for path in items]
                with self.lock.read():
                    features = _readable_errors(lambda: self._features(items), names, "item")
        finally:
            remove_files(names)
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or not np.isfinite(features).all():
            raise ApiError(422, "the new items give non-finite features; nothing was added")
        with self.lock.write():
            first = self.n_items
            new_keys = (items if stored else query.keys
                        or [f"added #{first + i}" for i in range(len(features))])
            old_keys = [key_to_json(k) for k in self.keys().tolist()]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # keys: re-attached below
                _readable_errors(lambda: self.index.partial_fit(features), {}, "items")
            self.index.item_keys_ = np.asarray(old_keys + [key_to_json(k) for k in new_keys],
                                               dtype=object)
            if self.save_path is not None:
                _save_pipeline(self.pipeline, self.save_path, kind=self.save_kind)
            return {"added": [{"id": first + i, "key": key_to_json(k)}
                              for i, k in enumerate(new_keys)], "items": self.n_items,
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


def _readable_errors(call, names, what):
    """Run ``call``; a failure of the input becomes a 422 naming the upload, not a temp path."""
    try:
        return call()
    except (ValueError, TypeError, OSError) as exc:
        message = str(exc)
        for path, name in names.items():
            message = message.replace(repr(path), repr(name)).replace(path, name)
        raise ApiError(422, f"could not use the {what}: {message}") from exc


def create_app(pipeline, *, items_dir=".", token=None, read_token=None,
               max_upload_bytes=20 * 2**20, max_pixels=DEFAULT_MAX_PIXELS,
               max_seconds=DEFAULT_MAX_SECONDS, max_decodes=2, max_workers=4, max_pending=64,
               max_k=1000, save_path=None, added_dir=None, save_format=None):
    """A FastAPI application serving searches over a fitted pipeline.

    Parameters
    ----------
    pipeline : Pipeline or index
        Fitted; its final step is a skfindkit index. Loaded once, shared by
        every request.
    items_dir : path-like, default="."
        Folder the indexed items' relative keys are resolved in (for
        ``GET /items/{id}``). Only files inside it (after resolving links
        and ``..``) and those the server stored in ``added_dir`` are served.
    token : str, default=None
        The write token: enables ``POST /items`` for requests bearing it
        (and grants reading); None disables adding.
    read_token : str, default=None
        When given, every request but ``GET /health`` needs it (or
        ``token``), as ``Authorization: Bearer`` or as the password of HTTP
        Basic authentication; ``/health`` then answers only
        ``{"status": "ok"}`` without it. None: reading is open.
    max_upload_bytes : int, default=20 MiB
        Largest request body accepted (413 beyond).
    max_pixels : int, default=40_000_000
        Largest image (width x height, read from the file's header before
        decoding) accepted as a query or an added item, or thumbnailed
        (413 beyond).
    max_seconds : float, default=300
        Longest sound accepted (from the file's header, before decoding;
        also at most ``max_seconds`` x 96000 samples over all channels).
    max_decodes : int, default=2
        Uploads (images, sounds, files) decoded at once; further requests
        wait, and get 503 after 30 s.
    max_workers : int, default=4
        Threads that run the pipeline: at most this many requests at once.
    max_pending : int, default=64
        Requests allowed to wait for a worker; more are answered 503.
    max_k : int, default=1000
        Largest ``k`` accepted.
    save_path : path-like, default=None
        Where the pipeline is saved (atomically) after each addition.
    save_format : {"safe", "pickle"}, default=None
        Format of ``save_path``: skfindkit's safe format (:mod:`skfindkit.io`)
        or joblib; None: joblib only for a name ending in ``.joblib``,
        ``.pkl`` or ``.pickle``.
    added_dir : path-like, default=None
        Where added files are kept; a temporary folder when None.

    Returns
    -------
    app : fastapi.FastAPI

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastapi.testclient import TestClient
    >>> from skfindkit import ExactIndex
    >>> from skfindkit.serve import create_app
    >>> X, _ = load_digits(return_X_y=True)
    >>> client = TestClient(create_app(ExactIndex(n_neighbors=3).fit(X)))
    >>> [hit["id"] for hit in client.post("/search", json={"vector": X[7].tolist()}).json()["results"]]
    [7, 1201, 44]
    """
    from ..utils import import_optional

    import_optional("fastapi", "serve")
    import_optional("python_multipart", "serve", package="python-multipart")
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from .. import __version__

    check_limits(max_pixels=max_pixels, max_seconds=max_seconds, max_decodes=max_decodes)
    for name, value in (("token", token), ("read_token", read_token)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
    scratch = tempfile.TemporaryDirectory(prefix="skfindkit-serve-")  # uploads in flight
    if added_dir is None:
        added_dir = os.path.join(scratch.name, "added")
    if save_format is None and save_path is not None:
        save_format = "pickle" if wants_pickle(save_path) else "safe"
    limits = {"max_pixels": max_pixels, "max_seconds": max_seconds, "max_decodes": max_decodes}
    access = Access(read_token, token)
    service = _Service(pipeline, items_dir, access, save_path, added_dir, max_k, scratch.name,
                       save_format, limits)
    executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="skfindkit-serve")
    pending = {"n": 0}

    @asynccontextmanager
    async def lifespan(app):
        yield
        executor.shutdown(wait=True)
        scratch.cleanup()

    app = FastAPI(title="skfindkit", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.service = service

    async def run(func, *args):
        if pending["n"] >= max_workers + max_pending:
            raise ApiError(503, "the server is busy: too many requests waiting, retry later")
        pending["n"] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, func, *args)
        finally:
            pending["n"] -= 1

    def error(request, status, message):
        log = logger.warning if status < 500 else logger.error
        log("%s %s -> %d: %s", request.method, request.url.path, status, message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc):
        return error(request, exc.status, exc.message)

    @app.exception_handler(UnknownItem)
    async def _unknown_item(request, exc):
        return error(request, 404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return error(request, 422, "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def _http(request, exc):
        return error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the "
                                       "server log"}, status_code=500)

    @app.get("/info")
    async def info():
        spec = service.spec
        return {"status": "ok", "version": __version__, "kind": spec.kind, "query": spec.query,
                "items": service.n_items, "n_features": spec.n_features,
                "extensions": list(spec.extensions),
                "k_default": service.check_k(None), "k_max": min(service.n_items, max_k),
                "adding": token is not None, "max_upload_bytes": max_upload_bytes, **limits}

    @app.get("/health")
    async def health(request: Request):
        if not access.can_read(authorization(request.scope)):
            return {"status": "ok"}  # an open probe: nothing about the pipeline
        return await info()

    @app.post("/search")
    async def search_items(request: Request, k: int | None = None):
        k = service.check_k(k)
        query = await parse_body(request, service.spec)
        started = time.perf_counter()
        hits = await run(service.search, query, k)
        # plain JSON types already: answered as is, not walked by FastAPI's generic encoder
        return JSONResponse({"k": k, "kind": service.spec.kind, "results": hits,
                             "took_ms": round(1000 * (time.perf_counter() - started), 3)})

    @app.get("/items/{item_id:path}")
    async def get_item(item_id: str):
        content, media_type = await run(service.item, item_id)
        if isinstance(content, Path):
            return FileResponse(content, media_type=media_type)
        return Response(content, media_type=media_type,
                        headers={"Cache-Control": "private, max-age=60"})

    @app.post("/items", status_code=201)
    async def add_items(request: Request):
        access.check_write(authorization(request.scope))
        query = await parse_body(request, service.spec, many=True)
        return await run(service.add, query)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=max_upload_bytes)
    app.add_middleware(ReadGuard, access=access)  # added last: runs first
    return app
