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
import tempfile
from contextlib import contextmanager

from .utils._persist import CorruptFileError, CorruptIndexError, new_hash
from .utils._mapped import verified_mappings
from .utils._verified import remember
from .utils._safe_file import (_CHUNK, _DIGEST, _HEADER, MAGIC, VERSION,  # noqa: F401 (layout)
                               _aligned, _is_pickle, block_specs, map_blocks, open_regular,
                               read_blocks, read_checked)
from .utils._safe_tree import Decoder, Encoder, qualified, resolve_names, walk

__all__ = [
    "save",
    "load",
    "atomic_write",
    "file_kind",
    "CorruptFileError",
    "CorruptIndexError",
    "UntrustedTypeError",
]

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
    with open_regular(path) as fh:  # a FIFO or a device: a CorruptFileError naming it
        head = fh.read(len(MAGIC))
    if head == MAGIC:
        return "safe"
    return "pickle" if _is_pickle(head) else None


def load(path, *, trusted=None, mmap_mode=None, verify="once"):
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
    mmap_mode : {None, "r"}, default=None
        ``"r"`` maps the file's arrays (an index's stored data, BM25's
        counts, sparse matrices, native bytes) read-only instead of reading
        them: :class:`numpy.memmap` views of the file, read from disk when a
        query first touches them and shared by every process that maps the
        same file. The checksum of the whole file is verified in one
        streaming pass over a read-only mapping before anything is parsed
        (it costs reading the file once, without copying it; the pages read
        are handed back and stay in the page cache, not in the process), and
        the values are checked (finite, counts >= 0) in a pass whose pages
        are handed back; the mapped data are not hashed a second time (and
        an unchanged file verified before is not passed over at all: see
        ``verify``). An
        :class:`~skfindkit.ExactIndex` searches the matrix saved with it
        (mapped too): its first query builds nothing. The file must not be
        changed in place while mapped (:func:`save` replaces files by
        renaming, which leaves a mapping intact). Writing to a mapped index
        (``partial_fit``) makes its own copy first; native libraries that
        cannot read from a mapping copy their bytes as in a normal load. See
        ``docs/mmap.md``.
    verify : {"once", "always"}, default="once"
        With ``mmap_mode="r"``: ``"once"`` leaves a record of a complete
        verification in this user's cache folder (``$SKFINDKIT_CACHE_DIR``,
        default ``~/.cache/skfindkit``), and a later mapped load of the same
        file, unchanged since (same device, inode, size, modification and
        change times, and stored checksum), skips the two passes over all
        its data (the checksum and the value checks); the structure is
        checked as always. Only a file changed at least 2 s before its
        verification is recorded (file times are coarse). ``"always"``
        verifies every mapped load in full (and reads or writes no record),
        e.g. to catch bit rot on a disk under an unchanged file. A normal
        load (``mmap_mode=None``) reads every byte anyway and always
        verifies them.

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
    if mmap_mode not in (None, "r"):
        raise ValueError(f"mmap_mode: expected None or 'r', got {mmap_mode!r}.")
    if not isinstance(verify, str) or verify not in ("once", "always"):
        raise ValueError(f"verify: expected 'once' or 'always', got {verify!r}.")
    remembered = mmap_mode is not None and verify == "once"
    trusted = _names(trusted)
    where = repr(os.fspath(path))
    try:
        checked = read_checked(path, mapped=mmap_mode is not None, recorded=remembered)
        tree = json.loads(checked.tree.decode("utf-8"))
        if not isinstance(tree, dict) or not isinstance(tree.get("blobs"), list):
            raise CorruptFileError("its object tree is not a dict with a block table")
        root, nodes = tree["root"], []
        walk(root, nodes)
        specs = block_specs(tree["blobs"], nodes, checked.data_size)
        classes, functions, refused = resolve_names(nodes, trusted)
        if refused:
            raise UntrustedTypeError(
                f"{where} names classes or functions that are not trusted: {refused}. "
                "Nothing was loaded or imported. If you trust this file, pass them as "
                "load(path, trusted=[...])."
            )
        if mmap_mode is None:
            return Decoder(read_blocks(checked, specs), classes, functions).decode(root)
        blocks = map_blocks(checked, specs)
        with verified_mappings(blocks, values_checked=checked.recorded):
            loaded = Decoder(blocks, classes, functions).decode(root)
        if checked.recordable:  # every check passed: say so for next time
            remember(path, checked.stat, checked.digest, VERSION, checked.since)
        return loaded
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
