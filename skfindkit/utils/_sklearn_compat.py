"""The one place where skfindkit imports scikit-learn's private API.

scikit-learn's estimator machinery (parameter validation, ``_fit_context``,
``validate_data``...) lives in modules whose names start with an underscore:
they may move between releases. Every skfindkit module imports them from here,
so a move is fixed in one file. Public scikit-learn names (``clone``,
``check_is_fitted``, ``validate_data``, ``gen_batches``...) are imported from scikit-learn itself.
"""

from numbers import Integral

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils._param_validation import HasMethods, StrOptions, validate_parameter_constraints
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils.validation import _check_feature_names_in, _num_samples

__all__ = [
    "HasMethods",
    "Integer",
    "Interval",
    "StrOptions",
    "_BaseComposition",
    "_check_feature_names_in",
    "_fit_context",
    "_num_samples",
    "_safe_indexing",
    "validate_parameter_constraints",
]


class Interval(_Interval):
    """scikit-learn's ``Interval``, except that an ``Integral`` one refuses booleans.

    ``True`` is an ``Integral`` to Python, so ``Interval(Integral, 1, None)``
    alone would take ``n_neighbors=True`` as 1; a boolean given for a count
    is a mistake, refused like a float (``InvalidParameterError``, naming the
    parameter).
    """

    def is_satisfied_by(self, val):
        if self.type is Integral and isinstance(val, bool):
            return False
        return super().is_satisfied_by(val)


#: Any integer but a boolean (e.g. ``n_jobs``: ``[None, Integer]``).
Integer = Interval(Integral, None, None, closed="neither")
