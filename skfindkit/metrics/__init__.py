"""Retrieval quality, judged by labels or by relevance judgments.

- **Labels** (``_labels``): an item is relevant to a query when their class
  labels agree: :func:`precision_at_k`, :func:`mean_average_precision`,
  :func:`average_precision` of one ranked list, and :func:`recall_at_k` of an
  approximate index against exact search (no labels); :func:`make_retrieval_scorer`
  makes any of them a ``GridSearchCV`` scorer.
- **Judgments** (``_qrels``, ``_judged``): queries that are not items of the
  collection, with graded relevance judgments (TREC/BEIR qrels):
  :class:`Qrels`, :func:`read_trec_qrels`, :func:`read_trec_run`,
  :func:`load_beir`, and :func:`ndcg_at_k`, :func:`mrr_at_k`,
  :func:`judged_recall_at_k`, :func:`judged_average_precision`,
  :func:`evaluate_run` over a run, with trec_eval's conventions (see
  ``skfindkit.metrics._judged``). Tuning on judged queries:
  :mod:`skfindkit.model_selection`.
"""

from ._judged import (
    evaluate_run,
    judged_average_precision,
    judged_recall_at_k,
    mrr_at_k,
    ndcg_at_k,
)
from ._labels import (
    average_precision,
    make_retrieval_scorer,
    mean_average_precision,
    precision_at_k,
    recall_at_k,
)
from ._qrels import Qrels, load_beir, read_trec_qrels, read_trec_run

__all__ = [
    "Qrels",
    "average_precision",
    "evaluate_run",
    "judged_average_precision",
    "judged_recall_at_k",
    "load_beir",
    "make_retrieval_scorer",
    "mean_average_precision",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "read_trec_qrels",
    "read_trec_run",
    "recall_at_k",
]
