"""Saving and loading skfindkit estimators and pipelines without running code.

Loading a pickle or joblib file runs whatever code the file says: only ever
``joblib.load`` a file you trust (that you wrote yourself). :func:`save` and
:func:`load` use another format, which **executes no code on load**:

- the object tree (skfindkit estimators, scikit-learn estimators and
  ``Pipeline``\\ s of them, keys attached with :func:`skfindkit.attach_keys`)
  is stored as JSON naming each object's class and its state;
- arrays and native index/model bytes follow as raw, 64-byte aligned blocks,
  written straight from memory and read straight into their final arrays (no
  second copy);
- one XXH3-128 checksum over the whole file is checked before anything is built, and
  every skfindkit estimator checks its own fitted state again (its data,
  labels, keys, dimensions, parameters and native bytes) before a native
  library sees a byte;
- :func:`load` builds only classes of skfindkit and scikit-learn estimators
  (and those listed in ``trusted``), by setting their attributes: no
  ``__reduce__``, no code from the file. Functions (a ``FunctionTransformer``'s
  ``func``, the descriptors of ``skfindkit.features``) are stored by qualified
  name and imported again by name: only skfindkit's own pipeline functions
  (marked as such, e.g. ``skfindkit.features._dense``) and those listed in
  ``trusted``. A file naming any other class or function is refused, before
  anything is built, with a :class:`UntrustedTypeError` listing them.

:func:`save` refuses what this format cannot hold (a lambda, a nested function
or another package's function as a ``FunctionVectorLoader``'s ``func`` or an
extractor's ``preprocess`` -- unless listed in ``trusted`` --, a gensim model,
arbitrary objects): use ``joblib.dump`` for those, and load them only from
trusted sources (pickles run code). The ``skfindkit`` command and
``skfindkit serve`` write and read this format by default. The native libraries (annoy, nmslib, hnswlib, faiss, Keras, MXNet)
read the bytes they wrote themselves; a file crafted to pass the checksums
still reaches their loaders, which are not hardened against hostile input
(Keras loads with ``safe_mode``).

Every file skfindkit writes goes through :func:`atomic_write`: a temporary file
in the same folder, flushed to disk (``fsync``) and renamed over the target,
so an interrupted write never replaces a good file with half a file. The
temporary file is removed when the write fails or is interrupted
(``KeyboardInterrupt``); a process killed outright (SIGKILL, power loss)
cannot remove it, so the next write of the same path removes the temporary
files that dead processes left for that path.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from skfindkit import ExactIndex, io
>>> index = ExactIndex(n_neighbors=1).fit(np.eye(3))
>>> path = os.path.join(tempfile.mkdtemp(), "index.skfk")
>>> io.save(index, path)
>>> io.load(path).kneighbors([[0.0, 1.0, 0.0]], return_distance=False)
array([[1]])
"""

import json
import os
import re
import struct
import tempfile
from contextlib import contextmanager

import numpy as np

from .utils._persist import CHECKSUM_NAME, CorruptFileError, CorruptIndexError, new_hash
from .utils._safe_tree import (Decoder, Encoder, checked_dtype, qualified, resolve,
                               resolve_function, walk)

__all__ = [
    "save",
    "load",
    "atomic_write",
    "file_kind",
    "CorruptFileError",
    "CorruptIndexError",
    "UntrustedTypeError",
]

MAGIC = b"SKFKSAFE"
VERSION = 2  # 2: XXH3-128 checksums (1: BLAKE3)
_HEADER = struct.Struct("<8sIIQ")  # magic, version, reserved, length of the JSON tree
_ALIGN = 64
_DIGEST = len(new_hash().digest())
_CHUNK = 1 << 24  # bytes hashed/written per call (bounded temporaries)


