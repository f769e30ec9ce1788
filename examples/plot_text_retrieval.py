"""Text retrieval on gensim's bundled Lee corpus with a grid-searched Doc2VecLoader.

Each Lee document is cut into overlapping excerpts labelled by their source
document; ``Pipeline(Doc2VecLoader, ExactIndex)`` is grid-searched on how often
an excerpt's nearest excerpts come from the same document.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import Doc2VecLoader, ExactIndex  # noqa: E402

# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs the same grid on fewer documents with fewer Doc2Vec epochs.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"

with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
    documents = [line.split() for line in handle if len(line.split()) > 120][:12 if QUICK else 30]

texts, labels = [], []
for label, words in enumerate(documents):
    for start in range(0, len(words) - 40, max(1, (len(words) - 40) // 6))[:6]:
        texts.append(" ".join(words[start : start + 40]))
        labels.append(label)
labels = np.array(labels)
print(f"{len(texts)} excerpts of {len(documents)} documents")

pipe = Pipeline([
    ("loader", Doc2VecLoader(min_count=1, vector_size=32, epochs=5 if QUICK else 30,
                              random_state=0)),
    ("index", ExactIndex(n_neighbors=3, metric="cosine")),
])
grid = GridSearchCV(
    pipe, {"loader__dm": [0, 1], "loader__window": [2, 8]},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
).fit(texts, labels)
print("best:", grid.best_params_, f"precision@3 = {grid.best_score_:.3f}")

names = [f"dm={p['loader__dm']}\nwindow={p['loader__window']}" for p in grid.cv_results_["params"]]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(names, grid.cv_results_["mean_test_score"])
ax.set_ylabel("precision@3 (3-fold CV)")
ax.set_title("Text retrieval on the Lee corpus")
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_text_retrieval.png")
fig.savefig(out)
print("plot saved to", out)
