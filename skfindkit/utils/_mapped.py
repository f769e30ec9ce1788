"""Arrays mapped from a file: which mapping holds them, and scans that leave no pages resident.

:func:`skfindkit.io.load` with ``mmap_mode="r"`` returns arrays that are
:class:`numpy.memmap` views of the file. Touching a mapped page makes it
resident in the process (it counts in its RSS, shared with every process that
maps the same file); :func:`scan` checks such an array in pieces and hands
each piece's pages back (``madvise(MADV_DONTNEED)``: they stay in the page
cache, a later access maps them again), so that a check of every value at
load leaves the process as small as before.

:func:`hash_mapped` feeds a file's bytes to its checksum from a mapping the
same way (no copy into a buffer, pages handed back), and :func:`peek` reads a
few rows of a mapped array and hands their pages back.

:func:`verified_mappings` marks the mappings whose bytes a file checksum has
just covered: :func:`~skfindkit.utils._persist.verify_state` does not hash
them a second time (that would read, and make resident, all the data);
with ``values_checked=True`` (a file verified completely before and unchanged
since: :mod:`skfindkit.utils._verified`), :func:`scan` passes over nothing
in them either.
"""

import contextvars
import mmap
from contextlib import contextmanager

import numpy as np

__all__ = ["hash_mapped", "mapping_of", "peek", "release", "scan", "values_checked",
           "verified_mappings", "is_verified"]

_VERIFIED = contextvars.ContextVar("skfindkit_verified_mappings", default=frozenset())
_VALUES_CHECKED = contextvars.ContextVar("skfindkit_checked_mappings", default=frozenset())
_SCAN_BYTES = 1 << 24


def mapping_of(array):
    """The :class:`mmap.mmap` that ``array``'s memory lies in, or None."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap) and isinstance(getattr(array, "_mmap", None),
                                                       mmap.mmap):
            return array._mmap
        array = array.base
    if isinstance(array, memoryview):
        array = array.obj
    return array if isinstance(array, mmap.mmap) else None


@contextmanager
def verified_mappings(arrays, values_checked=False):
    """Within the block, the mappings of ``arrays`` count as checksummed, and with
    ``values_checked`` their values as checked too (see the module docstring)."""
    found = frozenset(id(m) for m in map(mapping_of, arrays) if m is not None)
    token = _VERIFIED.set(_VERIFIED.get() | found)
    checked = _VALUES_CHECKED.set(_VALUES_CHECKED.get() | (found if values_checked else
                                                            frozenset()))
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(checked)
        _VERIFIED.reset(token)


def is_verified(value):
    """Whether every array of ``value`` (an array, or a list of them) lies in a checked mapping."""
    verified = _VERIFIED.get()
    if not verified:
        return False
    arrays = value if isinstance(value, (list, tuple)) else [value]
    return bool(arrays) and all(
        isinstance(a, np.ndarray) and id(mapping_of(a)) in verified for a in arrays)


def values_checked(array):
    """Whether ``array`` lies in a mapping whose values were checked when its file,
    unchanged since, was verified before (``verified_mappings(..., values_checked=True)``)."""
    mm = mapping_of(array)
    return mm is not None and id(mm) in _VALUES_CHECKED.get()


def release(array):
    """Hand back the pages of ``array`` where it is a contiguous piece of a mapping
    (they stay in the page cache); nothing otherwise."""
    mm = mapping_of(array)
    if mm is not None and array.size and array.flags.c_contiguous:
        _release(array, mm)


def _release(piece, mm):
    start = piece.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
    _release_range(mm, start, start + piece.nbytes)


def _release_range(mm, start, end):
    """Hand back the pages of ``mm[start:end]`` (they stay in the page cache)."""
    first = start - start % mmap.PAGESIZE
    end = min(end, len(mm))
    if end > first:
        try:
            mm.madvise(mmap.MADV_DONTNEED, first, end - first)
        except (AttributeError, OSError, ValueError):  # no madvise here: pages stay mapped
            pass


_WINDOW = 1 << 21  # the kernel maps pages around a fault within this aligned window


def peek(array, ids):
    """``array[ids]`` (a copy, ``ids`` a few row numbers); where ``array`` is mapped,
    the pages around them are handed back (a fault maps its neighbours too: up to
    a megabyte with large page-cache folios)."""
    values = np.array(array[ids])
    mm = mapping_of(array)
    if mm is not None and array.flags.c_contiguous:
        start = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        rows = np.asarray(ids, dtype=np.int64).reshape(-1)
        addresses = array.ctypes.data + rows * array.strides[0]
        for window in np.unique(addresses - addresses % _WINDOW):  # in the address space
            first = max(0, int(window) - start)
            _release_range(mm, first, int(window) + _WINDOW - start)
    return values


def hash_mapped(fh, digest, start, stop):
    """Feed bytes ``start:stop`` of the open file ``fh`` to ``digest`` through a
    read-only mapping: no copy into a buffer, and each 16 MiB piece's pages
    handed back once hashed (the process stays small)."""
    if stop <= start:
        return
    with mmap.mmap(fh.fileno(), stop, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
        for pos in range(start, stop, _SCAN_BYTES):
            end = min(stop, pos + _SCAN_BYTES)
            with view[pos:end] as piece:
                digest.update(piece)
            _release_range(mm, pos, end)


def scan(values, check):
    """Whether ``check(piece)`` holds for every piece of the flat ``values``.

    Pieces of 16 MiB (bounded temporaries); a mapped array's pages are handed
    back after each piece. True at once for an array of a mapping whose values
    were checked when its unchanged file was verified before
    (``verified_mappings(..., values_checked=True)``).
    """
    flat = values.reshape(-1)
    mm = mapping_of(values)
    if mm is not None and id(mm) in _VALUES_CHECKED.get():  # verified before, unchanged
        return True
    step = max(1, _SCAN_BYTES // max(flat.itemsize, 1))
    for start in range(0, flat.size, step):
        piece = flat[start:start + step]
        ok = check(piece)
        if mm is not None and piece.size and piece.flags.c_contiguous:
            _release(piece, mm)
        if not ok:
            return False
    return True
