"""Optional backends in tests: a missing one skips with a reason, never silently."""

import importlib.util

import pytest

MXNET_REASON = "needs MXNet on numpy<2: runs in `nox -s tests_mxnet`"


def has(module):
    """Is ``module`` importable in this environment (without importing it)?"""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package missing
        return False


def require_mxnet():
    """``mxnet`` through skfindkit's public import, or skip the caller with the reason.

    Works at module level (the whole module is reported as one skipped item)
    and inside a test.
    """
    from skfindkit.extractors import import_mxnet

    try:
        return import_mxnet()
    except ImportError as exc:
        pytest.skip(f"{MXNET_REASON} ({str(exc).split('. ')[0]})", allow_module_level=True)
