"""
Image retrieval with the layers of a small CNN
==============================================

Train a tiny CNN on scikit-learn's 8x8 digits (offline, a few seconds), then
let ``GridSearchCV`` pick the layer whose activations retrieve best in a
``Pipeline(ImageLoader, KerasFeatureExtractor, ExactIndex)``, and show a
query with its top-5 neighbours.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skfindkit import ExactIndex, ImageLoader, KerasFeatureExtractor  # noqa: E402

# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs a reduced study: fewer images, epochs, layers and folds.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"

# %% Data: raw 8x8 grayscale images (uint8), as an image loader sees them
digits = load_digits()
images, labels = (digits.images * 255 / 16).astype(np.uint8), digits.target
if QUICK:
    images, labels = images[:300], labels[:300]
gallery, queries, y_gallery, y_queries = train_test_split(
    images, labels, test_size=0.2, random_state=0)

# %% A small CNN, trained on the gallery only
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(8, 8, 1)),
    keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="conv1"),
    keras.layers.MaxPooling2D(name="pool1"),
    keras.layers.Conv2D(32, 3, activation="relu", padding="same", name="conv2"),
    keras.layers.Flatten(name="flatten"),
    keras.layers.Dense(32, activation="relu", name="dense_1"),
    keras.layers.Dense(10, activation="softmax", name="dense_2"),
])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(gallery[..., None] / 255.0, y_gallery, epochs=2 if QUICK else 10, batch_size=32,
          verbose=0)

# %% Which layer retrieves best? precision@5 of the retrieved labels, 3-fold CV
system = Pipeline([
    ("loader", ImageLoader(size=(8, 8), color_mode="grayscale")),
    ("extractor", KerasFeatureExtractor(model, pooling="avg")),
    ("index", ExactIndex(n_neighbors=5)),
])
layers = ["conv1", "dense_2"] if QUICK else ["conv1", "conv2", "dense_1", "dense_2"]
search = GridSearchCV(system, {"extractor__layer": layers},
                      cv=2 if QUICK else 3).fit(gallery, y_gallery)
for layer, score in zip(search.cv_results_["param_extractor__layer"],
                        search.cv_results_["mean_test_score"]):
    print(f"{layer:8s} precision@5 = {score:.3f}")
print("best layer:", search.best_params_["extractor__layer"])
print(f"held-out precision@5: {search.score(queries, y_queries):.3f}")

# %% Query -> top-5 gallery images, with the best layer (refit on the whole gallery)
best = search.best_estimator_
features = best[:-1].transform(queries[:4])
neighbours = best[-1].kneighbors(features, return_distance=False)
fig, axes = plt.subplots(4, 6, figsize=(7, 5))
for row, (query, found) in enumerate(zip(queries[:4], neighbours)):
    axes[row, 0].imshow(query, cmap="gray_r")
    axes[row, 0].set_title("query", fontsize=8)
    for col, index in enumerate(found, start=1):
        axes[row, col].imshow(gallery[index], cmap="gray_r")
        axes[row, col].set_title(f"label {y_gallery[index]}", fontsize=8)
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle(f"Top-5 by layer {search.best_params_['extractor__layer']!r}")
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_cnn_retrieval.png")
fig.savefig(out, dpi=110)
print("plot saved to", out)
