"""Tampered native index bytes never crash the process (checksums recomputed).

For each backend a fitted index is saved with ``skfindkit.io.save``, then
seeded variants of its sealed state -- random byte edits of the native blob,
edits of the backend's own header fields, ``metric_``/``n_features_in_``/
``n_samples_fit_`` edits, truncations -- are written with every checksum
recomputed and each is loaded AND queried in a child process
(``_native_fuzz.load_and_query``): a Python exception at load, or answers of
the right shape; never a signal, an abort or a hang. The fast profile runs
~20 variants per backend; the ``slow`` one many more.
"""

from collections import Counter

import pytest

from .. import _native_fuzz
from .._isolation import ChildCrashed, ChildHung, run_isolated

_NEEDS = {"annoy": "annoy", "nmslib": "nmslib", "hnswlib": "hnswlib", "faiss-hnsw": "faiss",
          "faiss-flat": "faiss", "faiss-ivf": "faiss", "faiss-pca": "faiss",
          "annoy-compacted": "annoy", "nmslib-compacted": "nmslib",
          "faiss-hnsw-compacted": "faiss"}


def _fuzz(backend, folder, n_variants, seed):
    pytest.importorskip(_NEEDS[backend])
    files, Q = _native_fuzz.write_variants(backend, str(folder), n_variants, seed)
    outcomes, failures = Counter(), []
    for what, path in files:
        try:
            result, message = run_isolated(_native_fuzz.load_and_query, path, Q, timeout=120)
        except (ChildCrashed, ChildHung) as exc:
            result, message = type(exc).__name__, str(exc)
        outcomes[result] += 1
        if result not in ("refused", "answered"):
            failures.append(f"{what}: {result}: {message[:300]}")
    assert not failures, f"{backend}: {dict(outcomes)}\n" + "\n".join(failures)
    return outcomes


@pytest.mark.parametrize("backend", _native_fuzz.BACKENDS)
def test_tampered_native_bytes_are_refused_or_answered(backend, tmp_path):
    outcomes = _fuzz(backend, tmp_path, n_variants=20, seed=0)
    assert outcomes["refused"] > 0  # the variants reach the checks


@pytest.mark.slow
@pytest.mark.parametrize("backend", _native_fuzz.BACKENDS)
def test_tampered_native_bytes_many_variants(backend, tmp_path):
    _fuzz(backend, tmp_path, n_variants=200, seed=1)


@pytest.mark.parametrize("backend", sorted(_native_fuzz.FAR_LINK))
def test_a_graph_link_far_out_of_range_is_refused_at_load(backend, tmp_path):
    # one neighbour id deep inside the graph, that only the library interprets
    pytest.importorskip(_NEEDS[backend])
    _assert_refused_in_child(*_native_fuzz.write_far_link(backend, str(tmp_path)))


def _assert_refused_in_child(path, Q):
    """Loading ``path`` (then querying ``Q``) in a child ends in a CorruptIndexError."""
    try:
        result, message = run_isolated(_native_fuzz.load_and_query, path, Q, timeout=120)
    except (ChildCrashed, ChildHung) as exc:
        result, message = type(exc).__name__, str(exc)
    assert result == "refused", message
    assert message.startswith("CorruptIndexError")


@pytest.mark.parametrize("field", sorted(_native_fuzz.HNSWLIB_SCALAR_EDITS))
def test_hnswlib_state_scalars_are_checked(field, tmp_path):
    # found by the independent tester: index_inited flipped segfaulted at load
    pytest.importorskip("hnswlib")
    _assert_refused_in_child(*_native_fuzz.write_hnswlib_scalar_edit(field, str(tmp_path)))
