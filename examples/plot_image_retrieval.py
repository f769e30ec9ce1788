"""Image retrieval on scikit-image's sample images with a grid-searched ImageLoader.

Every ``skimage.data`` image gets randomly cropped, shifted and noisy copies;
``Pipeline(ImageLoader(flatten=True), PCA, ExactIndex)`` is grid-searched on
whether a copy's nearest neighbours are copies of the same picture, and the
queries with their results are drawn.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import ExactIndex, ImageLoader, search  # noqa: E402

rng = np.random.RandomState(0)
sources = [data.astronaut(), data.camera(), data.coffee(), data.coins(), data.moon(),
           data.rocket(), data.chelsea(), data.text()]
# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs the same study on 4x smaller pictures.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"
if QUICK:
    sources = [source[::4, ::4] for source in sources]
images, labels = [], []
for label, source in enumerate(sources):
    h, w = source.shape[:2]
    for _ in range(8):
        top, left = rng.randint(0, h // 6), rng.randint(0, w // 6)
        crop = source[top : top + 5 * h // 6, left : left + 5 * w // 6].astype(float)
        crop = np.clip(crop * rng.uniform(0.7, 1.2) + rng.normal(0, 10, crop.shape), 0, 255)
        images.append(crop.astype(np.uint8))
        labels.append(label)
labels = np.array(labels)

pipe = Pipeline([
    ("loader", ImageLoader(flatten=True)),
    ("pca", PCA(n_components=20, random_state=0)),
    ("index", ExactIndex(n_neighbors=5, metric="cosine")),
])
grid = GridSearchCV(
    pipe,
    {"loader__size": [(16, 16), (48, 48)], "loader__color_mode": ["rgb", "grayscale"]},
    cv=StratifiedKFold(2, shuffle=True, random_state=0),
).fit(images, labels)
print("best:", grid.best_params_, f"precision@5 = {grid.best_score_:.3f}")

system = grid.best_estimator_
queries = [images[i] for i in (0, 20, 45)]
result = search(system, queries, n_neighbors=4)
fig, axes = plt.subplots(len(queries), 5, figsize=(9, 6))
for row, (query, ids) in enumerate(zip(queries, result.indices)):
    axes[row, 0].imshow(query, cmap="gray")
    axes[row, 0].set_title("query")
    for col, i in enumerate(ids, start=1):
        axes[row, col].imshow(images[i], cmap="gray")
        axes[row, col].set_title(f"#{col} (label {labels[i]})", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_image_retrieval.png")
fig.savefig(out)
print("plot saved to", out)
