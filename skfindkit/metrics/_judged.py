"""Measures over relevance judgments: nDCG@k, MRR@k, recall@k and average precision.

Each measure takes judgments (a :class:`~skfindkit.metrics.Qrels` or any
``{query_id: {doc_id: grade}}`` mapping) and a run (``{query_id: {doc_id:
score}}``, higher scores first) and follows trec_eval's conventions, so that
the values equal ``pytrec_eval``'s (``ndcg_cut_k``, ``recip_rank`` of the
first ``k`` documents, ``recall_k``, ``map`` / ``map_cut_k``):

- **order**: a query's documents are ranked by score, highest first; equal
  scores are ordered by document id, the *larger* string first (trec_eval's
  rule). The order in which a run lists its documents does not matter.
- **grades**: a document is relevant when its grade is 1 or more. nDCG uses the
  grade itself as the gain, ``sum gain_i / log2(i + 1)`` over ranks
  ``i = 1..k``, divided by the same sum over the judged documents sorted by
  grade (the ideal ranking).
- **unjudged documents** count as non-relevant (gain 0), like documents judged 0.
- **which queries**: the mean is over the queries of the judgments. A judged
  query absent from the run, or with no relevant document, scores 0 (as
  ``trec_eval -c``); queries of the run without judgments are ignored.
"""

import math

import numpy as np

from ._qrels import Qrels, as_run

__all__ = [
    "evaluate_run",
    "judged_average_precision",
    "judged_recall_at_k",
    "mrr_at_k",
    "ndcg_at_k",
]


def _ranked(docs):
    """Document ids of one query's run in trec_eval order."""
    return [d for d, _ in sorted(docs.items(), key=lambda ds: (ds[1], ds[0]), reverse=True)]


def _check_k(k, allow_none=False):
    if k is None and allow_none:
        return None
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)


