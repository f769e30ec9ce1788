"""The fused score of :class:`~skfindkit.RankFusionIndex`: members' similarities,
their per-query normalisation over the slots each member filled, and each
query's best candidates by summed contribution."""

import numpy as np

__all__ = ["member_scores", "normalised", "top_by_score"]


def member_scores(index, dist):
    """A member's similarity (higher is better) from its distances."""
    if getattr(index, "metric", None) == "bm25":
        return 1.0 / dist - 1.0  # BM25Index reports 1 / (1 + score)
    return -dist


def normalised(scores, method, valid):
    """Per-query normalised scores of one member over its ``valid`` candidates (slots
    it filled), and the value a missing candidate gets."""
    count = valid.sum(axis=1, keepdims=True)
    if method == "minmax":
        low = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
        high = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
        span = np.where(count > 0, high - low, 0.0)
        out = np.divide(scores - low, span, out=np.ones_like(scores), where=span > 0)
        return np.where(valid, out, 0.0), np.zeros((scores.shape[0], 1))
    filled = np.where(valid, scores, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    std = np.sqrt((np.where(valid, scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True)
                  / np.maximum(count, 1))
    out = np.divide(filled - mean, std, out=np.zeros_like(scores), where=std > 0)
    out = np.where(valid, out, 0.0)
    floor = np.where(valid, out, np.inf).min(axis=1, keepdims=True)
    return out, np.where(count > 0, floor, 0.0)


def top_by_score(ids, contrib, base, n_items, k):
    """Each row's ``k`` candidates of highest summed contribution (ties: lower id).

    ``ids``, ``contrib``: (n_queries, n_candidates), a candidate repeated
    where several members returned it, ``-1`` where a member filled no slot;
    ``base``: (n_queries,) added to every candidate's sum. Returns ``(fused
    scores, ids)``, each (n_queries, k): ``-inf`` and ``-1`` in the slots of a
    row with fewer than ``k`` candidates.
    """
    n_queries, width = ids.shape[0], n_items + 1  # n_items stands for "no candidate"
    keys = np.arange(n_queries, dtype=np.int64)[:, None] * width + np.where(
        ids >= 0, ids, n_items)
    unique, inverse = np.unique(keys.ravel(), return_inverse=True)
    sums = np.bincount(inverse, weights=contrib.ravel(), minlength=unique.size)
    rows, docs = unique // width, unique % width
    real = docs != n_items
    sums, rows, docs = sums[real], rows[real], docs[real]
    order = np.lexsort((docs, -sums, rows))  # by row, best score first, then id
    counts = np.bincount(rows, minlength=n_queries)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = np.arange(k)
    filled = slots < counts[:, None]
    if not order.size:
        return np.full((n_queries, k), -np.inf), np.full((n_queries, k), -1)
    take = order[np.minimum(starts[:, None] + slots, order.size - 1)]
    return (np.where(filled, sums[take] + base[:, None], -np.inf),
            np.where(filled, docs[take], -1))
