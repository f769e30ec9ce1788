"""``skfindkit serve``: a search service and a web page for any fitted pipeline.

``create_app(pipeline)`` builds the FastAPI application (``POST /search``,
``GET /items/{id}``, ``GET /info``, ``GET /health``, ``POST /items`` with a
token, and a search page at ``/``; an optional read token guards all but
``/health``); ``skfindkit serve pipeline.skfk`` runs it with
uvicorn. Needs the ``serve`` extra: ``pip install 'skfindkit[serve]'``
(FastAPI and uvicorn are imported only when a server is made).
"""

from ._app import create_app
from ._cli import add_parser, main

__all__ = ["add_parser", "create_app", "main"]
