"""The contract every loader keeps, parametrized over every listed loader.

Like the indexes' contract in ``tests/common/test_estimators.py``: a loader joins by being
listed in ``tests/common/estimator_instances.py``. Each must give the same rows after a
pickle round trip, with one worker and with two, and keep its rows aligned
with the input when an item fails (``on_error``).
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from skfindkit.loaders import (
    BaseVectorLoader,
    Doc2VecLoader,
    EssentiaVectorLoader,
    FunctionVectorLoader,
    ImageLoader,
    ItemLoadError,
    ItemLoadWarning,
    STFTVectorLoader,
)

from .._audio_fixtures import synth
from ..common.estimator_instances import loader_instances, unavailable_instances

N_ITEMS, BAD_AT = 12, 5  # with 2 workers: several chunks, the bad item inside one


def _loaders():
    out = [pytest.param(e, id=f"{type(e).__name__}-{i}") for i, e in enumerate(loader_instances())]
    out += [pytest.param(e, id=type(e).__name__, marks=pytest.mark.skip(reason=reason))
            for e, reason in unavailable_instances() if isinstance(e, BaseVectorLoader)]
    return out


def _texts():
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        return [line.strip() for line in handle if line.strip()][:N_ITEMS]


def _items(loader, tmp_path):
    """``N_ITEMS`` good items of the loader's kind, and one item that fails."""
    rng = np.random.RandomState(0)
    if isinstance(loader, FunctionVectorLoader):
        return [rng.uniform(-1, 1, 6) for _ in range(N_ITEMS)], "not a number"
    if isinstance(loader, ImageLoader):
        images = [rng.randint(0, 256, (20, 16, 3), dtype=np.uint8) for _ in range(N_ITEMS)]
        return images, str(tmp_path / "missing.png")
    if isinstance(loader, (STFTVectorLoader, EssentiaVectorLoader)):
        families = ("tone", "chirp", "noise", "clicks")
        clips = [synth(families[i % 4], i, seconds=0.3) for i in range(N_ITEMS)]
        return clips, str(tmp_path / "missing.wav")
    if isinstance(loader, Doc2VecLoader):
        return _texts(), "  !! "  # no tokens: an empty document
    raise AssertionError(f"add items for {type(loader).__name__} to tests/loaders/test_contract.py")


def _fitted(loader, items, **params):
    est = clone(loader).set_params(**params)
    return est.fit(items)


@pytest.mark.parametrize("loader", _loaders())
def test_pickle_round_trip_gives_identical_rows(loader, tmp_path):
    items, _ = _items(loader, tmp_path)
    est = _fitted(loader, items)
    out = est.transform(items)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(items), out)


@pytest.mark.parametrize("loader", _loaders())
def test_serial_and_parallel_rows_are_identical(loader, tmp_path):
    items, _ = _items(loader, tmp_path)
    est = _fitted(loader, items, n_jobs=1)
    serial = est.transform(items)
    parallel = est.set_params(n_jobs=2).transform(items)
    np.testing.assert_array_equal(parallel, serial)
    assert serial.shape[0] == N_ITEMS and np.isfinite(serial).all()


@pytest.mark.parametrize("loader", _loaders())
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_on_error_keeps_rows_aligned(loader, n_jobs, tmp_path):
    items, bad = _items(loader, tmp_path)
    est = _fitted(loader, items, n_jobs=n_jobs)
    good = est.transform(items)
    with_bad = items[:BAD_AT] + [bad] + items[BAD_AT:]
    with pytest.raises(ItemLoadError, match=rf"item {BAD_AT} ") as info:
        est.set_params(on_error="raise").transform(with_bad)
    assert info.value.position == BAD_AT
    for policy, check in (("nan", np.isnan), ("zeros", lambda row: row == 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = est.set_params(on_error=policy).transform(with_bad)
        messages = [str(w.message) for w in caught if issubclass(w.category, ItemLoadWarning)]
        assert len(messages) == 1 and f"item {BAD_AT} " in messages[0]
        assert check(out[BAD_AT]).all()
        np.testing.assert_array_equal(np.delete(out, BAD_AT, axis=0), good)


# the shared vocabulary (INTERFACES.md decision 1); tests/common/test_estimators.py checks
# the names of indexes and loaders, this the parameters every loader and
# extractor must take, and the extractors' names
_RENAMED = {"seed": "random_state", "random_seed": "random_state", "workers": "n_jobs",
            "n_threads": "n_jobs", "num_threads": "n_jobs", "verbosity": "verbose",
            "batchsize": "batch_size", "chunk_size": "batch_size"}


def test_loaders_and_extractors_take_the_shared_parameters():
    import inspect

    import skfindkit
    from skfindkit import BaseFeatureExtractor

    checked = 0
    for name in skfindkit.__all__:
        cls = getattr(skfindkit, name)
        if not (inspect.isclass(cls) and issubclass(cls, (BaseVectorLoader, BaseFeatureExtractor))
                and not inspect.isabstract(cls)):
            continue
        params = set(inspect.signature(cls).parameters)
        wrong = {p: _RENAMED[p] for p in params if p in _RENAMED}
        assert not wrong, f"{name}: rename {wrong}"
        expected = ({"n_jobs", "verbose", "on_error"} if issubclass(cls, BaseVectorLoader)
                    else {"batch_size", "verbose"})
        assert expected <= params, f"{name} lacks {expected - params}"
        checked += 1
    assert checked >= 9
