"""Random-projection forest index backed by Spotify's annoy."""

from numbers import Integral

import numpy as np

from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval
from ..utils._native_bytes import load_from_bytes, save_to_bytes
from ..utils._persist import CorruptIndexError
from ._ann_utils import C_INT_MAX, native_seed, stack_padded
from ._approximate import ApproximateIndex, NativeIdMap

__all__ = ["AnnoyIndex"]

# metric -> annoy metric; cosine searches unit rows with "euclidean" (annoy's
# "angular" distance is the same sqrt(2 - 2 cos), but not exactly 0 on self)
_METRICS = {"euclidean": "euclidean", "cosine": "euclidean", "inner_product": "dot"}
# what get_nns_by_vector returns for each: L2, or <x, y> for "dot"
_UNITS = {"euclidean": "euclidean", "cosine": "euclidean", "inner_product": "dot"}
# byte offset of a node's ``children`` in annoy's node layouts (both 16-byte
# headers before the row): euclidean (descendants, offset ``a``, children[2]),
# dot (descendants, children[2], dot factor)
_CHILDREN_AT = {"euclidean": 8, "dot": 4}


def _split_floats(payload, node, n, is_split, first):
    """The float32 fields annoy reads from split nodes: the row and the header
    float (euclidean: the offset before the children; dot: the factor after)."""
    floats = payload.reshape(-1, node).view("<f4")[n:][is_split]
    header = 1 if first == 2 else 3
    return np.hstack([floats[:, 4:], floats[:, header:header + 1]])


def _annoy():
    return AnnoyIndex._requires.load()


