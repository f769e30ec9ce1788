"""Model selection on judged queries: tune a retrieval pipeline with ``GridSearchCV``.

:class:`JudgedRetrieval` wraps a pipeline and a fixed corpus; its samples are
the queries and its score a judged measure (:mod:`skfindkit.metrics`), so
scikit-learn's ``GridSearchCV`` / ``RandomizedSearchCV`` / ``cross_validate``
split the queries and report ``cv_results_``, ``best_params_`` and
``best_estimator_`` as usual. :func:`make_judged_scorer` scores several
measures from one retrieval. See ``docs/judged.md``.
"""

from ._judged import JudgedRetrieval, make_judged_scorer

__all__ = ["JudgedRetrieval", "make_judged_scorer"]
