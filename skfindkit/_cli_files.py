"""``skfindkit index``, ``add``, ``query`` and ``info``: retrieval over folders of files."""

import argparse
import json
import os
import sys
import time

import numpy as np

from ._app.arguments import positive_int
from ._app.kinds import KINDS, describe_pipeline
from ._app.items import add_items, common_folder, items_root, key_path, relative_keys
from .search import attach_keys
from .utils import final_index
from ._cli_io import (PIPELINE_SUFFIX, TRUST_PICKLE_HELP, check_output_path, describe_skipped,
                      effective_jobs, list_files, load_pipeline, load_rows,
                      pipeline_file_kind, quiet_native_stderr, save_pipeline, wants_pickle,
                      write_json)

__all__ = ["register"]


def _say(args, message):
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _announce_slow_start(args, kind):
    if kind == "audio":
        _say(args, "loading librosa; its first use in a fresh environment compiles "
                   "numba kernels (up to a minute, once)...")
    elif getattr(args, "features", None) == "keras":
        _say(args, "loading Keras/TensorFlow...")


def _fit_collection(pipeline, files, args, kind, *, fitted=False):
    """Rows of the good files through every step but the index; failures listed."""
    with quiet_native_stderr(not args.debug) as suppressed:
        X, good, failures, notes = load_rows(pipeline, files, kind=kind,
                                             encoding=args.encoding, fitted=fitted)
        if len(good) and len(pipeline.steps) > 2:
            middle = pipeline[1:-1]
            X = middle.transform(X) if fitted else middle.fit_transform(X)
    for note in notes:
        _say(args, f"  warning: {note}")
    if suppressed and suppressed[0]:
        _say(args, f"({suppressed[0]} lines of decoder messages hidden; --debug shows them)")
    return X, good, failures


def _report(args, summary, failures):
    """Failures one per line, then one summary line; the JSON list if asked."""
    for failure in failures:
        _say(args, f"  failed: {failure['file']}: {failure['reason']}")
    if failures:
        summary += (f"; {len(failures)} file{'s' * (len(failures) > 1)} failed (listed above"
                    + (f" and in {args.failures}" if args.failures else "") + ")")
    _say(args, summary)
    if args.failures:
        write_json(args.failures, failures)


def _exit_status(args, n_done, failures):
    if n_done == 0:
        print("skfindkit: error: no file could be loaded (see the reasons above)",
              file=sys.stderr)
        return 1
    return 1 if (failures and args.strict) else 0


def _index(args):
    from .features import build_pipeline, check_available

    check_output_path(args.out)
    if args.failures:
        check_output_path(args.failures)
    check_available(args.kind, args.features, args.index)  # names and extras first
    _check_format(args)
    files, skipped = list_files(args.paths, args.kind)
    if skipped:
        _say(args, describe_skipped(skipped) + " (name files one by one to index them anyway)")
    _announce_slow_start(args, args.kind)
    pipeline = build_pipeline(
        args.kind, args.features, n_neighbors=args.n_neighbors, metric=args.metric,
        index=args.index, encoding=args.encoding, weights=args.weights,
        n_jobs=effective_jobs(args.n_jobs, len(files)), verbose=int(not args.quiet),
    )
    start = time.perf_counter()
    X, good, failures = _fit_collection(pipeline, files, args, args.kind)
    if len(good):
        index = pipeline[-1]  # not fitted yet: the last step being built
        index.set_params(n_neighbors=min(args.n_neighbors, len(good)))
        index.fit(X)
        root = common_folder(args.paths)
        attach_keys(pipeline, np.asarray(relative_keys([files[i] for i in good], root),
                                         dtype=object))
        index.items_root_ = root
        pipeline.steps[0][1].set_params(verbose=0)
        save_pipeline(pipeline, args.out)
    _report(args, f"indexed {len(good)} of {len(files)} {args.kind} files in "
                  f"{time.perf_counter() - start:.1f} s"
                  + (f" -> {os.path.abspath(args.out)}" if len(good) else ""), failures)
    return _exit_status(args, len(good), failures)


def _check_format(args):
    """Before any work: the feature set fits the output format; a pickle is said to be one."""
    from .features import _feature_set

    pickle = wants_pickle(args.out)
    if not pickle and not _feature_set(args.kind, args.features).safe:
        raise ValueError(
            f"--features {args.features} holds a model the safe format cannot store (a "
            "gensim Doc2Vec model): give a joblib output, e.g. --out pipeline.joblib (a "
            "pickle, which runs code when loaded: skfindkit reads it only with --trust-pickle)"
        )
    if pickle:
        _say(args, f"note: {args.out} will be a pickle (joblib), which runs code when loaded: "
                   "share it only with people who trust you; skfindkit reads it back only "
                   f"with --trust-pickle (the default {PIPELINE_SUFFIX} format runs no code)")


