"""The one place where skfindkit imports MXNet (and the only numpy shim it has).

MXNet 1.9.1, the last release of the retired project, still refers to the
``np.bool`` alias that numpy removed in 1.24 and does not work with numpy 2 at
all. It therefore lives in its own environment (``pip install
'skfindkit[mxnet]'``, which pins ``numpy<2``); there the alias is restored just
before MXNet is imported. Nothing else in skfindkit touches numpy.
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

    Returns
    -------
    mxnet : module

    Raises
    ------
    ImportError
        With numpy >= 2 (MXNet 1.9.1 cannot run there) or without MXNet, saying
        how to install the ``mxnet`` extra.
    """
    if int(np.__version__.split(".")[0]) >= 2:
        raise ImportError(f"numpy {np.__version__} is installed. {_ENV_HINT}")
    if "bool" not in np.__dict__:  # alias removed in numpy 1.24, still used by MXNet
        np.bool = bool
    return import_optional("mxnet", "mxnet")