def _ndcg(judged, ranked, k):
    dcg = sum(judged.get(d, 0) / math.log2(i + 2)
              for i, d in enumerate(ranked[:k]) if judged.get(d, 0) > 0)
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _rr(judged, ranked, k):
    for i, d in enumerate(ranked[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def _recall(judged, ranked, k):
    n_rel = sum(g > 0 for g in judged.values())
    if n_rel == 0:
        return 0.0
    return sum(judged.get(d, 0) > 0 for d in ranked[:k]) / n_rel


def _ap(judged, ranked, k):
    n_rel = sum(g > 0 for g in judged.values())
    if n_rel == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked if k is None else ranked[:k]):
        if judged.get(d, 0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / n_rel


def _measure(function, qrels, run, k, per_query):
    qrels = qrels if isinstance(qrels, Qrels) else Qrels(qrels)
    run = as_run(run)
    if not len(qrels):
        raise ValueError("No judged queries: qrels is empty.")
    values = {q: function(qrels[q], _ranked(run.get(q, {})), k) for q in qrels}
    if per_query:
        return values
    return float(np.mean(list(values.values())))


def ndcg_at_k(qrels, run, k=10, *, per_query=False):
    """Normalised discounted cumulative gain of the first ``k`` documents (graded gains).

    Parameters
    ----------
    qrels : Qrels or mapping
        ``{query_id: {doc_id: grade}}``, integer grades.
    run : mapping
        ``{query_id: {doc_id: score}}``, higher scores first.
    k : int, default=10
        Cut-off.
    per_query : bool, default=False
        Return ``{query_id: value}`` instead of the mean.

    Returns
    -------
    value : float or dict
        The mean over the judged queries (see the module's conventions).

    Examples
    --------
    >>> qrels = {"q": {"a": 2, "b": 1}}
    >>> round(ndcg_at_k(qrels, {"q": {"b": 0.9, "a": 0.5, "c": 0.1}}, k=3), 4)
    0.8597
    """
    return _measure(_ndcg, qrels, run, _check_k(k), per_query)


def mrr_at_k(qrels, run, k=10, *, per_query=False):
    """Reciprocal rank of the first relevant document among the first ``k``.

    Parameters
    ----------
    qrels : Qrels or mapping
        ``{query_id: {doc_id: grade}}``, integer grades.
    run : mapping
        ``{query_id: {doc_id: score}}``, higher scores first.
    k : int, default=10
        Cut-off: 0 when no relevant document is among the first k.
    per_query : bool, default=False
        Return ``{query_id: value}`` instead of the mean.

    Returns
    -------
    value : float or dict
        The mean over the judged queries (see the module's conventions).

    Examples
    --------
    >>> mrr_at_k({"q": {"a": 1}}, {"q": {"b": 0.9, "a": 0.5}})
    0.5
    """
    return _measure(_rr, qrels, run, _check_k(k), per_query)


def judged_recall_at_k(qrels, run, k=100, *, per_query=False):
    """Fraction of the relevant documents found among the first ``k``.

    Recall against relevance judgments; :func:`recall_at_k` is the recall of
    an approximate index against exact search.

    Parameters
    ----------
    qrels : Qrels or mapping
        ``{query_id: {doc_id: grade}}``, integer grades.
    run : mapping
        ``{query_id: {doc_id: score}}``, higher scores first.
    k : int, default=100
        Cut-off.
    per_query : bool, default=False
        Return ``{query_id: value}`` instead of the mean.

    Returns
    -------
    value : float or dict
        The mean over the judged queries (see the module's conventions).

    Examples
    --------
    >>> judged_recall_at_k({"q": {"a": 1, "b": 1}}, {"q": {"b": 0.9, "c": 0.5}}, k=2)
    0.5
    """
    return _measure(_recall, qrels, run, _check_k(k), per_query)


def judged_average_precision(qrels, run, k=None, *, per_query=False):
    """Average precision over judgments; its mean over queries is MAP.

    The sum of the precisions at the ranks of the relevant retrieved documents,
    divided by the number of relevant documents judged for the query.
    :func:`average_precision` is the same quantity for one list of booleans.

    Parameters
    ----------
    qrels : Qrels or mapping
        ``{query_id: {doc_id: grade}}``, integer grades.
    run : mapping
        ``{query_id: {doc_id: score}}``, higher scores first.
    k : int or None, default=None
        Cut-off; the whole run when None.
    per_query : bool, default=False
        Return ``{query_id: value}`` instead of the mean.

    Returns
    -------
    value : float or dict
        The mean over the judged queries (see the module's conventions).

    Examples
    --------
    >>> qrels = {"q": {"a": 1, "c": 1}}
    >>> judged_average_precision(qrels, {"q": {"a": 0.9, "b": 0.5, "c": 0.1}})
    0.8333333333333333
    """
    return _measure(_ap, qrels, run, _check_k(k, allow_none=True), per_query)


#: name -> (function, default cut-off), for measure names such as "ndcg@10"
MEASURES = {
    "ndcg": (ndcg_at_k, 10),
    "mrr": (mrr_at_k, 10),
    "recall": (judged_recall_at_k, 100),
    "map": (judged_average_precision, None),
}


def parse_measure(name):
    """``"ndcg@10"`` -> (ndcg_at_k, 10); ``"map"`` -> (judged_average_precision, None)."""
    base, _, cut = str(name).partition("@")
    if base not in MEASURES:
        raise ValueError(f"unknown measure {name!r}: use one of {', '.join(MEASURES)}, "
                         "optionally with a cut-off, e.g. 'ndcg@10'.")
    function, k = MEASURES[base]
    if cut:
        try:
            k = int(cut)
        except ValueError:
            raise ValueError(f"measure {name!r}: the cut-off after '@' must be an "
                             "integer.") from None
        _check_k(k)
    return function, k


def evaluate_run(qrels, run, measures=("ndcg@10", "mrr@10", "recall@100"), *,
                 per_query=False):
    """Several judged measures of one run, by name.

    Parameters
    ----------
    qrels : Qrels or mapping
        ``{query_id: {doc_id: grade}}``.
    run : mapping
        ``{query_id: {doc_id: score}}``.
    measures : sequence of str, default=("ndcg@10", "mrr@10", "recall@100")
        Names ``ndcg``, ``mrr``, ``recall``, ``map``, each optionally with a
        cut-off (``"map@100"``); without one: 10, 10, 100 and the whole run.
    per_query : bool, default=False
        Values per query instead of means.

    Returns
    -------
    values : dict
        ``{measure: value}`` in the order given.

    Examples
    --------
    >>> evaluate_run({"q": {"a": 1}}, {"q": {"a": 2.0, "b": 1.0}}, ["ndcg@10", "mrr"])
    {'ndcg@10': 1.0, 'mrr': 1.0}
    """
    qrels = qrels if isinstance(qrels, Qrels) else Qrels(qrels)
    run = as_run(run)
    out = {}
    for name in measures:
        function, k = parse_measure(name)
        out[name] = function(qrels, run, k, per_query=per_query)
    return out
