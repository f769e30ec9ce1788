"""Items by key: upsert replaces, remove_keys removes; keys and metadata stay aligned with ids."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from skfindkit import ExactIndex, UnknownItemError, attach_keys, attach_metadata, io
from skfindkit.search import ids_of_keys, remove_keys, search, upsert

from ._optional import has

N, D = 40, 6


def _index(make=lambda: ExactIndex(n_neighbors=3)):
    X = np.random.RandomState(0).rand(N, D).astype(np.float32)
    index = make().fit(X)
    attach_keys(index, [f"k{i}" for i in range(N)])
    attach_metadata(index, {"n": np.arange(N)})
    return index, X


def _consistent(index):
    """Every live id's key and metadata are those it was given (key ki <-> n = i for
    the original items)."""
    live = np.flatnonzero(index.live_mask_)
    keys = index.item_keys_[live]
    assert len(set(keys.tolist())) == live.size  # live keys are unique
    assert index.item_keys_.shape == (index.n_samples_fit_,)
    assert all(v.shape == (index.n_samples_fit_,) for v in index.item_metadata_.values())


def test_the_same_key_again_replaces_the_item():
    index, X = _index()
    moved = np.full((1, D), 5.0, dtype=np.float32)
    ids = upsert(index, moved, ["k7"], metadata={"n": [700]})
    assert ids.tolist() == [N] and not index.is_live(7) and index.n_items_ == N
    hit = search(index, moved, n_neighbors=1)
    assert hit.indices[0, 0] == N and hit.keys[0, 0] == "k7" and hit.metadata["n"][0, 0] == 700
    assert 7 not in search(index, X[7:8]).indices
    assert ids_of_keys(index, ["k7"]).tolist() == [N]
    _consistent(index)


def test_new_keys_are_added_and_removed_by_key():
    index, X = _index()
    upsert(index, X[:2] + 0.5, ["new0", "new1"], metadata={"n": [-1, -2]})
    assert index.n_items_ == N + 2
    assert remove_keys(index, ["new0", "k3"]).tolist() == [3, N]
    assert index.n_items_ == N and not index.is_live([3, N]).any()
    with pytest.raises(UnknownItemError, match=r"'k3'"):
        remove_keys(index, ["k3"])  # already removed
    with pytest.raises(UnknownItemError, match=r"'nope'"):
        remove_keys(index, ["k4", "nope"])
    assert index.is_live(4)  # nothing removed by the refused call
    _consistent(index)


def test_bad_upserts_change_nothing():
    index, X = _index()
    before = (index.n_samples_fit_, index.item_keys_.copy())
    with pytest.raises(ValueError, match="more than once"):
        upsert(index, X[:2], ["a", "a"], metadata={"n": [1, 2]})
    with pytest.raises(ValueError, match="same columns|columns"):
        upsert(index, X[:1], ["a"])
    with pytest.raises(ValueError, match="one key per item"):
        upsert(index, X[:2], ["a"], metadata={"n": [1, 2]})
    with pytest.raises(ValueError, match=r"column 'n' is numeric.*new items.*text"):
        upsert(index, X[:2], ["a", "b"], metadata={"n": ["x", "y"]})
    assert index.item_metadata_["n"].dtype.kind == "i"
    assert index.n_samples_fit_ == before[0]
    np.testing.assert_array_equal(index.item_keys_, before[1])
    bare = ExactIndex().fit(X)
    with pytest.raises(ValueError, match="attach_keys"):
        upsert(bare, X[:1], ["a"])


def test_upsert_through_a_pipeline_and_a_saved_round_trip(tmp_path):
    docs = ["red apple", "green apple", "blue sky", "red sky", "apple pie", "night sky"]
    pipe = make_pipeline(TfidfVectorizer(), ExactIndex(n_neighbors=2, metric="cosine"))
    pipe.fit(docs)
    attach_keys(pipe, [f"d{i}" for i in range(len(docs))])
    upsert(pipe, ["green tea sky"], ["d1"])
    io.save(pipe, tmp_path / "p.skfk")
    again = io.load(tmp_path / "p.skfk")
    hit = search(again, ["green tea"], n_neighbors=1)
    assert hit.keys[0, 0] == "d1" and hit.indices[0, 0] == len(docs)
    assert not again[-1].is_live(1)


@pytest.mark.skipif(not has("hnswlib"), reason="needs hnswlib")
def test_keys_stay_aligned_through_compaction_of_an_approximate_index():
    from skfindkit import HNSWIndex

    index, X = _index(lambda: HNSWIndex(n_neighbors=3, random_state=0))
    for i in range(12):  # past the default tombstone share: compaction runs
        upsert(index, X[i:i + 1] + 10.0, [f"k{i}"], metadata={"n": [1000 + i]})
    _consistent(index)
    hit = search(index, X[5:6] + 10.0, n_neighbors=1)
    assert hit.keys[0, 0] == "k5" and hit.metadata["n"][0, 0] == 1005
    index.compact()
    hit = search(index, X[5:6] + 10.0, n_neighbors=1)
    assert hit.keys[0, 0] == "k5" and hit.metadata["n"][0, 0] == 1005


def test_concurrent_upserts_of_the_same_keys_leave_one_live_item_per_key():
    from concurrent.futures import ThreadPoolExecutor

    index, X = _index()
    keys = [f"k{i}" for i in range(5)]

    def work(seed):
        rng = np.random.RandomState(seed)
        for _ in range(5):
            rows = rng.rand(len(keys), D).astype(np.float32)
            upsert(index, rows, keys, metadata={"n": np.full(len(keys), seed)})
            search(index, rows[:1])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert index.n_items_ == N and index.n_samples_fit_ == N + 4 * 5 * len(keys)
    _consistent(index)
    assert sorted(index.item_keys_[index.live_mask_].tolist()) == sorted(
        f"k{i}" for i in range(N))


@pytest.mark.parametrize("call", ["upsert", "ids_of_keys"])
def test_keys_are_read_under_the_index_lock_while_another_upsert_writes(call):
    # an upsert's partial_fit drops the keys until it attaches the extended list:
    # a second caller must wait for it, not read "the index has no keys"
    import threading

    index, X = _index()
    outcome = {}

    def second():
        try:
            if call == "upsert":
                outcome["ok"] = upsert(index, X[:1], ["k1"], metadata={"n": [1]})
            else:
                outcome["ok"] = ids_of_keys(index, ["k1"])
        except Exception as exc:  # noqa: BLE001 - the failure is the outcome
            outcome["error"] = exc

    with index._writing():  # what upsert holds between partial_fit and the new keys
        keys = index.item_keys_
        del index.item_keys_
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)  # it waits for the lock (or fails at once)
        index.item_keys_ = keys
    thread.join(timeout=60)
    assert not thread.is_alive() and "error" not in outcome, outcome


def test_one_long_key_does_not_widen_every_key():
    index, X = _index()
    upsert(index, X[:1], ["x" * 50_000], metadata={"n": [0]})
    keys = index.item_keys_
    assert keys[-1] == "x" * 50_000 and keys[0] == "k0"
    assert keys.nbytes < keys.size * 64  # references, not fixed-width 50,000-character slots
