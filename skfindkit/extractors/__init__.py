"""Feature extractors: map loaded items to feature vectors inside a Pipeline.

Each extractor is a scikit-learn transformer. Deep-learning frameworks are
imported lazily, on first use, so ``import skfindkit`` stays fast:

- :class:`SklearnFeatureExtractor` wraps any scikit-learn estimator;
- :class:`KerasFeatureExtractor` cuts a Keras 3 model at a named layer
  (extra ``keras``);
- :class:`MXNetFeatureExtractor` (Module API) and :class:`GluonFeatureExtractor`
  do the same for MXNet symbols and Gluon blocks (extra ``mxnet``, which needs
  ``numpy<2``); :func:`import_mxnet` returns the ``mxnet`` module ready to use
  for building the networks they take.
"""

from ._base import BaseFeatureExtractor
from ._gluon import GluonFeatureExtractor
from ._keras import KerasFeatureExtractor
from ._mxnet import MXNetFeatureExtractor
from ._mxnet_import import import_mxnet
from ._sklearn import SklearnFeatureExtractor

__all__ = [
    "BaseFeatureExtractor",
    "GluonFeatureExtractor",
    "KerasFeatureExtractor",
    "MXNetFeatureExtractor",
    "SklearnFeatureExtractor",
    "import_mxnet",
]
