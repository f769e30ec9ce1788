"""Lexical vs learned text retrieval on gensim's Lee corpus: TF-IDF, BM25 and Doc2Vec.

Three pipelines, each tuned by ``GridSearchCV`` and judged twice:

1. **Held-out excerpts** (what the grid search maximizes): each long document of
   ``lee_background.cor`` is cut into six overlapping 40-word excerpts
   labelled by their source document; an excerpt's relevant items are the
   other excerpts of the same document, and the score is precision@3 on
   held-out folds.
2. **Human judgements**: the 50 documents of ``lee.cor`` come with averaged
   human similarity ratings of every pair (``similarities0-1.txt``, Lee,
   Pincombe & Welsh 2005). Each tuned pipeline's vectorizer is fitted on
   the background corpus, the 50 documents are indexed, and for each document
   the Spearman correlation between the index's ranking of the 49 others and
   the human ratings is averaged.

TF-IDF is searched sparse by ``ExactIndex(metric="cosine")``; BM25 weighs term
counts inside ``BM25Index`` (queries stay raw counts); Doc2Vec embeds the
texts (``Doc2VecLoader``) for a dense ``ExactIndex``.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import BM25Index, Doc2VecLoader, ExactIndex  # noqa: E402


# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs smaller grids on fewer documents, and fewer Doc2Vec epochs.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"


def read_lines(name):
    with open(datapath(name), encoding="latin-1") as handle:
        return [line.strip() for line in handle if line.strip()]


background = read_lines("lee_background.cor")
long_docs = [doc.split() for doc in background if len(doc.split()) > 120][:10 if QUICK else 30]
texts, labels = [], []
for label, words in enumerate(long_docs):
    for start in range(0, len(words) - 40, max(1, (len(words) - 40) // 6))[:6]:
        texts.append(" ".join(words[start : start + 40]))
        labels.append(label)
labels = np.array(labels)
print(f"{len(texts)} excerpts of {len(long_docs)} documents")

methods = {
    "TF-IDF + cosine": (
        Pipeline([("vec", TfidfVectorizer()), ("index", ExactIndex(n_neighbors=3, metric="cosine"))]),
        {"vec__sublinear_tf": [False, True], "vec__stop_words": [None, "english"]},
    ),
    "BM25": (
        Pipeline([("vec", CountVectorizer()), ("index", BM25Index(n_neighbors=3))]),
        {"index__k1": [0.5, 2.0] if QUICK else [0.5, 1.2, 2.0],
         "index__b": [0.75] if QUICK else [0.25, 0.75, 1.0]},
    ),
    "Doc2Vec + cosine": (
        Pipeline([("vec", Doc2VecLoader(min_count=1, vector_size=32,
                                        epochs=5 if QUICK else 30)),
                  ("index", ExactIndex(n_neighbors=3, metric="cosine"))]),
        {"vec__dm": [0, 1]},
    ),
}
cv = StratifiedKFold(3, shuffle=True, random_state=0)

# human pairwise similarity of the 50 lee.cor documents (upper triangle given)
lee = read_lines("lee.cor")
human = np.loadtxt(datapath("similarities0-1.txt"))
human = np.triu(human) + np.triu(human, 1).T

results = {}
for name, (pipe, grid) in methods.items():
    search = GridSearchCV(pipe, grid, cv=cv).fit(texts, labels)
    best = search.best_estimator_
    vec = best.named_steps["vec"].fit(background)
    index = best.named_steps["index"].set_params(n_neighbors=len(lee) - 1).fit(vec.transform(lee))
    dist, ind = index.kneighbors()  # every other document, nearest first
    rhos = [spearmanr(-dist[i], human[i, ind[i]])[0] for i in range(len(lee))]
    results[name] = (search.best_score_, float(np.mean(rhos)))
    print(f"{name:18s} best {search.best_params_}: precision@3 = {search.best_score_:.3f}, "
          f"Spearman with human judgements = {np.mean(rhos):.3f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, col, title in zip(axes, range(2), ["precision@3, held-out excerpts (3-fold CV)",
                                            "mean Spearman vs human ratings (lee.cor)"]):
    ax.bar(list(results), [v[col] for v in results.values()], color=["C0", "C1", "C2"])
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
fig.suptitle("Lexical vs learned retrieval on the Lee corpus")
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_text_retrieval_lexical.png")
fig.savefig(out)
print("plot saved to", out)
