"""Metadata columns: attach_metadata, saved with the pipeline, returned and filtered by search."""

import warnings

import numpy as np
import pytest

from skfindkit import ExactIndex, attach_keys, attach_metadata, io, search
from skfindkit._where import WhereError

N = 60


@pytest.fixture
def index():
    X = np.random.RandomState(0).rand(N, 4).astype(np.float32)
    index = ExactIndex(n_neighbors=5).fit(X)
    attach_keys(index, [f"item{i}" for i in range(N)])
    attach_metadata(index, {"shop": np.array(["a", "b", "c"])[np.arange(N) % 3],
                            "year": 2000 + np.arange(N) % 10,
                            "price": np.arange(N) / 2.0})
    return index


def _truth(index, Q, mask, k):
    """The k nearest allowed items by brute force over the allowed rows only."""
    allowed = np.flatnonzero(mask)
    d = ((Q[:, None, :] - index._fit_X[allowed][None]) ** 2).sum(-1)
    return allowed[np.argsort(d, axis=1, kind="stable")[:, :k]]


def test_where_returns_the_nearest_items_meeting_the_condition(index):
    Q = np.random.RandomState(1).rand(7, 4).astype(np.float32)
    result = search(index, Q, where="shop == 'a' and year >= 2003")
    mask = (np.arange(N) % 3 == 0) & (np.arange(N) % 10 >= 3)
    np.testing.assert_array_equal(result.indices, _truth(index, Q, mask, 5))
    assert (result.metadata["shop"] == "a").all() and (result.metadata["year"] >= 2003).all()
    np.testing.assert_array_equal(result.keys, np.array([f"item{i}" for i in range(N)])[
        result.indices])
    record = result.to_records()[0]
    assert record["shop"] == "a" and record["key"] == f"item{result.indices[0, 0]}"


def test_where_and_filter_combine_and_per_query_filters_apply(index):
    Q = np.random.RandomState(2).rand(2, 4).astype(np.float32)
    per_query = [np.arange(0, 30), np.arange(30, N)]
    result = search(index, Q, where="price < 20", filter=per_query)
    below = np.arange(N) / 2.0 < 20
    for row, ids in enumerate(per_query):
        mask = np.zeros(N, dtype=bool)
        mask[ids] = True
        expected = _truth(index, Q[row:row + 1], mask & below, 5)[0]
        np.testing.assert_array_equal(result.indices[row], expected)


def test_fewer_items_passing_than_k_leaves_empty_slots(index):
    result = search(index, index._fit_X[:1], where="shop == 'a' and year == 2000")
    assert result.indices[0, :2].tolist() == [0, 30] and (result.indices[0, 2:] == -1).all()
    assert np.isinf(result.distances[0, 2:]).all()
    assert result.keys[0, 2] is None and result.metadata["year"][0, 2] is None
    assert len(result.to_records()) == 2


def test_removed_items_never_pass_a_condition(index):
    index.remove([0, 3])
    result = search(index, index._fit_X[:1], where="shop == 'a' and year == 2000")
    assert result.indices[0].tolist()[:1] == [30] and 0 not in result.indices


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_metadata_travel_with_the_saved_pipeline(index, tmp_path, mmap_mode):
    io.save(index, tmp_path / "m.skfk")
    again = io.load(tmp_path / "m.skfk", mmap_mode=mmap_mode)
    for name, values in index.item_metadata_.items():
        np.testing.assert_array_equal(again.item_metadata_[name], values)
    Q = index._fit_X[:3]
    a = search(index, Q, where="shop in ['b', 'c']")
    b = search(again, Q, where="shop in ['b', 'c']")
    np.testing.assert_array_equal(a.indices, b.indices)


def test_a_dataframe_is_attached_column_by_column(index):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"label": ["x", "y"] * (N // 2), "score": np.linspace(0, 1, N)})
    attach_metadata(index, frame)
    assert sorted(index.item_metadata_) == ["label", "score"]
    assert index.item_metadata_["label"].dtype.kind == "O"  # text: Python strings
    result = search(index, index._fit_X[:2], where="label == 'y' and score > 0.5")
    assert (result.metadata["label"] == "y").all()


@pytest.mark.parametrize("data, error, message", [
    ({"year": np.arange(N - 1)}, ValueError, r"'year' has shape \(59,\); expected .*\(60,\)"),
    ({"thing": [object()] * N}, ValueError, "'thing' holds Python objects"),
    ({"mixed": ["a", 1] * (N // 2)}, ValueError, "'mixed' holds Python objects"),
    ({"mixed": (["a", 1.5] * (N // 2))}, ValueError, "'mixed' holds Python objects"),
    ({"when": np.arange(N).astype("datetime64[D]")}, ValueError, "'when' has dtype"),
    ({}, ValueError, "no columns"),
    ([1, 2, 3], TypeError, "DataFrame or a dict"),
])
def test_bad_metadata_are_refused_clearly(index, data, error, message):
    with pytest.raises(error, match=message):
        attach_metadata(index, data)


def test_a_mixed_column_is_refused_alike_as_a_dict_or_a_dataframe(index):
    pd = pytest.importorskip("pandas")
    values = ["a", 1] * (N // 2)
    for data in ({"y": values}, pd.DataFrame({"y": values})):
        with pytest.raises(ValueError, match="'y' holds Python objects"):
            attach_metadata(index, data)
    assert sorted(index.item_metadata_) == ["price", "shop", "year"]


def test_a_condition_without_metadata_or_on_an_unknown_column_is_a_clear_error(index):
    with pytest.raises(WhereError, match="unknown column 'colour'"):
        search(index, index._fit_X[:1], where="colour == 'red'")
    bare = ExactIndex().fit(index._fit_X)
    with pytest.raises(WhereError, match="attach_metadata"):
        search(bare, index._fit_X[:1], where="year == 1")


def test_partial_fit_drops_the_metadata_with_a_warning(index):
    with pytest.warns(UserWarning, match="metadata attached with"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*item keys.*")
            index.partial_fit(np.zeros((2, 4), dtype=np.float32))
    assert not hasattr(index, "item_metadata_")


def test_metadata_not_matching_the_items_in_a_file_are_refused(index, tmp_path):
    index.item_metadata_ = {"year": np.arange(N + 1)}  # sealed as it is
    io.save(index, tmp_path / "bad.skfk")
    with pytest.raises(io.CorruptIndexError, match="metadata"):
        io.load(tmp_path / "bad.skfk")


@pytest.mark.parametrize("value, message", [
    ("\ud800", "not valid text"),               # a lone surrogate: no UTF-8 form
    (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"),
    (2**63, "beyond 64-bit integers"),
    (-(2**63) - 1, "beyond 64-bit integers"),
])
def test_records_with_values_no_column_can_hold_are_refused_naming_the_column(value, message):
    from skfindkit._metadata import columns_of_records

    with pytest.raises(ValueError, match=rf"item #1 .*column 'shop'.*{message}"):
        columns_of_records([{"shop": 1 if not isinstance(value, str) else "a"},
                            {"shop": value}])


def test_one_long_text_value_does_not_widen_every_row(index):
    # text columns hold each value at its own length: one long value added to a
    # column costs its own size, not its length times every row
    from skfindkit._metadata import extended_columns

    old = {"shop": np.array(["a", "b"] * 500)}
    grown = extended_columns(old, {"shop": ["x" * 50_000]}, 1)["shop"]
    assert grown[-1] == "x" * 50_000 and grown[0] == "a" and grown.shape == (1001,)
    assert grown.nbytes < 1001 * 64  # references, not 1001 fixed-width 50,000-character slots
