"""Judged retrieval: BM25 tuned on training queries, reported on held-out queries, vs bm25s.

Data (offline, built by this script into a temporary BEIR-format folder): a
*known-item* set from the news articles shipped with gensim's tests
(``lee_background.cor``, 300 articles, and ``lee.cor``, 50 more). From each
article with at least three sentences one sentence of six words or more is
drawn at random (seeded) and removed: it is the query, and the rest of the
article the only document judged relevant to it (grade 1). Half the queries (random, seeded)
are the training split, half the test split. This is NOT a BEIR benchmark:
its numbers are not comparable with published BEIR/pyserini figures.

Tuning: :class:`skfindkit.model_selection.JudgedRetrieval` over
``CountVectorizer`` (English stop words or none) -> :class:`BM25Index`
(``k1``, ``b``) in ``GridSearchCV`` (3 folds of the training queries,
nDCG@10); the best pipeline is reported on the test queries with nDCG@10,
MRR@10 and recall@100, next to the defaults and the CLI's TF-IDF feature set.

Speed: queries/s of the tuned pipeline (text -> ``CountVectorizer`` ->
``BM25Index.kneighbors``, 100 results per query, arrays out) and of ``bm25s``
(same tokens from the same analyzer, same ``k1``/``b``, Lucene IDF, 100
results, arrays out, single thread), on every sentence of the corpus that has
a word of the vocabulary as a query, best of ``--repeats`` interleaved runs; the test-split
measures of ``bm25s`` are reported too.

    python benchmarks/bench_judged.py [--repeats 3]
    python benchmarks/bench_judged.py --quick  # smaller grid, 1 repeat

writes ``benchmarks/results/judged.md`` (``--quick``: into a temporary folder
unless ``--out`` is given).
"""

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import best_of_interleaved, machine_text, parse, parser, write_results
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from skfindkit import BM25Index
from skfindkit.features import build_pipeline
from skfindkit.metrics import evaluate_run, load_beir
from skfindkit.model_selection import JudgedRetrieval

MEASURES = ("ndcg@10", "mrr@10", "recall@100")
DEPTH = 100
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def lee_articles():
    """The articles of gensim's Lee corpora (latin-1 where not UTF-8)."""
    from gensim.test.utils import datapath

    articles = []
    for name in ("lee_background.cor", "lee.cor"):
        raw = Path(datapath(name)).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        articles += [line.strip() for line in text.splitlines() if line.strip()]
    return articles


