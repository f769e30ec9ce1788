"""skfindkit.dask on a real LocalCluster: two worker processes, one thread each.

One cluster serves the whole module (starting one costs seconds). The fault
tests kill worker processes with SIGKILL from inside a task; the nanny
restarts them, and the next test waits for both workers again.
"""

import re
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")

import joblib  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skfindkit import (  # noqa: E402
    ExactIndex,
    FunctionVectorLoader,
    ImageLoader,
    ItemLoadError,
    ItemLoadWarning,
    ShardedIndex,
    SklearnFeatureExtractor,
    search,
)
from skfindkit.dask import (  # noqa: E402
    PartitionLostError,
    connect,
    search_collection,
    transform_collection,
)

from .._dask_items import vector_of  # noqa: E402

pytestmark = pytest.mark.slow  # a LocalCluster with worker processes


@pytest.fixture(scope="module")
def client():
    import dask

    # one retry after a worker death, then the partition counts as lost
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
            worker_dashboard_address=None,
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def ready(client):
    client.wait_for_workers(2, timeout=120)  # after a test that killed one
    return client


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory):
    from PIL import Image
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, row in enumerate(X[:150]):
        path = folder / f"digit-{i:03d}.png"
        Image.fromarray((row.reshape(8, 8) * 15).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths, y[:150]


@pytest.fixture(scope="module")
def image_pipeline(image_paths):
    paths, y = image_paths
    loader = ImageLoader((8, 8), color_mode="grayscale", flatten=True)
    return make_pipeline(loader, SklearnFeatureExtractor(PCA(8)), ExactIndex(n_neighbors=4)).fit(
        paths, y
    )


def test_bag_of_paths_gives_the_local_results_in_order(ready, image_paths, image_pipeline):
    paths, y = image_paths
    bag = db.from_sequence(paths, npartitions=5)
    loader = image_pipeline[:1]  # row by row: bit-identical whatever the partitions
    np.testing.assert_array_equal(transform_collection(loader, bag), loader.transform(paths))
    # PCA is a float32 matrix product: its last bits depend on the batch's
    # number of rows and BLAS threads, locally too, so compare within rounding
    features = transform_collection(image_pipeline[:-1], bag)
    np.testing.assert_allclose(features, image_pipeline[:-1].transform(paths), rtol=1e-5,
                               atol=1e-5)
    # loader -> index: the index gets identical rows and re-ranks in float64
    system = make_pipeline(clone(loader[0]), ExactIndex(n_neighbors=4)).fit(paths, y)
    graph = transform_collection(system, bag)
    assert (graph != system.transform(paths)).nnz == 0 and graph.format == "csr"
    found = search_collection(system, paths, n_neighbors=3, npartitions=4,
                              keys=np.array(paths))
    local = search(system, paths, n_neighbors=3, keys=np.array(paths))
    np.testing.assert_array_equal(found.indices, local.indices)
    np.testing.assert_array_equal(found.distances, local.distances)
    np.testing.assert_array_equal(found.keys, local.keys)


def test_dask_array_rows_and_a_scheduler_address(ready, image_paths):
    X = np.random.default_rng(0).normal(size=(203, 6))
    pipeline = make_pipeline(FunctionVectorLoader(), ExactIndex(n_neighbors=3)).fit(X)
    rows = da.from_array(X, chunks=(41, 4))  # column chunks are merged per row block
    # an address: the helper opens its own client and closes it
    found = search_collection(pipeline, rows, scheduler=ready.scheduler.address)
    np.testing.assert_array_equal(found.indices, search(pipeline, X).indices)


def test_failed_item_is_named_with_its_collection_position(ready, image_paths, image_pipeline):
    paths = list(image_paths[0])
    paths[77] = paths[77].replace("digit-077", "missing-077")
    bag = db.from_sequence(paths, npartitions=4)
    with pytest.raises(ItemLoadError, match=r"could not load item 77 \('.*missing-077") as info:
        transform_collection(image_pipeline[:-1], bag)
    assert info.value.position == 77 and info.value.item == paths[77]

    tolerant = clone(image_pipeline).set_params(imageloader__on_error="nan").fit(
        image_paths[0], image_paths[1]
    )
    with pytest.warns(ItemLoadWarning, match=r"partition \d+ of \d+.*item 77 \('.*missing-077"):
        out = transform_collection(tolerant[:1], bag)  # the loader alone: NaN rows
    assert np.isnan(out[77]).all() and not np.isnan(np.delete(out, 77, axis=0)).any()
    # downstream, PCA refuses the NaN row: the warning naming the item comes
    # first, then PCA's own error, with the partition it happened in
    with pytest.warns(ItemLoadWarning, match="missing-077"), pytest.raises(
        ValueError, match="NaN"
    ) as info:
        transform_collection(tolerant[:-1], bag)
    notes = getattr(info.value, "__notes__", [])
    assert any(re.match(r"Raised in partition \d+ of \d+", note) for note in notes)


def test_progress_bar_only_when_verbose(ready, capsys):
    X = np.arange(40.0).reshape(20, 2)
    loader = FunctionVectorLoader().fit(X)
    transform_collection(loader, X, npartitions=4, verbose=1)
    assert "skfindkit transform" in capsys.readouterr().err
    transform_collection(loader, X, npartitions=4, verbose=0)
    assert "skfindkit transform" not in capsys.readouterr().err


def test_worker_killed_mid_extraction_is_retried_and_no_row_is_lost(ready, tmp_path):
    items = [str(tmp_path / f"item-{i:03d}") for i in range(60)]
    items[31] += ".kill-once"  # its worker dies the first time it loads it
    loader = FunctionVectorLoader(vector_of).fit(items[:2])
    out = transform_collection(loader, db.from_sequence(items, npartitions=6))
    assert (tmp_path / "item-031.kill-once.done").exists()  # it did die
    np.testing.assert_array_equal(out, FunctionVectorLoader(vector_of).fit_transform(items))


def test_partition_whose_workers_keep_dying_is_reported_lost(ready, tmp_path):
    items = [str(tmp_path / f"item-{i:03d}") for i in range(30)]
    items[17] += ".kill-always"
    # the worker dies with partition 1; partitions queued on the dying worker
    # may fail with it: all of them are named, none is silently dropped
    with pytest.raises(PartitionLostError, match=r"partitions? [\d, ]*1[\d, ]* of 3.*lost") as info:
        transform_collection(
            FunctionVectorLoader(vector_of).fit(items[:2]), items, npartitions=3
        )
    assert 1 in info.value.partitions


def test_unreachable_scheduler_fails_clearly_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="Could not reach the dask scheduler at"):
        connect("tcp://127.0.0.1:9", timeout=2)
    assert time.monotonic() - start < 60  # bounded: never a hang


