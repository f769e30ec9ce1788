"""FunctionVectorLoader and the shared loader base: parallel map, errors, policies."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfindkit.loaders import FunctionVectorLoader, ItemLoadError, ItemLoadWarning


def char_stats(text):
    if text == "boom":
        raise RuntimeError("exploded")
    return [len(text), sum(map(ord, text)) % 97]


def test_maps_items_in_order_and_sets_attributes():
    texts = ["a", "abc", "hello", "xy"]
    loader = FunctionVectorLoader(char_stats)
    out = loader.fit_transform(texts)
    assert out.shape == (4, 2)
    np.testing.assert_array_equal(out[:, 0], [1, 3, 5, 2])
    assert loader.n_features_out_ == 2
    assert not hasattr(loader, "n_features_in_")
    assert list(loader.get_feature_names_out()) == [
        "functionvectorloader0",
        "functionvectorloader1",
    ]
    np.testing.assert_array_equal(loader.transform(texts[::-1]), out[::-1])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_parallel_matches_serial(n_jobs):
    texts = [f"item number {i} " * (i % 7 + 1) for i in range(150)]
    serial = FunctionVectorLoader(char_stats).fit_transform(texts)
    par = FunctionVectorLoader(char_stats, n_jobs=n_jobs).fit_transform(texts)
    np.testing.assert_array_equal(serial, par)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failing_item_raises_naming_item_and_position(n_jobs):
    texts = ["ok", "fine", "boom", "good"] * 5
    loader = FunctionVectorLoader(char_stats, n_jobs=n_jobs)
    with pytest.raises(ItemLoadError, match=r"item 2 \('boom'\).*exploded") as info:
        loader.fit_transform(texts)
    assert info.value.position == 2
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("policy, fill", [("nan", np.nan), ("zeros", 0.0)])
def test_placeholder_policies_keep_rows_aligned(policy, fill):
    texts = ["ok", "boom", "fine", "boom"]
    loader = FunctionVectorLoader(char_stats, on_error=policy)
    with pytest.warns(ItemLoadWarning, match=r"item 1 \('boom'\)") as record:
        out = loader.fit_transform(texts)
    assert len(record) == 2
    assert out.shape == (4, 2)
    np.testing.assert_array_equal(out[[1, 3]], np.full((2, 2), fill))
    np.testing.assert_array_equal(out[[0, 2]], [char_stats("ok"), char_stats("fine")])


def test_inconsistent_lengths_name_the_item():
    loader = FunctionVectorLoader(lambda s: [1.0] * len(s))
    with pytest.raises(ItemLoadError, match=r"item 2 \('abc'\).*shape \(3,\).*\(1,\)"):
        loader.fit_transform(["a", "b", "abc"])
    loader.fit(["a"])
    with pytest.raises(ItemLoadError, match=r"item 0 \('ab'\)"):
        loader.transform(["ab"])


def test_non_numeric_output_is_an_item_error():
    with pytest.raises(ItemLoadError, match="item 0"):
        FunctionVectorLoader(lambda s: [s]).fit_transform(["x"])


@pytest.mark.parametrize(
    "X, error, match",
    [
        ("abc", TypeError, "single str"),
        ([], ValueError, "empty"),
        (5, TypeError, "sequence of items"),
    ],
)
def test_bad_X(X, error, match):
    with pytest.raises(error, match=match):
        FunctionVectorLoader(len).fit(X)


def test_bad_parameters_name_the_parameter():
    with pytest.raises(ValueError, match="on_error"):
        FunctionVectorLoader(len, on_error="drop").fit(["a"])
    with pytest.raises(ValueError, match="func"):
        FunctionVectorLoader(func=3).fit(["a"])


def test_tabular_input_checks_n_features():
    X = np.arange(12.0).reshape(4, 3)
    loader = FunctionVectorLoader(np.cumsum).fit(X)
    assert loader.n_features_in_ == 3
    np.testing.assert_array_equal(loader.transform(X), np.cumsum(X, axis=1))
    with pytest.raises(ValueError, match="3 features"):
        loader.transform(X[:, :2])


def test_all_failing_items_under_placeholder_policy_is_an_error():
    with pytest.warns(ItemLoadWarning):
        with pytest.raises(ItemLoadError, match="any of the 2 items"):
            FunctionVectorLoader(char_stats, on_error="nan").fit_transform(
                ["boom", "boom"]
            )


def test_pickle_clone_and_pipeline_round_trip():
    texts = ["alpha", "beta", "gamma", "delta"]
    pipe = make_pipeline(FunctionVectorLoader(char_stats, n_jobs=2), StandardScaler())
    out = pipe.fit_transform(texts)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.transform(texts), out)
    assert clone(pipe.steps[0][1]).get_params()["func"] is char_stats


def test_verbose_progress_bar_does_not_change_output(capsys):
    texts = ["a", "bb", "ccc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = FunctionVectorLoader(char_stats, verbose=1).fit_transform(texts)
    np.testing.assert_array_equal(out, FunctionVectorLoader(char_stats).fit_transform(texts))
