"""What the MXNet Module and Gluon extractors share: checkpoints, layers, pickling.

Both reduce their model to the same fitted state -- the full symbol
(``symbol_``), its parameters (``arg_params_``, ``aux_params_``), the internal
output used (``layer_``) and the item shape (``input_shape_``) -- and differ
only in how they load a model and run the forward pass.
"""

import os
import re
import zipfile
from numbers import Integral


from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._native_bytes import load_from_bytes, pack_parts, save_to_bytes, unpack_parts
from ._base import BaseFeatureExtractor, check_model_path
from ._layers import pool_features, unknown_layer_error
from ._mxnet_import import import_mxnet

__all__ = ["BaseMXNetExtractor", "load_checkpoint"]


def _context(mx, context):
    match = re.fullmatch(r"(cpu|gpu)(?::(\d+))?", context)
    if match is None:
        raise ValueError(f"context={context!r}: expected 'cpu', 'gpu' or 'gpu:<id>'.")
    return getattr(mx, match[1])(int(match[2] or 0))


def _nd_to_bytes(mx, arrays):
    return save_to_bytes(lambda path: mx.nd.save(path, dict(arrays)), filename="arrays.params")


def _nd_from_bytes(mx, data):
    # an empty dict comes back as []
    return dict(load_from_bytes(data, mx.nd.load, filename="arrays.params") or {})


def tagged(kind, *parts):
    """``kind`` and bytes-like ``parts`` as one byte string (no pickle: loading runs no code)."""
    return pack_parts([kind.encode("ascii"), *parts])


def untag(data):
    """``(kind, parts)`` of :func:`tagged` bytes."""
    kind, *parts = unpack_parts(data)
    return bytes(kind).decode("ascii"), parts


def split_params(params):
    """Split a ``{"arg:name": ..., "aux:name": ...}`` dict into (arg, aux)."""
    arg = {k[4:]: v for k, v in params.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in params.items() if k.startswith("aux:")}
    return arg, aux


def load_checkpoint(prefix, epoch, what):
    """Load ``<prefix>-symbol.json`` and ``<prefix>-<epoch:04d>.params``.

    This is the format of both ``mx.model.save_checkpoint`` (Module API) and
    ``HybridBlock.export`` (Gluon).

    Parameters
    ----------
    prefix : str or os.PathLike
        Checkpoint prefix.
    epoch : int
        Epoch number in the parameter file name.
    what : str
        Parameter name used in error messages.

    Returns
    -------
    symbol, arg_params, aux_params
    """
    mx = import_mxnet()
    prefix = os.fspath(prefix)
    if os.path.isfile(prefix):
        kind = "a Keras '.keras' archive" if zipfile.is_zipfile(prefix) else "a file"
        raise ValueError(
            f"{what}: {prefix!r} is {kind}, not an MXNet checkpoint prefix (expected files "
            f"'<prefix>-symbol.json' and '<prefix>-{epoch:04d}.params')."
        )
    sym_path = check_model_path(f"{prefix}-symbol.json", what)
    params_path = check_model_path(f"{prefix}-{epoch:04d}.params", what)
    try:
        symbol = mx.sym.load(sym_path)
    except mx.base.MXNetError as exc:
        raise ValueError(f"{what}: {sym_path!r} is not an MXNet symbol file ({exc}).") from exc
    try:
        params = mx.nd.load(params_path)
    except mx.base.MXNetError as exc:
        raise ValueError(f"{what}: {params_path!r} is not an MXNet parameter file.") from exc
    return (symbol, *split_params(params))


def resolve_layer(symbol, layer):
    """Name of the internal output for ``layer`` (output or sub-block name).

    ``layer`` may be an output name (``"fc1_output"``), a node name (``"fc1"``)
    or a Gluon sub-block name (``"hybridsequential0_dense0"``), which selects the
    last output created inside that block, i.e. the block's own output.
    ``None`` selects the network's first output.
    """
    if layer is None:
        return symbol.list_outputs()[0]
    args = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    outputs = [n for n in symbol.get_internals().list_outputs() if n not in args]
    for name in (layer, f"{layer}_output"):
        if name in outputs:
            return name
    inside = [n for n in outputs if n.startswith(f"{layer}_")]
    if inside:
        return inside[-1]
    raise unknown_layer_error(layer, outputs)