def write_known_item_beir(folder, seed=0):
    """The known-item BEIR folder described in the module docstring; its sentences."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, sentences = [], [], []
    for i, article in enumerate(lee_articles()):
        parts = SENTENCE.split(article)
        sentences += parts
        long = [j for j, part in enumerate(parts) if len(part.split()) >= 6]
        if len(parts) < 3 or not long:
            corpus.append({"_id": f"d{i}", "title": "", "text": article})
            continue
        pick = long[int(rng.integers(len(long)))]
        queries.append({"_id": f"q{i}", "text": parts[pick]})
        corpus.append({"_id": f"d{i}", "title": "",
                       "text": " ".join(parts[:pick] + parts[pick + 1:])})
    for name, records in (("corpus", corpus), ("queries", queries)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
    train = rng.random(len(queries)) < 0.5
    for split, mask in (("train", train), ("test", ~train)):
        lines = [f"{q['_id']}\td{q['_id'][1:]}\t1" for q, m in zip(queries, mask) if m]
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return sentences


def judged(pipeline, data, test):
    """Test-split measures of ``pipeline`` fitted on the corpus."""
    model = JudgedRetrieval(pipeline, data.corpus, doc_ids=data.corpus_ids, depth=DEPTH,
                            reuse_fit=False).fit()
    return evaluate_run(test.qrels, model.retrieve(test.queries, test.query_ids), MEASURES)


def bm25s_run(corpus, queries, query_ids, doc_ids, analyzer, k1, b):
    import bm25s

    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index([analyzer(d) for d in corpus], show_progress=False)

    def search(texts):
        return retriever.retrieve([analyzer(q) for q in texts], k=DEPTH, show_progress=False,
                                  n_threads=1)

    docs, scores = search(queries)
    run = {q: {doc_ids[d]: float(s) for d, s in zip(row, srow) if s > 0}
           for q, row, srow in zip(query_ids, docs, scores)}
    return run, search


def main(argv=None):
    options = parser(__doc__, repeats=3)
    args = parse(options, argv)
    grid = {"pipeline__countvectorizer__stop_words": [None, "english"],
            "pipeline__bm25index__k1": [0.6, 0.9, 1.2, 1.5, 2.0],
            "pipeline__bm25index__b": [0.3, 0.5, 0.75, 0.9, 1.0]}
    if args.quick:
        grid = {"pipeline__countvectorizer__stop_words": [None, "english"],
                "pipeline__bm25index__k1": [0.9, 1.5], "pipeline__bm25index__b": [0.5, 0.75]}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sentences = write_known_item_beir(tmp)
        train, test = load_beir(tmp, "train"), load_beir(tmp, "test")
    data = test  # the corpus is the same in both
    print(f"{len(data.corpus)} documents, {len(train.queries)} training and "
          f"{len(test.queries)} test queries, {len(sentences)} sentences", flush=True)

    bm25 = make_pipeline(CountVectorizer(), BM25Index())
    search = GridSearchCV(JudgedRetrieval(bm25, data.corpus, doc_ids=data.corpus_ids),
                          grid, cv=KFold(3, shuffle=True, random_state=0))
    fit_start = time.perf_counter()
    search.fit(train.queries, train.qrels.per_query(train.query_ids))
    tune_s = time.perf_counter() - fit_start
    best = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
    print("best", best, f"cv nDCG@10 {search.best_score_:.4f}", flush=True)
    tuned = search.best_estimator_.pipeline
    rows = {
        "BM25 defaults (k1=1.5, b=0.75, no stop words)": judged(bm25, data, test),
        "BM25 tuned on the training queries": judged(tuned, data, test),
        "TF-IDF + cosine (the CLI's text feature set)":
            judged(build_pipeline("text", "tfidf").set_params(
                extractor__estimator__tfidfvectorizer__input="content"), data, test),
    }
    analyzer = tuned[0].build_analyzer()
    k1, b = tuned[-1].k1, tuned[-1].b
    bm25s_measures, bm25s_search = None, None
    try:
        run, bm25s_search = bm25s_run(data.corpus, test.queries, test.query_ids,
                                      data.corpus_ids, analyzer, k1, b)
        bm25s_measures = evaluate_run(test.qrels, run, MEASURES)
        rows["bm25s, same tokens and k1/b"] = bm25s_measures
    except ImportError:
        print("bm25s is not installed: no comparison", flush=True)
    for name, values in rows.items():
        print(name, {k: round(v, 4) for k, v in values.items()}, flush=True)

    fitted = JudgedRetrieval(tuned, data.corpus, doc_ids=data.corpus_ids).fit().pipeline_
    vectorizer, index = fitted[0], fitted[-1]
    # the sentences with a word of the vocabulary (BM25Index refuses the others)
    sentences = [t for t, n in zip(sentences, vectorizer.transform(sentences).getnnz(axis=1))
                 if n]

    def ours(texts):
        return index.kneighbors(vectorizer.transform(texts), n_neighbors=DEPTH)

    timed = {"skfindkit (CountVectorizer -> BM25Index)": lambda: ours(sentences)}
    if bm25s_search is not None:
        timed["bm25s (numpy backend, 1 thread)"] = lambda: bm25s_search(sentences)
    for fn in timed.values():  # warm up
        fn()
    times = best_of_interleaved(list(timed.values()), repeat=args.repeats)
    speed = {name: len(sentences) / t for name, t in zip(timed, times)}
    print(speed, flush=True)
    elapsed = time.perf_counter() - start

    command = "python benchmarks/bench_judged.py " + " ".join(sys.argv[1:] if argv is None
                                                               else argv)
    lines = [
        "# Judged retrieval: BM25 tuned on training queries, vs bm25s", "",
        f"Command: `{command.strip()}` ({elapsed / 60:.1f} min).  ",
        f"Machine: {machine_text('scipy', 'gensim', 'bm25s')}.  ",
        f"Data: a known-item set built from gensim's Lee news articles (see the script): "
        f"{len(data.corpus)} documents; {len(train.queries)} training and "
        f"{len(test.queries)} test queries, each one sentence removed from its article, "
        "which is its only relevant document. Not a BEIR benchmark: not comparable with "
        "published BEIR figures. 1-minute load average at the start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
        f"Tuning: GridSearchCV over {len(search.cv_results_['params'])} candidates "
        f"(stop words x k1 x b), 3 folds of the training queries, nDCG@10, "
        f"{tune_s:.1f} s; best: {best} (cv nDCG@10 {search.best_score_:.4f}).", "",
        "| test queries | " + " | ".join(MEASURES) + " |",
        "|---|" + "---:|" * len(MEASURES),
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in MEASURES) + " |")
    lines += ["", f"Query speed, {len(sentences):,} sentences as queries, {DEPTH} results "
              f"each, text in, arrays out, best of {args.repeats} interleaved runs (the "
              "corpus is small: tokenizing and per-query overhead dominate, and on shared "
              "cores the ratio varies from run to run):", "",
              "| system | queries/s |", "|---|---:|"]
    lines += [f"| {name} | {qps:,.0f} |" for name, qps in speed.items()]
    if len(speed) == 2:
        ours, theirs = speed.values()
        lines += ["", f"skfindkit / bm25s: **{ours / theirs:.2f}x**."]
    lines.append("")
    print("\n".join(lines))
    write_results(args, "judged.md", "\n".join(lines))


if __name__ == "__main__":
    main()
