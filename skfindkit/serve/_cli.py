"""The ``skfindkit serve`` subcommand: load a pipeline once and run uvicorn."""

import os
import sys
from pathlib import Path

from .._app.arguments import positive_float as _positive_float
from .._app.arguments import positive_int
from .._app.pipeline_files import TRUST_PICKLE_HELP
from ._limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SECONDS

__all__ = ["add_parser", "default_items_dir", "main"]

TOKEN_ENV = "SKFINDKIT_SERVE_TOKEN"
READ_TOKEN_ENV = "SKFINDKIT_SERVE_READ_TOKEN"


_positive_int = positive_int()


def add_parser(subparsers):
    """Add ``serve`` to the ``skfindkit`` command's subparsers."""
    serve = subparsers.add_parser(
        "serve", help="serve a fitted pipeline over HTTP, with a search page at /",
        description="Serve a fitted pipeline: POST /search, GET /items/{id}, GET /info, "
                    "GET /health, POST /items (with --token), and a search page at /; with "
                    "--read-token, every request but GET /health needs a token. The pipeline is a "
                    "file in skfindkit's safe format (written by 'skfindkit index' or "
                    "'skfindkit demo'; runs no code when loaded); a pickle/joblib file is "
                    "served only with --trust-pickle.",
    )
    serve.add_argument("pipeline", help="a pipeline saved by 'skfindkit index' or 'skfindkit demo'")
    serve.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--items-dir", default=None,
                       help="folder the indexed items' keys are relative to (default: "
                            "the folder 'skfindkit index' indexed, else the pipeline "
                            "file's folder)")
    serve.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                       help=f"enable POST /items for requests bearing this token (or set "
                            f"{TOKEN_ENV}); additions are saved back to the pipeline file. "
                            "It also grants reading")
    serve.add_argument("--read-token", default=os.environ.get(READ_TOKEN_ENV),
                       help=f"require this token (or the --token) for every request but GET "
                            f"/health, as 'Authorization: Bearer TOKEN' or as the password of "
                            f"HTTP Basic auth (browsers ask for it); or set {READ_TOKEN_ENV}. "
                            "Default: reading is open")
    serve.add_argument("--max-upload-mb", type=float, default=20.0,
                       help="largest upload accepted, in MiB (default: %(default)s)")
    serve.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS,
                       help="largest image (width x height, read before decoding) accepted "
                            "as a query or an added item (default: %(default)s)")
    serve.add_argument("--max-seconds", type=_positive_float, default=DEFAULT_MAX_SECONDS,
                       help="longest sound (read before decoding) accepted as a query or an "
                            "added item (default: %(default)s)")
    serve.add_argument("--max-decodes", type=_positive_int, default=2,
                       help="uploads decoded at once; more wait (default: %(default)s)")
    serve.add_argument("--workers", type=_positive_int, default=4,
                       help="threads running the pipeline at once (default: %(default)s)")
    serve.add_argument("--mmap", action="store_true",
                       help="map the pipeline file's arrays instead of reading them into "
                            "memory (skfindkit.io.load(..., mmap_mode='r'); safe format only). "
                            "Never truncate or rewrite the file in place while serving (a "
                            "crash or silently other answers): replace it by renaming")
    serve.add_argument("--verify", choices=("once", "always"), default="once",
                       help="with --mmap: 'once' maps a file verified completely before "
                            "and unchanged since without passing over all its data again "
                            "(a record in ~/.cache/skfindkit, or $SKFINDKIT_CACHE_DIR); "
                            "'always' verifies the whole file at every start "
                            "(default: %(default)s)")
    serve.add_argument("--processes", type=_positive_int, default=1,
                       help="server processes forked after loading the pipeline once, mapped "
                            "(implies --mmap, and its rule on the file; they share one copy "
                            "of the data); not with --token (default: %(default)s)")
    serve.add_argument("--no-access-log", action="store_true",
                       help="do not log a line per request (uvicorn's access log, on by "
                            "default; it costs about 0.15-0.25 ms of CPU per request); errors "
                            "are still logged")
    serve.set_defaults(func=main)
    return serve


def default_items_dir(pipeline, path):
    """The folder 'skfindkit index' indexed (keys are relative to it) if it is still
    there, else the folder of the pipeline file at ``path``."""
    from .._app.items import items_root

    root = items_root(pipeline)
    return root if root is not None and os.path.isdir(root) else Path(path).resolve().parent


def main(args):
    """Run the server for parsed ``args``; 2 with a one-line message if it cannot start."""
    from .._app.pipeline_files import load_pipeline, pipeline_file_kind
    from ._app import create_app

    processes = getattr(args, "processes", 1)
    if processes > 1 and args.token:
        raise ValueError("--processes: additions (--token) need one process, which saves "
                         "them; serve a read-only pipeline with several processes")
    mapped = getattr(args, "mmap", False) or processes > 1
    # ValueError/FileNotFoundError: one line, exit 2
    pipeline = load_pipeline(args.pipeline, trust_pickle=args.trust_pickle, check="index",
                             mmap_mode="r" if mapped else None,
                             verify=getattr(args, "verify", "once"))
    import uvicorn

    path = Path(args.pipeline).resolve()
    items_dir = args.items_dir if args.items_dir is not None else default_items_dir(
        pipeline, path)
    if not os.path.isdir(items_dir):
        raise FileNotFoundError(f"--items-dir {items_dir!r} is not a directory")
    app = create_app(
        pipeline, items_dir=items_dir, token=args.token or None,
        read_token=args.read_token or None, max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels, max_seconds=args.max_seconds,
        max_decodes=args.max_decodes, max_workers=args.workers,
        save_path=path if args.token else None,
        added_dir=path.with_name(path.stem + "_added"),  # served even without --token
        save_format=pipeline_file_kind(path),  # additions keep the file's format
    )
    spec = app.state.service.spec
    print(f"skfindkit serve: {app.state.service.n_items} {spec.kind} items from {path.name}; "
          f"open http://{args.host}:{args.port}/  (Ctrl+C stops)", file=sys.stderr, flush=True)
    access_log = not getattr(args, "no_access_log", False)
    if processes > 1:
        from ._prefork import serve_forked

        return serve_forked(app, host=args.host, port=args.port, processes=processes,
                            access_log=access_log)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=access_log)
    return 0
