"""The one place where skfindkit imports MXNet (and the only numpy shim it has).

MXNet 1.9.1, the last release of the retired project, still refers to the
``np.bool`` alias that numpy removed in 1.24 and does not work with numpy 2 at
all. It therefore lives in its own environment (``pip install
'skfindkit[mxnet]'``, which pins ``numpy<2``); there the alias is restored just
before MXNet is imported. Nothing else in skfindkit touches numpy.

:func:`import_mxnet` is public (``skfindkit.extractors.import_mxnet``): users
build their Gluon blocks and symbols with the module it returns, since a plain
``import mxnet`` fails on numpy 1.24-1.26 (``np.bool``).
"""

import numpy as np

from ..utils import import_optional

__all__ = ["import_mxnet"]

_ENV_HINT = (
    "MXNet 1.9.1 needs numpy<2: use a separate environment for the MXNet "
    "extractors and install them there with: pip install 'skfindkit[mxnet]'"
)


def import_mxnet():
    """Import and return ``mxnet``, restoring ``np.bool`` on numpy < 2 first.

    Use it instead of ``import mxnet`` to build the Gluon blocks and symbols
    given to :class:`~skfindkit.GluonFeatureExtractor` and
    :class:`~skfindkit.MXNetFeatureExtractor`: MXNet 1.9.1 still uses the
    ``np.bool`` alias that numpy 1.24 removed, so a plain ``import mxnet``
    fails with the ``numpy<2`` it needs. The alias (``np.bool = bool``, what
    it meant before 1.24) is set only on numpy < 2 and only when absent.

    Returns
    -------
    mxnet : module
        The ``mxnet`` package itself.

    Raises
    ------
    ImportError
        With numpy >= 2 (MXNet 1.9.1 cannot run there) or without MXNet, saying
        how to install the ``mxnet`` extra.

    Examples
    --------
    >>> from skfindkit.extractors import import_mxnet
    >>> mx = import_mxnet()  # doctest: +SKIP
    >>> net = mx.gluon.nn.HybridSequential()  # doctest: +SKIP
    """
    if int(np.__version__.split(".")[0]) >= 2:
        raise ImportError(f"numpy {np.__version__} is installed. {_ENV_HINT}")
    if "bool" not in np.__dict__:  # alias removed in numpy 1.24, still used by MXNet
        np.bool = bool
    return import_optional("mxnet", "mxnet")
