"""A loaded faiss index checked against the saved state before its first query.

faiss's reader checks its own sizes, but not the meaning of the numbers it
reads: an HNSW neighbour id, an inverted list's ids or a metric code from a
tampered file reach the search loops as they are. :func:`loaded_index_problem`
checks the loaded index and its nested quantizer/storage (dimension, metric,
number of items, trained) and walks its structures in numpy (HNSW links in
range and on their levels, inverted lists' ids below the number of items).
"""

import numpy as np

__all__ = ["loaded_index_problem"]


def loaded_index_problem(faiss, index, d, n, metric_type):
    """What makes ``index`` unsafe to query as the saved (``d``, ``n``, metric), or None."""
    return _problem(faiss, index, d, n, metric_type, "index")


def _problem(faiss, index, d, n, metric_type, where):
    index = faiss.downcast_index(index)
    if (index.d, index.metric_type, index.ntotal) != (d, metric_type, n):
        return (f"the {where} holds {index.ntotal} items of {index.d} features, metric "
                f"{index.metric_type}; expected {n} items of {d} features, metric {metric_type}")
    if not index.is_trained:
        return f"the {where} is not trained"
    if isinstance(index, faiss.IndexPreTransform):
        chain = [faiss.downcast_VectorTransform(index.chain.at(i))
                 for i in range(index.chain.size())]
        dims = [(t.d_in, t.d_out) for t in chain]
        inner = faiss.downcast_index(index.index)
        if not dims or dims[0][0] != d or dims[-1][1] != inner.d or any(
                a[1] != b[0] for a, b in zip(dims, dims[1:])):
            return f"the {where}'s transforms map {dims}, not {d} to {inner.d} features"
        return _problem(faiss, inner, inner.d, n, metric_type, f"{where}'s inner index")
    if hasattr(index, "hnsw"):
        problem = _hnsw_problem(faiss, index.hnsw, n)
        if problem:
            return f"the {where}'s HNSW graph: {problem}"
        return _problem(faiss, index.storage, d, n, metric_type, f"{where}'s storage")
    if isinstance(index, faiss.IndexIVF):
        if index.nlist < 1 or index.quantizer is None:
            return f"the {where} has no inverted lists"
        quantizer = faiss.downcast_index(index.quantizer)
        problem = _problem(faiss, quantizer, d, index.nlist, quantizer.metric_type,
                           f"{where}'s quantizer")
        return problem or _lists_problem(faiss, index, n)
    return None


def _hnsw_problem(faiss, hnsw, n):
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    top, entry = int(hnsw.max_level), int(hnsw.entry_point)
    if levels.size != n or offsets.size != n + 1 or n == 0:
        return "its tables do not have one entry per item"
    if (levels < 1).any() or top < 0 or levels.max() > top + 1 or cum.size < top + 2 or (
            np.diff(cum) < 0).any() or cum[0] != 0:
        return "its levels are out of range"
    if not 0 <= entry < n or levels[entry] != top + 1:
        return "its entry point is out of range"
    if offsets[0] != 0 or not np.array_equal(np.diff(offsets), cum[levels]) or (
            offsets[-1] != neighbors.size):
        return "its offsets do not match the levels"
    if ((neighbors < -1) | (neighbors >= n)).any():
        return "a link names an item that does not exist"
    slots = np.arange(neighbors.size)
    owner = np.searchsorted(offsets, slots, side="right") - 1
    level = np.searchsorted(cum, slots - offsets[owner], side="right") - 1
    linked = neighbors >= 0
    if (levels[neighbors[linked]] <= level[linked]).any():
        return "a link names an item below its level"
    return None


def _lists_problem(faiss, ivf, n):
    lists = ivf.invlists
    total = 0
    for i in range(ivf.nlist):
        size = lists.list_size(i)
        total += size
        if total > n:
            break
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(i), size)
            if ((ids < 0) | (ids >= n)).any():
                return f"inverted list {i} names items that do not exist"
    if total != n:
        return f"its inverted lists hold {total} items, not {n}"
    return None
