"""Which optional index backends this environment has, as skip marks with reasons."""

import importlib.util

import pytest

from skfindkit import AnnoyIndex, ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex

MODULES = {AnnoyIndex: "annoy", NMSLibIndex: "nmslib", HNSWIndex: "hnswlib", FaissIndex: "faiss"}
ALL_INDEXES = (ExactIndex, AnnoyIndex, NMSLibIndex, HNSWIndex, FaissIndex)


def missing(cls):
    return cls in MODULES and importlib.util.find_spec(MODULES[cls]) is None


def needs_mark(cls):
    """Skip mark (with the reason in the summary) for a backend not installed here."""
    return pytest.mark.skipif(missing(cls), reason=f"{MODULES.get(cls)} is not installed")


def needs(*classes):
    """Skip the calling test unless every backend of ``classes`` is installed."""
    for cls in classes:
        if missing(cls):
            pytest.skip(f"{MODULES[cls]} is not installed")


def param(obj, cls=None):
    """``pytest.param`` of an index class or instance, skipped if its backend is missing."""
    cls = cls or type(obj)
    return pytest.param(obj, marks=needs_mark(cls), id=cls.__name__ if obj is cls else repr(obj))
