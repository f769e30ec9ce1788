"""Object trees <-> JSON + raw blocks for :mod:`skfindkit.io` (no pickle, no code on load).

:class:`Encoder` turns estimators (their ``__getstate__`` dicts), containers,
numbers, strings, numpy arrays/scalars/dtypes, bytes and ``RandomState`` into a
JSON-able tree whose arrays and bytes are listed as raw blocks (views, no
copies). :class:`Decoder` builds the tree back: only classes resolved by
:func:`resolve` (skfindkit and scikit-learn estimators, or classes the caller
trusts) are built, with ``cls.__new__`` and ``__setstate__``; nothing else in a
file can name code. A function is stored by its qualified name and looked up
again by name on load (never code from the file): only functions (and
non-estimator classes) that skfindkit marks with :func:`loadable`, or that the
caller trusts, are accepted. Not every skfindkit function: a pipeline calls a
``FunctionTransformer``'s function with arguments from the file (``kw_args``),
so a file must not be able to pick, e.g., :func:`skfindkit.io.save`.

Names are checked as strings against an allow-list of modules
(:func:`allowed_module`) before anything is imported: a file naming any other
module (a test module, ``sklearn.experimental``, ``os``, a module of the
caller's path) is refused without importing it, since importing a module runs
its code.
"""

import importlib
import types

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from ._persist import CorruptFileError, NativeBlob

__all__ = ["Encoder", "Decoder", "allowed_module", "loadable", "qualified", "resolve",
           "resolve_function", "resolve_names", "walk", "checked_dtype", "MAX_DEPTH"]

_LOADABLE = "__skfindkit_loadable__"

#: skfindkit's modules that hold estimators and loadable functions.
_SKFINDKIT_PACKAGES = frozenset({"indexes", "loaders", "extractors"})
_SKFINDKIT_MODULES = frozenset({"skfindkit.features", "skfindkit.text",
                                "skfindkit.utils._persist"})
#: scikit-learn's estimator packages (``sklearn.<package>`` and its modules).
_SKLEARN_PACKAGES = frozenset({
    "calibration", "cluster", "compose", "covariance", "cross_decomposition",
    "decomposition", "discriminant_analysis", "dummy", "ensemble", "feature_extraction",
    "feature_selection", "frozen", "gaussian_process", "impute", "isotonic",
    "kernel_approximation", "kernel_ridge", "linear_model", "manifold", "mixture",
    "model_selection", "multiclass", "multioutput", "naive_bayes", "neighbors",
    "neural_network", "pipeline", "preprocessing", "random_projection",
    "semi_supervised", "svm", "tree",
})

#: Deepest nesting of a file's object tree (a pipeline of pipelines of
#: estimators is a few dozen levels): deeper is refused before any recursion.
MAX_DEPTH = 200


def allowed_module(module):
    """Whether a file may name ``module`` without the caller trusting it (a string check).

    skfindkit's estimator modules (``skfindkit.indexes``, ``.loaders``,
    ``.extractors``, ``skfindkit.features``, ``skfindkit.text``,
    ``skfindkit.utils._persist``) and
    scikit-learn's estimator packages; never a test module, ``conftest`` or
    ``sklearn.experimental`` (modules whose import has side effects).
    """
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts) or any(
        part in ("tests", "conftest") or part.lstrip("_").startswith("test") for part in parts
    ):
        return False
    if parts[0] == "skfindkit":
        return module in _SKFINDKIT_MODULES or (
            len(parts) >= 3 and parts[1] in _SKFINDKIT_PACKAGES)
    return parts[0] == "sklearn" and len(parts) >= 2 and parts[1] in _SKLEARN_PACKAGES


def _import_named(name, trusted):
    """The object called ``name`` ("module.qualname"), imported only from an allowed
    module or where the caller trusts ``name`` itself; None otherwise."""
    module, _, qualname = name.rpartition(".")
    if not qualname.isidentifier() or not (name in trusted or allowed_module(module)):
        return None
    try:
        return getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError, ValueError):
        return None


