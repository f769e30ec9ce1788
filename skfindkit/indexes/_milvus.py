"""Nearest neighbours served by Milvus: Milvus Lite by default, a server when given its URI."""

import json
import os
import uuid
import weakref
from numbers import Integral, Real

import numpy as np

from ..utils import import_optional, progress
from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._persist import CorruptIndexError
from . import _milvus_store as store
from ._ann_utils import C_INT_MAX
from ._base import BaseIndex

__all__ = ["MilvusIndex"]

# metric -> Milvus metric_type; cosine searches unit rows with L2 so that
# identical items are at distance exactly 0 (d2 / 2 = 1 - cos)
_METRIC_TYPES = {"euclidean": "L2", "cosine": "L2", "inner_product": "IP"}
# index types Milvus Lite 3.2 builds (DISKANN, SCANN... are accepted by Lite
# but never built: searches silently scan everything, so they are refused)
_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW")
_MAX_TOP_K = 16384  # Milvus's limit on the number of results per query
_OWNER = store.OWNER
_ID, _VEC = "id", "vector"


class MilvusIndex(BaseIndex):
    """Approximate (or exact) nearest neighbours served by Milvus.

    The collection lives in Milvus, not in this estimator: by default in an
    embedded Milvus Lite store (a temporary folder of this process, shared by
    every ``MilvusIndex`` of the process, one collection each), in a Lite
    folder given as ``uri="path/to/store.db"``, or on a Milvus server or
    cluster given as ``uri="http://host:19530"`` -- the same estimator. The
    client keeps no float32 copy of the collection (an 8-byte hash per item,
    and the labels): ``kneighbors(X=None)``, ``exact_kneighbors``, the exact
    completion of short result rows and IVF_SQ8's exact distances read the
    vectors back from Milvus by id, block by block (``docs/scaling.md``).

    Pickling (and ``joblib.dump``) depends on where the collection lives:

    - **Lite** (``uri=None`` or a ``.db`` folder): the pickle holds a
      snapshot of the collection's files (data, index, schema; checksummed),
      and unpickling restores it as a new collection of the process's
      temporary store -- a self-contained copy, results identical.
    - **Server** (``http://...``): the pickle holds a *reference* (URI,
      collection name, owner token); the collection stays on the server and
      unpickled copies query it. The copy checks, on first use, that the
      collection is still the one it was fitted on (owner token and number of
      items); ``partial_fit`` on one copy makes the others refuse to answer.
      Dropping the collection on the server breaks every pickle of it.

    A file names where its collection lives, so loading one (``pickle``,
    :func:`skfindkit.io.load`) never connects to a server the caller did not
    name: a server reference loads only inside
    ``with MilvusIndex.allow_servers("http://host:19530"):``; otherwise the
    load raises :class:`PermissionError` naming the server. A Lite snapshot
    is always restored into the process's temporary store, whatever folder
    the file names; its archive is checked before anything is written (plain
    files with relative names, declared sizes within the archive, a manifest
    naming files of the archive only, the saved dimension).

    Collections in the default store are dropped when their index is garbage
    collected; collections at a given ``uri`` are kept (they are the point
    of giving one).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query (at most 16384, Milvus's limit).
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance, reported in :class:`~skfindkit.ExactIndex`'s units
        (Milvus's squared L2 and inner-product scores are converted; cosine
        searches unit rows with L2).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Not used: the Milvus server decides its own threads. Kept for the
        common index interface.
    index_type : {"HNSW", "IVF_FLAT", "IVF_SQ8", "FLAT"}, default="HNSW"
        Milvus index type. ``"FLAT"`` is exact.
    M : int, default=16
        HNSW graph degree.
    ef_construction : int, default=200
        HNSW candidate list size while building.
    ef_search : int, default=64
        HNSW candidate list size while querying (raised to ``n_neighbors``
        when smaller, as Milvus requires; at most the number of items). A
        query-time knob.
    nlist : int, default=128
        IVF number of clusters (clamped by Milvus Lite to the number of items).
    nprobe : int, default=16
        IVF clusters scanned per query. A query-time knob.
    uri : str, default=None
        ``None``: the process's temporary Milvus Lite store; a path ending in
        ``.db``: a Milvus Lite folder (created if missing); ``"http://host:port"``:
        a Milvus server or cluster.
    collection_name : str, default=None
        Name of the collection ``fit`` creates; ``None`` draws a unique one
        (leave it so for ``GridSearchCV``, which fits many copies). ``fit``
        refuses to replace a collection it did not create itself.
    timeout : float, default=30.0
        Seconds any single call to Milvus may take (connection included)
        before an error is raised; the calls that write, build or load an
        index (flush, create_index, load) get ``timeout`` per 10,000 items
        (at least ``timeout``), since they grow with the collection.
    batch_size : int, default=1024
        Queries per search request, and vectors per request when reading
        vectors back (rows inserted per request are sized to a few MiB).
    verbose : int, default=0
        Show a progress bar while inserting vectors.

    Attributes
    ----------
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.
    collection_name_ : str
        Name of the fitted collection.
    uri_ : str
        Where it lives (the temporary store's folder for ``uri=None``).

    See Also
    --------
    HNSWIndex : The same graph algorithm in this process (hnswlib).
    FaissIndex : faiss indexes in this process, including IVF.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import MilvusIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = MilvusIndex(n_neighbors=2, index_type="FLAT").fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    """

    _backend = "milvus"
    _requires = (Requirement(library="pymilvus", import_name="pymilvus", extra="milvus"),
                 Requirement(library="milvus-lite", import_name="milvus_lite", extra="milvus"))
    #: the collection handle's clean-up and "checked against the server" flag
    #: belong to this process: never pickled
    _transient_attrs = ("_finalizer", "_verified")
    supported_metrics = ("euclidean", "cosine", "inner_product")

    @property
    def _native_distance(self):
        if self._fitted("index_type") == "IVF_SQ8":  # distances of 8-bit codes: recomputed
            return "recompute"  # from the vectors read back by id
        # Milvus's L2 is squared (cosine: L2 on unit rows); its IP score is <x, y>
        return {"euclidean": "sqeuclidean", "cosine": "sqeuclidean", "inner_product": "dot"}

    _parameter_constraints: dict = {
        **BaseIndex._parameter_constraints,
        "index_type": [StrOptions(set(_INDEX_TYPES))],
        "M": [Interval(Integral, 2, 2048, closed="both")],
        "ef_construction": [Interval(Integral, 1, C_INT_MAX, closed="both")],
        "ef_search": [Interval(Integral, 1, C_INT_MAX, closed="both")],
        "nlist": [Interval(Integral, 1, 65536, closed="both")],
        "nprobe": [Interval(Integral, 1, 65536, closed="both")],
        "uri": [None, str, os.PathLike],
        "collection_name": [None, str],
        "timeout": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_neighbors=5,
        *,
        metric="euclidean",
        mode="distance",
        n_jobs=None,
        index_type="HNSW",
        M=16,
        ef_construction=200,
        ef_search=64,
        nlist=128,
        nprobe=16,
        uri=None,
        collection_name=None,
        timeout=30.0,
        batch_size=1024,
        verbose=0,
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs)
        self.index_type = index_type
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        self.uri = uri
        self.collection_name = collection_name
        self.timeout = timeout
        self.batch_size = batch_size
        self.verbose = verbose

    # ------------------------------------------------------------ backend
    def _is_exact(self):
        # a flat scan, or IVF_FLAT probing every cluster
        built = getattr(self, "_fit_params", None) or self.get_params(deep=False)
        return built["index_type"] == "FLAT" or (
            built["index_type"] == "IVF_FLAT" and self.nprobe >= built["nlist"]
        )

    def _flat_scan_unit(self):
        # Milvus's float32 flat scan: proven row by row, exact search where it cannot be
        return "dot" if self.metric_ == "inner_product" else "sqeuclidean"

    def _keeps_vectors(self):
        return False  # Milvus stores them; the client reads them back by id

    def _build(self, X, ids=None):
        self._release()
        lite = self.uri is None or store.is_lite(os.fspath(self.uri))
        uri = store.default_store() if self.uri is None else os.fspath(self.uri)
        name = self.collection_name or f"skfindkit_{uuid.uuid4().hex}"
        coll = store.Collection(uri, name, uuid.uuid4().hex, self.timeout, lite)
        client = coll.client
        self._claim(coll, X.shape[1])
        self._index, self.uri_, self.collection_name_ = coll, uri, name
        if self.uri is None:  # the temporary store: drop with the estimator
            self._drop_with_estimator(uri, name)
        self._insert(coll, X, range(X.shape[0]) if ids is None else ids)
        slow = self._build_timeout(X.shape[0])
        client.create_index(name, self._index_params(client), timeout=slow, sync=False)
        client.load_collection(name, timeout=slow)
        return coll

    def _build_timeout(self, n_items):
        """Seconds a flush, index build or load of ``n_items`` may take."""
        return self.timeout * max(1.0, n_items / 10_000)

    def _claim(self, coll, dim):
        """Create the collection, or replace it if this estimator created it."""
        client, name = coll.client, coll.name
        if client.has_collection(name, timeout=self.timeout):
            info = client.describe_collection(name, timeout=self.timeout)
            previous = getattr(self, "_index", None)
            mine = isinstance(previous, store.Collection) and previous.name == name and (
                info.get("properties", {}).get(_OWNER) == previous.token
            )
            if not mine:
                raise ValueError(
                    f"MilvusIndex: collection_name={name!r} already exists at uri="
                    f"{coll.uri!r} ({store.describe(info)}) and was not created by this "
                    f"index (X has {dim} features); choose another collection_name, "
                    "leave it None for a unique one, or drop that collection "
                    f"(pymilvus.MilvusClient({coll.uri!r}).drop_collection({name!r}))."
                )
            client.drop_collection(name, timeout=self.timeout)
        pymilvus = import_optional("pymilvus", "milvus")
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_ID, pymilvus.DataType.INT64, is_primary=True)
        schema.add_field(_VEC, pymilvus.DataType.FLOAT_VECTOR, dim=dim)
        client.create_collection(
            name, schema=schema, consistency_level="Strong", timeout=self.timeout,
            properties={_OWNER: coll.token},
        )

    def _index_params(self, client):
        build = {
            "HNSW": {"M": self.M, "efConstruction": self.ef_construction},
            "IVF_FLAT": {"nlist": self.nlist},
            "IVF_SQ8": {"nlist": self.nlist},
        }.get(self.index_type, {})
        params = client.prepare_index_params()
        # flat keys for Milvus servers, the nested "params" for Milvus Lite
        # 3.2, which reads build parameters only from there
        params.add_index(
            field_name=_VEC, index_type=self.index_type,
            metric_type=_METRIC_TYPES[self.metric_], params={**build, "params": build},
        )
        return params

    def _insert(self, coll, X, ids):
        rows_per_call = max(1, (4 << 20) // (4 * X.shape[1]))  # ~4 MiB per request
        starts = range(0, X.shape[0], rows_per_call)
        for start in progress(starts, verbose=self.verbose, desc="MilvusIndex insert",
                              total=len(starts)):
            block = X[start:start + rows_per_call]
            coll.client.insert(
                coll.name, [{_ID: int(i), _VEC: v}
                            for i, v in zip(ids[start:start + block.shape[0]], block)],
                timeout=self.timeout,
            )
        coll.client.flush(coll.name, timeout=self._build_timeout(X.shape[0]))

    def _add(self, X):
        coll = self._attached()
        self._insert(coll, X, range(self.n_samples_fit_ - X.shape[0], self.n_samples_fit_))

    #: Removed items the collection no longer holds (deleted by the last compaction).
    _n_dropped = 0

    def _n_native(self):
        return self.n_samples_fit_ - self._n_dropped

    def _held_tombstones(self):
        return int(np.count_nonzero(self._removed_mask())) - self._n_dropped

    def _check_native_ids(self):
        """A loaded count of dropped items: at most the removed ones."""
        dropped, removed = vars(self).get("_n_dropped", 0), self._removed_mask()
        n_removed = 0 if removed is None else int(np.count_nonzero(removed))
        if not (isinstance(dropped, (int, np.integer)) and not isinstance(dropped, bool)
                and 0 <= dropped <= n_removed):
            raise CorruptIndexError(
                f"MilvusIndex: the saved state drops {dropped!r} items but removed {n_removed}.")

    def _compact(self):
        """Removed items leave the collection, deleted by primary key (the ids) in one
        path for Lite and server collections (:meth:`_delete_ids`). A server is then
        asked to compact (it drops them from its segments in the background); a Lite
        collection, whose files keep deleted rows, is rebuilt from the live rows under
        their ids."""
        removed = self._removed_mask()
        coll = self._attached()
        self._delete_ids(coll, np.flatnonzero(removed))
        if coll.lite:
            live = np.flatnonzero(~removed)
            self._build(self._get_vectors(live), live)
        else:
            coll.client.compact(coll.name, timeout=self.timeout)
        self._n_dropped = int(np.count_nonzero(removed))
        self._changed_native_index()

    def _delete_ids(self, coll, ids):
        """pymilvus ``delete`` of these primary keys (ids no longer held: no-ops), then
        ``flush``: searches and ``get`` no longer see them."""
        coll.client.delete(coll.name, ids=[int(i) for i in ids], timeout=self.timeout)
        coll.client.flush(coll.name, timeout=self._build_timeout(self.n_samples_fit_))

    def _search_params(self, k):
        """What the fitted index type takes; ``ef_search``/``nprobe`` apply at once."""
        index_type = self._fitted("index_type")
        if index_type == "HNSW":
            # a candidate list longer than the collection is moot (and allocated)
            params = {"ef": max(min(self.ef_search, self.n_samples_fit_), k)}
        elif index_type.startswith("IVF"):
            params = {"nprobe": min(self.nprobe, self._fitted("nlist"))}
        else:
            params = {}
        return {"metric_type": _METRIC_TYPES[self.metric_], "params": params}

    def _query_batch(self, coll):
        """Queries per request: ``batch_size``, but Milvus Lite's FLAT L2 scan
        holds an ``n_queries x n_items x n_features`` float32 temporary, so
        there a request is kept under 256 MiB of it."""
        flat = self._fitted("index_type") == "FLAT"
        if coll.lite and flat and self.metric_ != "inner_product":
            per_query = 4 * self.n_samples_fit_ * self.n_features_in_
            return max(1, min(self.batch_size, (256 << 20) // per_query))
        return self.batch_size

    def _search(self, X, k):
        if k > _MAX_TOP_K:
            raise ValueError(
                f"MilvusIndex: n_neighbors={k} exceeds Milvus's limit of "
                f"{_MAX_TOP_K} results per query."
            )
        coll = self._attached()
        dist = np.full((X.shape[0], k), np.inf)
        ind = np.full((X.shape[0], k), -1, dtype=np.intp)
        params, step = self._search_params(k), self._query_batch(coll)
        for start in range(0, X.shape[0], step):
            found = coll.client.search(
                coll.name, data=X[start:start + step], limit=k,
                search_params=params, output_fields=[_ID], timeout=self.timeout,
            )
            for row, hits in enumerate(found, start):
                ind[row, :len(hits.ids)] = hits.ids
                dist[row, :len(hits.ids)] = hits.distances
        return dist, ind

    def _get_vectors(self, ids):
        removed = self._removed_mask()
        ids = np.asarray(ids, dtype=np.int64)
        if removed is not None and removed[ids].any():  # compacted away: zeros stand in
            rows = np.zeros((ids.size, self.n_features_in_), dtype=np.float32)
            live = ~removed[ids]
            if live.any():
                rows[live] = self._get_vectors(ids[live])
            return rows
        coll = self._attached()
        out = np.empty((ids.size, self.n_features_in_), dtype=np.float32)
        for start in range(0, ids.size, self.batch_size):
            want = ids[start:start + self.batch_size]
            rows = coll.client.get(coll.name, ids=want.tolist(), output_fields=[_VEC],
                                   timeout=self.timeout)
            got = {r[_ID]: r[_VEC] for r in rows}
            missing = [int(i) for i in want if int(i) not in got]
            if missing:
                raise RuntimeError(
                    f"MilvusIndex: collection {coll.name!r} at {coll.uri!r} lacks "
                    f"items {missing[:5]}: it was changed outside this index."
                )
            out[start:start + want.size] = [got[int(i)] for i in want]
        return out

    # ------------------------------------------------ attaching, pickling
    @staticmethod
    def allow_servers(*uris):
        """Context manager: let files loaded in its block reference collections at ``uris``.

        Parameters
        ----------
        *uris : str
            Milvus server URIs, as the saved indexes name them (e.g.
            ``"http://host:19530"``).

        Examples
        --------
        >>> from skfindkit import MilvusIndex
        >>> with MilvusIndex.allow_servers("http://localhost:19530"):
        ...     pass  # index = skfindkit.io.load("server-index.skfk")
        """
        return store.allowed_servers(*uris)

    def _check_native_bytes(self, payload):
        """A server reference needs the caller's consent; a Lite snapshot, a sound archive."""
        owner = type(self).__name__
        header, _, snapshot = bytes(payload).partition(b"\n")
        try:
            ref = json.loads(header)
            keys_ok = isinstance(ref, dict) and {"uri", "name", "token", "lite"} <= set(ref)
        except (ValueError, RecursionError):
            keys_ok = False
        if not keys_ok or not all(isinstance(ref[k], str) for k in ("uri", "name", "token")):
            raise CorruptIndexError(f"{owner}: the collection reference is malformed.")
        if ref["lite"] is not True:
            if ref["lite"] is not False or snapshot:
                raise CorruptIndexError(f"{owner}: the collection reference is malformed.")
            store.check_server_allowed(ref["uri"], owner)
            return
        try:
            store.check_snapshot(snapshot, self.n_features_in_)
        except ValueError as exc:
            raise CorruptIndexError(f"{owner}: {exc}.") from None

    def _attached(self):
        """The fitted collection, checked once after unpickling."""
        coll = self._index
        if getattr(self, "_verified", True):
            return coll
        client = coll.client
        if not client.has_collection(coll.name, timeout=self.timeout):
            raise RuntimeError(
                f"MilvusIndex: collection {coll.name!r} no longer exists at uri="
                f"{coll.uri!r}; the pickled index referenced it. Fit the index again."
            )
        info = client.describe_collection(coll.name, timeout=self.timeout)
        count = client.get_collection_stats(coll.name, timeout=self.timeout)["row_count"]
        if info.get("properties", {}).get(_OWNER) != coll.token or count != self._n_native():
            raise RuntimeError(
                f"MilvusIndex: collection {coll.name!r} at uri={coll.uri!r} is no "
                f"longer the one this index was fitted on ({store.describe(info)}, "
                f"{count} items, expected {self._n_native()}); fit the index again."
            )
        client.load_collection(coll.name, timeout=self._build_timeout(count))
        self._verified = True
        return coll

    def _serialize(self):
        coll = self._index
        ref = {"uri": coll.uri, "name": coll.name, "token": coll.token, "lite": coll.lite}
        header = json.dumps(ref).encode() + b"\n"
        if not coll.lite:
            return header
        return header + store.lite_snapshot(coll.uri, coll.name)

    def _deserialize(self, payload):
        header, _, snapshot = bytes(payload).partition(b"\n")  # a uint8 array
        ref = json.loads(header)
        if not ref["lite"]:  # a reference to a server collection, checked on first use
            self._verified = False
            return store.Collection(ref["uri"], ref["name"], ref["token"], self.timeout, False)
        uri, name = store.default_store(), f"skfindkit_{uuid.uuid4().hex}"
        store.connect(uri, self.timeout)
        store.lite_restore(snapshot, uri, name)
        self.uri_, self.collection_name_ = uri, name
        self._drop_with_estimator(uri, name)
        self._verified = False
        return store.Collection(uri, name, ref["token"], self.timeout, True)

    def _drop_with_estimator(self, uri, name):
        """Drop a collection of the temporary store when this estimator goes
        (not at exit: the whole store is removed then)."""
        self._finalizer = weakref.finalize(self, store.drop_quietly, uri, name, self.timeout)
        self._finalizer.atexit = False

    def _release(self):
        """Forget the previous fit (its temporary collection is dropped)."""
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
