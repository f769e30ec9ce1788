"""Contract of every feature extractor: outputs do not depend on the batch.

scikit-learn's order and subset invariance checks compare float32 features
bit for bit; frameworks whose kernels round a row differently with its batch
declare it (``_batch_dependent_rounding``, see ``tests/common/test_estimators.py``) and are
held here to a float32 tolerance instead, on every CPU. Extractors that do not
declare it must be bit-identical.
"""

import numpy as np
import pytest
from sklearn.base import clone

from skfindkit import BaseFeatureExtractor

from ..common.estimator_instances import extractor_instances, unavailable_instances

# float32 rounding of a sum of a few hundred products, relative to the scale
FLOAT32_TOL = {"rtol": 1e-5, "atol": 1e-6}


def _extractors():
    out = [pytest.param(e, id=type(e).__name__ + f"-{i}")
           for i, e in enumerate(extractor_instances())]
    out += [pytest.param(e, id=type(e).__name__, marks=pytest.mark.skip(reason=reason))
            for e, reason in unavailable_instances() if isinstance(e, BaseFeatureExtractor)]
    return out


def _data(n=60, d=5):
    rng = np.random.RandomState(0)
    return rng.uniform(-2, 2, size=(n, d)).astype(np.float32), rng.randint(0, 3, n)


def _close(a, b, est):
    if getattr(est, "_batch_dependent_rounding", None) is None:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, **FLOAT32_TOL)


@pytest.mark.parametrize("extractor", _extractors())
def test_rows_do_not_depend_on_order_or_batch(extractor):
    X, y = _data()
    est = clone(extractor).fit(X, y)
    full = est.transform(X)
    perm = np.random.RandomState(1).permutation(len(X))
    _close(est.transform(X[perm]), full[perm], est)
    for start, stop in [(0, 1), (7, 8), (3, 20), (41, 60)]:  # single rows, odd batches
        _close(est.transform(X[start:stop]), full[start:stop], est)
    other = clone(extractor).set_params(batch_size=3).fit(X, y)
    _close(other.transform(X), full, est)


@pytest.mark.parametrize("extractor", _extractors())
def test_declared_reason_is_a_sentence(extractor):
    reason = getattr(extractor, "_batch_dependent_rounding", None)
    assert reason is None or (isinstance(reason, str) and len(reason.split()) > 5)
