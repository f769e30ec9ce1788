"""The safe file format against someone who can edit the file.

A tampered file is one edited with its checksums recomputed (a checksum is
not a signature): loading it must run no code, import nothing outside the
allow-list, and end in :class:`~skfindkit.io.CorruptFileError` or
:class:`~skfindkit.io.UntrustedTypeError` naming the file -- never another
exception, a crash or a hang. The loops over broken files run in a child
process (``_isolation.run_isolated``).
"""

import ast
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator

import skfindkit
from skfindkit import ExactIndex, ShardedIndex
from skfindkit import io as skio
from skfindkit.utils._persist import NativeBlob, seal_state

from .. import _safe_file_cases as cases
from .._isolation import run_isolated


# ------------------------------------------------------------ no code runs
class _WritesMarker:
    """Unpickling this object creates a file: what a pickle payload can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _forged(cls, state):
    """An object that :func:`skfindkit.io.save` writes as an instance of ``cls`` with ``state``."""
    forged = type("Forged", (BaseEstimator,), {
        "__getstate__": lambda self: state,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    })
    return forged()


@pytest.mark.parametrize("keep_shards", [False, True])
def test_tampered_sharded_index_file_runs_no_code(tmp_path, keep_shards):
    # the state of a fitted ShardedIndex, its native bytes replaced by a
    # pickle payload and its checksums recomputed with skfindkit's own helpers
    # (with or without its real shards beside them)
    marker = tmp_path / "payload-ran"
    X = np.random.RandomState(0).rand(20, 3)
    state = dict(ShardedIndex(ExactIndex(), 2).fit(X).__getstate__())
    state.pop("_checksums")
    shards = state.pop("shards_", None)
    state["_index_blob"] = NativeBlob("sharded", pickle.dumps(_WritesMarker(str(marker))))
    state = seal_state(state)
    if keep_shards and shards is not None:
        state["shards_"] = shards
    path = tmp_path / "tampered.skfk"
    skio.save(_forged(ShardedIndex, state), path)

    why = "never as bytes" if keep_shards else "shards or their ids are missing"
    with pytest.raises(skio.CorruptFileError, match=rf"tampered\.skfk.*{why}"):
        skio.load(path)
    assert not marker.exists()


_PICKLE_LOADS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
                 ("joblib", "load"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
                 ("dill", "load"), ("dill", "loads"), ("marshal", "load"), ("marshal", "loads")}

# The only places in skfindkit that may unpickle, each on a path the safe
# format never takes.
_ALLOWED_PICKLE_LOADS = {
    # `skfindkit` / `skfindkit serve` read a pickle/joblib pipeline only when
    # given --trust-pickle, after pipeline_file_kind named it a pickle
    "skfindkit/_app/pipeline_files.py": 1,
    # a parallel loader's worker process reads back the loader that this
    # process pickled for it a moment before (its own bytes, never a file's)
    "skfindkit/loaders/_shared.py": 1,
}


def _pickle_loads_in(tree):
    """Calls of a pickle-style loader in a module's AST (``mod.load``, or imported by name)."""
    aliases = {}  # local name -> (module, attribute) of imported loaders
    modules = {}  # local name -> module name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name] = alias.name.split(".")[-1]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = (node.module.split(".")[-1], alias.name)
                modules[alias.asname or alias.name] = alias.name
    found = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = (modules.get(func.value.id, func.value.id), func.attr)
        elif isinstance(func, ast.Name):
            name = aliases.get(func.id)
        else:
            continue
        found += name in _PICKLE_LOADS
    return found


