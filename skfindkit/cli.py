"""Command line: ``skfindkit demo``, ``index``, ``add``, ``query``, ``remove``, ``info``, ``serve`` and ``evaluate``.

Every failure ends in one line on stderr (``skfindkit: error: ...``) and a
non-zero exit status; ``--debug`` shows the traceback instead.

Pipeline files are written and read in skfindkit's safe format
(:mod:`skfindkit.io`, ``.skfk``), which runs no code when loaded. A
pickle/joblib file runs code when loaded: ``index --out NAME.joblib`` still
writes one (with a note), and ``add``/``query``/``remove``/``info``/``serve`` read one
only with ``--trust-pickle`` (see ``skfindkit._app.pipeline_files``).
"""

import argparse
import sys

__all__ = ["build_parser", "main"]


def _demo(args):
    from .demo import run_demo

    run_demo(args.out, k=args.k, n_queries=args.queries, verbose=0 if args.quiet else 1)
    return 0


def build_parser():
    """The argument parser of the ``skfindkit`` command."""
    from . import __version__
    from ._app.arguments import positive_int
    from ._cli_files import register

    parser = argparse.ArgumentParser(
        prog="skfindkit", description="Content-based retrieval as scikit-learn pipelines."
    )
    parser.add_argument("--version", action="version", version=f"skfindkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and native libraries' messages")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="grid-search, save, query and plot a digits retrieval system")
    demo.add_argument("--out", default="skfindkit_demo_output",
                      help="output folder (default: %(default)s)")
    demo.add_argument("-k", type=positive_int("k"), default=10,
                      help="results per query (default: 10)")
    demo.add_argument("--queries", type=positive_int("--queries"), default=4,
                      help="queries to show (default: 4)")
    demo.add_argument("--quiet", action="store_true", help="no progress or tables")
    demo.set_defaults(func=_demo)
    register(sub)  # index, add, query, info
    from ._cli_evaluate import register as add_evaluate_parser

    add_evaluate_parser(sub)  # evaluate: skfindkit/_cli_evaluate.py
    from .serve import add_parser as add_serve_parser

    add_serve_parser(sub)  # serve: skfindkit/serve/
    from ._cli_remove import add_parser as add_remove_parser

    add_remove_parser(sub)  # remove: _cli_remove.py
    for command in sub.choices.values():  # --debug also after the subcommand
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks and native libraries' messages")
    return parser


def _one_line(exc):
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, FileNotFoundError, ImportError, OSError, TypeError)):
        return message
    return f"{type(exc).__name__}: {message}"


def main(argv=None):
    """Entry point of the ``skfindkit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("skfindkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # every failure: one line, unless --debug
        if args.debug:
            raise
        print(f"skfindkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
