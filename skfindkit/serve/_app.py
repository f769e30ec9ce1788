"""The FastAPI application: /search, /items, /info, /health and the page at /."""

import asyncio
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from .._app.pipeline_files import wants_pickle
from ._auth import Access, ReadGuard
from ._limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SECONDS, check_limits
from ._requests import ApiError, BodyLimit
from ._routes import add_error_handlers, add_routes
from ._service import Service

__all__ = ["create_app"]


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
    from fastapi import FastAPI

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
    service = Service(pipeline, items_dir, access, save_path, added_dir, max_k, scratch.name,
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

    add_error_handlers(app)
    add_routes(app, service, run, {"adding": token is not None,
                                   "max_upload_bytes": max_upload_bytes, **limits})
    app.add_middleware(BodyLimit, limit=max_upload_bytes)
    app.add_middleware(ReadGuard, access=access)  # added last: runs first
    return app