def test_no_pickle_loads_outside_the_trusted_paths():
    root = Path(skfindkit.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        count = _pickle_loads_in(ast.parse(path.read_text(encoding="utf-8")))
        if count:
            found[path.relative_to(root.parent).as_posix()] = count
    assert found == _ALLOWED_PICKLE_LOADS


def test_the_guard_finds_pickle_loads_in_every_spelling():
    for source in ("import pickle\npickle.loads(b'')", "import pickle as p\np.load(f)",
                   "from pickle import loads\nloads(b'')", "import joblib\njoblib.load(f)",
                   "from joblib import load as l\nl(f)"):
        assert _pickle_loads_in(ast.parse(source)) == 1, source


# ----------------------------------------- sharded indexes are safe trees
def test_sharded_index_stores_its_shards_as_estimators(tmp_path):
    X = np.random.RandomState(0).rand(30, 4)
    index = ShardedIndex(ExactIndex(), 3, n_neighbors=4).fit(X)
    skio.save(index, tmp_path / "s.skfk")
    tree = cases.split((tmp_path / "s.skfk").read_bytes())[1]
    nodes = []
    from skfindkit.utils._safe_tree import walk

    walk(tree["root"], nodes)
    classes = [n["class"] for n in nodes if n.get("$") == "object"]
    assert classes.count("skfindkit.indexes._exact.ExactIndex") == 4  # template + 3 shards
    # no shard travels as bytes: the only native states are the shards' own
    # search matrices (arrays of the tree), one per fitted shard
    blobs = [n["state"] for n in nodes if n.get("class") == "skfindkit.utils._persist.NativeBlob"]
    assert len(blobs) == 3 and all(
        dict(b["items"])["kind"] == "exact" and dict(b["items"])["payload"]["$"] == "dict"
        for b in blobs)
    again = skio.load(tmp_path / "s.skfk")
    for a, b in zip(index.kneighbors(X[:5]), again.kneighbors(X[:5])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.partial_fit(X[:2]).kneighbors(X[:1])[1],
                                  index.partial_fit(X[:2]).kneighbors(X[:1])[1])


@pytest.mark.parametrize("edit", ["shard count", "shard ids", "shard features"])
def test_sharded_index_with_inconsistent_shards_is_refused(tmp_path, edit):
    X = np.random.RandomState(0).rand(30, 4)
    index = ShardedIndex(ExactIndex(), 3).fit(X)
    other = ShardedIndex(ExactIndex(), 3).fit(np.random.RandomState(1).rand(30, 5))
    state = dict(index.__getstate__())
    state.pop("_checksums")
    if edit == "shard count":
        state["shards_"] = state["shards_"][:2]
    elif edit == "shard ids":
        state["shard_ids_"] = [ids[::-1] for ids in state["shard_ids_"]]
    else:
        state["shards_"] = other.shards_
    path = tmp_path / "mixed.skfk"
    shards = state.pop("shards_")
    state = seal_state(state)
    state["shards_"] = shards
    skio.save(_forged(ShardedIndex, state), path)
    with pytest.raises(skio.CorruptFileError, match="mixed.skfk"):
        skio.load(path)


# -------------------------------------------------- no import before refusal
_SIDE_EFFECTS = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
class Thing:
    pass
def func():
    pass
"""


@pytest.mark.parametrize("kind", ["object", "function"])
@pytest.mark.parametrize("name", [
    "sklearn.utils.tests.test_validation.SomeClass",
    "sklearn.utils.tests.test_validation.test_check_array",
    "sklearn.experimental.enable_iterative_imputer.IterativeImputer",
    "sklearn.conftest.Thing",
    "os.system",
    "builtins.eval",
    "skfindkit_side_effects.Thing",
    "skfindkit_side_effects.func",
    "skfindkit.tests_side.Thing",
    "skfindkit.demo.main",
])
def test_names_outside_the_allow_list_are_refused_without_import(tmp_path, monkeypatch,
                                                                 name, kind):
    marker = tmp_path / "imported"
    (tmp_path / "skfindkit_side_effects.py").write_text(_SIDE_EFFECTS.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = name.rpartition(".")[0]
    imported_before = module in sys.modules  # os, builtins
    path = tmp_path / "named.skfk"
    skio.save(ExactIndex(), path)

    def rename(tree):
        if kind == "object":
            tree["root"]["class"] = name
        else:
            tree["root"] = {"$": "function", "name": name}

    cases.edited_tree_file(path, path, rename)
    with pytest.raises(skio.UntrustedTypeError, match=name.replace(".", r"\.")):
        skio.load(path)
    assert imported_before or module not in sys.modules
    assert not marker.exists()


def test_trusted_names_are_still_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "skfindkit_side_effects.py").write_text(_SIDE_EFFECTS.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "skfindkit_side_effects", raising=False)
    path = tmp_path / "named.skfk"
    skio.save(ExactIndex(), path)

    def rename(tree):
        tree["root"] = {"$": "function", "name": "skfindkit_side_effects.func"}

    cases.edited_tree_file(path, path, rename)
    func = skio.load(path, trusted=["skfindkit_side_effects.func"])  # the caller's choice
    assert marker.exists() and func.__name__ == "func"


# ------------------------------------------------------- one clear error
def test_every_byte_flip_truncation_and_appended_byte_is_a_named_corrupt_file(tmp_path):
    found = run_isolated(cases.byte_cases, str(tmp_path))
    assert set(found) == {"corrupt"}, {k: v[:5] for k, v in found.items()}


@pytest.mark.slow
def test_every_structural_edit_with_recomputed_checksums_is_refused_clearly(tmp_path):
    found = run_isolated(cases.tree_cases, str(tmp_path))
    assert set(found) <= {"corrupt", "untrusted", "loaded"}, {
        k: v[:5] for k, v in found.items() if k not in ("corrupt", "untrusted", "loaded")}
    # what still loads is a well-formed tree: another plain value as the whole
    # file, another (unique) id of an object, an empty dict or tuple (the state
    # of a scikit-learn estimator is not checked beyond its structure)
    valid = ("root: none", "root: string", "root: negative", "root: huge", "root: float",
             "root: list", "id: negative", "id: huge", "(dict) items: list",
             "(tuple) items: list")
    assert [c for c in found.get("loaded", ()) if not c.endswith(valid)] == []


def test_a_flipped_tree_byte_is_caught_by_the_checksum_before_parsing(tmp_path):
    path = cases.sample_file(str(tmp_path / "p.skfk"))
    data = bytearray(Path(path).read_bytes())
    data[skio._HEADER.size] ^= 0xFF  # the first byte of the JSON tree
    Path(path).write_bytes(bytes(data))
    with pytest.raises(skio.CorruptFileError, match=r"p\.skfk.*XXH3-128 check"):
        skio.load(path)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "t.skfk"
    skio.save(ExactIndex().fit(np.eye(3)), path)
    Path(path).write_bytes(Path(path).read_bytes()[:-40])
    with pytest.raises(skio.CorruptFileError, match=r"t\.skfk"):
        skio.load(path)


def test_corrupt_file_error_is_a_value_error_exported_by_io():
    assert issubclass(skio.CorruptFileError, ValueError)
    assert "CorruptFileError" in skio.__all__


def test_loaded_blocks_are_aligned_arrays(tmp_path):
    X = np.random.RandomState(0).rand(7, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = ExactIndex().fit(X)
    skio.save(index, tmp_path / "a.skfk")
    again = skio.load(tmp_path / "a.skfk")
    assert again._fit_X.ctypes.data % 64 == 0 and again._fit_X.flags.writeable
    np.testing.assert_array_equal(again._fit_X, index._fit_X)


@pytest.mark.slow
def test_the_command_refuses_a_tampered_file_in_one_line(tmp_path):
    from ..app.test_cli_commands import run

    marker = tmp_path / "payload-ran"
    X = np.random.RandomState(0).rand(20, 3)
    state = dict(ShardedIndex(ExactIndex(), 2).fit(X).__getstate__())
    state.pop("_checksums")
    state.pop("shards_")
    state["_index_blob"] = NativeBlob("sharded", pickle.dumps(_WritesMarker(str(marker))))
    sharded = tmp_path / "sharded.skfk"
    skio.save(_forged(ShardedIndex, seal_state(state)), sharded)
    named = tmp_path / "named.skfk"
    skio.save(ExactIndex(), named)
    cases.edited_tree_file(named, named, lambda tree: tree["root"].update(
        {"class": "sklearn.utils.tests.test_validation.SomeClass"}))
    for path, message in ((sharded, "ShardedIndex: "), (named, "not trusted")):
        proc = run("info", path)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Skipped" not in proc.stderr
    assert not marker.exists()


def test_each_loaded_array_owns_its_memory(tmp_path):
    # the native bytes, dropped once the native library read them, must not
    # stay alive behind the arrays the index keeps
    pytest.importorskip("hnswlib")
    from skfindkit import HNSWIndex

    X = np.random.RandomState(0).rand(300, 8)
    skio.save(HNSWIndex(random_state=0).fit(X), tmp_path / "h.skfk")
    again = skio.load(tmp_path / "h.skfk")
    for array in (again._fit_X, again._zero_rows):
        base = array if array.base is None else array.base
        assert base.nbytes <= array.nbytes + 64


def test_a_file_changed_after_its_checksum_was_checked_is_refused(tmp_path, monkeypatch):
    from skfindkit.utils import _safe_file

    path = tmp_path / "c.skfk"
    skio.save(ExactIndex().fit(np.random.RandomState(0).rand(10, 3)), path)
    checked_once = _safe_file.read_checked

    def then_changed(p, **kwargs):
        checked = checked_once(p, **kwargs)
        data = bytearray(Path(p).read_bytes())
        data[checked.start] ^= 0xFF  # the first data byte, after the check
        Path(p).write_bytes(bytes(data))
        return checked

    monkeypatch.setattr(skio, "read_checked", then_changed)
    with pytest.raises(skio.CorruptFileError, match=r"c\.skfk.*changed while it was read"):
        skio.load(path)


def test_every_public_skfindkit_estimator_and_sklearn_pipeline_loads_by_name():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skfindkit.utils._safe_tree import resolve

    public = [getattr(skfindkit, name) for name in dir(skfindkit) if not name.startswith("_")]
    estimators = [obj for obj in public if isinstance(obj, type) and issubclass(obj, BaseEstimator)]
    assert len(estimators) > 10
    for cls in [*estimators, Pipeline, FunctionTransformer, TfidfVectorizer]:
        name = f"{cls.__module__}.{cls.__qualname__}"
        assert resolve(name, set()) is cls, name


@pytest.mark.parametrize("values", [
    [np.str_("a"), np.str_("bb"), np.str_("c")],
    ["a", np.str_("bb"), np.int64(3)],
    [np.bytes_(b"x"), np.float32(1.5), None],
], ids=["numpy-str", "mixed", "bytes-float-none"])
def test_object_arrays_of_numpy_scalars_load_as_saved(values, tmp_path):
    """Keys held as numpy scalars in an object array: what saves must load, equal."""
    index = ExactIndex(n_neighbors=2).fit(np.random.RandomState(0).rand(3, 4))
    keys = np.empty(3, dtype=object)
    keys[:] = values
    index.item_keys_ = keys
    path = tmp_path / "keys.skfk"
    skio.save(index, path)
    loaded = skio.load(path).item_keys_
    assert list(loaded) == list(values)
    # numpy strings come back as Python strings (equal); other scalars keep their type
    assert [type(v) for v in loaded] == [str if isinstance(v, str) else type(v) for v in values]
    assert list(pickle.loads(pickle.dumps(index)).item_keys_) == list(values)