class BaseMXNetExtractor(BaseFeatureExtractor):
    """Shared part of the MXNet extractors (not for direct use).

    Subclasses implement ``_load_network(X)`` returning ``(symbol,
    arg_params, aux_params)``, ``_build_inference()`` and ``_forward(X)``.
    """

    _parameter_constraints = {
        **BaseFeatureExtractor._parameter_constraints,
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "layer": [str, None],
        "data_name": [str],
        "pooling": [StrOptions({"avg", "max"}), None],
        "context": [str],
    }
    _requires = Requirement(library="mxnet", import_name="mxnet", extra="mxnet")
    _transient_attrs = ("_runner",)
    _batch_dependent_rounding = (
        "MXNet's MKLDNN kernels are batch-position dependent: a row's float32 "
        "features differ by ~1e-7 with its position in the batch on some CPUs "
        "(AMD EPYC: 2-3 of 60 values by 6e-8)"
    )

    def _fit_model(self, X, y):
        mx = import_mxnet()
        self.context_ = _context(mx, self.context)
        symbol, arg_params, aux_params = self._load_network(X)
        if self.data_name not in symbol.list_arguments():
            raise ValueError(
                f"data_name={self.data_name!r} is not an input of the network; its "
                f"arguments are {symbol.list_arguments()}."
            )
        self.layer_ = resolve_layer(symbol, self.layer)
        self.symbol_, self.arg_params_, self.aux_params_ = symbol, arg_params, aux_params
        self.input_shape_ = tuple(X.shape[1:])
        self._check_shapes(mx)

    def _feature_symbol(self):
        return self.symbol_.get_internals()[self.layer_]

    def _check_shapes(self, mx):
        """Say which parameter does not fit items of ``input_shape_``."""
        sym = self._feature_symbol()
        try:
            arg_shapes, _, aux_shapes = sym.infer_shape(
                **{self.data_name: (1, *self.input_shape_)})
        except mx.base.MXNetError as exc:
            raise ValueError(
                f"X: items of shape {self.input_shape_} do not fit the network "
                f"({str(exc).splitlines()[0]})."
            ) from exc
        shapes = {**dict(zip(sym.list_arguments(), arg_shapes)),
                  **dict(zip(sym.list_auxiliary_states(), aux_shapes))}
        params = {**self.arg_params_, **self.aux_params_}
        for name, shape in shapes.items():
            if name != self.data_name and name in params and params[name].shape != shape:
                raise ValueError(
                    f"X: items of shape {self.input_shape_} do not fit the network: "
                    f"parameter {name!r} has shape {params[name].shape}, these items "
                    f"need {shape}."
                )

    def _transform_batch(self, X):
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X: the network was fitted on items of shape {self.input_shape_}, "
                f"got items of shape {X.shape[1:]}."
            )
        return pool_features(self._forward(X), self.pooling, channel_axis=1)

    def _model_to_bytes(self, obj):
        mx = import_mxnet()
        if isinstance(obj, mx.sym.Symbol):
            return tagged("symbol", obj.tojson().encode("utf-8"))
        if isinstance(obj, dict):
            return tagged("arrays", _nd_to_bytes(mx, obj))
        return super()._model_to_bytes(obj)

    def _model_from_bytes(self, data):
        mx = import_mxnet()
        kind, parts = untag(data)
        if kind == "symbol" and len(parts) == 1:
            return mx.sym.load_json(bytes(parts[0]).decode("utf-8"))
        if kind == "arrays" and len(parts) == 1:
            return _nd_from_bytes(mx, parts[0])
        raise ValueError(f"unknown kind of MXNet object {kind!r}")
