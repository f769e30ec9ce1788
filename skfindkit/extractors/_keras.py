"""KerasFeatureExtractor: activations of a named layer of a Keras 3 model."""

import os
import zipfile

import numpy as np

from ..utils import import_optional
from ..utils._optional import Requirement
from ..utils._sklearn_compat import StrOptions
from ..utils._native_bytes import load_from_bytes, save_to_bytes
from ._base import BaseFeatureExtractor, check_model_path
from ._layers import pool_features, unknown_layer_error

__all__ = ["KerasFeatureExtractor"]


def _keras():
    return import_optional("keras", "keras")


def _load_keras_file(path):
    path = check_model_path(path, "model")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise ValueError(
            f"model: {path!r} is not a Keras model file (expected a '.keras' archive "
            "written by model.save(); files of other frameworks, e.g. MXNet "
            "'-symbol.json'/'.params', need their own extractor)."
        )
    return _keras().saving.load_model(path, compile=False)


class KerasFeatureExtractor(BaseFeatureExtractor):
    """Features from the output of a named layer of a Keras 3 model.

    The model is cut at ``layer`` (a sub-model built once in :meth:`fit` and
    cached, never pickled) and applied batch by batch with
    ``predict_on_batch``. Pickling stores the model itself as ``.keras`` bytes
    (architecture and weights), so an unpickled extractor gives bit-identical
    features without the original file.

    Parameters
    ----------
    model : keras.Model or str or os.PathLike
        A Keras 3 model with one input, or the path to a ``.keras`` file.
        :func:`sklearn.base.clone` (hence ``GridSearchCV``) deep-copies a model
        object for each candidate; pass a path to share one file instead.
    layer : str, default=None
        Name of the layer whose output gives the features; ``None`` uses the
        model's output. Grid-search it to pick the layer that retrieves best.
    batch_size : int, default=32
        Items per forward pass.
    preprocess : callable, default=None
        Applied to each float32 batch before the model, e.g.
        ``keras.applications.resnet.preprocess_input``. Pickling needs it to be
        a module-level function.
    pooling : {"avg", "max"}, default=None
        Global average/max pooling of a spatial output (over all axes but the
        first and the last, i.e. channels last) before flattening; ``None``
        only flattens each item's output to a vector.
    verbose : int, default=0
        Show a progress bar over batches when positive.

    Attributes
    ----------
    model_ : keras.Model
        The full model (``model`` itself, or loaded from its path).
    layer_ : str
        Name of the layer used.
    input_shape_ : tuple of int or None
        Shape of one item expected by the model (``None`` for free sizes).
    n_features_in_ : int
        Size of the second axis of ``X`` seen in :meth:`fit`.
    n_features_out_ : int
        Length of a feature vector.

    See Also
    --------
    SklearnFeatureExtractor : Features from a scikit-learn estimator.

    Examples
    --------
    >>> import keras, numpy as np
    >>> from skfindkit import KerasFeatureExtractor
    >>> inputs = keras.Input(shape=(8, 8, 1))
    >>> hidden = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.Flatten()(hidden))
    >>> model = keras.Model(inputs, outputs)
    >>> ext = KerasFeatureExtractor(model, layer="conv", pooling="avg")
    >>> ext.fit_transform(np.zeros((5, 8, 8, 1))).shape
    (5, 4)
    """

    _parameter_constraints = {
        **BaseFeatureExtractor._parameter_constraints,
        "model": "no_validation",  # a keras.Model or a path, checked in fit
        "layer": [str, None],
        "preprocess": [callable, None],
        "pooling": [StrOptions({"avg", "max"}), None],
    }
    _requires = (Requirement(library="keras", import_name="keras", extra="keras"),
                 Requirement(library="tensorflow-cpu", import_name="tensorflow", extra="keras"))
    _model_attrs = ("model", "model_")
    _transient_attrs = ("_feature_model",)
    _batches_per_call = 32
    _batch_dependent_rounding = (
        "TensorFlow's CPU kernels (oneDNN/Eigen) block matrix products by batch "
        "rows, so a row's float32 features can change in the last bits with its "
        "position and the batch size"
    )

    def __init__(self, model, *, layer=None, batch_size=32, preprocess=None, pooling=None,
                 verbose=0):
        self.model = model
        self.layer = layer
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.pooling = pooling
        self.verbose = verbose

    def _fit_model(self, X, y):
        keras = _keras()
        if isinstance(self.model, (str, os.PathLike)):
            model = _load_keras_file(self.model)
        elif isinstance(self.model, keras.Model):
            model = self.model
        else:
            raise TypeError(
                f"model: expected a keras.Model or a path to a '.keras' file, got "
                f"{type(self.model).__name__}."
            )
        if len(model.inputs) != 1:
            raise ValueError(f"model: expected a model with one input, got {len(model.inputs)}.")
        names = [layer.name for layer in model.layers]
        if self.layer is not None and self.layer not in names:
            raise unknown_layer_error(self.layer, names)
        self.model_ = model
        self.layer_ = self.layer if self.layer is not None else names[-1]
        self.input_shape_ = tuple(model.inputs[0].shape[1:])

    def _build_inference(self):
        keras = _keras()
        output = self.model_.get_layer(self.layer_).output
        self._feature_model = keras.Model(self.model_.inputs, output)

    def _as_model_input(self, X):
        """Reshape flattened items to the model's input shape, or say why not."""
        expected = self.input_shape_
        got = X.shape[1:]
        fits = len(got) == len(expected) and all(
            e is None or e == g for e, g in zip(expected, got)
        )
        if fits:
            return X
        if None not in expected and int(np.prod(got)) == int(np.prod(expected)):
            return X.reshape((X.shape[0], *expected))
        raise ValueError(
            f"X: the model expects items of shape {expected} (or flattened to "
            f"{int(np.prod(expected)) if None not in expected else 'the same size'}), "
            f"got items of shape {got}."
        )

    def _transform_batch(self, X):
        X = self._as_model_input(X)
        if self.preprocess is not None:
            X = self.preprocess(X)
        if self.batch_size is None or len(X) <= self.batch_size:
            # one batch: predict_on_batch runs the compiled step directly;
            # predict would build a data pipeline first (~0.2 s per call)
            out = np.asarray(self._feature_model.predict_on_batch(X))
        else:
            # one predict call over several batches: Keras compiles its predict
            # step once per call and overlaps batches (predict_on_batch per
            # batch costs up to 1.5x on the JAX backend)
            out = np.asarray(self._feature_model.predict(X, batch_size=self.batch_size,
                                                         verbose=0))
        return pool_features(out, self.pooling)

    def _model_to_bytes(self, model):
        return save_to_bytes(model.save, filename="model.keras")

    def _model_from_bytes(self, data):
        return load_from_bytes(data, _load_keras_file, filename="model.keras")
