"""Which optional index backends this environment has, as skip marks with reasons.

``ALL_INDEXES`` (the indexes with a command-line name) and ``MODULES`` (each
of them that needs a library -> the module it imports) are computed from the
classes' declarations (:mod:`skfindkit.utils.discovery`) at each access.
"""

import pytest

from skfindkit.utils.discovery import index_backends, requirements


def all_indexes():
    """The named indexes (``skfindkit index --index NAME``), the exact one first."""
    return tuple(index_backends().values())


def modules():
    """``{index class: module it imports}`` for the named indexes that need a library."""
    return {cls: requirements(cls)[0].import_name for cls in all_indexes() if requirements(cls)}


def __getattr__(name):
    if name == "ALL_INDEXES":
        return all_indexes()
    if name == "MODULES":
        return modules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing_module(cls):
    return next((r.import_name for r in requirements(cls) if not r.available()), None)


def missing(cls):
    return _missing_module(cls) is not None


def needs_mark(cls):
    """Skip mark (with the reason in the summary) for a backend not installed here."""
    module = _missing_module(cls)
    return pytest.mark.skipif(module is not None, reason=f"{module} is not installed")


def needs(*classes):
    """Skip the calling test unless every backend of ``classes`` is installed."""
    for cls in classes:
        module = _missing_module(cls)
        if module is not None:
            pytest.skip(f"{module} is not installed")


def param(obj, cls=None):
    """``pytest.param`` of an index class or instance, skipped if its backend is missing."""
    cls = cls or type(obj)
    return pytest.param(obj, marks=needs_mark(cls), id=cls.__name__ if obj is cls else repr(obj))