def _add(args):
    file_kind = pipeline_file_kind(args.pipeline)  # saved back in the format it has
    pipeline = load_pipeline(args.pipeline, trust_pickle=args.trust_pickle)
    check_output_path(args.pipeline)
    if args.failures:
        check_output_path(args.failures)
    index = final_index(pipeline)
    kind = describe_pipeline(pipeline).kind
    root = items_root(pipeline)
    keys = getattr(index, "item_keys_", None)
    known = set() if keys is None else {os.path.abspath(key_path(k, root)) for k in keys}
    files, skipped = list_files(args.paths, kind)
    if skipped:
        _say(args, describe_skipped(skipped))
    files = [f for f in files if f not in known]
    if not files:
        _say(args, "nothing to add: every file is already indexed")
        return 0
    _announce_slow_start(args, kind)
    pipeline.steps[0][1].set_params(**_loader_options(pipeline, args, len(files)))
    args.encoding = _pipeline_encoding(pipeline)  # text files: as when it was built
    X, good, failures = _fit_collection(pipeline, files, args, kind, fitted=True)
    if len(good):
        new = [files[i] for i in good]
        add_items(pipeline, X, relative_keys(new, root) if root is not None else new)
        pipeline.steps[0][1].set_params(verbose=0)
        save_pipeline(pipeline, args.pipeline, kind=file_kind)
    _report(args, f"added {len(good)} of {len(files)} files; the index holds "
                  f"{index.n_samples_fit_} items -> {os.path.abspath(args.pipeline)}", failures)
    return _exit_status(args, len(good), failures)


def _loader_options(pipeline, args, n_files):
    params = pipeline.steps[0][1].get_params()
    options = {k: v for k, v in (("n_jobs", effective_jobs(getattr(args, "n_jobs", None),
                                                           n_files)),
                                 ("verbose", int(not args.quiet))) if k in params}
    return options


def _pipeline_encoding(pipeline):
    """The text encoding the pipeline was built with (files are read in it)."""
    return next((v for k, v in pipeline.get_params().items()
                 if k.endswith("encoding") and isinstance(v, str)), "utf-8")


def _query(args):
    from dataclasses import replace

    from ._cli_output import print_results, write_gallery
    from .search import search

    pipeline = load_pipeline(args.pipeline, trust_pickle=args.trust_pickle,
                             mmap_mode="r" if args.mmap else None)
    if args.gallery:
        from .utils import import_optional

        check_output_path(args.gallery)
        import_optional("matplotlib", "plot")
    kind = describe_pipeline(pipeline).kind
    if kind == "vector":
        raise ValueError(f"{args.pipeline!r} searches feature vectors, not files: query it "
                         "from Python (skfindkit.search) or over HTTP (skfindkit serve)")
    index = final_index(pipeline)
    k = min(args.k, index.n_items_)  # live items: removed ones are never returned
    queries = [os.path.abspath(f) for f in args.files]
    for query in queries:
        if not os.path.isfile(query):
            raise FileNotFoundError(f"no such query file: {query!r}")
    pipeline.steps[0][1].set_params(**_loader_options(pipeline, args, len(queries)))
    args.encoding = _pipeline_encoding(pipeline)
    X, good, failures = _fit_collection(pipeline, queries, args, kind, fitted=True)
    for failure in failures:
        _say(args, f"  failed: {failure['file']}: {failure['reason']}")
    if failures:
        _say(args, f"{len(failures)} of {len(queries)} query files could not be read "
                   "(listed above); the others are answered")
        if args.failures:
            write_json(args.failures, failures)
    if not len(good):
        return _exit_status(args, 0, failures)
    queries = [queries[i] for i in good]
    result = search(index, X, n_neighbors=k, where=getattr(args, "where", None))
    root = items_root(pipeline)
    paths = np.array([[key_path(key, root) for key in row] for row in result.keys.tolist()],
                     dtype=object).reshape(result.keys.shape)
    result = replace(result, keys=paths)
    print_results(queries, result, args.format)
    if args.gallery:
        write_gallery(args.gallery, kind, queries, result)
        print(f"gallery written to {os.path.abspath(args.gallery)}", file=sys.stderr)
    return _exit_status(args, len(good), failures)


def _info(args):
    from ._cli_output import pipeline_info

    pipeline = load_pipeline(args.pipeline, trust_pickle=args.trust_pickle)
    info = pipeline_info(pipeline, args.pipeline, kind=describe_pipeline(pipeline).kind)
    if args.format == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            if isinstance(value, list):
                print(f"{key}:")
                for line in value:
                    print(f"  {line}")
            else:
                print(f"{key}: {value}")
    return 0


# -------------------------------------------------------------------- parser