def loadable(obj=None, *, former=()):
    """Mark a skfindkit module-level function, or a plain class, as safe to name in a file.

    ``former``: the qualified names it had in earlier releases (files written
    then name it so); used as ``@loadable(former=("skfindkit.old.Name",))``.
    """
    if obj is None:
        return lambda target: loadable(target, former=former)
    setattr(obj, _LOADABLE, qualified(obj))
    obj.__skfindkit_former_names__ = tuple(former)
    return obj


def _known_as(obj, name):
    """Whether ``name`` is ``obj``'s qualified name, or one it had before (see ``loadable``)."""
    return qualified(obj) == name or (
        _is_loadable(obj) and name in obj.__dict__.get("__skfindkit_former_names__", ()))


def _is_loadable(obj):
    # the mark names the object itself: a subclass or a wrapper does not inherit it
    return getattr(obj, _LOADABLE, None) == qualified(obj) and qualified(obj).startswith(
        "skfindkit.")


def qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


class Encoder:
    """Object tree -> JSON-able tree + list of raw blocks (views, no copies)."""

    def __init__(self, trusted=()):
        self.trusted = trusted  # qualified names of functions/classes the caller trusts
        self.blobs = []
        self.memo = {}  # id(obj) -> ("ref id" or None while being encoded)
        self.keep = []  # keep encoded objects alive so that ids stay unique

    def _blob(self, view):
        self.blobs.append(view)
        return len(self.blobs) - 1

    def _memo(self, value, make, where):
        key = id(value)
        if key in self.memo:
            if self.memo[key] is None:
                raise TypeError(f"skfindkit.io.save: {where} refers to itself (a cycle).")
            return {"$": "ref", "id": self.memo[key]}
        self.memo[key] = None
        self.keep.append(value)
        ident = len(self.keep)  # reserved before the children: unique when they nest
        node = make()
        self.memo[key] = node["id"] = ident
        return node

    def encode(self, value, where="obj"):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and type(value) is int:
            return value
        if type(value) is float:
            return value if np.isfinite(value) else {"$": "float", "v": repr(value)}
        if type(value) is list:
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is tuple:
            return {"$": "tuple", "items": [self.encode(v, f"{where}[{i}]")
                                            for i, v in enumerate(value)]}
        if type(value) is dict:
            return {"$": "dict", "items": [[self.encode(k, f"{where} key"),
                                            self.encode(v, f"{where}[{k!r}]")]
                                           for k, v in value.items()]}
        if type(value) is np.ndarray:
            return self._memo(value, lambda: self._array(value, where), where)
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return {"$": "scalar", "dtype": value.dtype.str, "hex": value.tobytes().hex()}
        if type(value) in (bytes, bytearray):
            return {"$": type(value).__name__, "blob": self._blob(memoryview(value))}
        if isinstance(value, np.dtype) and not value.hasobject:
            return {"$": "dtype", "v": value.str}
        if isinstance(value, type) and issubclass(value, np.generic) and value is not np.object_:
            return {"$": "nptype", "v": np.dtype(value).str}
        if type(value) is np.random.RandomState:
            return {"$": "RandomState", "state": self.encode(value.get_state(), where)}
        if isinstance(value, (BaseEstimator, NativeBlob)) or self._named(type(value)):
            return self._memo(value, lambda: self._object(value, where), where)
        if isinstance(value, types.FunctionType):
            return {"$": "function", "name": self._function_name(value, where)}
        if sp.issparse(value) and value.format in ("csr", "csc") and not value.dtype.hasobject:
            return {"$": "sparse", "format": value.format, "shape": list(value.shape),
                    **{part: self.encode(np.asarray(getattr(value, part)), f"{where}.{part}")
                       for part in ("data", "indices", "indptr")}}
        raise TypeError(
            f"skfindkit.io.save: cannot save {where}, of type {qualified(type(value))}: "
            "the safe format holds estimators, arrays, numbers, strings and containers, "
            "not functions or arbitrary objects (they could run code when loaded). Save "
            "it with joblib.dump instead, and load that file only from trusted sources."
        )

    def _named(self, obj):
        """Whether ``obj`` can be stored by name: marked loadable or trusted, and importable."""
        name = qualified(obj)
        if not (_is_loadable(obj) or name in self.trusted):
            return False
        module, _, qualname = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), qualname) is obj
        except (ImportError, AttributeError, ValueError):
            return False

    def _function_name(self, func, where):
        if self._named(func):
            return qualified(func)
        raise TypeError(
            f"skfindkit.io.save: cannot save {where}, the function {qualified(func)}: the "
            "safe format stores only skfindkit's own pipeline functions (and those passed "
            "as save(..., trusted=[...])) by name; a lambda, a nested or another package's "
            "function could run code when loaded. Save it with joblib.dump instead, and "
            "load that file only from trusted sources."
        )

    def _array(self, value, where):
        if value.dtype.hasobject:
            return {"$": "objarray", "shape": list(value.shape),
                    "items": [self.encode(v, f"{where}[...]") for v in value.ravel().tolist()]}
        data = np.ascontiguousarray(value)
        return {"$": "array", "dtype": data.dtype.str, "shape": list(data.shape),
                "blob": self._blob(data.reshape(-1).view(np.uint8))}

    def _object(self, value, where):
        state = value.__getstate__()
        if not isinstance(state, dict):
            raise TypeError(f"skfindkit.io.save: {where}: the state of "
                            f"{qualified(type(value))} is not a dict.")
        return {"$": "object", "class": qualified(type(value)),
                "state": self.encode(state, f"{where}.{type(value).__name__}")}


