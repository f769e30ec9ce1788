"""ImageLoader on real images (skimage.data) written to PNG/JPEG, plus bad input."""


import joblib
import numpy as np
import pytest

pytest.importorskip("PIL")  # the "image" extra
from PIL import Image
from skimage import data

from skfindkit import ExactIndex
from skfindkit.loaders import ImageLoader, ItemLoadError, ItemLoadWarning


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = []
    for name, image in [("astronaut", data.astronaut()), ("camera", data.camera()),
                        ("coffee", data.coffee())]:
        path = root / f"{name}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    jpeg = root / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(jpeg, quality=90)
    paths.append(str(jpeg))
    return paths


def test_paths_to_keras_batch_and_flat_rows(image_files):
    batch = ImageLoader(size=(32, 48)).fit_transform(image_files)
    assert batch.shape == (4, 32, 48, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # a grayscale source is replicated into three equal channels
    np.testing.assert_allclose(batch[1, ..., 0], batch[1, ..., 2])
    flat = ImageLoader(size=(32, 48), flatten=True).transform(image_files)
    np.testing.assert_array_equal(flat, batch.reshape(4, -1))
    names = ImageLoader(size=(2, 2), color_mode="grayscale", flatten=True)
    assert list(names.get_feature_names_out()) == [
        "pixel_0_0_l", "pixel_0_1_l", "pixel_1_0_l", "pixel_1_1_l"
    ]


def test_items_of_every_kind_give_the_same_pixels(image_files):
    path = image_files[0]
    raw = open(path, "rb").read()
    pil = Image.open(path)
    array = data.astronaut()
    out = ImageLoader(size=(20, 20), color_mode="grayscale", scale="none").transform(
        [path, raw, pil, array, array.astype(np.float64) / 255]
    )
    for row in out[1:4]:
        np.testing.assert_array_equal(row, out[0])
    # a float array is kept in float: no rounding of luma or resampled pixels
    np.testing.assert_allclose(out[4], out[0], atol=1.0)
    assert out.shape == (5, 20, 20, 1) and out.max() > 1


def test_scale_modes():
    image = np.full((4, 4), 255, dtype=np.uint8)
    image[0, 0] = 0
    sym = ImageLoader(size=None, scale="symmetric", dtype="float64").transform([image])
    assert sym.min() == -1.0 and sym.max() == 1.0 and sym.dtype == np.float64


def test_size_none_requires_equal_sizes():
    a, b = np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)
    assert ImageLoader(size=None).transform([a, a]).shape == (2, 4, 4, 3)
    with pytest.raises(ItemLoadError, match="item 1"):
        ImageLoader(size=None).transform([a, b])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_bad_files_name_the_file(tmp_path, image_files, n_jobs):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not an image at all" * 10)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(image_files[3], "rb").read()[:2000])
    cases = [
        (tmp_path / "missing.png", "missing.png.*no such file"),
        (tmp_path, "is a directory"),
        (empty, "empty.png.*zero-byte"),
        (corrupt, "corrupt.png"),
        (truncated, "truncated.jpg"),
    ]
    for bad, match in cases:
        with pytest.raises(ItemLoadError, match=rf"item 1 .*{match}"):
            ImageLoader(size=(8, 8), n_jobs=n_jobs).transform([image_files[0], bad])


def test_bad_arrays_and_types():
    with pytest.raises(ItemLoadError, match=r"\[0, 1\]"):
        ImageLoader().transform([np.full((3, 3), 7.5)])
    with pytest.raises(ItemLoadError, match="shape"):
        ImageLoader().transform([np.zeros(9, np.uint8)])
    with pytest.raises(ItemLoadError, match="got int"):
        ImageLoader().transform([3])


def test_on_error_nan_keeps_alignment(tmp_path, image_files):
    paths = [image_files[0], str(tmp_path / "gone.png"), image_files[1]]
    with pytest.warns(ItemLoadWarning, match="gone.png"):
        out = ImageLoader(size=(8, 8), on_error="nan").transform(paths)
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()


@pytest.mark.parametrize(
    "params, match",
    [({"size": (0, 4)}, "size"), ({"size": "big"}, "size"),
     ({"color_mode": "cmyk"}, "color_mode"), ({"scale": 2}, "scale")],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ImageLoader(**params).transform([np.zeros((2, 2), np.uint8)])


def test_pipeline_with_index_retrieves_augmented_copies_and_pickles(tmp_path):
    from sklearn.pipeline import make_pipeline

    rng = np.random.RandomState(0)
    sources = [data.camera(), data.moon(), data.coins(), data.text()]
    images, labels = [], []
    for label, source in enumerate(sources):
        for _ in range(4):
            noisy = source.astype(float) + rng.normal(0, 12, source.shape)
            images.append(np.clip(noisy, 0, 255).astype(np.uint8))
            labels.append(label)
    pipe = make_pipeline(
        ImageLoader(size=(24, 24), color_mode="grayscale", flatten=True),
        ExactIndex(n_neighbors=3),
    )
    pipe.fit(images, labels)
    assert pipe.score(images, labels) == 1.0
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    again = joblib.load(path)
    np.testing.assert_array_equal(
        again[:-1].transform(images), pipe[:-1].transform(images)
    )
