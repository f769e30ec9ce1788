"""The service's routes and error handlers, attached to a FastAPI application."""

import logging
import time
from pathlib import Path

from ._auth import authorization
from ._items import UnknownItem
from ._json import dumps
from ._lifecycle import check_restriction
from ._requests import SEARCH_PARAMETERS, ApiError, parse_body, search_params

__all__ = ["add_error_handlers", "add_routes"]

logger = logging.getLogger("skfindkit.serve")
STATIC = Path(__file__).parent / "static"


def _error(request, status, message):
    from fastapi.responses import JSONResponse

    log = logger.warning if status < 500 else logger.error
    log("%s %s -> %d: %s", request.method, request.url.path, status, message)
    return JSONResponse({"detail": message}, status_code=status)


def add_error_handlers(app):
    """Every failure as ``{"detail": "..."}`` with its status, logged."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def _api_error(request, exc):
        return _error(request, exc.status, exc.message)

    @app.exception_handler(UnknownItem)
    async def _unknown_item(request, exc):
        return _error(request, 404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return _error(request, 422, "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def _http(request, exc):
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the "
                                       "server log"}, status_code=500)


def _plain_route():
    """An ``APIRoute`` class whose endpoint takes the Request and returns the Response
    itself: listed in the OpenAPI description, served as a plain ASGI application (no
    dependency resolution, validation, encoding or exit stacks by FastAPI on each
    request; errors reach the application's exception handlers as from any route)."""
    from fastapi import Request
    from fastapi.routing import APIRoute

    class PlainRoute(APIRoute):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            endpoint = self.endpoint

            async def app(scope, receive, send):
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)

            self.app = app

    return PlainRoute


def add_routes(app, service, run, settings):
    """``/info``, ``/health``, ``/search``, ``/items``, the page and its static files.

    ``run(func, *args)`` awaits ``func`` in a worker thread (``/search`` first offers
    the search to ``service.search(..., wait=False)``, which runs it at once when it is
    known to be short); ``settings`` holds
    what ``/info`` reports (``adding``, ``max_upload_bytes`` and the limits).
    """
    from fastapi import Request
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles

    from .. import __version__

    access = service.access

    @app.get("/info")
    async def info():
        spec = service.spec
        return {"status": "ok", "version": __version__, "kind": spec.kind, "query": spec.query,
                "items": service.n_items, "n_features": spec.n_features,
                "extensions": list(spec.extensions),
                "k_default": service.check_k(None),
                "k_max": min(service.n_items, service.max_k),
                "metadata": service.metadata_columns(), **settings}

    @app.get("/health")
    async def health(request: Request):
        if not access.can_read(authorization(request.scope)):
            return {"status": "ok"}  # an open probe: nothing about the pipeline
        return await info()

    async def search_items(request: Request):
        k, where, filter = search_params(request.query_params)
        k = service.check_k(k)
        query = await parse_body(request, service.spec)
        query.where, query.filter = check_restriction(
            where if where is not None else query.where,
            filter if filter is not None else query.filter)
        started = time.perf_counter()
        hits = service.search(query, k, wait=False)  # a short search, here and now
        if hits is None:
            hits = await run(service.search, query, k)
        # plain JSON types already: answered as is, not walked by FastAPI's generic encoder
        return Response(dumps({"k": k, "kind": service.spec.kind, "results": hits,
                               "took_ms": round(1000 * (time.perf_counter() - started), 3)}),
                        media_type="application/json")

    app.router.add_api_route("/search", search_items, methods=["POST"],
                             openapi_extra={"parameters": SEARCH_PARAMETERS},
                             route_class_override=_plain_route())

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

    @app.delete("/items/{item_id}")
    async def delete_item(request: Request, item_id: str):
        access.check_write(authorization(request.scope))
        return await run(service.remove, item_id)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
