"""RankFusionIndex: several retrieval systems over the same items, ranked as one.

Each member is a fitted pipeline ending with an index (or an index), and every
member sees the same raw items: a lexical pipeline (``CountVectorizer`` ->
:class:`~skfindkit.BM25Index`) and a dense one (``TfidfVectorizer`` ->
``TruncatedSVD`` -> :class:`~skfindkit.ExactIndex`) over the same texts fuse.
A query goes through every member, each contributes its ``depth`` best
candidates, and the candidates are ranked by a fused score:

* ``"rrf"``, reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009):
  ``sum_m w_m / (rrf_k + rank_m(d))``, a member's term 0 where ``d`` is not
  among its candidates;
* ``"minmax"`` and ``"zscore"``, a convex combination of scores normalised per
  query over each member's candidates: ``sum_m w_m s_m(d) / sum_m w_m``, a
  member's score ``s_m`` being min-max scaled to [0, 1] or standardised (mean
  0, standard deviation 1); a candidate that a member did not return gets that
  member's lowest normalised score of the query.

A member's score is its index's similarity: ``-distance``, except for
:class:`~skfindkit.BM25Index`, whose BM25 score ``1 / distance - 1`` is used.

The members are driven through their public methods only (``fit``, the
pipeline's ``transform`` up to its index, the index's ``kneighbors``) and
stored as the fitted estimators they are (``members_``), so a fused system
pickles and saves with :func:`skfindkit.io.save` like its members.
"""

from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
from sklearn.base import TransformerMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..utils import features_for_index, final_index
from ..utils._persist import CorruptIndexError
from ..utils._sklearn_compat import Interval, StrOptions, _BaseComposition, _fit_context
from ._fusion_scores import member_scores, normalised, top_by_score
from ._graph import NeighborsGraphMixin
from ._query import KNeighborsQueryMixin
from ._removal import RemovalMixin

__all__ = ["RankFusionIndex"]


