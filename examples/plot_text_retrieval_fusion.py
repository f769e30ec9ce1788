"""Lexical + dense rank fusion on gensim's Lee corpus: BM25, LSA, and both fused.

Each long document of ``lee_background.cor`` is cut into six overlapping
40-word excerpts labelled by their source document; an excerpt's relevant
items are the other excerpts of the same document, and the score is
precision@3 of held-out excerpts used as queries (3-fold cross-validation).

Two retrieval systems see the same raw excerpts:

* **lexical**: ``CountVectorizer`` with a stemming :class:`~skfindkit.text.TextAnalyzer`
  (English stop words dropped) -> :class:`~skfindkit.BM25Index`;
* **dense**: ``TfidfVectorizer`` -> ``TruncatedSVD`` (latent semantic analysis,
  trained offline on the indexed excerpts: no pretrained model) ->
  cosine :class:`~skfindkit.ExactIndex`.

:class:`~skfindkit.RankFusionIndex` runs both and fuses their rankings by
reciprocal rank fusion (k=60) or a weighted mean of min-max normalised scores;
``GridSearchCV`` tunes the fusion weights like any other parameter. The
weights ``[1, 0]`` and ``[0, 1]`` are each member alone, so one grid compares
the members and their fusions on the same folds.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from sklearn.decomposition import TruncatedSVD  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import BM25Index, ExactIndex, RankFusionIndex  # noqa: E402
from skfindkit.text import TextAnalyzer  # noqa: E402


def read_lines(name):
    with open(datapath(name), encoding="latin-1") as handle:
        return [line.strip() for line in handle if line.strip()]


background = read_lines("lee_background.cor")
long_docs = [doc.split() for doc in background if len(doc.split()) > 120][:30]
texts, labels = [], []
for label, words in enumerate(long_docs):
    for start in range(0, len(words) - 40, max(1, (len(words) - 40) // 6))[:6]:
        texts.append(" ".join(words[start : start + 40]))
        labels.append(label)
labels = np.array(labels)
print(f"{len(texts)} excerpts of {len(long_docs)} documents")

lexical = Pipeline([
    ("vec", CountVectorizer(analyzer=TextAnalyzer(stop_words="english", stem=True))),
    ("index", BM25Index(k1=1.2, b=0.75)),
])
dense = Pipeline([
    ("vec", TfidfVectorizer(sublinear_tf=True, stop_words="english")),
    ("svd", TruncatedSVD(48, random_state=0)),
    ("index", ExactIndex(metric="cosine")),
])
fused = RankFusionIndex([("bm25", lexical), ("lsa", dense)], n_neighbors=3, depth=50)
grid = [
    {"method": ["rrf"], "weights": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 1.0]]},
    {"method": ["minmax"], "weights": [[1.0, 1.0], [0.5, 1.0]]},
]
cv = StratifiedKFold(3, shuffle=True, random_state=0)
search = GridSearchCV(fused, grid, cv=cv).fit(texts, labels)

names, scores = [], []
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    weights = params["weights"]
    name = ("BM25 alone" if weights == [1.0, 0.0] else "LSA alone" if weights == [0.0, 1.0]
            else f"{params['method']} w={weights[0]:g}:{weights[1]:g}")
    names.append(name)
    scores.append(score)
    print(f"{name:22s} precision@3 = {score:.3f}")
print(f"best: {search.best_params_}, precision@3 = {search.best_score_:.3f}")
best_member = max(scores[:2])
print(f"best fusion - best member: {max(scores[2:]) - best_member:+.3f}")

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(names, scores, color=["C0", "C1"] + ["C2"] * (len(names) - 2))
ax.set_ylim(min(scores) - 0.05, 1.0)
ax.set_ylabel("precision@3 (3-fold CV)")
ax.tick_params(axis="x", labelsize=8, rotation=20)
ax.set_title("BM25 (stemmed) + LSA on Lee corpus excerpts: each alone and fused", fontsize=9)
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_text_retrieval_fusion.png")
fig.savefig(out)
print("plot saved to", out)
