"""Pipeline files: the safe format by default, pickles only by name and only when trusted."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from skfindkit import ExactIndex, attach_keys
from skfindkit._app.pipeline_files import (check_pipeline, load_pipeline, pipeline_file_kind,
                                           save_pipeline, wants_pickle)


@pytest.fixture
def fitted():
    from sklearn.preprocessing import StandardScaler

    X = np.random.RandomState(0).rand(20, 4)
    pipeline = Pipeline([("scale", StandardScaler()), ("index", ExactIndex(n_neighbors=2))])
    return attach_keys(pipeline.fit(X), [f"item {i}" for i in range(20)]), X


@pytest.mark.parametrize("name, kind", [("p.skfk", "safe"), ("p.joblib", "pickle"),
                                        ("p.PKL", "pickle"), ("p.bin", "safe")])
def test_the_format_follows_the_name(fitted, tmp_path, name, kind):
    pipeline, X = fitted
    assert wants_pickle(name) == (kind == "pickle")
    save_pipeline(pipeline, tmp_path / name)
    assert pipeline_file_kind(tmp_path / name) == kind
    loaded = load_pipeline(tmp_path / name, trust_pickle=True)
    np.testing.assert_array_equal(loaded[-1].item_keys_, pipeline[-1].item_keys_)


def test_a_pickle_is_read_only_when_trusted(fitted, tmp_path):
    save_pipeline(fitted[0], tmp_path / "p.joblib")
    with pytest.raises(ValueError, match="--trust-pickle"):
        load_pipeline(tmp_path / "p.joblib")


def test_checks_say_what_the_file_holds(fitted, tmp_path):
    index = fitted[0][-1]
    save_pipeline(index, tmp_path / "index.skfk")
    with pytest.raises(ValueError, match="not a fitted pipeline"):
        load_pipeline(tmp_path / "index.skfk")  # the command line wants a Pipeline
    assert load_pipeline(tmp_path / "index.skfk", check="index").n_samples_fit_ == 20
    with pytest.raises(ValueError, match="holds a dict, not a skfindkit pipeline"):
        check_pipeline({"a": 1})
    with pytest.raises(FileNotFoundError):
        load_pipeline(tmp_path / "missing.skfk")


def test_image_descriptors_load_under_the_name_files_already_hold(tmp_path):
    """Files written before the descriptors moved to skfindkit.loaders name them
    ``skfindkit.features.ImageDescriptors``: both names resolve to the class, no other."""
    from skfindkit.loaders import ImageDescriptors
    from skfindkit.utils._safe_tree import resolve

    assert resolve("skfindkit.features.ImageDescriptors", ()) is ImageDescriptors
    assert resolve("skfindkit.loaders._descriptors.ImageDescriptors", ()) is ImageDescriptors
    assert resolve("skfindkit.features.FeatureSet", ()) is None  # not marked loadable
