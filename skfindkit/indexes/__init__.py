"""Nearest-neighbour indexes with ``KNeighborsTransformer`` semantics.

All indexes share :class:`BaseIndex`; each backend is one small module that
imports its library lazily (install it with the matching extra).
"""

from ._base import METRICS, BaseIndex
from ._exact import ExactIndex

__all__ = ["BaseIndex", "ExactIndex", "METRICS"]
