"""
Tuning an approximate index: recall against exact search vs query time
=======================================================================

An approximate index trades a little recall for a lot of speed. Which
trade-off is right depends on the data, so measure it: ``GridSearchCV`` fits
each candidate index on the training folds, queries it with the held-out
fold, and the ``"recall"`` retrieval scorer compares the answers with exact
search on the same indexed items. ``cv_results_["mean_score_time"]`` gives the
time of each candidate's queries (plus the exact reference, the same for every
candidate), so one grid search draws the whole recall/time curve of several
index families at once.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
from sklearn.model_selection import ParameterGrid, GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skfindkit import AnnoyIndex, FaissIndex, HNSWIndex
from skfindkit.metrics import make_retrieval_scorer

# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one draws the same curves from a smaller collection and fewer candidates.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"
N_ITEMS = 2000 if QUICK else 30000

# %%
# Data whose neighbours mean something: clusters on a 12-dimensional subspace
# of a 64-dimensional space (i.i.d. Gaussian data has no useful neighbours).
rng = np.random.RandomState(0)
centers = rng.randn(50, 12) * 3
Z = centers[rng.randint(50, size=N_ITEMS)] + rng.randn(N_ITEMS, 12)
X = (Z @ rng.randn(12, 64) + 0.1 * rng.randn(N_ITEMS, 64)).astype(np.float32)

# %%
# One pipeline, three index families, each with its query-time knob (and one
# construction parameter for HNSW). The scorer asks for 10 neighbours.
pipe = Pipeline([("index", HNSWIndex())])
grid = [
    {"index": [HNSWIndex(random_state=0)], "index__M": [8, 16], "index__ef_search": [10, 20, 40, 80]},
    {"index": [FaissIndex(factory="IVF256,Flat", random_state=0)], "index__nprobe": [1, 2, 4, 8, 16]},
    {"index": [AnnoyIndex(n_trees=20, random_state=0)], "index__search_k": [200, 800, 3200]},
]
if QUICK:
    grid = [
        {"index": [HNSWIndex(random_state=0)], "index__M": [8], "index__ef_search": [10, 40]},
        {"index": [FaissIndex(factory="IVF32,Flat", random_state=0)], "index__nprobe": [1, 8]},
        {"index": [AnnoyIndex(n_trees=10, random_state=0)], "index__search_k": [200, 3200]},
    ]
search = GridSearchCV(
    pipe,
    grid,
    scoring=make_retrieval_scorer("recall", k=10),
    cv=KFold(n_splits=3 if QUICK else 5, shuffle=True, random_state=0),  # 1 fold = queries
    refit=False,
    verbose=2,  # one line per fit: 85 fits, a few minutes in all
)
print(f"grid search: {sum(len(list(ParameterGrid(g))) for g in grid)} candidates x "
      f"{search.cv.get_n_splits()} folds "
      "(takes minutes; a line per fit follows)", flush=True)
search.fit(X)

# %%
# Each candidate is one point: recall@10 against exact search vs the time to
# answer the held-out queries.
res = search.cv_results_
family = np.array([type(p["index"]).__name__ for p in res["params"]])
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name in np.unique(family):
    sel = np.flatnonzero(family == name)
    sel = sel[np.argsort(res["mean_score_time"][sel])]
    ax.plot(res["mean_test_score"][sel], res["mean_score_time"][sel] * 1e3, "o-", label=name)
    for i in sel:
        knobs = {k.split("__")[1]: v for k, v in res["params"][i].items() if "__" in k}
        ax.annotate(", ".join(f"{k}={v}" for k, v in knobs.items()),
                    (res["mean_test_score"][i], res["mean_score_time"][i] * 1e3), fontsize=6)
ax.set(xlabel="recall@10 against exact search", ylabel="score time per fold (ms)",
       yscale="log", title="Approximate-index tuning with GridSearchCV")
ax.axvline(0.95, color="grey", lw=0.5)
ax.legend()
fig.tight_layout()

# %%
# The fastest candidate that keeps 95 % of the true neighbours:
ok = np.flatnonzero(res["mean_test_score"] >= 0.95)
best = ok[np.argmin(res["mean_score_time"][ok])]
print(f"fastest at recall >= 0.95: {res['params'][best]} "
      f"(recall {res['mean_test_score'][best]:.3f}, {res['mean_score_time'][best] * 1e3:.1f} ms)")
out = os.path.join(tempfile.gettempdir(), "skfindkit_ann_tuning.png")
fig.savefig(out, dpi=110)
print("plot saved to", out)
