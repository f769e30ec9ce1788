"""The ``skfindkit serve`` subcommand: load a pipeline once and run uvicorn."""

import os
import sys
from pathlib import Path

from .._cli_files import _positive_int

__all__ = ["add_parser", "main"]

TOKEN_ENV = "SKFINDKIT_SERVE_TOKEN"


def add_parser(subparsers):
    """Add ``serve`` to the ``skfindkit`` command's subparsers."""
    serve = subparsers.add_parser(
        "serve", help="serve a fitted pipeline over HTTP, with a search page at /",
        description="Serve a fitted pipeline: POST /search, GET /items/{id}, GET /health, "
                    "POST /items (with --token), and a search page at /. The pipeline is a "
                    "joblib file, which runs code when loaded: serve only files you trust.",
    )
    serve.add_argument("pipeline", help="a pipeline saved by 'skfindkit index' or 'skfindkit demo'")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--items-dir", default=None,
                       help="folder the indexed items' keys are relative to "
                            "(default: the pipeline file's folder)")
    serve.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                       help=f"enable POST /items for requests bearing this token (or set "
                            f"{TOKEN_ENV}); additions are saved back to the pipeline file")
    serve.add_argument("--max-upload-mb", type=float, default=20.0,
                       help="largest upload accepted, in MiB (default: %(default)s)")
    serve.add_argument("--workers", type=_positive_int, default=4,
                       help="threads running the pipeline at once (default: %(default)s)")
    serve.set_defaults(func=main)
    return serve


def main(args):
    """Run the server for parsed ``args``; 2 with a one-line message if it cannot start."""
    from ._app import create_app
    from ._files import _load_pipeline

    pipeline = _load_pipeline(args.pipeline)  # ValueError/FileNotFoundError: one line, exit 2
    import uvicorn

    path = Path(args.pipeline).resolve()
    items_dir = args.items_dir if args.items_dir is not None else path.parent
    if not os.path.isdir(items_dir):
        raise FileNotFoundError(f"--items-dir {items_dir!r} is not a directory")
    app = create_app(
        pipeline, items_dir=items_dir, token=args.token or None,
        max_upload_bytes=int(args.max_upload_mb * 2**20), max_workers=args.workers,
        save_path=path if args.token else None,
        added_dir=path.with_name(path.stem + "_added") if args.token else None,
    )
    spec = app.state.service.spec
    print(f"skfindkit serve: {app.state.service.n_items} {spec.kind} items from {path.name}; "
          f"open http://{args.host}:{args.port}/  (Ctrl+C stops)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
