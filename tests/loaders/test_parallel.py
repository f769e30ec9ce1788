"""Parallel map machinery: guided chunks, the loader sent once per worker, scaling in the parent."""

import os
import tempfile
import warnings

import numpy as np
import pytest

from skfindkit.loaders import FunctionVectorLoader, ImageLoader, ItemLoadWarning
from skfindkit.loaders import _shared


class PrepareCountingLoader(FunctionVectorLoader):
    """Rows are ``[pid, id of the _prepare call that served the item]``."""

    def _prepare(self):
        return float(np.random.default_rng().integers(1, 2**52))

    def _load_item(self, item, context):
        return np.array([os.getpid(), context], dtype=np.float64)


@pytest.mark.parametrize("n_items, n_workers", [(1, 2), (3, 2), (10, 2), (300, 2), (400, 2),
                                                (1000, 4), (5000, 3)])
def test_chunk_bounds_cover_items_in_order_and_shrink(n_items, n_workers):
    bounds = _shared.chunk_bounds(n_items, n_workers)
    starts = [a for a, _ in bounds]
    stops = [b for _, b in bounds]
    assert starts[0] == 0 and stops[-1] == n_items
    assert starts[1:] == stops[:-1]
    sizes = [b - a for a, b in bounds]
    assert all(1 <= s <= 64 for s in sizes)
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # guided: non-increasing


def test_shared_loader_inline_and_file_payloads(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loader = FunctionVectorLoader(len)
    with _shared.SharedLoader(loader) as small:
        assert isinstance(small.payload, bytes)
    with _shared.SharedLoader(loader, inline_bytes=0) as big:
        assert isinstance(big.payload, str) and os.path.exists(big.payload)
        copy, context = _shared.worker_state(big.token, big.payload)
        assert copy.get_params()["func"] is len and context is None
    assert list(tmp_path.iterdir()) == []  # the file is removed on exit
    assert big.token != small.token


def test_worker_state_is_cached_per_token():
    loader = PrepareCountingLoader()
    first = _shared.SharedLoader(loader)
    state = _shared.worker_state(first.token, first.payload)
    assert _shared.worker_state(first.token, first.payload) is state
    assert _shared.worker_state(first.token, b"not read on a cache hit") is state
    second = _shared.SharedLoader(loader)
    other = _shared.worker_state(second.token, second.payload)
    assert other is not state and other[1] != state[1]  # new map: _prepare again


@pytest.mark.parametrize("inline_bytes", [None, 0])
def test_each_worker_prepares_once_per_map(inline_bytes, tmp_path, monkeypatch):
    # inline_bytes=0: the loader travels through a temporary file, removed after
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if inline_bytes is not None:
        monkeypatch.setattr(_shared, "INLINE_BYTES", inline_bytes)
    items = list(range(300))  # a dozen chunks over 2 workers
    loader = PrepareCountingLoader(n_jobs=2).fit(items[:1])
    for _ in range(2):
        rows = loader.transform(items)
        assert len(_shared.chunk_bounds(len(items), 2)) > 2
        per_worker = {}
        for pid, prepared in rows:
            per_worker.setdefault(pid, set()).add(prepared)
        assert os.getpid() not in per_worker
        assert all(len(ids) == 1 for ids in per_worker.values()), per_worker
    assert list(tmp_path.iterdir()) == []


def test_large_loader_through_a_file_matches_serial(monkeypatch):
    monkeypatch.setattr(_shared, "INLINE_BYTES", 0)
    texts = [f"text {i} " * (i % 5 + 1) for i in range(90)]
    func = lambda text: [len(text), text.count("1")]  # noqa: E731 (cloudpickled)
    serial = FunctionVectorLoader(func).fit_transform(texts)
    np.testing.assert_array_equal(
        FunctionVectorLoader(func, n_jobs=2).fit_transform(texts), serial
    )


@pytest.mark.parametrize("on_error, fill", [("zeros", 0.0), ("nan", np.nan)])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_image_scaling_in_parent_leaves_placeholders_and_dtype(on_error, fill, n_jobs):
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(6)]
    items = images[:2] + [b"not an image"] + images[2:]
    loader = ImageLoader(size=None, scale="symmetric", dtype="float64",
                         on_error=on_error, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ItemLoadWarning)
        out = loader.transform(items)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[2], np.full((12, 10, 3), fill))
    expected = np.stack(images).astype(np.float64) * (2 / 255) - 1.0
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), expected)


def test_essentia_direct_compute_matches_checked_calls(monkeypatch):
    pytest.importorskip("essentia")
    from skfindkit.loaders import EssentiaVectorLoader, _essentia

    t = np.arange(44100) / 44100
    rng = np.random.RandomState(0)
    clips = [np.sin(2 * np.pi * f * t) * 0.5 + 0.01 * rng.randn(t.size) for f in (220, 880)]
    clips.append(np.r_[np.zeros(8192), clips[0][:20000]])  # silent frames: empty peaks
    loader = EssentiaVectorLoader(["mfcc", "bark", "spectral", "tonal"], n_segments=2)
    fast = loader.transform(clips)
    monkeypatch.setattr(_essentia, "_direct_compute", lambda algo: algo)
    np.testing.assert_array_equal(loader.transform(clips), fast)
