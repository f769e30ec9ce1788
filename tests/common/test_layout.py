"""``tests/`` mirrors ``skfindkit/``: every module has an obvious test file.

A module ``skfindkit/PKG/_name.py`` is tested in ``tests/PKG/test_name.py`` (or a
file starting so, e.g. ``test_name_more.py``; ``skfindkit/_app/`` and the CLI, dask and
demo modules in ``tests/app/``); a module tested elsewhere (a
backend through the shared contract of its family, a helper through its user)
is listed in ``TESTED_IN`` with the file that tests it. A module that defines
a public estimator (a new backend, loader or extractor) is tested by the
contract suite over the estimator registry (``tests/common/test_estimators.py``
and the family's contract tests), so adding one needs no entry here. A new
module with neither fails here, and so does a listed file that no longer exists.
"""

import inspect
from pathlib import Path

from skfindkit.utils.discovery import all_estimators

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "skfindkit"

TESTED_IN = {
    "_app/arguments.py": "tests/app/test_cli_commands.py",
    "_app/items.py": "tests/app/test_failures.py",
    "_cli_files.py": "tests/app/test_cli_commands.py",
    "_cli_io.py": "tests/app/test_cli_loaders.py",
    "_cli_output.py": "tests/app/test_cli_commands.py",
    "_keys.py": "tests/test_upsert.py",
    "demo.py": "tests/app/test_cli.py",
    "plotting.py": "tests/app/test_cli_commands.py",
    "extractors/_base.py": "tests/extractors/test_contract.py",
    "extractors/_layers.py": "tests/extractors/test_keras.py",
    "extractors/_gluon.py": "tests/extractors/test_mxnet_gluon.py",
    "extractors/_mxnet_common.py": "tests/extractors/test_mxnet.py",
    "extractors/_mxnet_import.py": "tests/extractors/test_mxnet.py",
    "indexes/_ann_utils.py": "tests/indexes/test_ann.py",
    "indexes/_base.py": "tests/common/test_estimators.py",
    "indexes/_graph.py": "tests/common/test_estimators.py",
    "indexes/_bm25.py": "tests/indexes/test_text_indexes.py",
    "indexes/_brute.py": "tests/indexes/test_exact_oracle.py",
    "indexes/_brute_matrix.py": "tests/indexes/test_exact_oracle.py",
    "indexes/_distances.py": "tests/indexes/test_exact_oracle.py",
    "indexes/_fp_bounds.py": "tests/indexes/test_exact_oracle.py",
    "indexes/_sparse_select.py": "tests/indexes/test_exact_oracle_sparse.py",
    "indexes/_faiss_checks.py": "tests/indexes/test_native_fuzz.py",
    "indexes/_milvus_store.py": "tests/indexes/test_milvus.py",
    "indexes/_pickling.py": "tests/indexes/test_tampered_state.py",
    "indexes/_prepared.py": "tests/indexes/test_sharded.py",
    "indexes/_shards.py": "tests/indexes/test_sharded.py",
    "indexes/_query.py": "tests/indexes/test_properties.py",
    "indexes/_self.py": "tests/indexes/test_properties.py",
    "indexes/_removal.py": "tests/indexes/test_remove.py",
    "indexes/_fusion_scores.py": "tests/indexes/test_fusion.py",
    "loaders/_audio_io.py": "tests/loaders/test_audio.py",
    "loaders/_essentia.py": "tests/loaders/test_audio.py",
    "loaders/_base.py": "tests/loaders/test_contract.py",
    "loaders/_pooling.py": "tests/loaders/test_contract.py",
    "loaders/_shared.py": "tests/loaders/test_contract.py",
    "loaders/_descriptors.py": "tests/app/test_pipeline_files.py",
    "metrics/_qrels.py": "tests/metrics/test_judged.py",
    "serve/_app.py": "tests/app/test_serve_api.py",
    "serve/_routes.py": "tests/app/test_serve_api.py",
    "serve/_service.py": "tests/app/test_serve_api.py",
    "serve/_cli.py": "tests/app/test_serve_api.py",
    "serve/_auth.py": "tests/app/test_serve_access.py",
    "serve/_items.py": "tests/app/test_serve_access.py",
    "serve/_json.py": "tests/app/test_serve_request_path.py",
    "serve/_prefork.py": "tests/app/test_serve_processes.py",
    "serve/_requests.py": "tests/app/test_serve_hostile.py",
    "serve/_lifecycle.py": "tests/app/test_serve_lifecycle.py",
    "serve/_limits.py": "tests/app/test_serve_limits.py",
    "utils/_mapped.py": "tests/utils/test_mmap.py",
    "utils/_native_bytes.py": "tests/indexes/test_native_fuzz.py",
    "utils/_optional.py": "tests/common/test_registry.py",
    "utils/discovery.py": "tests/common/test_registry.py",
    "utils/_progress.py": "tests/app/test_first_hour.py",
    "utils/_safe_tree.py": "tests/utils/test_safe_file.py",
    "utils/_persist.py": "tests/test_io.py",
    "utils/_pipeline.py": "tests/test_search.py",
    "utils/_sklearn_compat.py": "tests/common/test_imports.py",
}


def _modules():
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py")


def _by_name(module):
    """Test files named after ``module`` in its mirrored folder.

    ``skfindkit/_app/`` is mirrored by ``tests/app/``; the top-level modules of the
    application (the CLI, dask, the demo) are tested there too, the others in ``tests/``.
    """
    path = Path(module)
    stem = path.stem.lstrip("_")
    if str(path.parent) == ".":
        folders = [ROOT / "tests", ROOT / "tests" / "app"]
    else:
        folders = [ROOT / "tests" / str(path.parent).lstrip("_")]
    return sorted(f for folder in folders for f in folder.glob(f"test_{stem}*.py"))


def _estimator_modules():
    """Modules defining a public estimator: the registry's contract suite tests them."""
    return {str(Path(inspect.getfile(cls)).relative_to(PACKAGE)) for _, cls in all_estimators()}


def test_every_module_has_an_obvious_test_file():
    covered = _estimator_modules()
    missing = [m for m in _modules()
               if m not in TESTED_IN and m not in covered and not _by_name(m)]
    assert not missing, (
        "add tests/<package>/test_<name>.py for these modules, or name the file that "
        f"tests them in TESTED_IN: {missing}")


def test_the_listed_test_files_exist_and_the_modules_too():
    modules = set(_modules())
    gone = [m for m in TESTED_IN if m not in modules]
    absent = [f for f in TESTED_IN.values() if not (ROOT / f).is_file()]
    assert not gone and not absent, f"stale entries: modules {gone}, test files {absent}"
