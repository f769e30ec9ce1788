"""The one place where skfindkit imports scikit-learn's private API.

scikit-learn's estimator machinery (parameter validation, ``_fit_context``,
``validate_data``...) lives in modules whose names start with an underscore:
they may move between releases. Every skfindkit module imports them from here,
so a move is fixed in one file. Public scikit-learn names (``clone``,
``check_is_fitted``, ``validate_data``, ``gen_batches``...) are imported from scikit-learn itself.
"""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, _num_samples

__all__ = [
    "HasMethods",
    "Interval",
    "StrOptions",
    "_check_feature_names_in",
    "_fit_context",
    "_num_samples",
    "_safe_indexing",
]