def test_bad_collection_and_unfitted_pipeline_are_refused(client):
    loader = FunctionVectorLoader().fit(np.ones((2, 2)))
    with pytest.raises(TypeError, match="collection must be"):
        transform_collection(loader, "a-single-path.png", scheduler=client)
    with pytest.raises(NotFittedError):  # before anything is sent
        transform_collection(FunctionVectorLoader(), [[1.0]], scheduler=client)


def test_grid_search_on_the_dask_joblib_backend_equals_local(ready, image_paths):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    grid = {"sklearnfeatureextractor__estimator__n_components": [4, 8]}
    pipeline = make_pipeline(SklearnFeatureExtractor(PCA()), ExactIndex(n_neighbors=3))
    local = GridSearchCV(pipeline, grid, cv=2).fit(X[:300], y[:300])
    with joblib.parallel_config("dask"):
        remote = GridSearchCV(pipeline, grid, cv=2, n_jobs=-1).fit(X[:300], y[:300])
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )


def test_sharded_index_builds_its_shards_on_the_cluster(ready):
    X = np.random.default_rng(1).normal(size=(300, 8))
    with joblib.parallel_config("dask"), distributed.get_task_stream(ready) as stream:
        remote = ShardedIndex(ExactIndex(), 3, n_jobs=3).fit(X)
    ran = [task["key"] for task in stream.data]
    assert sum("_fit_shard" in str(key) for key in ran) >= 1, ran  # on the workers
    local = ShardedIndex(ExactIndex(), 3).fit(X)
    for a, b in zip(remote.kneighbors(X[:20]), local.kneighbors(X[:20])):
        np.testing.assert_array_equal(a, b)
