"""Collection rules and fixtures shared by the whole suite."""

import pytest
from sklearn.datasets import load_digits

# MXNet 1.9.1 (the last release of a retired project) needs numpy < 2, so its
# extractors are tested in their own environment (``nox -s tests_mxnet``); in
# the numpy-2 environment their modules and instances are reported as skipped,
# with that reason (tests/_optional.py).


@pytest.fixture(scope="module")
def digits():
    """The first 600 digits as NHWC float32 images in [0, 1], and their labels.

    Shared by the extractor tests (their tiny CNNs train on it); test modules
    with a ``digits`` fixture of their own keep theirs.
    """
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype("float32").reshape(-1, 8, 8, 1)[:600], y[:600]


def pytest_runtest_setup(item):
    """Write the model files of the estimators a test is parametrized with (lazily)."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        from .common.estimator_instances import ensure_model_files

        ensure_model_files(callspec.params.values())


#: estimators each of whose tests starts a server (Milvus Lite) or runs a
#: deep-learning framework (TensorFlow): their cases are marked ``slow``, so
#: that ``nox -s quick`` (the edit-test loop) leaves them to CI and ``nox``
SLOW_ESTIMATORS = ("MilvusIndex", "KerasFeatureExtractor")


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(
                type(value).__name__ in SLOW_ESTIMATORS or getattr(value, "__name__", None)
                in SLOW_ESTIMATORS for value in callspec.params.values()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _private_cache_folder(tmp_path_factory):
    """skfindkit's per-user cache (records of verified files) in a temporary folder, for
    the tests and the commands they run: the suite never writes the user's own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SKFINDKIT_CACHE_DIR", str(tmp_path_factory.mktemp("skfindkit-cache")))
    yield
    patch.undo()
