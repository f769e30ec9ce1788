"""``skfindkit evaluate``: a retrieval pipeline judged on a BEIR-format folder.

The pipeline (a saved one, or one of the command's text feature sets) is
fitted on the folder's ``corpus.jsonl`` and queried with the judged queries of
one split; the command prints nDCG@10, MRR@10 and recall@100 (or the measures
asked for, :mod:`skfindkit.metrics`) and the query speed.
"""

import json
import sys
import time

from ._cli_io import TRUST_PICKLE_HELP, load_pipeline

__all__ = ["register"]

DEFAULT_MEASURES = ("ndcg@10", "mrr@10", "recall@100")


def _reading_text(pipeline):
    """The pipeline with every step that reads files set to take the texts themselves."""
    params = {name: "content" for name, value in pipeline.get_params().items()
              if (name == "input" or name.endswith("__input")) and value in ("filename", "file")}
    return pipeline.set_params(**params)


def _pipeline(args):
    if args.pipeline:
        return load_pipeline(args.pipeline, trust_pickle=args.trust_pickle, check=False)
    from .features import build_pipeline, check_available

    check_available("text", args.features)
    return build_pipeline("text", args.features)


def _evaluate(args):
    from .metrics import evaluate_run, load_beir
    from .metrics._judged import parse_measure
    from .model_selection import JudgedRetrieval

    measures = args.measures.split(",") if args.measures else list(DEFAULT_MEASURES)
    for name in measures:
        parse_measure(name)  # a bad name fails before the work
    data = load_beir(args.folder, args.split)
    if not data.corpus or not data.queries:
        raise ValueError(f"{args.folder}: no documents or no judged queries in split "
                         f"{args.split!r}.")
    pipeline = _reading_text(_pipeline(args))
    model = JudgedRetrieval(pipeline, data.corpus, doc_ids=data.corpus_ids, scoring=measures,
                            reuse_fit=False)
    start = time.perf_counter()
    model.fit()
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    run = model.retrieve(data.queries, data.query_ids)
    query_s = time.perf_counter() - start
    report = {
        **evaluate_run(data.qrels, run, measures),
        "queries_per_s": len(data.queries) / query_s if query_s > 0 else float("inf"),
        "queries": len(data.queries), "documents": len(data.corpus),
        "split": args.split, "fit_s": fit_s,
    }
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        width = max(map(len, report))
        for key, value in report.items():
            shown = f"{value:.4f}" if key in measures else (
                f"{value:.1f}" if isinstance(value, float) else value)
            print(f"{key:<{width}}  {shown}")
    return 0


def register(subparsers):
    """Add ``evaluate`` to the ``skfindkit`` parser."""
    from .features import DEFAULT_FEATURES, FEATURE_SETS

    evaluate = subparsers.add_parser(
        "evaluate", help="judge a text retrieval pipeline on a BEIR-format folder",
        description="Fit a pipeline on FOLDER/corpus.jsonl, query it with the judged "
                    "queries of FOLDER/queries.jsonl and print nDCG@10, MRR@10, "
                    "recall@100 (FOLDER/qrels/SPLIT.tsv) and queries per second.",
    )
    evaluate.add_argument("folder", help="a BEIR-format folder")
    evaluate.add_argument("--pipeline", metavar="PATH",
                          help="a saved pipeline (fitted or not) to fit on the corpus; steps "
                               "that read files are set to take texts (default: --features)")
    evaluate.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    evaluate.add_argument("--features", default=DEFAULT_FEATURES["text"],
                          choices=list(FEATURE_SETS["text"]),
                          help="text feature set, when no --pipeline (default: %(default)s)")
    evaluate.add_argument("--split", default="test",
                          help="judgments to use: qrels/SPLIT.tsv (default: %(default)s)")
    evaluate.add_argument("--measures", metavar="LIST",
                          help="comma-separated measures, e.g. ndcg@10,map@100 (default: "
                               f"{','.join(DEFAULT_MEASURES)})")
    evaluate.add_argument("--format", choices=("table", "json"), default="table",
                          help="output format (default: %(default)s)")
    evaluate.set_defaults(func=_evaluate)
    return subparsers
