"""``skfindkit index`` and ``skfindkit query``: retrieval over a folder of files."""

import os

__all__ = ["EXTENSIONS", "build_pipeline", "list_files", "register"]

EXTENSIONS = {
    "audio": (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"),
    "image": (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"),
    "text": (".txt", ".md", ".rst", ".text"),
}


def list_files(directory, kind):
    """Files of ``kind`` under ``directory`` (recursive), sorted for stable ids."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(EXTENSIONS[kind]) and not name.startswith("."):
                found.append(os.path.join(root, name))
    if not found:
        raise ValueError(
            f"no {kind} files ({', '.join(EXTENSIONS[kind])}) found under {directory!r}"
        )
    return found


def build_pipeline(kind, n_neighbors=10, n_jobs=None, verbose=0):
    """The default retrieval pipeline for one kind of file."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .indexes import ExactIndex
    from .loaders import Doc2VecLoader, ImageLoader, STFTVectorLoader

    common = dict(n_jobs=n_jobs, verbose=verbose)
    if kind == "audio":
        steps = [
            ("loader", STFTVectorLoader(representation="mfcc", deltas=1, n_segments=3,
                                        normalize="rms", top_db=60, **common)),
            ("scale", StandardScaler()),
            ("index", ExactIndex(n_neighbors=n_neighbors)),
        ]
    elif kind == "image":
        steps = [
            ("loader", ImageLoader(size=(32, 32), flatten=True, **common)),
            ("index", ExactIndex(n_neighbors=n_neighbors, metric="cosine")),
        ]
    else:
        steps = [
            ("loader", Doc2VecLoader(input="filename", min_count=1, vector_size=64,
                                     epochs=40, **common)),
            ("index", ExactIndex(n_neighbors=n_neighbors, metric="cosine")),
        ]
    return Pipeline(steps)


def _index(args):
    import joblib

    from .search import attach_keys

    files = list_files(args.directory, args.kind)
    pipeline = build_pipeline(
        args.kind, n_neighbors=min(args.n_neighbors, len(files)),
        n_jobs=args.n_jobs, verbose=int(not args.quiet),
    )
    pipeline.fit(files)
    attach_keys(pipeline, [os.path.relpath(f, args.directory) for f in files])
    pipeline.steps[0][1].set_params(verbose=0)
    joblib.dump(pipeline, args.out)
    if not args.quiet:
        print(f"indexed {len(files)} {args.kind} files from {args.directory} -> {args.out}")
    return 0


def _query(args):
    import joblib

    from .search import search
    from .utils import final_index

    if not os.path.isfile(args.pipeline):
        raise FileNotFoundError(f"no such pipeline file: {args.pipeline!r}")
    try:
        pipeline = joblib.load(args.pipeline)
    except Exception as exc:  # any unpickling failure: say what the file is not
        raise ValueError(
            f"{args.pipeline!r} is not a readable skfindkit pipeline file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        n_items = final_index(pipeline).n_samples_fit_
    except (TypeError, ValueError, AttributeError) as exc:  # not an index / not fitted
        raise ValueError(
            f"{args.pipeline!r} holds a {type(pipeline).__name__}, not a fitted pipeline "
            "ending with an skfindkit index (make one with 'skfindkit index')"
        ) from exc
    k = min(args.k, n_items)
    result = search(pipeline, list(args.files), n_neighbors=k)
    for query, ranked in zip(args.files, result):
        print(f"# {query}")
        for rank, (key, distance) in enumerate(ranked, start=1):
            print(f"{rank}\t{distance:.6g}\t{key}")
    return 0


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return value


def register(subparsers):
    """Add the ``index`` and ``query`` subcommands to the ``skfindkit`` parser."""
    index = subparsers.add_parser(
        "index", help="build and save a retrieval pipeline over a folder of files"
    )
    index.add_argument("directory", help="folder searched recursively for files")
    index.add_argument("--kind", required=True, choices=sorted(EXTENSIONS),
                       help="kind of files to index")
    index.add_argument("--out", default="pipeline.joblib",
                       help="where to save the fitted pipeline (default: %(default)s)")
    index.add_argument("--n-neighbors", type=_positive_int, default=10,
                       help="default results per query (default: %(default)s)")
    index.add_argument("--n-jobs", type=int, default=None,
                       help="parallel workers for loading files (default: 1)")
    index.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    index.set_defaults(func=_index)

    query = subparsers.add_parser(
        "query", help="print the nearest indexed files of query files"
    )
    query.add_argument("pipeline", help="a pipeline saved by 'skfindkit index'")
    query.add_argument("files", nargs="+", help="query files")
    query.add_argument("-k", type=_positive_int, default=10,
                       help="results per query (default: %(default)s)")
    query.set_defaults(func=_query)
    return subparsers