def walk(node, found, max_depth=MAX_DEPTH):
    """Collect every tagged node (dict) of a JSON tree; refuse a tree nested too deep.

    Raises
    ------
    CorruptFileError
        If the tree is nested more than ``max_depth`` levels.
    """
    stack = [(node, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise CorruptFileError(f"the object tree is nested more than {max_depth} levels deep")
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, dict):
            found.append(node)
            stack.extend((v, depth + 1) for k, v in node.items() if k != "$")


def resolve(name, trusted):
    """The class called ``name`` if it is trusted, else None.

    Nothing is imported unless the module is allowed (:func:`allowed_module`)
    or the caller trusts ``name``.
    """
    cls = _import_named(name, trusted)
    if not isinstance(cls, type):
        return None
    if name in trusted:
        return cls
    ok = _known_as(cls, name) and (issubclass(cls, BaseEstimator) or cls is NativeBlob
                                   or _is_loadable(cls))
    return cls if ok else None


def resolve_function(name, trusted):
    """The function called ``name`` if skfindkit marks it loadable or it is trusted, else None."""
    if not (name in trusted or name.startswith("skfindkit.")):
        return None
    func = _import_named(name, trusted)
    ok = isinstance(func, types.FunctionType) and qualified(func) == name and (
        name in trusted or _is_loadable(func))
    return func if ok else None


def resolve_names(nodes, trusted):
    """Resolve every class and function named by the tagged ``nodes`` of a tree.

    Returns ``(classes, functions, refused)``: dicts name -> object, and the
    sorted names that are not trusted (nothing of their modules imported).
    """
    names = {"object": set(), "function": set()}
    for node in nodes:
        tag = node.get("$")
        if tag in names:
            names[tag].add(_field(node, "class" if tag == "object" else "name", str))
    classes = {name: resolve(name, trusted) for name in sorted(names["object"])}
    functions = {name: resolve_function(name, trusted) for name in sorted(names["function"])}
    refused = [name for name, found in [*classes.items(), *functions.items()] if found is None]
    return classes, functions, refused


def _field(node, key, kind):
    """``node[key]``, which must be of type ``kind`` (``int``: a true int, not a bool)."""
    value = node.get(key)
    if type(value) is not kind:
        raise CorruptFileError(
            f"a {node.get('$')!r} node's {key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


class Decoder:
    """JSON tree + blocks -> objects, every field's type checked as it is read.

    ``blobs``: the file's blocks (arrays where an array node names them);
    ``classes`` and ``functions``: every name of the tree, already resolved.
    """

    def __init__(self, blobs, classes, functions=None):
        self.blobs, self.classes, self.memo = blobs, classes, {}
        self.functions = functions or {}

    def _remember(self, node, value):
        ident = _field(node, "id", int)
        if ident in self.memo:
            raise CorruptFileError(f"two objects of the tree have the id {ident}")
        self.memo[ident] = value

    def _blob(self, node):
        blob = _field(node, "blob", int)
        if not 0 <= blob < len(self.blobs):
            raise CorruptFileError(f"a node names block {blob}, not one of the file's")
        return self.blobs[blob]

    def decode(self, node):
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        tag = _field(node, "$", str)
        if tag == "ref":
            ident = _field(node, "id", int)
            if ident not in self.memo:
                raise CorruptFileError(f"a reference to id {ident}, which comes before no object")
            return self.memo[ident]
        if tag == "float":
            return float(_field(node, "v", str))
        if tag == "tuple":
            return tuple(self.decode(v) for v in _field(node, "items", list))
        if tag == "dict":
            items = _field(node, "items", list)
            if not all(type(item) is list and len(item) == 2 for item in items):
                raise CorruptFileError("a dict's items are not [key, value] pairs")
            return {self.decode(k): self.decode(v) for k, v in items}
        if tag == "array":
            value = self._blob(node)
            self._remember(node, value)
            return value
        if tag == "objarray":
            items = _field(node, "items", list)
            value = np.empty(len(items), dtype=object)
            value[:] = [self.decode(v) for v in items]
            value = value.reshape(_field(node, "shape", list))
            self._remember(node, value)
            return value
        if tag == "sparse":
            make = sp.csr_matrix if _field(node, "format", str) == "csr" else sp.csc_matrix
            try:
                value = make((self.decode(node["data"]), self.decode(node["indices"]),
                              self.decode(node["indptr"])), shape=tuple(node["shape"]))
                value.check_format(full_check=True)  # indices in range before any use
            except (ValueError, TypeError, IndexError) as exc:
                raise CorruptFileError(f"a sparse matrix is inconsistent: {exc}") from exc
            return value
        if tag == "scalar":
            dtype = checked_dtype(node.get("dtype"))
            data = bytes.fromhex(_field(node, "hex", str))
            if len(data) != dtype.itemsize or not dtype.itemsize:
                raise CorruptFileError(f"a {dtype} scalar of {len(data)} bytes")
            return np.frombuffer(data, dtype=dtype)[0]
        if tag in ("bytes", "bytearray"):
            return (bytes if tag == "bytes" else bytearray)(self._blob(node))
        if tag in ("dtype", "nptype"):
            dtype = checked_dtype(node.get("v"))
            return dtype if tag == "dtype" else dtype.type
        if tag == "function":
            return self.functions[_field(node, "name", str)]
        if tag == "RandomState":
            rs = np.random.RandomState()
            rs.set_state(self.decode(node["state"]))
            return rs
        if tag == "object":
            cls = self.classes[_field(node, "class", str)]
            obj = cls.__new__(cls)
            self._remember(node, obj)  # before its state: shared references
            state = self.decode(node.get("state"))
            if type(state) is not dict:
                raise CorruptFileError(f"the state of a {cls.__name__} is not a dict")
            if hasattr(obj, "__setstate__"):
                obj.__setstate__(state)
            else:
                obj.__dict__.update(state)
            _check_params(obj)
            return obj
        raise CorruptFileError(f"unknown node {tag!r}")


def _check_params(obj):
    """An estimator's parameters as its own validation accepts them (a file may say
    ``n_neighbors=2.5`` or a pipeline of no steps: refused here, not at first use)."""
    validate = getattr(obj, "_validate_params", None)
    if validate is None or not hasattr(obj, "get_params") or not hasattr(
            type(obj), "_parameter_constraints"):
        return  # an estimator without declared constraints: nothing to check
    try:
        validate()
        steps = getattr(obj, "steps", None) if hasattr(obj, "_validate_steps") else None
        if steps is not None and not (  # Pipeline: a non-empty list of (name, step) pairs
                steps and all(isinstance(step, (tuple, list)) and len(step) == 2
                              and isinstance(step[0], str) for step in steps)):
            raise ValueError(f"steps must be (name, estimator) pairs, not {steps!r:.80}")
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptFileError(
            f"the parameters of a {type(obj).__name__} are invalid: {exc}") from exc


def checked_dtype(text):
    """The numpy dtype named ``text``; object dtypes are refused."""
    if not isinstance(text, str):
        raise CorruptFileError(f"a dtype is named by a {type(text).__name__}, not a string")
    dtype = np.dtype(text)
    if dtype.hasobject:
        raise CorruptFileError("an array of Python objects cannot come from a blob")
    return dtype
