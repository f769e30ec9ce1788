"""Failures and additions as data: loaders' errors carry position, item and reason."""

import threading
import warnings

import numpy as np
import pytest

from skfindkit import ExactIndex, FunctionVectorLoader, search
from skfindkit._app.items import add_items
from skfindkit.loaders import ImageDescriptors, ImageLoader, ItemLoadError, ItemLoadWarning

pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
pytest.importorskip("skimage", reason="scikit-image (image extra) is not installed")


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    return str(good), str(bad)


def test_an_error_carries_position_item_and_the_innermost_reason(images):
    good, bad = images
    loader = FunctionVectorLoader(ImageDescriptors(("color",))).fit([good])
    with pytest.raises(ItemLoadError) as caught:
        loader.transform([good, bad])
    error = caught.value
    assert (error.position, error.item) == (1, bad)
    # the descriptors call an ImageLoader: the reason is its own, not a nested message
    assert error.reason.startswith("cannot identify image file")
    assert "could not load item" not in error.reason


def test_a_warning_carries_the_same(images):
    good, bad = images
    loader = ImageLoader(size=(8, 8), on_error="nan").fit([good])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader.transform([bad, good, bad])
    found = [w.message for w in caught if isinstance(w.message, ItemLoadWarning)]
    assert [(w.position, w.item) for w in found] == [(0, bad), (2, bad)]
    assert all(w.reason.startswith("cannot identify image file") for w in found)


def test_a_failure_moved_to_its_place_in_a_collection_keeps_its_data(images):
    import pickle

    good, bad = images
    with pytest.raises(ItemLoadError) as caught:
        ImageLoader(size=(8, 8)).fit([good]).transform([good, bad])
    moved = pickle.loads(pickle.dumps(caught.value)).shifted(100, "partition 3")
    assert (moved.position, moved.item, moved.reason) == (101, bad, caught.value.reason)
    assert str(moved).startswith("partition 3: ImageLoader could not load item 101 (")


def test_add_items_appends_rows_and_keys_together(tmp_path):
    from skfindkit import io as skio

    index = ExactIndex(n_neighbors=1).fit(np.eye(3))
    index.item_keys_ = np.array(["a", "b", "c"])  # a str array: numpy scalars, not str
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "keys were removed" on the way
        ids = add_items(index, np.array([[0.0, 0.0, 2.0], [5.0, 5.0, 5.0]]), ["d", "e"])
    assert list(ids) == [3, 4]
    assert index.item_keys_.tolist() == ["a", "b", "c", "d", "e"]
    assert search(index, np.array([[5.0, 5.0, 5.1]])).keys[0].tolist() == ["e"]
    skio.save(index, tmp_path / "added.skfk")  # saved and read back, keys and all
    assert skio.load(tmp_path / "added.skfk").item_keys_.tolist() == ["a", "b", "c", "d", "e"]
    with pytest.raises(ValueError, match="2 rows but 1 keys"):
        add_items(index, np.ones((2, 3)), ["f"])


def test_searches_never_see_added_rows_without_their_keys():
    index = ExactIndex(n_neighbors=1).fit(np.zeros((1, 2)))
    index.item_keys_ = np.array(["item 0"], dtype=object)
    stop, seen = threading.Event(), []

    def searching():
        while not stop.is_set():
            result = search(index, np.array([[1e6, 1e6]]))  # nearest: the newest row
            seen.append(result.keys[0][0])

    thread = threading.Thread(target=searching)
    thread.start()
    try:
        for i in range(1, 60):
            add_items(index, np.array([[float(i), float(i)]]), [f"item {i}"])
    finally:
        stop.set()
        thread.join()
    assert all(isinstance(key, str) for key in seen)  # an id without a key would be an int
