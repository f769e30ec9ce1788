"""The layout of a safe file (:mod:`skfindkit.io`) and how it is read back, checksum first.

A file is a header (magic, version, length of the JSON tree), the JSON tree
padded to 64 bytes, the raw blocks (each padded to 64 bytes) and one XXH3-128
checksum of everything before it. :func:`read_checked` verifies the checksum
before anything is parsed, reading the file in chunks (or, for a load that
maps the file, hashing it from a mapping); :func:`block_specs`
checks the tree's block table and array declarations against the file's
size; :func:`read_blocks` reads each block straight into its own final array,
hashing the data again so that a file changed in between is refused, and
:func:`map_blocks` maps each block instead (read-only :class:`numpy.memmap`
views of the file checked by :func:`read_checked`: the same file, not one
renamed over it meanwhile). Blocks start on 64-byte boundaries of the file
and are stored uncompressed, so every file of this version can be mapped.
"""

import math
import os
import stat
import struct

import numpy as np

from ._mapped import hash_mapped
from ._persist import CHECKSUM_NAME, CorruptFileError, new_hash
from ._safe_tree import checked_dtype
from ._verified import is_recorded, started, sync_before_verifying

__all__ = ["MAGIC", "VERSION", "block_specs", "map_blocks", "open_regular", "read_blocks",
           "read_checked"]

MAGIC = b"SKFKSAFE"
VERSION = 2  # 2: XXH3-128 checksums (1: BLAKE3)
_HEADER = struct.Struct("<8sIIQ")  # magic, version, reserved, length of the JSON tree
_ALIGN = 64
_DIGEST = len(new_hash().digest())
_CHUNK = 1 << 24  # bytes hashed/written per call (bounded temporaries)


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


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


class _Checked:
    """A safe file whose checksum matched: its verified head and tree, and where its data lie."""

    def __init__(self, path, head, text, start, data_size, digest, stat=None, since=None,
                 recorded=False, recordable=False):
        self.path, self.head, self.text = path, head, text
        self.start, self.data_size, self.digest = start, data_size, digest
        self.stat = stat  # os.fstat of the file checked
        self.identity = None if stat is None else _identity(stat)
        self.since = since  # when its verification started
        self.recorded = recorded  # verified completely before, unchanged since: not hashed
        self.recordable = recordable  # a complete verification of it may be recorded

    @property
    def tree(self):
        """The JSON text of the object tree (bytes), without its padding."""
        return self.text[:_HEADER.unpack(self.head)[3]]


