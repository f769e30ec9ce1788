"""Nearest-neighbour indexes with ``KNeighborsTransformer`` semantics.

All indexes share :class:`BaseIndex`; each backend is one small module that
imports its library lazily (install it with the matching extra).
"""

from ._annoy import AnnoyIndex
from ._base import METRICS, BaseIndex
from ._bm25 import BM25Index
from ._exact import ExactIndex
from ._faiss import FaissIndex
from ._hnsw import HNSWIndex
from ._milvus import MilvusIndex
from ._nmslib import NMSLibIndex
from ._removal import UnknownItemError
from ._sharded import ShardedIndex

__all__ = [
    "AnnoyIndex",
    "BaseIndex",
    "BM25Index",
    "ExactIndex",
    "FaissIndex",
    "HNSWIndex",
    "METRICS",
    "MilvusIndex",
    "NMSLibIndex",
    "ShardedIndex",
    "UnknownItemError",
]
