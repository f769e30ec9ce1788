"""Small collections and fitted pipelines for the service tests (digits as PNG files)."""

import numpy as np


def write_digit_pngs(folder, n=120):
    """The first ``n`` digits as 8x8 grayscale PNGs; (paths, labels)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images[:n] * 16, 0, 255).astype(np.uint8)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"digit_{i:04d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths, digits.target[:n]


def digit_image_pipeline(paths, n_neighbors=5):
    """ImageLoader -> ExactIndex over ``paths``, keyed by file name."""
    import os

    from sklearn.pipeline import Pipeline

    from skfindkit import ExactIndex, ImageLoader, attach_keys

    pipeline = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale", flatten=True)),
        ("index", ExactIndex(n_neighbors=n_neighbors)),
    ]).fit(paths)
    return attach_keys(pipeline, [os.path.basename(p) for p in paths])
