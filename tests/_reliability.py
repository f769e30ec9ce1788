"""The cases of ``reliability_report.py``: bad inputs, concurrency (corrupt files: ``_corruption``).

Every function here runs in a child process (``_isolation.run_isolated``) and
returns plain data: a list of ``(case, outcome, detail)``. Outcomes:

- bad inputs: ``"handled"`` (ValueError/TypeError with a message),
  ``"unclear"`` (another exception, or one without a message), ``"silent"``
  (accepted: no error, or NaN/inf in the answer);
- concurrency: ``"identical"`` / ``"consistent"`` (as serial, or a final state
  equal to the serial one), ``"error"`` (a clear exception), ``"silent-wrong"``
  (different answers, lost items, native index out of step).
"""

import threading
import warnings

import numpy as np

from ._corruption import clustered, make_index

METRICS = ("euclidean", "cosine", "inner_product")


def _bad_queries(n_features):
    rng = np.random.RandomState(0)
    good = rng.rand(4, n_features)

    def at(value):
        X = good.copy()
        X[1, 2] = value
        return X

    return {
        "NaN": at(np.nan),
        "inf": at(np.inf),
        "-inf": at(-np.inf),
        "beyond float32 (1e39)": at(1e39),
        "1-D": good[0],
        "3-D": good[:, :, None],
        "too few features": good[:, :-1],
        "too many features": np.hstack([good, good[:, :1]]),
        "empty (0 rows)": good[:0],
        "empty (0 features)": np.empty((4, 0)),
        "strings": np.full(good.shape, "a", dtype=object),
        "complex": good + 1j,
        "None inside": np.where(np.arange(good.size).reshape(good.shape) == 3, None,
                                good.astype(object)),
        "sparse": __import__("scipy.sparse").sparse.csr_matrix(good),
    }


def _classify_error(exc):
    if isinstance(exc, (ValueError, TypeError)) and str(exc).strip():
        return "handled"
    return "unclear"


def _call(func):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = func()
    except Exception as exc:  # noqa: BLE001 - classified, not hidden
        return _classify_error(exc), f"{type(exc).__name__}: {str(exc)[:120]}"
    arrays = out if isinstance(out, tuple) else (out,)
    finite = all(np.isfinite(np.asarray(a, dtype=float)).all() for a in arrays
                 if hasattr(a, "shape") and not hasattr(a, "tocsr"))
    return "silent", ("returned" if finite else "returned NaN/inf")


def _same_as_dense(index, X):
    """An accepted sparse query: 'handled' when it gets the dense query's answer."""
    try:
        dist, ind = index.kneighbors(X)
    except Exception as exc:  # noqa: BLE001 - classified, not hidden
        return _classify_error(exc), f"{type(exc).__name__}: {str(exc)[:120]}"
    ref_dist, ref_ind = index.kneighbors(X.toarray())
    if np.array_equal(ind, ref_ind) and np.allclose(dist, ref_dist, rtol=1e-6, atol=1e-9):
        return "handled", "same neighbours as the dense query"
    return "silent-wrong", "differs from the dense query"


def bad_input_cases(backend):
    """Bad queries, bad k, unfitted use and bad fit data, over every metric."""
    from sklearn.base import clone

    results = []
    for metric in METRICS:
        index, Q = make_index(backend, metric=metric, n=200)
        tag = f"{backend}/{metric}"
        for name, X in _bad_queries(index.n_features_in_).items():
            if name == "sparse" and getattr(index, "_accepts_sparse", False):
                # valid input for this index (ExactIndex searches CSR): it must
                # answer as for the same rows given dense
                results.append((f"{tag} kneighbors sparse (accepted)", *_same_as_dense(index, X)))
                continue
            results.append((f"{tag} kneighbors {name}", *_call(lambda X=X: index.kneighbors(X))))
        for name, X in (("NaN", np.full((5, 3), np.nan)), ("empty", np.empty((0, 3))),
                        ("1 sample, k=5", np.ones((1, 3)))):
            results.append((f"{tag} fit+transform {name}",
                            *_call(lambda X=X: clone(index).fit(X).transform(X))))
        for name, k in (("k > n", 500), ("k = n (X=None)", 200), ("k = 0", 0), ("k = -1", -1),
                        ("k = 2.5", 2.5)):
            results.append((f"{tag} kneighbors {name}",
                            *_call(lambda k=k: index.kneighbors(None if "None" in name else Q,
                                                                n_neighbors=k))))
        results.append((f"{tag} unfitted kneighbors", *_call(lambda: clone(index).kneighbors(Q))))
        results.append((f"{tag} partial_fit wrong features",
                        *_call(lambda: clone(index).fit(Q).partial_fit(Q[:, :-1]))))
    return results


def _run_threads(targets):
    errors = []

    def wrap(target):
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


CONCURRENCY = ("readers", "readers+writer", "two writers")


N_FIT, N_ADDS, ADD = 3000, 20, 25  # the scenario: batches of 25 rows on 3000 x 32


def concurrency_cases(backend, which, n_threads=8, n_calls=15):
    """One scenario: threads querying vs serial; queries while another thread adds; two writers."""
    new = clustered(N_ADDS * ADD, d=32, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index, Q = make_index(backend, n=N_FIT, d=32)

        def writer():
            for start in range(0, len(new), ADD):
                index.partial_fit(new[start:start + ADD], np.arange(ADD) % 3)

        if which == "readers":
            serial = index.kneighbors(Q)
            mismatches = []

            def reader():
                for _ in range(n_calls):
                    got = index.kneighbors(Q)
                    if not all(np.array_equal(a, b) for a, b in zip(got, serial)):
                        mismatches.append(1)

            errors = _run_threads([reader] * n_threads)
            outcome = "error" if errors else ("silent-wrong" if mismatches else "identical")
            detail = errors[0] if errors else (
                f"{len(mismatches)} of {n_threads * n_calls} calls differ from serial")
            return [(f"{backend} {n_threads} threads querying", outcome, detail)]
        if which == "readers+writer":
            ids_ok = []

            def querying():
                for _ in range(n_calls):
                    ind = index.kneighbors(Q, return_distance=False)
                    ids_ok.append(bool((ind >= 0).all() and (ind < N_FIT + len(new)).all()))

            errors = _run_threads([querying, querying, writer])
            return [(f"{backend} queries while partial_fit",
                     *_final_state(index, N_FIT + len(new), errors, all(ids_ok)))]
        errors = _run_threads([writer, writer])
        return [(f"{backend} two threads partial_fit",
                 *_final_state(index, N_FIT + 2 * len(new), errors, True))]


def _final_state(index, expected, errors, ids_ok):
    stored = index._fit_X.shape[0]
    native = index._native_shape(index._index)[0]
    labels = len(index._fit_y)
    problems = []
    if stored != expected or index.n_samples_fit_ != expected or labels != expected:
        problems.append(f"{expected} items expected, {stored} stored, {labels} labels")
    if native is not None and native != stored:
        problems.append(f"native index has {native} items, stored data {stored}")
    if not ids_ok:
        problems.append("a reader got an invalid id")
    if problems:
        return "silent-wrong", "; ".join(problems)
    if errors:
        return "error", errors[0]
    return "consistent", f"{expected} items"