class RankFusionIndex(NeighborsGraphMixin, TransformerMixin, _BaseComposition):
    """Several retrieval pipelines over the same items, their rankings fused.

    ``fit(X)`` fits a clone of every member on the same raw items ``X``; a
    query is run through every member (its pipeline's steps, then its index's
    ``kneighbors`` for ``depth`` candidates) and the candidates are ranked by
    a fused score, ties broken by the lower id. The result has the contract of
    :class:`sklearn.neighbors.KNeighborsTransformer`: ``kneighbors``,
    ``kneighbors_graph``, ``transform`` (``n_neighbors + 1`` entries per row in
    distance mode) and ``kneighbors(X=None)``, where each member excludes the
    item itself as its index does, so the fused neighbours exclude it too.

    **Distances.** ``distance = 1 - fused / top``, clipped at 0, where ``top``
    is the highest fused score possible: ``sum(weights) / (rrf_k + 1)`` for
    ``"rrf"`` (every member ranks the item first), ``sum(weights)`` for
    ``"minmax"``, ``sum(weights) * sqrt(m - 1)`` for ``"zscore"`` (the
    largest z-score among ``m`` values, ``m`` the candidates each member
    returned: ``depth`` raised to ``n_neighbors``, at most the collection).
    Distances are in [0, 1] (up to 2 with ``"zscore"``), 0 for an item
    every member ranks first (``"rrf"``) or scores highest (``"minmax"``),
    and non-decreasing along each row: the order of the fused score, ties
    by id.

    Parameters
    ----------
    members : list of (str, estimator) tuples
        The retrieval systems: pipelines ending with an index (or indexes),
        all fitted on the same items. Their parameters are tunable through
        ``<name>__<param>`` (e.g. ``bm25__bm25index__k1`` in ``GridSearchCV``).
    method : {"rrf", "minmax", "zscore"}, default="rrf"
        Reciprocal rank fusion, or a weighted mean of scores min-max scaled
        or standardised per query over each member's candidates.
    weights : list of float, default=None
        Weight of each member (same order as ``members``, non-negative, not
        all 0); None weighs every member 1. Tunable in ``GridSearchCV``.
    rrf_k : float, default=60
        The constant of reciprocal rank fusion (60 in the original paper):
        larger values flatten the difference between the first ranks.
    depth : int, default=100
        Candidates each member contributes per query (at least
        ``n_neighbors``, at most the collection): the fused ranking is
        exact over the union of the members' top ``depth``, as ``refine``
        re-ranks an approximate index's candidates.
    n_neighbors : int, default=5
        Number of neighbours of each query.
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.

    Attributes
    ----------
    members_ : list of (str, estimator) tuples
        The fitted members.
    n_samples_fit_ : int
        Number of indexed items.

    Notes
    -----
    ``partial_fit`` is not offered: fit the members again. Every member must
    index the same items in the same order (checked at ``fit``: same
    ``n_samples_fit_``). The work of a query is the sum of its members'
    (they run one after the other) plus a sort of at most
    ``len(members) * depth`` candidates.

    Examples
    --------
    >>> from sklearn.decomposition import TruncatedSVD
    >>> from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    >>> from sklearn.pipeline import make_pipeline
    >>> from skfindkit import BM25Index, ExactIndex, RankFusionIndex
    >>> docs = ["the cat sat on the mat", "dogs chase cats", "a log cabin in the woods",
    ...         "the dog sat on the log", "cats and dogs play"]
    >>> lexical = make_pipeline(CountVectorizer(), BM25Index())
    >>> dense = make_pipeline(TfidfVectorizer(), TruncatedSVD(2, random_state=0),
    ...                       ExactIndex(metric="cosine"))
    >>> fused = RankFusionIndex([("bm25", lexical), ("lsa", dense)], n_neighbors=2).fit(docs)
    >>> dist, ind = fused.kneighbors(["cat on a log"])
    >>> ind
    array([[0, 3]])
    >>> fused.set_params(weights=[1.0, 0.0]).kneighbors(["cat on a log"])[1]  # BM25 alone
    array([[0, 3]])
    """

    _parameter_constraints: dict = {
        "members": [list],
        "method": [StrOptions({"rrf", "minmax", "zscore"})],
        "weights": ["array-like", None],
        "rrf_k": [Interval(Real, 0, None, closed="left")],
        "depth": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"distance", "connectivity"})],
    }

    def __init__(self, members, *, method="rrf", weights=None, rrf_k=60, depth=100,
                 n_neighbors=5, mode="distance"):
        self.members = members
        self.method = method
        self.weights = weights
        self.rrf_k = rrf_k
        self.depth = depth
        self.n_neighbors = n_neighbors
        self.mode = mode

    # ------------------------------------------------- composition params
    @property
    def _members(self):
        return self.members

    @_members.setter
    def _members(self, value):  # _BaseComposition._set_params replaces the list here
        self.members = value

    def get_params(self, deep=True):
        """Parameters of this index, and with ``deep`` those of its members (``<name>__<param>``).

        Parameters
        ----------
        deep : bool, default=True
            Include the members and their parameters.

        Returns
        -------
        params : dict
        """
        return self._get_params("_members", deep=deep)

    def set_params(self, **params):
        """Set parameters of this index or of its members (``<name>__<param>``).

        Parameters
        ----------
        **params : dict
            Parameter names and values.

        Returns
        -------
        self : RankFusionIndex
        """
        self._set_params("_members", **params)
        return self

    # -------------------------------------------------------------- fitting
    def _checked_members(self):
        members = self.members
        if not members or not all(isinstance(m, tuple) and len(m) == 2
                                  and isinstance(m[0], str) for m in members):
            raise ValueError("members must be a non-empty list of (name, estimator) tuples, "
                             f"got {members!r:.100}")
        self._validate_names([name for name, _ in members])
        for name, estimator in members:
            last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
            if not hasattr(last, "kneighbors"):
                raise TypeError(f"member {name!r} does not end with an index (kneighbors): "
                                f"it is a {type(last).__name__}")
        return members

    def _checked_weights(self):
        if self.weights is None:
            return np.ones(len(self.members))
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (len(self.members),) or not np.isfinite(weights).all() or (
                weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(self.members)} finite non-negative numbers, "
                             f"not all 0 (one per member), got {self.weights!r}")
        return weights

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit a clone of every member on the same items ``X``.

        Parameters
        ----------
        X : array-like or list
            Items, in the form the members' first steps take (texts, paths,
            vectors).
        y : array-like of shape (n_samples,), default=None
            Labels of the items, given to every member and kept for
            :meth:`score`.

        Returns
        -------
        self : RankFusionIndex
        """
        members = self._checked_members()
        self._checked_weights()
        fitted = [(name, clone(estimator).fit(X, y)) for name, estimator in members]
        sizes = {name: final_index(est).n_samples_fit_ for name, est in fitted}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"the members indexed different numbers of items: {sizes}")
        self.members_ = fitted
        self.n_samples_fit_ = next(iter(sizes.values()))
        self._fit_y = None if y is None else column_or_1d(y)
        return self

    def __setstate__(self, state):
        super().__setstate__(state)
        if "members_" in state:  # fitted: the members must be what fit left
            self._check_fitted_state()

    def _check_fitted_state(self):
        """A loaded fitted state: every member a fitted index (or pipeline ending with
        one) over ``n_samples_fit_`` items, labels as many; refused otherwise."""
        try:
            n = self.n_samples_fit_
            ok = isinstance(n, Integral) and n >= 1 and isinstance(self.members_, list) and (
                len(self.members_) == len(self.members)) and all(
                isinstance(m, tuple) and len(m) == 2 and final_index(m[1]).n_samples_fit_ == n
                for m in self.members_)
            ok = ok and (self._fit_y is None or (
                isinstance(self._fit_y, np.ndarray) and self._fit_y.shape == (n,)))
        except (AttributeError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CorruptIndexError(
                "RankFusionIndex: the fitted members do not index n_samples_fit_ items each "
                "(or the state is incomplete)")

    @property
    def n_features_in_(self):
        """Number of features of the first member's input (where it has one)."""
        return self.members_[0][1].n_features_in_

    # ------------------------------------------------------------ querying
    def _reading(self, wait=True):
        if not wait:  # a member's query could wait for that member's writer
            raise BlockingIOError("a fusion's members are locked one by one, while queried")
        return nullcontext()  # each member's index guards its own state

    def _default_n_neighbors(self):
        return self.n_neighbors

    _checked_n_neighbors = KNeighborsQueryMixin._checked_n_neighbors

    # ----------------------------------------------------------- removal
    def _indexes(self):
        """The fitted members' final indexes."""
        check_is_fitted(self)
        return [final_index(member) for _, member in self.members_]

    @property
    def n_items_(self):
        """Number of live items (indexed and not removed)."""
        return self._indexes()[0].n_items_

    @property
    def live_mask_(self):
        """Boolean mask over ids (``n_samples_fit_`` entries): True for live items."""
        return self._indexes()[0].live_mask_

    def is_live(self, ids):  # the members agree: the first one answers
        return self._indexes()[0].is_live(ids)

    is_live.__doc__ = RemovalMixin.is_live.__doc__

    def remove(self, ids):
        """Remove items from every member's index; the other items keep their ids.

        The first member checks ``ids`` (and refuses, changing nothing, what
        :meth:`skfindkit.indexes.BaseIndex.remove` refuses); every member then
        removes them, so all members keep the same live items.

        Parameters
        ----------
        ids : int or array-like of int
            Ids of live items, as returned by :meth:`kneighbors`.

        Returns
        -------
        self : RankFusionIndex
        """
        first, *others = self._indexes()
        first.remove(ids)
        for index in others:
            index.remove(ids)
        return self

    def compact(self):
        """Compact every member's index (see :meth:`skfindkit.indexes.BaseIndex.compact`).

        Returns
        -------
        self : RankFusionIndex
        """
        for index in self._indexes():
            index.compact()
        return self

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True, *, filter=None):
        """The items of highest fused score for each query.

        Parameters
        ----------
        X : array-like or list, default=None
            Queries, in the form the members' first steps take; None means
            the indexed items, each excluded from its own neighbours.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        return_distance : bool, default=True
            Whether to return distances.
        filter : array-like or list of array-like, default=None
            Items each query may return, given to every member (see
            :meth:`skfindkit.indexes.BaseIndex.kneighbors`): a boolean mask
            over ids, an array of allowed ids, or one of those per query.
            Removed items are never returned.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            ``1 - fused / top`` (see the class description), non-decreasing;
            only if ``return_distance=True``. ``inf`` in the slots of a row
            that fewer than ``n_neighbors`` allowed items could fill.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Ids of the neighbours; ``-1`` in unfilled slots (with ``X=None``,
            the whole rows of removed items).
        """
        check_is_fitted(self)
        k = self._checked_n_neighbors(n_neighbors)
        n_items = self.n_items_
        available = n_items - (X is None)
        if k > available:
            rule = "n_neighbors < n_samples_fit" if X is None else "n_neighbors <= n_samples_fit"
            raise ValueError(f"Expected {rule}, but n_neighbors = {k}, "
                             f"n_samples_fit = {n_items}")
        weights = self._checked_weights()
        depth = min(max(self.depth, k), available)
        ids, contrib, base = [], [], 0.0
        for (name, member), weight in zip(self.members_, weights):
            index = final_index(member)
            query = None if X is None else features_for_index(member, X)
            dist, ind = index.kneighbors(query, depth, filter=filter)
            valid = ind >= 0
            if self.method == "rrf":
                part = np.where(valid, weight / (self.rrf_k + np.arange(1.0, depth + 1)), 0.0)
            else:
                scores = member_scores(index, np.where(valid, dist, 1.0))
                scores, floor = normalised(scores, self.method, valid)
                part = np.where(valid, weight * (scores - floor), 0.0)
                base = base + weight * floor
            ids.append(ind)
            contrib.append(part)
        ids, contrib = np.hstack(ids), np.hstack(contrib)
        base = np.broadcast_to(np.ravel(base), (ids.shape[0],))
        fused, ind = top_by_score(ids, contrib, base, self.n_samples_fit_, k)
        if not return_distance:
            return ind
        top = {"rrf": 1.0 / (self.rrf_k + 1.0), "minmax": 1.0,
               "zscore": np.sqrt(max(depth - 1, 1))}[self.method] * weights.sum()
        with np.errstate(invalid="ignore"):
            return np.maximum(1.0 - fused / top, 0.0), ind

    def score(self, X, y):
        """Mean precision@n_neighbors of the retrieved items' labels (as the indexes').

        Parameters
        ----------
        X : array-like or list
            Queries.
        y : array-like of shape (n_queries,)
            Their labels.

        Returns
        -------
        score : float
        """
        from ..metrics import precision_at_k

        check_is_fitted(self)
        if self._fit_y is None:
            raise ValueError("RankFusionIndex.score needs the labels of the indexed items: "
                             "fit it with fit(X, y).")
        ind = self.kneighbors(X, return_distance=False)
        return precision_at_k(y, self._fit_y[ind])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        try:  # what the first member takes, as a Pipeline reports its first step's
            first = get_tags(self.members[0][1]).input_tags
        except (TypeError, IndexError, AttributeError, ValueError):
            return tags
        tags.input_tags.sparse = first.sparse
        tags.input_tags.positive_only = first.positive_only
        tags.input_tags.string = first.string
        tags.input_tags.two_d_array = first.two_d_array
        tags.input_tags.allow_nan = first.allow_nan
        return tags
