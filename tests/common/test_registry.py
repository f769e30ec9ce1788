"""The estimator registry: every table of backends is derived from the classes.

A toy backend written into a temporary module and exported the documented
way (``skfindkit.indexes.__all__`` + the attribute, one line in
``tests/common/estimator_instances.py``) must appear in the command line's choices,
``skfindkit.features``' index table, the test registries and the estimator
instances, and pass the common checks.
"""

import importlib
import os
import pickle
import sys
import tomllib

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsTransformer
from sklearn.utils.estimator_checks import check_estimator

import skfindkit
from skfindkit import features, indexes
from skfindkit.cli import build_parser
from skfindkit.utils.discovery import (Requirement, all_estimators, index_backends,
                                       index_metrics, loader_kinds, requirements)

from .. import _backends
from . import estimator_instances

TOY_MODULE = '''
import numpy as np

from skfindkit.indexes import BaseIndex
from skfindkit.utils.discovery import Requirement


class ToyIndex(BaseIndex):
    """Brute force in numpy: a backend written for the registry test."""

    _backend = "toy"
    _cli_name = "toy"
    _requires = Requirement(library="numpy", import_name="numpy", extra="toy")
    supported_metrics = ("euclidean", "cosine")
    _native_distance = "sqeuclidean"

    def _build(self, X):
        return np.asarray(X, dtype=np.float64)

    def _search(self, X, k):
        d2 = ((np.asarray(X, dtype=np.float64)[:, None, :] - self._index[None]) ** 2).sum(-1)
        ids = np.full((X.shape[0], k), -1)
        dist = np.full((X.shape[0], k), np.inf)
        found = np.argsort(d2, axis=1, kind="stable")[:, :k]
        ids[:, :found.shape[1]] = found
        dist[:, :found.shape[1]] = np.take_along_axis(d2, found, axis=1)
        return dist, ids
'''


@pytest.fixture
def toy_index(tmp_path, monkeypatch):
    """``ToyIndex`` from a temporary module, registered the documented way."""
    (tmp_path / "skfindkit_toy_backend.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(os.fspath(tmp_path))
    cls = importlib.import_module("skfindkit_toy_backend").ToyIndex
    monkeypatch.setattr(indexes, "ToyIndex", cls, raising=False)
    monkeypatch.setattr(indexes, "__all__", [*indexes.__all__, "ToyIndex"])
    monkeypatch.setitem(estimator_instances.INDEX_INSTANCES, "ToyIndex",
                        lambda cls: [cls(), cls(metric="cosine", mode="connectivity")])
    yield cls
    sys.modules.pop("skfindkit_toy_backend", None)


def test_toy_backend_is_seen_everywhere(toy_index):
    assert dict(all_estimators("index"))["ToyIndex"] is toy_index
    # the command line
    args = build_parser().parse_args(["index", "folder", "--kind", "image", "--index", "toy"])
    assert args.index == "toy"
    # the feature sets' index table
    assert features.INDEXES["toy"] == ("ToyIndex", "numpy", "toy", None)
    assert isinstance(features.build_index("toy", metric="cosine"), toy_index)
    features.check_available("text", "tfidf", index="toy")
    # the test registries
    assert toy_index in _backends.ALL_INDEXES
    assert _backends.MODULES[toy_index] == "numpy"
    assert not _backends.missing(toy_index)
    # the estimator instances
    toys = [i for i in estimator_instances.index_instances() if isinstance(i, toy_index)]
    assert [(i.metric, i.mode) for i in toys] == [("euclidean", "distance"),
                                                   ("cosine", "connectivity")]
    assert "ToyIndex" in estimator_instances.listed_classes()


def test_toy_backend_passes_the_common_checks(toy_index):
    rng = np.random.RandomState(0)
    X, Q = rng.rand(60, 5), rng.rand(7, 5)
    for index in (toy_index(), toy_index(metric="cosine", mode="connectivity")):
        check_estimator(index)
        index.set_params(n_neighbors=4).fit(X)
        reference = KNeighborsTransformer(n_neighbors=4, metric=index.metric).fit(X)
        dist, ind = index.kneighbors(Q)
        ref_dist, ref_ind = reference.kneighbors(Q)
        np.testing.assert_array_equal(ind, ref_ind)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-6)
        again = pickle.loads(pickle.dumps(index))
        np.testing.assert_array_equal(again.kneighbors(Q)[1], ind)


def test_unregistered_toy_is_nowhere(toy_index, monkeypatch):
    monkeypatch.setattr(indexes, "__all__", [n for n in indexes.__all__ if n != "ToyIndex"])
    assert "toy" not in features.INDEXES
    assert toy_index not in _backends.ALL_INDEXES
    with pytest.raises(SystemExit):
        build_parser().parse_args(["index", "folder", "--kind", "image", "--index", "toy"])


def test_tables_of_the_shipped_backends():
    assert features.INDEXES == {
        "exact": ("ExactIndex", None, None, None),
        "annoy": ("AnnoyIndex", "annoy", "annoy", None),
        "faiss": ("FaissIndex", "faiss", "faiss", "faiss-cpu"),
        "hnsw": ("HNSWIndex", "hnswlib", "hnswlib", None),
        "nmslib": ("NMSLibIndex", "nmslib", "nmslib", None),
    }
    assert index_metrics() == indexes.METRICS
    assert set(_backends.MODULES.values()) == {"annoy", "faiss", "hnswlib", "nmslib"}
    # every exported estimator is found, and only those
    public = {name for name in skfindkit.__all__
              if isinstance(getattr(skfindkit, name), type)
              and hasattr(getattr(skfindkit, name), "get_params")
              and not name.startswith("Base")}
    assert {name for name, _ in all_estimators()} == public


def test_loader_kinds_are_the_command_line_kinds():
    """Every kind a loader declares has file endings in the application layer, and back."""
    from skfindkit._app.kinds import KINDS

    assert set(loader_kinds()) == set(KINDS)


def test_requirements_name_extras_of_pyproject():
    """Each declared requirement is installed by the extra it names."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for name, cls in all_estimators():
        for requirement in requirements(cls):
            assert isinstance(requirement, Requirement), name
            listed = [spec.split(">")[0].split("=")[0].split("<")[0].split("[")[0]
                      for spec in extras[requirement.extra]]
            assert requirement.library in listed, (name, requirement)


def test_index_backends_are_named_once():
    names = [cls._cli_name for _, cls in all_estimators("index")
             if getattr(cls, "_cli_name", None)]
    assert len(names) == len(set(names)) == len(index_backends())