class AnnoyIndex(NativeIdMap, ApproximateIndex):
    """Approximate nearest neighbours with annoy's forest of random projection trees.

    annoy cannot add items to a built index: :meth:`partial_fit` rebuilds the
    forest from all items. Queries run one at a time (annoy's API has no
    batch query), so ``n_jobs`` only speeds up building.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance, reported in :class:`~skfindkit.ExactIndex`'s units (cosine
        searches unit rows; inner product uses annoy's ``"dot"``).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Threads for building the trees. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context. At most
        :func:`joblib.cpu_count` threads.
    n_trees : int, default=50
        annoy's ``n_trees``: more trees, more accurate and larger index.
    search_k : int, default=None
        annoy's ``search_k``: nodes inspected per query; None uses annoy's
        default ``n_trees * k``. The recall/speed knob. When it is too small
        to find ``k`` items, the missing rows are completed by exact search
        with a warning.
    random_state : int, RandomState instance or None, default=None
        the tree construction (``AnnoyIndex.set_seed``). Builds are
        reproducible for a fixed seed with ``n_jobs=1``.
    refine : int, default=None
    keep_vectors : bool, default=True
        annoy cannot grow: :meth:`partial_fit` rebuilds the forest from rows
        read back.
    max_tombstone_share : float, default=None

    Attributes
    ----------
    metric_ : str
        The metric the index was fitted with; it answers every query
        (see :class:`~skfindkit.indexes.BaseIndex`).
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.

    See Also
    --------
    HNSWIndex : Graph index, faster at high recall.

    Notes
    -----
    annoy saves its index to, and loads it from, files only: pickling or
    :func:`skfindkit.io.save` copies that file into the one saved file, and
    loading writes it back to a temporary file (in ``/dev/shm`` where there
    is one) for annoy to load. Saving + loading therefore costs about
    3.7-3.9x annoy's own save + load at 100k x 128
    (``benchmarks/results/persistence.md``), close to the cost of those file
    copies alone. Before annoy reads a saved forest, it is checked in numpy
    against the fitted metric's node layout: item nodes, leaf item ids below
    the number of items, split children before their parent (no cycle), the
    rows against the sealed data (``docs/security.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import AnnoyIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = AnnoyIndex(n_neighbors=2, random_state=0).fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    """

    _backend = "annoy"
    _cli_name = "annoy"
    _requires = Requirement(library="annoy", import_name="annoy", extra="annoy")
    supported_metrics = ("euclidean", "cosine", "inner_product")
    _native_distance = _UNITS
    # annoy's save unloads the index and maps the file it wrote
    _save_mutates_native = True

    _parameter_constraints: dict = {
        **ApproximateIndex._parameter_constraints,
        "n_trees": [Interval(Integral, 1, C_INT_MAX, closed="both")],
        "search_k": [None, Interval(Integral, 1, C_INT_MAX, closed="both")],
    }
    _query_time_params = ("search_k",)

    def __init__(
        self,
        n_neighbors=5,
        *,
        metric="euclidean",
        mode="distance",
        n_jobs=None,
        n_trees=50,
        search_k=None,
        random_state=None,
        refine=None,
        keep_vectors=True,
        max_tombstone_share=None,
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs,
                         random_state=random_state, refine=refine, keep_vectors=keep_vectors,
                         max_tombstone_share=max_tombstone_share)
        self.n_trees = n_trees
        self.search_k = search_k

    def _new(self, n_features):
        return _annoy().AnnoyIndex(n_features, _METRICS[self.metric_])

    def _build(self, X):
        index = self._new(X.shape[1])
        index.set_seed(native_seed(self._fitted("random_state")))
        for i, row in enumerate(X):
            index.add_item(i, row)
        index.build(self._fitted("n_trees"), n_jobs=self._n_threads())
        return index

    def _add(self, X):
        """annoy cannot grow: rebuild from the live rows (read back if no copy is kept)."""
        self._rebuild_native(X)

    def _get_vectors(self, ids):
        get = self._index.get_item_vector
        return self._native_rows(ids, lambda pos: np.array(
            [get(int(i)) for i in pos], dtype=np.float32).reshape(len(pos), self.n_features_in_))

    def _widened_params(self, k, widen):
        """``search_k`` (annoy's default ``n_trees * k``, or the set one) times ``widen``: the
        trees then reach as many allowed items as a search for ``k`` among those alone."""
        base = self.search_k
        if base is None:
            base = self._fitted("n_trees") * k * (getattr(self, "refine", None) or 1)
        return {"search_k": min(C_INT_MAX, int(np.ceil(base * widen)))}

    def _search(self, X, k, search_k=None):
        if search_k is None:
            search_k = -1 if self.search_k is None else self.search_k
        query = self._index.get_nns_by_vector
        ids, dists = zip(*[query(row, k, search_k, True) for row in X])
        dist, ind = stack_padded(ids, dists, k)
        return dist, self._to_ids(ind)

    def _serialize(self):
        return save_to_bytes(self._index.save)

    def _deserialize(self, payload):
        index = self._new(self.n_features_in_)
        load_from_bytes(payload, lambda path: index.load(path, prefault=True))
        return index

    def _check_native_bytes(self, payload):
        """annoy's forest as annoy will walk it, checked in numpy before annoy reads it.

        The file is whole nodes of the fitted metric's layout; the first
        ``_n_native()`` (the items it holds) are the items (one descendant each), the last is a
        root over all of them; every other node is a leaf bucket whose item
        ids are below ``n_samples_fit_`` or a split whose two children come
        before it (annoy writes children first: no cycle, no id out of range).
        """
        n, d = self._n_native(), self.n_features_in_
        node = 16 + 4 * d
        if payload.size < (n + 1) * node or payload.size % node:
            raise CorruptIndexError(
                f"AnnoyIndex: the annoy index has {payload.size} bytes, not whole nodes of "
                f"{node} bytes for {n} items of {d} features."
            )
        ints = payload.reshape(-1, node).view("<i4")
        desc = ints[:, 0]
        first = _CHILDREN_AT[_METRICS[self.metric_]] // 4
        capacity = ints.shape[1] - first  # annoy's K: item ids a leaf bucket holds
        inner = ints[n:]
        count = desc[n:]
        leaf = (count >= 1) & (count <= capacity)
        own = np.arange(n, ints.shape[0])
        split = inner[~leaf, first:first + 2]
        slots = inner[leaf, first:]
        used = np.arange(capacity) < count[leaf][:, None]
        problems = [
            (desc[:n] != 1).any() and "an item node has descendants",
            desc[-1] != n and f"the last root covers {desc[-1]} items, not {n}",
            (count < 1).any() and "a node has no descendants",
            ((split < 0) | (split >= own[~leaf][:, None])).any()
            and "a split node points outside the nodes before it",
            ((slots < 0) | (slots >= n))[used].any() and "a leaf names an item out of range",
            # a split covers exactly the items of its two children (checked once
            # the children are known to be in range)
            not ((split < 0) | (split >= own[~leaf][:, None])).any()
            and (count[~leaf] != desc[split[:, 0]] + desc[split[:, 1]]).any()
            and "a split node's count is not its children's",
            # a split's hyperplane and offset (dot: its factor), as annoy computes them:
            # finite (a NaN plane sends every query down one side)
            not np.isfinite(_split_floats(payload, node, n, ~leaf, first)).all()
            and "a split node's hyperplane is not finite",
        ]
        problems = [p for p in problems if p]
        if problems:
            raise CorruptIndexError(
                f"AnnoyIndex: the annoy index is not a forest over {n} items "
                f"({'; '.join(problems)}); nothing was passed to annoy."
            )

    def _vectors_in_native(self):
        return True  # "euclidean" and "dot" nodes keep the rows as given

    def _vectors_from_bytes(self, payload):
        """The indexed rows: annoy's first nodes are the items, in id order, each a
        16-byte header (descendants, children, offset or dot factor) and the row
        (zeros for items compacted away)."""
        n, d = self._n_native(), self.n_features_in_
        node = 16 + 4 * d
        if payload.size < n * node or payload.size % node:
            raise CorruptIndexError(
                f"AnnoyIndex: the annoy index has {payload.size} bytes, not whole nodes of "
                f"{node} bytes for {n} items of {d} features."
            )
        return self._rows_by_id(payload[:n * node].reshape(n, node)[:, 16:].copy().view(np.float32))

    def _native_shape(self, index):
        return index.get_n_items(), index.f
