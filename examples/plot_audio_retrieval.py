"""Audio retrieval on synthesized sounds, with the representation chosen by GridSearchCV.

Four families of sounds (harmonic tones, chirps, filtered noise, click trains)
are synthesized offline and written as WAV files; a
``Pipeline(STFTVectorLoader, StandardScaler, ExactIndex)`` is grid-searched on
retrieval precision@5 and the scores are plotted.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skfindkit import ExactIndex, STFTVectorLoader  # noqa: E402

SR, FAMILIES = 22050, ("tone", "chirp", "noise", "clicks")
# The test suite runs every example; with ``SKFINDKIT_EXAMPLE_QUICK=1`` this
# one runs the same grid on fewer sounds per family.
QUICK = os.environ.get("SKFINDKIT_EXAMPLE_QUICK") == "1"
PER_FAMILY = 6 if QUICK else 15


def synth(family, rng, seconds=1.0):
    t = np.arange(int(SR * seconds)) / SR
    if family == "tone":
        f0 = rng.uniform(150, 500)
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    elif family == "chirp":
        f0, f1 = rng.uniform(200, 800), rng.uniform(2000, 6000)
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif family == "noise":
        y = np.convolve(rng.randn(t.size), np.ones(rng.randint(2, 8)), mode="same")
    else:
        y = np.zeros(t.size)
        y[:: int(SR / rng.uniform(5, 15))] = 1.0
        y = np.convolve(y, np.hanning(rng.randint(32, 128)), mode="same")
    y = y / np.abs(y).max() * rng.uniform(0.05, 0.9)  # levels differ widely
    return (y + 0.005 * rng.randn(t.size)).astype(np.float32)


rng = np.random.RandomState(0)
folder = tempfile.mkdtemp(prefix="skfindkit-audio-")
paths, labels = [], []
for label, family in enumerate(FAMILIES):
    for i in range(PER_FAMILY):
        path = os.path.join(folder, f"{family}_{i:02d}.wav")
        sf.write(path, synth(family, rng), SR)
        paths.append(path)
        labels.append(label)
labels = np.array(labels)

pipe = Pipeline([
    ("loader", STFTVectorLoader(n_jobs=2)),
    ("scale", StandardScaler()),
    ("index", ExactIndex(n_neighbors=5)),
])
grid = GridSearchCV(
    pipe,
    {"loader__representation": ["log", "mel", "mfcc"], "loader__normalize": [None, "rms"]},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
).fit(paths, labels)
print("best:", grid.best_params_, f"precision@5 = {grid.best_score_:.3f}")

names = [f"{p['loader__representation']}\n{p['loader__normalize']}" for p in grid.cv_results_["params"]]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(names, grid.cv_results_["mean_test_score"])
ax.set_ylabel("precision@5 (3-fold CV)")
ax.set_title("Audio retrieval: representation x normalisation")
fig.tight_layout()
out = os.path.join(tempfile.gettempdir(), "skfindkit_audio_retrieval.png")
fig.savefig(out)
print("plot saved to", out)
