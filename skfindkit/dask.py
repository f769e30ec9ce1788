"""A fitted pipeline over a collection held by dask, on a ``dask.distributed`` cluster.

Fit a retrieval pipeline locally (or on a sample), then apply it to a
collection too large for one process -- a :class:`dask.bag.Bag` of file paths,
a :class:`dask.array.Array` of rows, or a plain list split into partitions --
with :func:`transform_collection` (features, or index graphs) and
:func:`search_collection` (neighbours of every item). Each partition is one
task; the pipeline is sent once to each worker; results come back in the
collection's order and equal a local run.

Failed items are reported as the loaders report them, with their position
in the whole collection: :class:`~skfindkit.loaders.ItemLoadError` for
``on_error="raise"``, :class:`~skfindkit.loaders.ItemLoadWarning` (re-emitted
here, naming the partition and the item) for the placeholder policies. A
worker that dies while running a partition makes the scheduler run the
partition again elsewhere; a partition whose workers keep dying
(``distributed.scheduler.allowed-failures``) raises :class:`PartitionLostError`
naming it: results are never returned with rows missing.

Why not dask-ml's ``ParallelPostFit``: it maps ``transform`` over the blocks
of a dask array with ``map_blocks``, which needs the output shape declared in
advance, does not take bags, and reports a failed item by its position inside
its block; these helpers take bags and lists of paths, keep global positions
in errors and re-emit worker warnings. See ``docs/scaling.md``.
"""

import functools
import threading
from concurrent.futures import CancelledError
import traceback
import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.utils.validation import check_is_fitted

from .loaders import ItemLoadError, ItemLoadWarning
from .search import SearchResult, search
from .utils import final_index, import_optional, progress

__all__ = ["PartitionLostError", "connect", "search_collection", "transform_collection"]

#: seconds to wait for a scheduler before giving up, unless told otherwise
DEFAULT_TIMEOUT = 10


class PartitionLostError(RuntimeError):
    """Partitions could not be computed: their workers kept dying while running them.

    Attributes
    ----------
    partitions : list of int
        Numbers of the lost partitions (0-based, in collection order).
    """

    def __init__(self, message, partitions=()):
        super().__init__(message)
        self.partitions = list(partitions)

    def __reduce__(self):
        return type(self), (self.args[0], self.partitions)


def _distributed():
    return import_optional("distributed", "dask", package="dask[distributed]")


def connect(scheduler=None, *, timeout=DEFAULT_TIMEOUT):
    """A ``distributed.Client`` for a scheduler, failing clearly within ``timeout``.

    Parameters
    ----------
    scheduler : str, distributed.Client or None, default=None
        A scheduler address (``"tcp://10.0.0.5:8786"``, or a LocalCluster's
        ``scheduler_address``), a client (returned as is), or None for the
        client already created in this process.
    timeout : float, default=10
        Seconds to wait for the scheduler.

    Returns
    -------
    client : distributed.Client
        The caller closes a client made from an address (``with connect(...)``).

    Raises
    ------
    ConnectionError
        The scheduler could not be reached within ``timeout`` seconds, or
        there is no client and no address.
    """
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        return scheduler
    if scheduler is None:
        try:
            return distributed.get_client()
        except ValueError as exc:
            raise ConnectionError(
                "No dask client in this process: pass scheduler='tcp://host:8786' (a "
                "running `dask scheduler`), or create distributed.Client(LocalCluster()) "
                "first."
            ) from exc
    try:
        return distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"Could not reach the dask scheduler at {scheduler!r} within {timeout} s "
            f"({type(exc).__name__}: {exc}). Check the address and that `dask scheduler` "
            "runs there and is reachable from this machine."
        ) from exc


