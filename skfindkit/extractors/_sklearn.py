"""SklearnFeatureExtractor: any scikit-learn estimator's output as features."""

from copy import deepcopy

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from ..utils._sklearn_compat import HasMethods, StrOptions, _check_feature_names_in
from ._base import BaseFeatureExtractor

__all__ = ["SklearnFeatureExtractor"]

_METHODS = (
    "transform",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "predict",
    "score_samples",
    "apply",
)


class SklearnFeatureExtractor(BaseFeatureExtractor):
    """Use a scikit-learn estimator's ``transform``/``predict_proba``/... as features.

    The wrapped estimator is cloned and fitted in :meth:`fit` (with ``y`` when
    given, so supervised maps such as
    :class:`~sklearn.discriminant_analysis.LinearDiscriminantAnalysis` or the
    class probabilities of a classifier work), unless ``prefit=True``. Its
    parameters are grid-searchable as ``<step>__estimator__<param>``.

    Parameters
    ----------
    estimator : estimator object
        The scikit-learn estimator whose ``method`` gives the features.
    method : {"transform", "predict_proba", "predict_log_proba", \
            "decision_function", "predict", "score_samples", "apply"}, \
            default="transform"
        Method of the fitted estimator used as the feature map. A 1-D output
        (``predict``, binary ``decision_function``) becomes one column.
    prefit : bool, default=False
        Whether ``estimator`` is already fitted and used as is (a deep copy of
        it, like :class:`~sklearn.feature_selection.SelectFromModel`); ``fit``
        then only checks that. Wrapping the estimator in
        :class:`~sklearn.frozen.FrozenEstimator` has the same effect.
    batch_size : int or None, default=None
        Items per call of ``method`` in :meth:`transform`; ``None`` passes all
        items at once.
    verbose : int, default=0
        Show a progress bar over batches when positive.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted estimator used by :meth:`transform`.
    n_features_in_ : int
        Number of input features seen by ``estimator_`` (when it records it).
    n_features_out_ : int
        Number of output features.

    See Also
    --------
    KerasFeatureExtractor : Features from an inner layer of a Keras network.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    >>> from skfindkit import SklearnFeatureExtractor
    >>> X, y = load_digits(return_X_y=True)
    >>> lda = SklearnFeatureExtractor(LinearDiscriminantAnalysis(n_components=5))
    >>> lda.fit_transform(X, y).shape
    (1797, 5)
    """

    _parameter_constraints = {
        **BaseFeatureExtractor._parameter_constraints,
        "estimator": [HasMethods("fit")],
        "method": [StrOptions(set(_METHODS))],
        "prefit": ["boolean"],
    }
    _batch_dependent_rounding = (
        "the wrapped estimator's matrix products run in BLAS (OpenBLAS, MKL), "
        "whose kernels and threads split work by rows, so float32 features can "
        "change in the last bit with a row's batch"
    )

    def __init__(self, estimator, *, method="transform", prefit=False, batch_size=None,
                 verbose=0):
        self.estimator = estimator
        self.method = method
        self.prefit = prefit
        self.batch_size = batch_size
        self.verbose = verbose

    def _validate_input(self, X, *, reset):
        # The wrapped estimator validates its own input (like Pipeline does);
        # only make X sliceable for batching.
        if sp.issparse(X) and X.format not in ("csr", "csc"):
            return X.tocsr()
        if not hasattr(X, "__getitem__") and hasattr(X, "__array__"):
            return np.asarray(X)
        return X

    def _fit_model(self, X, y):
        if not hasattr(self.estimator, self.method):
            available = [m for m in _METHODS if hasattr(self.estimator, m)]
            raise ValueError(
                f"method={self.method!r}: {type(self.estimator).__name__} has no "
                f"{self.method!r} method; available: {available}."
            )
        if y is None and get_tags(self.estimator).target_tags.required:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                f"({type(self.estimator).__name__} is supervised)."
            )
        if self.prefit:
            check_is_fitted(self.estimator)
            self.estimator_ = deepcopy(self.estimator)
        else:
            self.estimator_ = clone(self.estimator).fit(X, y)

    def _transform_batch(self, X):
        out = np.asarray(getattr(self.estimator_, self.method)(X))
        return out.reshape(out.shape[0], -1)

    @property
    def n_features_in_(self):
        """Number of features seen by the fitted estimator."""
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self):
        """Feature names seen by the fitted estimator."""
        return self.estimator_.feature_names_in_

    def get_feature_names_out(self, input_features=None):
        """Output feature names.

        With ``method="transform"`` the wrapped estimator's names are used when
        it provides them; otherwise ``<method>_<class>`` for per-class outputs
        and ``<method><i>`` for the rest.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names, passed to the wrapped estimator.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_out_")
        est = self.estimator_
        if self.method == "transform" and hasattr(est, "get_feature_names_out"):
            return est.get_feature_names_out(input_features)
        if hasattr(est, "n_features_in_"):
            _check_feature_names_in(est, input_features, generate_names=False)
        classes = getattr(est, "classes_", None)
        if classes is not None and len(classes) == self.n_features_out_ > 1:
            names = [f"{self.method}_{c}" for c in classes]
        else:
            names = [f"{self.method}{i}" for i in range(self.n_features_out_)]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags = inner.input_tags
        tags.target_tags.required = inner.target_tags.required
        tags.non_deterministic = inner.non_deterministic
        tags.transformer_tags.preserves_dtype = []
        return tags
