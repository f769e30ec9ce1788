"""Tuning BM25 on judged queries: GridSearchCV splits the queries, not the corpus.

Retrieval benchmarks (TREC, BEIR) judge a system with queries that are not
items of the collection, each with relevance judgments ("qrels"). Here a
small one is built offline, in BEIR's file format, from the news articles
shipped with gensim's tests: from each article of ``lee_background.cor`` one
sentence is removed and becomes a query whose only relevant document is the
rest of its article (a *known-item* task). Half the queries train, half test.

:class:`~skfindkit.model_selection.JudgedRetrieval` fits the pipeline on the
corpus and scores it on queries, so ``GridSearchCV`` tunes ``k1``, ``b`` and
the stop words on cross-validation folds of the *training queries* (nDCG@10),
and the chosen pipeline is reported once on the test queries. On a set this
small (about 150 queries per split, one relevant document each) the
differences between good candidates are within the noise of the split: the
test figures say how far the cross-validated choice carries, not that it wins.
"""

import json
import os
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import BM25Index  # noqa: E402
from skfindkit.metrics import evaluate_run, load_beir  # noqa: E402
from skfindkit.model_selection import JudgedRetrieval, make_judged_scorer  # noqa: E402

# %%
# A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv.
rng = np.random.default_rng(0)
folder = Path(tempfile.mkdtemp())
(folder / "qrels").mkdir()
articles = [line.strip() for line in open(datapath("lee_background.cor"), encoding="latin-1")
            if line.strip()]
corpus, queries = [], []
for i, article in enumerate(articles):
    sentences = re.split(r"(?<=[.!?])\s+", article)
    long = [j for j, s in enumerate(sentences) if len(s.split()) >= 6]
    if len(sentences) >= 3 and long:
        pick = long[rng.integers(len(long))]
        queries.append({"_id": f"q{i}", "text": sentences.pop(pick)})
    corpus.append({"_id": f"d{i}", "title": "", "text": " ".join(sentences)})
for name, records in (("corpus", corpus), ("queries", queries)):
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
train_mask = rng.random(len(queries)) < 0.5
for split, mask in (("train", train_mask), ("test", ~train_mask)):
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q['_id']}\td{q['_id'][1:]}\t1\n" for q, m in zip(queries, mask) if m))

train, test = load_beir(folder, "train"), load_beir(folder, "test")
print(f"{len(train.corpus)} documents, {len(train.queries)} training and "
      f"{len(test.queries)} test queries")

# %%
# The search: the samples are the training queries, ``y`` their judgments.
pipeline = Pipeline([("vec", CountVectorizer()), ("bm25", BM25Index())])
model = JudgedRetrieval(pipeline, train.corpus, doc_ids=train.corpus_ids)
# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs a 2 x 2 grid of k1 and b.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"
k1s, bs = [0.3, 0.6, 0.9, 1.2, 1.5, 2.0], [0.0, 0.25, 0.5, 0.75, 1.0]
if QUICK:
    k1s, bs = [0.6, 1.5], [0.25, 0.75]
grid = {"pipeline__vec__stop_words": [None, "english"],
        "pipeline__bm25__k1": k1s, "pipeline__bm25__b": bs}
search = GridSearchCV(model, grid, cv=KFold(3, shuffle=True, random_state=0),
                      scoring=make_judged_scorer(["ndcg@10", "mrr@10"]), refit="ndcg@10")
search.fit(train.queries, train.qrels.per_query(train.query_ids))
print("best on the training queries:", search.best_params_,
      f"(nDCG@10 {search.best_score_:.3f})")

# %%
# Reported once on the test queries, next to BM25's defaults.
for name, estimator in [("defaults", model.fit()), ("tuned", search.best_estimator_)]:
    run = estimator.retrieve(test.queries, test.query_ids)
    values = evaluate_run(test.qrels, run, ["ndcg@10", "mrr@10", "recall@100"])
    print(f"test queries, {name}:", {k: round(v, 3) for k, v in values.items()})

# %%
# nDCG@10 on held-out training folds, over k1 and b (with the best stop words).
res = search.cv_results_
stop = search.best_params_["pipeline__vec__stop_words"]
scores = np.empty((len(bs), len(k1s)))
for params, score in zip(res["params"], res["mean_test_ndcg@10"]):
    if params["pipeline__vec__stop_words"] == stop:
        row, col = bs.index(params["pipeline__bm25__b"]), k1s.index(params["pipeline__bm25__k1"])
        scores[row, col] = score
fig, ax = plt.subplots(figsize=(6, 4))
image = ax.imshow(scores, origin="lower", cmap="viridis")
ax.set(xticks=range(len(k1s)), xticklabels=k1s, yticks=range(len(bs)), yticklabels=bs,
       xlabel="k1", ylabel="b", title=f"BM25 nDCG@10, 3-fold CV on training queries "
                                      f"(stop words: {stop})")
for (r, c), value in np.ndenumerate(scores):
    dark = value < scores.min() + 0.6 * np.ptp(scores)
    ax.text(c, r, f"{value:.3f}", ha="center", va="center", fontsize=7,
            color="white" if dark else "black")
fig.colorbar(image)
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_judged_tuning.png")
fig.savefig(out, dpi=110)
print("plot saved to", out)