# ------------------------------------------------------------ partitions
def _partitions(collection, npartitions):
    """The collection as a list of partitions (dask objects or plain chunks)."""
    import dask.array
    import dask.bag

    if isinstance(collection, dask.bag.Bag):
        return collection.to_delayed(), None
    if isinstance(collection, dask.array.Array):
        if collection.ndim > 1:  # one block per row range
            collection = collection.rechunk({axis: -1 for axis in range(1, collection.ndim)})
        blocks = list(collection.to_delayed().reshape(-1))
        return blocks, [int(n) for n in collection.chunks[0]]
    if isinstance(collection, (str, bytes)) or not hasattr(collection, "__len__"):
        raise TypeError(
            "collection must be a dask bag, a dask array, or a list/array of items, got "
            f"{type(collection).__name__}."
        )
    if len(collection) == 0:
        raise ValueError("collection is empty: there is nothing to transform.")
    bounds = np.linspace(0, len(collection), min(npartitions, len(collection)) + 1)
    bounds = bounds.round().astype(int)
    chunks = [collection[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return chunks, [len(c) for c in chunks]


# worker side: one partition at a time per process, so that the warnings a
# partition raises are recorded with it (catch_warnings is process-global)
_RECORDING = threading.Lock()


@dataclass
class _Done:
    """What a partition task returns: its output, or its first failed item."""

    n_items: int
    output: object = None
    warnings: list = field(default_factory=list)
    failure: BaseException = None  # an ItemLoadError (its position: in the partition)
    error: BaseException = None  # any other exception, re-raised by the client
    worker_traceback: str = ""


def _run_partition(func, estimator, items):
    with _RECORDING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            done = _Done(len(items), output=func(estimator, items))
        except ItemLoadError as exc:
            done = _Done(len(items), failure=exc)
        except Exception as exc:  # returned, so that the warnings before it come too
            done = _Done(len(items), error=exc, worker_traceback=traceback.format_exc())
    done.warnings = [(w.category, w.message if isinstance(w.message, ItemLoadWarning)
                      else str(w.message)) for w in caught]
    return done


def _transform_items(estimator, items):
    return estimator.transform(items)


def _search_items(estimator, items, n_neighbors):
    return search(estimator, items, n_neighbors)


def _concatenate(outputs):
    first = outputs[0]
    if isinstance(first, SearchResult):
        return SearchResult(
            indices=np.concatenate([o.indices for o in outputs]),
            distances=np.concatenate([o.distances for o in outputs]),
            keys=np.concatenate([o.keys for o in outputs]),
        )
    if sparse.issparse(first):
        return sparse.vstack(outputs, format=first.format)
    return np.concatenate(outputs)


def _run(func, estimator, collection, scheduler, timeout, npartitions, verbose, desc):
    distributed = _distributed()
    import dask

    check_is_fitted(estimator)  # here, not once per partition on the workers
    client = connect(scheduler, timeout=timeout)
    owned = isinstance(scheduler, str)  # a client made here from an address
    try:
        if npartitions is None:
            npartitions = 4 * max(1, len(client.nthreads()))
        parts, lengths = _partitions(collection, npartitions)
        token = uuid.uuid4().hex[:8]
        # a literal in the graph, not scattered data: the scheduler can send it
        # again when the worker holding it dies (scattered data would be lost)
        shared = dask.delayed(estimator, name=f"skfindkit-estimator-{token}", traverse=False)
        task = dask.delayed(_run_partition, pure=False)
        futures = client.compute([
            task(func, shared, part, dask_key_name=f"skfindkit-{desc}-{token}-partition-{i}")
            for i, part in enumerate(parts)
        ])
        for _ in progress(
            distributed.as_completed(futures, loop=client.loop, raise_errors=False), verbose=verbose,
            desc=f"skfindkit {desc}", total=len(futures), unit="partition",
        ):
            pass
        return _collect(futures, lengths, desc)
    finally:
        if owned:
            client.close()


def _lost_partitions(futures, lengths, desc):
    """PartitionLostError naming every partition the cluster could not compute, or None."""
    distributed = _distributed()
    lost, first = [], None
    for i, future in enumerate(futures):
        if future.status == "finished":
            continue
        try:
            future.result()
        except (distributed.KilledWorker, CancelledError) as exc:
            lost.append(i)
            first = first or exc
    if not lost:
        return None
    sizes = "" if lengths is None else f" ({sum(lengths[i] for i in lost)} items)"
    why = (
        "the workers running them died every time they were tried "
        "(distributed.scheduler.allowed-failures; a worker that dies also fails the "
        "partitions queued on it)"
        if isinstance(first, distributed.KilledWorker)
        else "the cluster cancelled them"
    )
    return PartitionLostError(
        f"skfindkit {desc}: partition{'s' if len(lost) > 1 else ''} "
        f"{', '.join(map(str, lost))} of {len(futures)}{sizes} "
        f"{'were' if len(lost) > 1 else 'was'} lost: {why}. No partial result is "
        f"returned. Check the workers' logs and memory limits. ({first})",
        partitions=lost,
    )


def _collect(futures, lengths, desc):
    """Partition results in order: warnings re-emitted, failures raised."""
    lost = _lost_partitions(futures, lengths, desc)
    if lost is not None:
        raise lost
    outputs, start = [], 0
    for i, future in enumerate(futures):
        where = f"partition {i} of {len(futures)} (collection items from {start})"
        done = future.result()
        for category, message in done.warnings:
            if isinstance(message, ItemLoadWarning):  # its position in the whole collection
                warnings.warn(message.shifted(start, where), stacklevel=3)
            else:
                warnings.warn(f"{where}: {message}", category, stacklevel=3)
        if done.error is not None:
            if hasattr(done.error, "add_note"):  # Python >= 3.11
                done.error.add_note(f"Raised in {where}; worker traceback:\n{done.worker_traceback}")
            raise done.error
        if done.failure is not None:
            raise done.failure.shifted(start, where)
        outputs.append(done.output)
        start += done.n_items
    return _concatenate(outputs)


# --------------------------------------------------------------- public
def transform_collection(
    estimator, collection, *, scheduler=None, timeout=DEFAULT_TIMEOUT, npartitions=None,
    verbose=0,
):
    """``estimator.transform`` of every item of a collection, on a dask cluster.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        Applied with ``transform`` to each partition (e.g. ``pipeline[:-1]`` for
        features, or a whole retrieval pipeline for its sparse graphs).
    collection : dask.bag.Bag, dask.array.Array, list or ndarray
        Items (paths, texts, arrays). A bag's partitions and an array's row
        chunks are the tasks; a list is cut into ``npartitions``.
    scheduler : str, distributed.Client or None, default=None
        Where to run: a scheduler address, a client, or None for this
        process's client (see :func:`connect`).
    timeout : float, default=10
        Seconds to wait for a scheduler given by address.
    npartitions : int, default=None
        Partitions of a list; None means 4 per worker.
    verbose : int, default=0
        Show a tqdm bar of finished partitions when > 0.

    Returns
    -------
    Xt : ndarray or sparse matrix
        Partition outputs stacked in collection order: what
        ``estimator.transform(list(collection))`` returns locally.

    Raises
    ------
    ItemLoadError
        An item failed under ``on_error="raise"``; the message and
        ``position`` give its place in the whole collection.
    PartitionLostError
        A partition's workers kept dying.
    ConnectionError
        No reachable scheduler.

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> import dask.bag as db  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \\
    ...         Client(cluster):  # doctest: +SKIP
    ...     paths = db.from_sequence(all_paths, npartitions=16)
    ...     features = transform_collection(pipeline[:-1], paths, verbose=1)
    """
    return _run(_transform_items, estimator, collection, scheduler, timeout, npartitions,
                verbose, "transform")


def search_collection(
    pipeline, collection, n_neighbors=None, *, keys=None, scheduler=None,
    timeout=DEFAULT_TIMEOUT, npartitions=None, verbose=0,
):
    """:func:`skfindkit.search` of every item of a collection, on a dask cluster.

    Each worker receives the fitted pipeline (index included) once and
    searches its partitions' items, so the index must fit in a worker's
    memory (an approximate index is several times smaller to send than the
    features it indexes only when its native structure is compressed; see
    ``docs/scaling.md`` for collections larger than one machine).

    Parameters
    ----------
    pipeline : fitted Pipeline or index
        A retrieval pipeline ending with an index.
    collection : dask.bag.Bag, dask.array.Array, list or ndarray
        Query items, as for :func:`transform_collection`.
    n_neighbors : int, default=None
        Results per item; the index's ``n_neighbors`` when None.
    keys : array-like of shape (n_samples_fit,), default=None
        Keys of the indexed items; default: those attached with
        :func:`~skfindkit.attach_keys`, else the ids.
    scheduler, timeout, npartitions, verbose
        As in :func:`transform_collection`.

    Returns
    -------
    result : SearchResult
        One row per item of the collection, in order.
    """
    func = functools.partial(_search_items, n_neighbors=n_neighbors)
    result = _run(func, pipeline, collection, scheduler, timeout, npartitions, verbose,
                  "search")
    if keys is None:
        return result
    keys = np.asarray(keys)
    n_fit = final_index(pipeline).n_samples_fit_
    if keys.shape != (n_fit,):
        raise ValueError(
            f"keys must be 1-D with one key per indexed item ({n_fit}); got shape "
            f"{keys.shape}."
        )
    return SearchResult(indices=result.indices, distances=result.distances,
                        keys=keys[result.indices])
