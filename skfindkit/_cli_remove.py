"""The ``skfindkit remove PIPELINE KEY...`` command: remove indexed items by key."""

from ._cli_io import TRUST_PICKLE_HELP, check_output_path, load_pipeline, pipeline_file_kind

__all__ = ["add_parser"]


def add_parser(subparsers):
    """Add ``remove`` to the ``skfindkit`` command's subparsers."""
    remove = subparsers.add_parser(
        "remove", help="remove indexed items by key (e.g. file path) and save the pipeline",
        description="Remove the items with these keys (the keys 'skfindkit query' prints) "
                    "from a saved pipeline, which is saved back in its format. The other "
                    "items keep their ids; a key of no live item is an error and nothing is "
                    "removed then.")
    remove.add_argument("pipeline", help="a pipeline saved by 'skfindkit index'")
    remove.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    remove.add_argument("keys", nargs="+", metavar="KEY", help="keys of the items to remove")
    remove.add_argument("--quiet", action="store_true", help="print nothing on success")
    remove.set_defaults(func=main)
    return remove


def main(args):
    """Remove ``args.keys`` from ``args.pipeline`` and save it; 0 on success."""
    import sys

    from ._cli_io import save_pipeline
    from .search import remove_keys
    from .utils import final_index

    kind = pipeline_file_kind(args.pipeline)  # saved back in the format it has
    pipeline = load_pipeline(args.pipeline, trust_pickle=args.trust_pickle)
    check_output_path(args.pipeline)
    ids = remove_keys(pipeline, args.keys)
    save_pipeline(pipeline, args.pipeline, kind=kind)
    if not args.quiet:
        print(f"removed {ids.size} items; the index holds {final_index(pipeline).n_items_} "
              f"items -> {args.pipeline}", file=sys.stderr)
    return 0