def _jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n-jobs must be an integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("--n-jobs must not be 0 (1: one job, -1: all cores)")
    return value


def _encoding(text):
    import codecs

    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r}") from None


def _common(parser):
    parser.add_argument("--n-jobs", type=_jobs, default=None,
                        help="parallel workers for loading files (default: 1; folders "
                             "smaller than 64 files per worker use fewer)")
    parser.add_argument("--failures", metavar="JSON",
                        help="also write the files that failed, with reasons, as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when any file failed (default: only "
                             "when none loaded)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def register(subparsers):
    """Add ``index``, ``add``, ``query`` and ``info`` to the ``skfindkit`` parser."""
    from .features import DEFAULT_FEATURES, FEATURE_SETS
    from .utils.discovery import index_backends, index_metrics

    feature_help = "; ".join(
        f"{kind}: {', '.join(FEATURE_SETS[kind])} (default {DEFAULT_FEATURES[kind]})"
        for kind in sorted(FEATURE_SETS)
    )
    index = subparsers.add_parser(
        "index", help="build and save a retrieval pipeline over folders of files",
        description="Index every file of one kind under the given folders. Files that "
                    "cannot be loaded are reported and left out.",
    )
    index.add_argument("paths", nargs="+", metavar="FOLDER_OR_FILE",
                       help="folders (searched recursively) or files")
    index.add_argument("--kind", required=True, choices=KINDS,
                       help="kind of files to index")
    index.add_argument("--out", default="pipeline" + PIPELINE_SUFFIX,
                       help="where to save the fitted pipeline (default: %(default)s, "
                            "skfindkit's safe format, which runs no code when loaded; a "
                            "name ending in .joblib writes a pickle instead, trusted use only)")
    index.add_argument("--features", default="default", metavar="NAME",
                       help=f"feature set: {feature_help}; see docs/cli.md")
    index.add_argument("--metric", choices=index_metrics(),
                       help="distance (default: the feature set's)")
    index.add_argument("--index", default="exact", choices=list(index_backends()),
                       help="nearest-neighbour index (default: exact; the others need "
                            "their extra, e.g. skfindkit[hnswlib])")
    index.add_argument("--encoding", default="utf-8", type=_encoding,
                       help="encoding of text files (default: %(default)s)")
    index.add_argument("--weights", metavar="PATH",
                       help="weights file for --features keras (MobileNetV2, no top)")
    index.add_argument("--n-neighbors", type=positive_int("--n-neighbors"), default=10,
                       help="default results per query (default: %(default)s)")
    _common(index)
    index.set_defaults(func=_index)

    add = subparsers.add_parser(
        "add", help="add files to a saved pipeline without re-indexing (partial_fit)")
    add.add_argument("pipeline", help="a pipeline saved by 'skfindkit index'")
    add.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    add.add_argument("paths", nargs="+", metavar="FOLDER_OR_FILE",
                     help="folders (searched recursively) or files; already indexed "
                          "files are skipped")
    _common(add)
    add.set_defaults(func=_add)

    query = subparsers.add_parser("query", help="print the nearest indexed files of query files")
    query.add_argument("pipeline", help="a pipeline saved by 'skfindkit index'")
    query.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    query.add_argument("files", nargs="+", help="query files")
    query.add_argument("-k", type=positive_int("k"), default=10,
                       help="results per query (default: %(default)s)")
    query.add_argument("--format", choices=("table", "json", "csv"), default="table",
                       help="output format (default: %(default)s)")
    query.add_argument("--failures", metavar="JSON",
                       help="also write the query files that failed, with reasons, as JSON")
    query.add_argument("--strict", action="store_true",
                       help="exit with status 1 when any query file failed (default: only "
                            "when none could be read)")
    query.add_argument("--quiet", action="store_true", help="no progress bar")
    query.add_argument("--gallery", metavar="PNG",
                       help="also draw the queries and their results (images: thumbnails, "
                            "audio: spectrograms, text: snippets); needs matplotlib")
    query.add_argument("--mmap", action="store_true",
                       help="map the pipeline file's arrays instead of reading them: a large "
                            "index answers its first query sooner, and a file that an earlier "
                            "mapped load verified, unchanged since, is not read in full again "
                            "(safe format; docs/mmap.md)")
    query.add_argument("--where", metavar="CONDITION",
                       help="only items whose metadata meet the condition, e.g. "
                            "\"shop == 'a' and year >= 2020\" (see docs/metadata.md)")
    query.set_defaults(func=_query)

    info = subparsers.add_parser("info", help="what a saved pipeline holds (without running it)")
    info.add_argument("pipeline", help="a pipeline saved by 'skfindkit index'")
    info.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    info.add_argument("--format", choices=("table", "json"), default="table")
    info.set_defaults(func=_info)
    return subparsers
