"""JSON bodies in and out of the service: orjson where it gives the stdlib's answer.

:func:`loads` parses what :func:`json.loads` parses, to the same values, and
fails where it fails, with its message: orjson (when installed; the ``serve``
extra brings it) reads the ordinary bodies, about ten times faster for a
vector of floats, and the standard library reads every body orjson refuses
(``NaN``, ``Infinity``, lone surrogates, UTF-16, a byte-order mark, nesting
past orjson's depth) and every body holding a run of 19 digits or more
anywhere: orjson reads an integer beyond 64 bits as a float, where the stdlib
keeps the integer (whose 422 names its digits). :func:`dumps`
writes compact UTF-8 JSON, as Starlette's ``JSONResponse`` does, for answers
whose floats are finite (orjson would write a NaN as ``null``).
"""

import json

try:
    import orjson
except ImportError:  # the service works without it, slower
    orjson = None

__all__ = ["dumps", "loads"]

_ALL_ZEROS = bytes.maketrans(b"123456789", b"000000000")  # every digit -> "0"
_LONG_RUN = b"0" * 19  # the digits of -9223372036854775809, the shortest such integer


def loads(body):
    """The value of the JSON document ``body`` (bytes), exactly as ``json.loads``."""
    if orjson is not None and _LONG_RUN not in body.translate(_ALL_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the stdlib's verdict (and its message) decides
    return json.loads(body)


def dumps(value):
    """``value`` (plain JSON types, finite floats) as compact UTF-8 JSON bytes."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits, a str subclass...: the stdlib decides
            pass
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")