class UntrustedTypeError(TypeError):
    """A saved file names classes that :func:`load` was not told to trust."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: existence check, nothing is sent
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _remove_stale_temporaries(folder, name):
    """Remove the temporary files of ``name`` left by killed writers (POSIX).

    Only names :func:`atomic_write` gives (``.<name>.<pid>.<random>.tmp``)
    whose process no longer exists are removed; a live writer's file, or any
    other file, is left alone.
    """
    if os.name != "posix":  # os.kill(pid, 0) is no existence check elsewhere
        return
    ours = re.compile(re.escape(f".{name}.") + r"(\d+)\.[A-Za-z0-9_]+\.tmp\Z")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        found = ours.match(entry)
        if found is None or _pid_alive(int(found.group(1))):
            continue
        try:
            os.unlink(os.path.join(folder, entry))
        except OSError:  # removed meanwhile, or not ours to remove
            pass


@contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Write a file all at once or not at all.

    Yields a file object on a temporary file in the folder of ``path``; when
    the block ends without error the data is flushed to disk (``fsync``) and
    the file renamed over ``path`` (``os.replace``, atomic on POSIX and
    Windows). On an error (or a ``KeyboardInterrupt``) ``path`` keeps its old
    content and the temporary file, ``.<name>.<pid>.<random>.tmp`` in the
    same folder, is removed. A process killed outright leaves its temporary
    file: the next write of ``path`` removes those of processes that no
    longer exist (on POSIX).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    mode : {"wb", "w", "wt"}, default="wb"
        Binary or text mode.
    **open_kwargs
        Passed to :func:`open` (e.g. ``encoding="utf-8"`` in text mode).

    Yields
    ------
    file : file object
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"mode: expected 'wb', 'w' or 'wt', got {mode!r}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    _remove_stale_temporaries(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _names(objects):
    return {o if isinstance(o, str) else qualified(o) for o in (objects or ())}


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


def _write_piece(fh, piece):
    fh.write(piece)


def save(obj, path, *, trusted=None):
    """Save an estimator or pipeline in skfindkit's safe format (atomically).

    Parameters
    ----------
    obj : estimator or Pipeline
        skfindkit and scikit-learn estimators, ``Pipeline``\\ s of them, fitted
        or not (with keys attached by :func:`skfindkit.attach_keys`).
    path : str or os.PathLike
        File to write (replaced atomically; ``.skfk`` is a good suffix).
    trusted : list of str or callable, default=None
        Module-level functions or classes of your own to store by name (as
        ``"module.name"`` or the object); :func:`load` needs them in its own
        ``trusted`` too.

    Raises
    ------
    TypeError
        If ``obj`` holds something the format cannot hold without running code
        at load (a function, an arbitrary object): the message names it.
    """
    encoder = Encoder(_names(trusted))
    root = encoder.encode(obj)
    offsets, pos = [], 0
    for view in encoder.blobs:
        offsets.append([pos, view.nbytes])
        pos = _aligned(pos + view.nbytes)
    tree = json.dumps({"root": root, "blobs": offsets}, separators=(",", ":")).encode("utf-8")
    head = _HEADER.pack(MAGIC, VERSION, 0, len(tree))
    digest = new_hash()
    with atomic_write(path) as fh:
        def write(data):
            data = memoryview(data).cast("B")
            for start in range(0, len(data), _CHUNK):
                piece = data[start:start + _CHUNK]
                digest.update(piece)
                _write_piece(fh, piece)

        start = _aligned(len(head) + len(tree))
        write(head + tree + bytes(start - len(head) - len(tree)))
        for view, (offset, size) in zip(encoder.blobs, offsets):
            write(view)
            write(bytes(_aligned(offset + size) - offset - size))
        fh.write(digest.digest())


# ---------------------------------------------------------------- decoding
def file_kind(path):
    """``"safe"`` (written by :func:`save`), ``"pickle"`` (pickle/joblib) or ``None``.

    Reads the first bytes only; nothing is unpickled.
    """
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC))
    if head == MAGIC:
        return "safe"
    return "pickle" if _is_pickle(head) else None


def _is_pickle(head):
    # a pickle, or the magic bytes of joblib's compressors (zlib, gzip, bz2, xz, lzma, lz4)
    compressed = (b"x\x01", b"x^", b"x\x9c", b"x\xda", b"\x1f\x8b", b"BZ", b"\xfd7",
                  b"\x5d\x00", b"\x04\x22")
    return head[:1] == b"\x80" or head[:2] in compressed


def _not_safe_file_error(path, head):
    if _is_pickle(head):
        kind = "a pickle/joblib file, which runs code when loaded"
        hint = " If you trust it (you wrote it yourself), load it with joblib.load."
    elif head[:2] == b"PK":
        kind = "a zip archive (e.g. a skops or Keras file)"
        hint = ""
    else:
        kind = "not a file written by skfindkit.io.save"
        hint = ""
    return CorruptFileError(
        f"{os.fspath(path)!r} is not an skfindkit safe file: it is {kind}.{hint}"
    )


def load(path, *, trusted=None):
    """Load an estimator or pipeline written by :func:`save`; runs no code from the file.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save`.
    trusted : list of str, type or function, default=None
        Classes and functions to accept besides skfindkit's and scikit-learn's
        estimators and skfindkit's pipeline functions, as
        ``"module.name"`` or the object itself (e.g. your own estimator).
        Classes are built by setting their attributes, without calling
        ``__init__``; functions are imported by name.

    Returns
    -------
    obj : the saved estimator or pipeline

    Raises
    ------
    CorruptFileError
        If the file is not an skfindkit safe file (a pickle/joblib file is
        named as such and never unpickled), is truncated or altered (checksum),
        or its content is malformed; :class:`CorruptIndexError` for a
        corrupted index.
    UntrustedTypeError
        If the file names classes or functions that are not trusted (listed).
    """
    trusted = _names(trusted)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size or head[:len(MAGIC)] != MAGIC:
            raise _not_safe_file_error(path, head)
        _, version, _, tree_len = _HEADER.unpack(head)
        if version != VERSION:
            raise CorruptFileError(
                f"{os.fspath(path)!r} has safe-format version {version}; this skfindkit "
                f"reads version {VERSION}."
            )
        digest = new_hash(head)
        start = _aligned(_HEADER.size + tree_len)
        if start + _DIGEST > size:
            raise CorruptFileError(f"{os.fspath(path)!r} is truncated.")
        text = fh.read(start - _HEADER.size)
        digest.update(text)
        try:
            tree = json.loads(text[:tree_len].decode("utf-8"))
            root, table = tree["root"], tree["blobs"]
            blobs = _read_blobs(fh, digest, root, table, size - start - _DIGEST)
        except CorruptFileError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
            raise CorruptFileError(
                f"{os.fspath(path)!r} is corrupted or malformed ({type(exc).__name__}: {exc})."
            ) from exc
        if fh.read(_DIGEST + 1) != digest.digest():
            raise CorruptFileError(
                f"{os.fspath(path)!r} failed its {CHECKSUM_NAME} check: the file is truncated, "
                "altered or corrupted. Nothing was loaded."
            )
    nodes = []
    walk(root, nodes)
    names = sorted({n["class"] for n in nodes if n.get("$") == "object"})
    classes = {name: resolve(str(name), trusted) for name in names}
    names = sorted({n["name"] for n in nodes if n.get("$") == "function"})
    functions = {name: resolve_function(str(name), trusted) for name in names}
    untrusted = [name for name, found in [*classes.items(), *functions.items()] if found is None]
    if untrusted:
        raise UntrustedTypeError(
            f"{os.fspath(path)!r} names classes or functions that are not trusted: "
            f"{untrusted}. Nothing was loaded. If you trust this file, pass them as "
            "load(path, trusted=[...])."
        )
    try:
        return Decoder(blobs, classes, functions).decode(root)
    except (CorruptFileError, UntrustedTypeError):
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise CorruptFileError(
            f"{os.fspath(path)!r} is malformed ({type(exc).__name__}: {exc})."
        ) from exc


def _read_blobs(fh, digest, root, table, data_size):
    """Read every block straight into its final array, hashing it on the way."""
    nodes = []
    walk(root, nodes)
    specs = {}  # blob id -> (dtype, shape) of the array it becomes
    for node in nodes:
        if node.get("$") == "array":
            shape = tuple(int(d) for d in node["shape"])
            specs[node["blob"]] = (checked_dtype(node["dtype"]), shape)
    blobs, pos = [], 0
    for i, (offset, nbytes) in enumerate(table):
        if offset != pos or nbytes < 0 or offset + nbytes > data_size:
            raise CorruptFileError("the block table does not match the file size")
        dtype, shape = specs.get(i, (np.dtype(np.uint8), (nbytes,)))
        if any(d < 0 for d in shape) or int(np.prod(shape)) * dtype.itemsize != nbytes:
            raise CorruptFileError(f"block {i} has {nbytes} bytes, not an array of {shape}")
        out = np.empty(shape, dtype=dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        for start in range(0, nbytes, _CHUNK):
            piece = view[start:start + _CHUNK]
            if fh.readinto(piece) != len(piece):
                raise CorruptFileError("the file is truncated")
            digest.update(piece)
        padding = fh.read(_aligned(offset + nbytes) - offset - nbytes)
        digest.update(padding)
        pos = offset + nbytes + len(padding)
        blobs.append(out)
    if pos != data_size:
        raise CorruptFileError("the file is truncated or has data after its last block")
    return blobs
