"""Every estimator of skfindkit, found from the packages' ``__all__``.

Each estimator class declares its facts once, as class attributes:

``_requires``
    the optional library it needs, a :class:`Requirement` (or a tuple of
    them; absent or None: none);
``_cli_name`` (indexes)
    its name in ``skfindkit index --index NAME`` and
    :func:`skfindkit.features.build_index`;
``_kind`` (loaders)
    the kind of files it reads (``"image"``, ``"audio"``, ``"text"``).

Every table of backends (the command line's choices, the feature sets'
index table, the test registries) is computed here from the public names
of :mod:`skfindkit.indexes`, :mod:`skfindkit.loaders` and
:mod:`skfindkit.extractors`, as scikit-learn's ``all_estimators`` does: a
class exported there is found everywhere.

Examples
--------
>>> from skfindkit.utils.discovery import all_estimators, index_backends
>>> [name for name, _ in all_estimators("index")][:2]
['AnnoyIndex', 'BM25Index']
>>> index_backends()["exact"].__name__
'ExactIndex'
"""

import importlib
import inspect

from sklearn.base import BaseEstimator

from ._optional import Requirement

__all__ = ["Requirement", "all_estimators", "index_backends", "index_metrics",
           "loader_kinds", "requirements"]

# family -> (package, name of its base class)
_FAMILIES = {
    "index": ("skfindkit.indexes", "BaseIndex"),
    "loader": ("skfindkit.loaders", "BaseVectorLoader"),
    "extractor": ("skfindkit.extractors", "BaseFeatureExtractor"),
}


def all_estimators(type_filter=None):
    """The public, concrete estimator classes of skfindkit.

    Parameters
    ----------
    type_filter : {"index", "loader", "extractor"} or list of them, default=None
        Families to list; None lists all three.

    Returns
    -------
    estimators : list of (str, type)
        ``(name, class)`` pairs sorted by name, one per concrete
        scikit-learn estimator class exported in the family's package
        ``__all__`` (the family's ``Base*`` classes excluded, meta-estimators
        such as ``RankFusionIndex`` included).
    """
    if type_filter is None:
        families = list(_FAMILIES)
    else:
        families = [type_filter] if isinstance(type_filter, str) else list(type_filter)
        unknown = sorted(set(families) - set(_FAMILIES))
        if unknown:
            raise ValueError(f"type_filter must be among {sorted(_FAMILIES)}, got {unknown}")
    found = {}
    for family in families:
        package_name, base_name = _FAMILIES[family]
        package = importlib.import_module(package_name)
        base = getattr(package, base_name)
        for name in package.__all__:
            obj = getattr(package, name)
            # the family's base, or a meta-estimator of the family (RankFusionIndex)
            if (inspect.isclass(obj) and issubclass(obj, BaseEstimator) and obj is not base
                    and not inspect.isabstract(obj) and not name.startswith("Base")):
                found[name] = obj
    return sorted(found.items())


def requirements(cls):
    """The :class:`Requirement` tuple an estimator class declares (empty: none)."""
    declared = getattr(cls, "_requires", None)
    if declared is None:
        return ()
    return declared if isinstance(declared, tuple) else (declared,)


def index_backends():
    """``{cli_name: class}`` of the indexes that declare a ``_cli_name``, sorted by name
    with ``"exact"`` first (the default)."""
    named = {cls._cli_name: cls for _, cls in all_estimators("index")
             if getattr(cls, "_cli_name", None)}
    return dict(sorted(named.items(), key=lambda item: (item[0] != "exact", item[0])))


def index_metrics():
    """The metrics at least one named index supports, in ``skfindkit.indexes.METRICS`` order."""
    from ..indexes import METRICS

    supported = {m for cls in index_backends().values() for m in cls.supported_metrics}
    return tuple(m for m in METRICS if m in supported)


def loader_kinds():
    """``{kind: [loader classes]}`` of the loaders that declare a ``_kind``."""
    kinds = {}
    for _, cls in all_estimators("loader"):
        kind = getattr(cls, "_kind", None)
        if kind:
            kinds.setdefault(kind, []).append(cls)
    return dict(sorted(kinds.items()))
