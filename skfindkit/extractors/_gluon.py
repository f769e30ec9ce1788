"""GluonFeatureExtractor: a layer or sub-block output of a Gluon HybridBlock."""

import os
import warnings
from numbers import Integral

from sklearn.base import clone

from ..utils._sklearn_compat import Interval
from ._mxnet_common import BaseMXNetExtractor, load_checkpoint, tagged, untag
from ._mxnet_import import import_mxnet

__all__ = ["GluonFeatureExtractor"]


def _trace(mx, block, data_name, X=None):
    """Symbol and parameters of an initialized HybridBlock.

    Deferred initialization (shapes unknown until data is seen) is completed
    with one forward pass on ``X[:1]`` when ``X`` is given.
    """
    symbol = block(mx.sym.var(data_name))
    if isinstance(symbol, (list, tuple)):
        symbol = mx.sym.Group(list(symbol))
    args, aux = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
    try:
        try:
            params = {name: p.data() for name, p in block.collect_params().items()}
        except mx.gluon.parameter.DeferredInitializationError:
            if X is None:
                raise
            block(mx.nd.array(X[:1]))
            params = {name: p.data() for name, p in block.collect_params().items()}
    except (RuntimeError, mx.base.MXNetError) as exc:
        raise ValueError(
            f"block: its parameters are not initialized ({str(exc).splitlines()[0]}); "
            "call block.initialize() or block.load_parameters(...) first."
        ) from exc
    return (symbol, {k: v for k, v in params.items() if k in args},
            {k: v for k, v in params.items() if k in aux})


def _symbol_block(mx, symbol, arg_params, aux_params, data_name, ctx):
    with warnings.catch_warnings():  # the input's dtype is set by the parameters loaded next
        warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)
        block = mx.gluon.SymbolBlock(symbol, mx.sym.var(data_name))
    params = {**{f"arg:{k}": v for k, v in arg_params.items()},
              **{f"aux:{k}": v for k, v in aux_params.items()}}
    block.collect_params().load_dict(params, ctx=ctx, ignore_extra=True)
    return block


class GluonFeatureExtractor(BaseMXNetExtractor):
    """Features from a layer or sub-block output of a Gluon ``HybridBlock``.

    The block is traced to its symbol, cut at ``layer`` and run as a
    hybridized ``SymbolBlock`` (static memory and shapes) batch by batch.
    Pickling stores symbol JSON and parameter bytes; a ``HybridBlock`` given as
    ``block`` comes back from a pickle as an equivalent ``SymbolBlock``.

    Needs the ``mxnet`` extra, in an environment with ``numpy<2``.

    Parameters
    ----------
    block : mxnet.gluon.HybridBlock or str or os.PathLike
        An initialized block (e.g. a trained ``HybridSequential``), or the
        prefix given to ``HybridBlock.export`` (``<prefix>-symbol.json`` and
        ``<prefix>-<epoch:04d>.params``).
    layer : str, default=None
        Which output gives the features: a sub-block name (``net[1].name``,
        e.g. ``"hybridsequential0_dense0"``, its output after activation), or
        an internal output name (``"hybridsequential0_dense0_fwd_output"``);
        ``None`` uses the block's output.
    epoch : int, default=0
        Epoch of the exported parameter file when ``block`` is a prefix.
    data_name : str, default="data"
        Name of the input variable (``"data"`` for traced and exported blocks).
    batch_size : int, default=32
        Items per forward pass.
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
        The traced (or loaded) network.
    arg_params_, aux_params_ : dict of str to mxnet.nd.NDArray
        Its parameters.
    layer_ : str
        Name of the internal output used.
    input_shape_ : tuple of int
        Shape of one item seen in :meth:`fit`.
    n_features_in_ : int
        Size of the second axis of ``X`` seen in :meth:`fit`.
    n_features_out_ : int
        Length of a feature vector.

    See Also
    --------
    MXNetFeatureExtractor : The same for Module-API symbols and checkpoints.
    """

    _parameter_constraints = {
        **BaseMXNetExtractor._parameter_constraints,
        "block": "no_validation",  # a HybridBlock or an export prefix, checked in fit
        "epoch": [Interval(Integral, 0, None, closed="left")],
    }
    _model_attrs = ("block", "symbol_", "arg_params_", "aux_params_")

    def __init__(self, block, *, layer=None, epoch=0, data_name="data", batch_size=32,
                 pooling=None, context="cpu", verbose=0):
        self.block = block
        self.layer = layer
        self.epoch = epoch
        self.data_name = data_name
        self.batch_size = batch_size
        self.pooling = pooling
        self.context = context
        self.verbose = verbose

    def _load_network(self, X):
        mx = import_mxnet()
        if isinstance(self.block, (str, os.PathLike)):
            return load_checkpoint(self.block, self.epoch, "block")
        if not isinstance(self.block, mx.gluon.HybridBlock):
            raise TypeError(
                "block: expected an mxnet.gluon.HybridBlock or an export prefix, got "
                f"{type(self.block).__name__}."
            )
        return _trace(mx, self.block, self.data_name, X)

    def _build_inference(self):
        mx = import_mxnet()
        block = _symbol_block(mx, self._feature_symbol(), self.arg_params_, self.aux_params_,
                              self.data_name, self.context_)
        block.hybridize(static_alloc=True, static_shape=True)
        self._runner = block

    def _forward(self, X):
        mx = import_mxnet()
        return self._runner(mx.nd.array(X, ctx=self.context_)).asnumpy()

    def __sklearn_clone__(self):
        # copy.deepcopy fails on hybridized blocks (their CachedOp), so clone
        # copies a block through its symbol and parameters, like pickle does
        block = self.block
        if not isinstance(block, (str, os.PathLike)):
            mx = import_mxnet()
            if isinstance(block, mx.gluon.HybridBlock):
                block = self._model_from_bytes(self._model_to_bytes(block))
        params = {name: clone(value, safe=False)
                  for name, value in self.get_params(deep=False).items() if name != "block"}
        return type(self)(block, **params)

    def _model_to_bytes(self, obj):
        mx = import_mxnet()
        if isinstance(obj, mx.gluon.HybridBlock):
            symbol, arg, aux = _trace(mx, obj, self.data_name)
            to_bytes = super()._model_to_bytes
            return tagged("block", self.data_name.encode("utf-8"),
                          *(to_bytes(o) for o in (symbol, arg, aux)))
        return super()._model_to_bytes(obj)

    def _model_from_bytes(self, data):
        kind, parts = untag(data)
        if kind != "block":
            return super()._model_from_bytes(data)
        if len(parts) != 4:
            raise ValueError(f"a saved Gluon block has 4 parts, got {len(parts)}")
        mx = import_mxnet()
        # runs before the attributes are restored: the data name travels along
        data_name = bytes(parts[0]).decode("utf-8")
        from_bytes = super()._model_from_bytes
        symbol, arg, aux = (from_bytes(p) for p in parts[1:])
        return _symbol_block(mx, symbol, arg, aux, data_name, mx.cpu())
