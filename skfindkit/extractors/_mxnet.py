"""MXNetFeatureExtractor: an internal layer of an MXNet symbol (Module API)."""

import os
from numbers import Integral

import numpy as np

from ..utils._sklearn_compat import Interval
from ._mxnet_common import BaseMXNetExtractor, load_checkpoint
from ._mxnet_import import import_mxnet

__all__ = ["MXNetFeatureExtractor"]


class MXNetFeatureExtractor(BaseMXNetExtractor):
    """Features from a named internal layer of an MXNet symbol (Module API).

    The symbol is cut at ``layer`` (``symbol.get_internals()[layer]``) and
    bound once for inference in an ``mx.mod.Module`` with a fixed batch of
    ``batch_size`` items; the last, shorter batch is zero-padded and the padding
    trimmed from the output. Pickling stores the symbol as JSON and the
    parameters as MXNet ``.params`` bytes.

    Needs the ``mxnet`` extra, in an environment with ``numpy<2``.

    Parameters
    ----------
    model : mxnet.symbol.Symbol or str or os.PathLike
        The network's symbol, with its parameters in ``arg_params`` and
        ``aux_params``; or the prefix of a checkpoint written by
        ``mx.model.save_checkpoint`` (``<prefix>-symbol.json`` and
        ``<prefix>-<epoch:04d>.params``).
    arg_params : dict of str to mxnet.nd.NDArray, default=None
        Weights of the symbol (required when ``model`` is a symbol).
    aux_params : dict of str to mxnet.nd.NDArray, default=None
        Auxiliary states (e.g. batch-norm statistics).
    epoch : int, default=0
        Epoch of the checkpoint to load when ``model`` is a prefix.
    layer : str, default=None
        Internal output giving the features: ``"fc1_output"`` or just
        ``"fc1"``; ``None`` uses the network's output.
    data_name : str, default="data"
        Name of the input variable of the symbol.
    batch_size : int, default=32
        Fixed batch size of the bound module.
    pooling : {"avg", "max"}, default=None
        Global pooling over the spatial axes of a channels-first output
        (NCHW), then flattening; ``None`` only flattens.
    context : str, default="cpu"
        Device: ``"cpu"``, ``"gpu"`` or ``"gpu:<id>"``.
    verbose : int, default=0
        Show a progress bar over batches when positive.

    Attributes
    ----------
    symbol_ : mxnet.symbol.Symbol
        The full network.
    arg_params_, aux_params_ : dict of str to mxnet.nd.NDArray
        Its parameters.
    layer_ : str
        Name of the internal output used.
    input_shape_ : tuple of int
        Shape of one item, fixed by :meth:`fit`.
    n_features_in_ : int
        Size of the second axis of ``X`` seen in :meth:`fit`.
    n_features_out_ : int
        Length of a feature vector.

    See Also
    --------
    GluonFeatureExtractor : The same for Gluon ``HybridBlock`` networks.
    """

    _parameter_constraints = {
        **BaseMXNetExtractor._parameter_constraints,
        "model": "no_validation",  # a Symbol or a checkpoint prefix, checked in fit
        "arg_params": [dict, None],
        "aux_params": [dict, None],
        "epoch": [Interval(Integral, 0, None, closed="left")],
    }
    _model_attrs = ("model", "arg_params", "aux_params", "symbol_", "arg_params_",
                    "aux_params_")

    def __init__(self, model, *, arg_params=None, aux_params=None, epoch=0, layer=None,
                 data_name="data", batch_size=32, pooling=None, context="cpu", verbose=0):
        self.model = model
        self.arg_params = arg_params
        self.aux_params = aux_params
        self.epoch = epoch
        self.layer = layer
        self.data_name = data_name
        self.batch_size = batch_size
        self.pooling = pooling
        self.context = context
        self.verbose = verbose

    def _load_network(self, X):
        mx = import_mxnet()
        if isinstance(self.model, (str, os.PathLike)):
            return load_checkpoint(self.model, self.epoch, "model")
        if not isinstance(self.model, mx.sym.Symbol):
            raise TypeError(
                "model: expected an mxnet Symbol or a checkpoint prefix, got "
                f"{type(self.model).__name__}."
            )
        if self.arg_params is None:
            raise ValueError("arg_params: required when model is a Symbol.")
        return self.model, self.arg_params, self.aux_params or {}

    def _build_inference(self):
        mx = import_mxnet()
        symbol = self._feature_symbol()
        labels = [a for a in symbol.list_arguments() if a.endswith("label")]
        module = mx.mod.Module(symbol, data_names=[self.data_name], label_names=labels,
                               context=self.context_)
        module.bind([(self.data_name, (self.batch_size, *self.input_shape_))],
                    for_training=False)
        module.set_params(self.arg_params_, self.aux_params_, allow_extra=True)
        self._runner = module

    def _forward(self, X):
        mx = import_mxnet()
        n = len(X)
        if n < self.batch_size:  # the module is bound for full batches
            X = np.concatenate([X, np.zeros((self.batch_size - n, *X.shape[1:]), X.dtype)])
        batch = mx.io.DataBatch([mx.nd.array(X, ctx=self.context_)])
        self._runner.forward(batch, is_train=False)
        return self._runner.get_outputs()[0].asnumpy()[:n]