def open_regular(path):
    """``path`` opened for reading in binary, if it is a regular file.

    Opened without waiting (``O_NONBLOCK``: a FIFO with no writer would block
    the open forever; reads of a regular file are not affected), then checked:
    anything but a regular file (a FIFO, a device, a folder) is a
    :class:`CorruptFileError` naming it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorruptFileError(f"{os.fspath(path)!r} is not a regular file.")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _hash_into(fh, digest, nbytes, out=None):
    """Read ``nbytes`` of ``fh`` into ``out`` (uint8; None: a reused chunk), hashing them."""
    chunk = None if out is not None else bytearray(min(_CHUNK, nbytes))
    for pos in range(0, nbytes, _CHUNK):
        n = min(_CHUNK, nbytes - pos)
        piece = memoryview(out[pos:pos + n]) if out is not None else memoryview(chunk)[:n]
        if fh.readinto(piece) != n:
            return False
        digest.update(piece)
    return True


def read_checked(path, mapped=False, recorded=False):
    """Check a safe file's checksum before anything of it is parsed.

    Reads it once, in chunks (bounded memory), and keeps only its header and
    JSON tree; :func:`read_blocks` reads the data again into their final
    arrays once the tree has said what they are. ``mapped``: the data are
    hashed straight from a read-only mapping of the file (no copy, pages
    handed back as it goes: :func:`~skfindkit.utils._mapped.hash_mapped`),
    for a load that maps the file anyway. ``recorded``: a file with a valid
    record of a complete verification (:mod:`skfindkit.utils._verified`) is
    not hashed again (the result's ``recorded`` says so); for one without, the
    file is synced first and the result's ``recordable`` says whether this
    verification may be recorded.
    """
    since = started()
    with open_regular(path) as fh:
        stat = os.fstat(fh.fileno())
        size = stat.st_size
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
        text = fh.read(start - _HEADER.size)
        complete = len(text) == start - _HEADER.size
        recordable = False
        if complete and recorded:
            fh.seek(size - _DIGEST)
            stored = fh.read(_DIGEST)
            if is_recorded(stat, stored, VERSION):
                return _Checked(path, head, text, start, size - start - _DIGEST, stored,
                                stat, since, recorded=True)
            recordable = (sync_before_verifying(fh.fileno(), stat)
                          and _identity(os.fstat(fh.fileno())) == _identity(stat))
            fh.seek(start)
        digest = new_hash(head)
        digest.update(text)
        if complete and mapped:
            hash_mapped(fh, digest, start, size - _DIGEST)
            fh.seek(size - _DIGEST)
        elif complete:
            complete = _hash_into(fh, digest, size - start - _DIGEST)
        if not complete or fh.read(_DIGEST + 1) != digest.digest():
            raise CorruptFileError(
                f"{os.fspath(path)!r} failed its {CHECKSUM_NAME} check: the file is truncated, "
                "altered or corrupted. Nothing was loaded."
            )
    return _Checked(path, head, text, start, size - start - _DIGEST, digest.digest(), stat,
                    since, recordable=recordable)


def _identity(stat):
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _aligned_empty(nbytes):
    """An uninitialized uint8 array of ``nbytes`` starting on a 64-byte boundary."""
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip:skip + nbytes]


def block_specs(table, nodes, data_size):
    """``(dtype, shape)`` of every block of the table, each checked against the file.

    A block named by an array node becomes that array; the others are bytes.
    """
    sizes, pos = [], 0
    for entry in table:
        if (not isinstance(entry, list) or len(entry) != 2
                or not all(type(v) is int for v in entry)):
            raise CorruptFileError(f"a block table entry is not [offset, size]: {entry!r:.80}")
        offset, nbytes = entry
        if offset != pos or nbytes < 0 or offset + nbytes > data_size:
            raise CorruptFileError(
                f"block {len(sizes)} ([{offset}, {nbytes}]) does not fit the "
                f"{data_size} bytes of data")
        sizes.append(nbytes)
        pos = _aligned(offset + nbytes)
    if pos != data_size:
        raise CorruptFileError(
            f"the block table covers {pos} bytes of data, the file has {data_size}")
    specs = [(np.dtype(np.uint8), (n,)) for n in sizes]
    for node in nodes:
        if node.get("$") != "array":
            continue
        blob, shape = node.get("blob"), node.get("shape")
        if type(blob) is not int or not 0 <= blob < len(sizes):
            raise CorruptFileError(f"an array names block {blob!r:.40}, not one of the file's")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CorruptFileError(f"an array has the shape {shape!r:.80}")
        dtype = checked_dtype(node.get("dtype"))
        if math.prod(shape) * dtype.itemsize != sizes[blob] or specs[blob][1] != (sizes[blob],):
            raise CorruptFileError(
                f"block {blob} has {sizes[blob]} bytes, not an array of {tuple(shape)} {dtype}")
        specs[blob] = (dtype, tuple(shape))
    return specs


def read_blocks(checked, specs):
    """Every block read straight into its own final (64-byte aligned) array.

    The data are hashed again on the way: a file changed since its checksum
    was checked is refused before anything is built from it.
    """
    digest = new_hash(checked.head)
    digest.update(checked.text)
    blocks = []
    with open_regular(checked.path) as fh:
        fh.seek(checked.start)
        for dtype, shape in specs:
            out = _aligned_empty(math.prod(shape) * dtype.itemsize)
            complete = _hash_into(fh, digest, out.size, out)
            padding = fh.read(_aligned(out.size) - out.size) if complete else b""
            digest.update(padding)
            if not complete:
                break
            blocks.append(out.view(dtype).reshape(shape))
        if digest.digest() != checked.digest or fh.read(_DIGEST + 1) != checked.digest:
            raise CorruptFileError("the file changed while it was read")
    return blocks


def map_blocks(checked, specs):
    """Every block as a read-only :class:`numpy.memmap` of the checked file (no copy).

    The file opened must be the one whose checksum :func:`read_checked`
    verified (same device, inode, size, modification and change times): a file
    replaced or rewritten in between is refused. Empty blocks are empty
    read-only arrays (nothing to map).
    """
    blocks, pos = [], checked.start
    with open_regular(checked.path) as fh:
        if _identity(os.fstat(fh.fileno())) != checked.identity:
            raise CorruptFileError("the file changed while it was read")
        for dtype, shape in specs:
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes:
                block = np.memmap(fh, dtype=dtype, mode="r", offset=pos, shape=shape)
            else:
                block = np.empty(shape, dtype=dtype)
                block.flags.writeable = False
            blocks.append(block)
            pos += _aligned(nbytes)
    return blocks
