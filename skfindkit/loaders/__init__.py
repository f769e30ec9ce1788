"""Loaders: raw items (file paths, texts, images, arrays) -> fixed-shape arrays.

Every loader is a scikit-learn transformer built on one base class that maps
items in parallel (``n_jobs``), shows progress (``verbose``) and applies one
error policy (``on_error``).
"""

from ._audio import STFTVectorLoader
from ._base import BaseVectorLoader, ItemLoadError, ItemLoadWarning
from ._descriptors import ImageDescriptors
from ._essentia import EssentiaVectorLoader
from ._function import FunctionVectorLoader
from ._text import Doc2VecLoader
from ._image import ImageLoader

__all__ = [
    "BaseVectorLoader",
    "Doc2VecLoader",
    "EssentiaVectorLoader",
    "FunctionVectorLoader",
    "ImageDescriptors",
    "ImageLoader",
    "ItemLoadError",
    "ItemLoadWarning",
    "STFTVectorLoader",
]
