"""Versioned, checksummed envelopes for native index bytes.

A native library (annoy, nmslib, hnswlib, faiss) trusts the bytes it loads: a
truncated or altered file can crash the interpreter. Every blob skfindkit
pickles is wrapped as::

    magic(4) | format version(u16) | backend name length(u16) | payload length(u64)
    | sha256(payload)(32) | backend name | payload

and :func:`unpack_blob` verifies all of it before the payload reaches a native
loader.
"""

import hashlib
import struct

__all__ = ["CorruptIndexError", "FORMAT_VERSION", "pack_blob", "unpack_blob"]

MAGIC = b"SKFK"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sHHQ32s")


class CorruptIndexError(ValueError):
    """A serialized index is truncated, altered or not an skfindkit blob."""


def pack_blob(backend, payload):
    """Wrap native index bytes with a header and checksum.

    Parameters
    ----------
    backend : str
        Name of the backend that wrote ``payload`` (checked at load).
    payload : bytes
        The native library's serialized index.

    Returns
    -------
    blob : bytes
    """
    name = backend.encode("utf-8")
    payload = bytes(payload)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, len(name), len(payload), hashlib.sha256(payload).digest()
    )
    return header + name + payload


def unpack_blob(blob, backend):
    """Verify a blob made by :func:`pack_blob` and return its payload.

    Parameters
    ----------
    blob : bytes
        The wrapped bytes.
    backend : str
        The backend expected to have written it.

    Returns
    -------
    payload : bytes

    Raises
    ------
    CorruptIndexError
        If the blob is not an skfindkit blob, was written by another backend or
        format version, is truncated, or its checksum does not match.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise CorruptIndexError(
            f"Serialized {backend} index must be bytes, got {type(blob).__name__}."
        )
    blob = bytes(blob)
    if len(blob) < _HEADER.size:
        raise CorruptIndexError(
            f"Serialized {backend} index is truncated: {len(blob)} bytes, "
            f"shorter than the {_HEADER.size}-byte header."
        )
    magic, version, name_len, size, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptIndexError(
            f"Serialized {backend} index does not start with the skfindkit "
            f"magic bytes {MAGIC!r} (got {magic!r}): not an skfindkit index blob."
        )
    if version != FORMAT_VERSION:
        raise CorruptIndexError(
            f"Serialized {backend} index has format version {version}; this "
            f"skfindkit reads version {FORMAT_VERSION}. Rebuild the index."
        )
    start = _HEADER.size + name_len
    expected = start + size
    if len(blob) != expected:
        raise CorruptIndexError(
            f"Serialized {backend} index is {'truncated' if len(blob) < expected else 'too long'}: "
            f"{len(blob)} bytes, expected {expected}."
        )
    name = blob[_HEADER.size:start].decode("utf-8", errors="replace")
    if name != backend:
        raise CorruptIndexError(
            f"Serialized index was written by backend {name!r}, not {backend!r}."
        )
    payload = blob[start:]
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptIndexError(
            f"Serialized {backend} index failed its SHA-256 check: the bytes were "
            "altered or corrupted. It was not passed to the native library."
        )
    return payload
