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
- one XXH3-128 checksum over the whole file is checked before anything is
  parsed, and every skfindkit estimator checks its own fitted state again
  (its data, labels, keys, dimensions, parameters and native bytes) before a
  native library sees a byte; an index made of indexes
  (:class:`~skfindkit.ShardedIndex`) stores them as estimators of the tree,
  never as bytes;
- :func:`load` builds only classes of skfindkit and scikit-learn estimators
  (and those listed in ``trusted``), by setting their attributes: no
  ``__reduce__``, no pickle, no code from the file. Functions (a
  ``FunctionTransformer``'s ``func``, the descriptors of
  ``skfindkit.features``) are stored by qualified name and imported again by
  name: only skfindkit's own pipeline functions (marked as such, e.g.
  ``skfindkit.features._dense``) and those listed in ``trusted``. Names are
  checked as strings against an allow-list of modules (skfindkit's estimator
  modules, scikit-learn's estimator packages) before anything is imported: a
  file naming any other class or function is refused, before anything is
  imported or built, with a :class:`UntrustedTypeError` listing them;
- whatever is wrong with a file (truncated, a flipped bit, appended bytes, a
  structure edited with its checksum recomputed: missing keys, wrong types,
  nesting deeper than 200 levels, sizes beyond the file) ends in one
  :class:`CorruptFileError` naming the file; what is read is bounded by the
  file's size. ``docs/security.md`` says what this does and does not
  guarantee.

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
so an interrupted write never replaces a good file with half a file.

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
import math
import os
import struct
import tempfile
from contextlib import contextmanager

import numpy as np

from .utils._persist import CHECKSUM_NAME, CorruptFileError, CorruptIndexError, new_hash
from .utils._safe_tree import Decoder, Encoder, checked_dtype, qualified, resolve_names, walk

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


@contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Write a file all at once or not at all.

    Yields a file object on a temporary file in the folder of ``path``; when
    the block ends without error the data is flushed to disk (``fsync``) and
    the file renamed over ``path`` (``os.replace``, atomic on POSIX and
    Windows). On an error (or an interrupted process) ``path`` keeps its old
    content and the temporary file is removed.

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
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
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
        Naming the file, if it is not an skfindkit safe file (a pickle/joblib
        file is named as such and never unpickled), is truncated or altered
        (checksum, checked before anything is parsed), or its content is
        malformed; :class:`CorruptIndexError` for a corrupted index.
    UntrustedTypeError
        If the file names classes or functions that are not trusted (listed);
        their modules are not imported.
    """
    trusted = _names(trusted)
    where = repr(os.fspath(path))
    try:
        text, data = _read_checked(path)
        tree = json.loads(text.decode("utf-8"))
        if not isinstance(tree, dict) or not isinstance(tree.get("blobs"), list):
            raise CorruptFileError("its object tree is not a dict with a block table")
        root, nodes = tree["root"], []
        walk(root, nodes)
        blobs = _blocks(data, tree["blobs"], nodes)
        classes, functions, refused = resolve_names(nodes, trusted)
        if refused:
            raise UntrustedTypeError(
                f"{where} names classes or functions that are not trusted: {refused}. "
                "Nothing was loaded or imported. If you trust this file, pass them as "
                "load(path, trusted=[...])."
            )
        return Decoder(blobs, classes, functions).decode(root)
    except UntrustedTypeError:
        raise
    except CorruptFileError as exc:
        if where in str(exc):
            raise
        kind = CorruptIndexError if isinstance(exc, CorruptIndexError) else CorruptFileError
        raise kind(f"{where} is corrupted or malformed: {exc}") from exc
    except (ValueError, LookupError, TypeError, AttributeError, RecursionError,
            ArithmeticError) as exc:  # a malformed structure met while building
        raise CorruptFileError(
            f"{where} is corrupted or malformed ({type(exc).__name__}: {exc})."
        ) from exc


def _read_checked(path):
    """``(JSON text, data bytes)`` of a safe file whose checksum matched.

    Nothing is parsed before the checksum passed; what is read is bounded by
    the file's size. The data lands in one 64-byte aligned buffer, from which
    :func:`_blocks` makes the arrays as views (no second copy).
    """
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
        start = _aligned(_HEADER.size + tree_len)
        if start + _DIGEST > size:
            raise CorruptFileError(
                f"{os.fspath(path)!r} is truncated: its header announces {start + _DIGEST} "
                f"bytes or more, the file has {size}."
            )
        digest = new_hash(head)
        text = fh.read(start - _HEADER.size)
        digest.update(text)
        data = _aligned_empty(size - start - _DIGEST)
        for pos in range(0, data.size, _CHUNK):
            piece = memoryview(data[pos:pos + _CHUNK])
            if fh.readinto(piece) != len(piece):
                raise CorruptFileError(f"{os.fspath(path)!r} is truncated (it shrank while read).")
            digest.update(piece)
        if len(text) != start - _HEADER.size or fh.read(_DIGEST + 1) != digest.digest():
            raise CorruptFileError(
                f"{os.fspath(path)!r} failed its {CHECKSUM_NAME} check: the file is truncated, "
                "altered or corrupted. Nothing was loaded."
            )
    return text[:tree_len], data


def _aligned_empty(nbytes):
    """An uninitialized uint8 array of ``nbytes`` starting on a 64-byte boundary."""
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip:skip + nbytes]


def _blocks(data, table, nodes):
    """The arrays of the block table, as views of ``data``: shaped where an array
    node names the block, else bytes (uint8). Every size is checked against the
    file before a view is made."""
    blocks, pos = [], 0
    for entry in table:
        if (not isinstance(entry, list) or len(entry) != 2
                or not all(type(v) is int for v in entry)):
            raise CorruptFileError(f"a block table entry is not [offset, size]: {entry!r:.80}")
        offset, nbytes = entry
        if offset != pos or nbytes < 0 or offset + nbytes > data.size:
            raise CorruptFileError(
                f"block {len(blocks)} ([{offset}, {nbytes}]) does not fit the "
                f"{data.size} bytes of data")
        blocks.append(data[offset:offset + nbytes])
        pos = _aligned(offset + nbytes)
    if pos != data.size:
        raise CorruptFileError(
            f"the block table covers {pos} bytes of data, the file has {data.size}")
    for node in nodes:
        if node.get("$") != "array":
            continue
        blob, shape = node.get("blob"), node.get("shape")
        if type(blob) is not int or not 0 <= blob < len(blocks):
            raise CorruptFileError(f"an array names block {blob!r:.40}, not one of the file's")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CorruptFileError(f"an array has the shape {shape!r:.80}")
        dtype = checked_dtype(node.get("dtype"))
        raw = blocks[blob]
        if raw.dtype != np.uint8 or math.prod(shape) * dtype.itemsize != raw.size:
            raise CorruptFileError(
                f"block {blob} has {raw.size} bytes, not an array of {tuple(shape)} {dtype}")
        blocks[blob] = raw.view(dtype).reshape(shape)
    return blocks
