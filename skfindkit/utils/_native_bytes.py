"""Native objects that only save to files <-> bytes, in one place.

annoy, nmslib, Keras and MXNet write their objects to files (one or
several); pickling and :mod:`skfindkit.io` need bytes. :func:`save_to_bytes`
runs the library's own save into a private temporary folder -- in memory
(``/dev/shm``) where there is one, so that no transient file is written to
disk -- and maps each file it wrote (the mapping outlives the file's removal):
the only copy of the native bytes in memory. :func:`load_from_bytes` writes
the bytes back and runs the library's own load. :func:`pack_parts` /
:func:`unpack_parts` put several byte strings in one (each behind its length
as an unsigned 64-bit integer).
"""

import errno
import mmap
import os
import shutil
import struct
import tempfile

import numpy as np

__all__ = ["save_to_bytes", "load_from_bytes", "file_parts", "pack_parts", "unpack_parts"]

_LENGTH = struct.Struct("<Q")


def pack_parts(parts):
    """Concatenate bytes-like ``parts``, each behind its length (u64)."""
    return b"".join(_LENGTH.pack(len(part)) + bytes(part) for part in parts)


def unpack_parts(data, n_parts=None):
    """The ``n_parts`` memoryviews packed by :func:`pack_parts` (no copy).

    ``n_parts=None`` reads parts up to the end of ``data``.

    Raises
    ------
    ValueError
        If ``data`` is truncated or longer than its parts.
    """
    view = memoryview(data).cast("B")
    parts, pos = [], 0
    while (len(parts) < n_parts) if n_parts is not None else (pos < len(view)):
        if pos + _LENGTH.size > len(view):
            raise ValueError("native bytes are truncated: a part length is missing.")
        (size,) = _LENGTH.unpack_from(view, pos)
        pos += _LENGTH.size
        if pos + size > len(view):
            raise ValueError("native bytes are truncated: a part is shorter than its length.")
        parts.append(view[pos:pos + size])
        pos += size
    if pos != len(view):
        raise ValueError("native bytes are too long: data follows the last part.")
    return parts


_MEMORY_DIR = "/dev/shm"


def _in_scratch(run):
    """``run(folder)`` in a fresh private folder, removed afterwards.

    A folder in ``/dev/shm`` (a RAM file system on Linux: transient files never
    go to disk) is tried first; where it is missing, not writable or full, the
    default temporary folder is used.
    """
    folders = [_MEMORY_DIR, None] if os.access(_MEMORY_DIR, os.W_OK) else [None]
    for i, folder in enumerate(folders):
        last = i == len(folders) - 1
        try:
            tmp = tempfile.mkdtemp(prefix="skfindkit-", dir=folder)
        except OSError:
            if last:
                raise
            continue
        try:
            return run(tmp)
        except OSError as exc:
            if last or exc.errno != errno.ENOSPC:
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _paths(tmp, filename, suffixes):
    path = os.path.join(tmp, filename)
    return path, [path + suffix for suffix in ("", *suffixes)]


def _part_names(suffixes):
    """Keys of the files of a multi-file save: ``"file"``, then ``"file" + suffix``."""
    return ["file" + suffix for suffix in ("", *suffixes)]


def _mapped(path):
    """A read-only uint8 array mapping ``path`` (valid after the file is removed)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return np.empty(0, dtype=np.uint8)
        return np.frombuffer(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)


def save_to_bytes(save, *, filename="native", suffixes=()):
    """Bytes of what ``save(path)`` writes.

    Parameters
    ----------
    save : callable
        Called with a path in a fresh temporary folder (again in the default
        temporary folder if the in-memory one fails, e.g. is full).
    filename : str, default="native"
        Name of the file (libraries such as Keras check the extension).
    suffixes : tuple of str, default=()
        Extra files ``save`` writes next to ``path`` (e.g. nmslib's
        ``".dat"``).

    Returns
    -------
    data : uint8 ndarray or dict of them
        The file's bytes (a read-only map of the removed file: no copy); with
        ``suffixes``, a dict ``{"file": main file, "file" + suffix: ...}``.
    """

    def run(tmp):
        path, files = _paths(tmp, filename, suffixes)
        save(path)
        if not suffixes:
            return _mapped(path)
        return dict(zip(_part_names(suffixes), map(_mapped, files)))

    return _in_scratch(run)


def load_from_bytes(data, load, *, filename="native", suffixes=()):
    """Write ``data`` (from :func:`save_to_bytes`) back and return ``load(path)``.

    The files are removed once ``load`` returns (a library that memory-maps
    them keeps its mapping: on POSIX an unlinked file lives while mapped).

    Raises
    ------
    ValueError
        If ``data`` does not hold the files ``save_to_bytes`` returned.
    """
    parts = [memoryview(part).cast("B") for part in file_parts(data, suffixes)]

    def run(tmp):
        path, files = _paths(tmp, filename, suffixes)
        for name, part in zip(files, parts):
            with open(name, "wb") as fh:
                fh.write(part)
        return load(path)

    return _in_scratch(run)


def file_parts(data, suffixes=()):
    """The files' bytes in ``data`` (from :func:`save_to_bytes`), main file first.

    Raises
    ------
    ValueError
        If ``data`` is not what :func:`save_to_bytes` returns for ``suffixes``.
    """
    if not suffixes:
        try:
            memoryview(data)
        except TypeError:
            raise ValueError("native bytes: expected one bytes-like object.") from None
        return [data]
    names = _part_names(suffixes)
    if not isinstance(data, dict) or sorted(data) != sorted(names) or not all(
        isinstance(data[n], np.ndarray) and data[n].dtype == np.uint8 and data[n].ndim == 1
        for n in names
    ):
        raise ValueError(f"native bytes: expected the byte arrays of files {names}.")
    return [data[n] for n in names]
