"""Request bodies (and /search's query string) -> raw pipeline items, with a clear 4xx
for every bad body.

``/search`` and ``/items`` take the same bodies: a multipart upload in field
``file`` (path-based pipelines; repeated for several items when adding), or
JSON ``{"text": ...}`` / ``{"vector": [...]}`` (``"texts"`` / ``"vectors"``
lists when adding, with optional ``"key"`` / ``"keys"``).
"""

import json
import logging
import mimetypes
import os
import re
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ._json import loads

__all__ = ["ApiError", "BodyLimit", "BodyTooLarge", "Query", "SEARCH_PARAMETERS", "parse_body",
           "remove_files", "search_params", "write_uploads"]

logger = logging.getLogger("skfindkit.serve")
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64 = 2**63
_NUMBER_TYPES = {int, float}  # what JSON numbers parse to (bool, a subclass of int, is not)


class BodyTooLarge(Exception):
    """Raised while reading a body past the size limit (answered 413 by the middleware)."""


class ApiError(Exception):
    """An error answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class BodyLimit:
    """Answer 413 as soon as a request body passes ``limit`` bytes (pure ASGI)."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope, send):
        from starlette.responses import JSONResponse

        message = f"the request body is larger than the limit of {self.limit} bytes"
        logger.warning("%s %s -> 413: %s", scope["method"], scope["path"], message)
        await JSONResponse({"detail": message}, status_code=413)(scope, None, send)


@dataclass
class Upload:
    name: str
    suffix: str
    data: bytes


@dataclass
class Query:
    """A parsed body: uploads, texts or vectors, and the keys given for them."""

    uploads: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    vectors: object = None
    keys: list = None
    where: str = None  # /search: a condition on the metadata columns
    filter: object = None  # /search: allowed item ids
    metadata: object = None  # /items: the new items' metadata (JSON: object or list of them)

    def __len__(self):
        if self.vectors is not None:
            return len(self.vectors)
        return len(self.uploads) or len(self.texts)


def _wrong_form(spec, got):
    if spec.query == "vector":
        want = (f"this pipeline searches feature vectors of length {spec.n_features}: send JSON "
                '{"vector": [...]}')
    elif spec.query == "text":
        want = ('this pipeline searches texts: send JSON {"text": "..."} or upload a text file '
                "in multipart field 'file'")
    else:
        what = spec.kind if spec.kind != "file" else "file"
        want = f"this pipeline searches {what} files: upload one in multipart field 'file'"
    return ApiError(415, f"{want} ({got} is not accepted)")


_SUFFIX = re.compile(r"\.[a-z0-9_+-]{1,16}")


def _suffix(upload):
    """The upload's file name ending (``.png``), kept only when short and plain."""
    name = upload.filename or ""
    suffix = os.path.splitext(name)[1].lower()
    if not _SUFFIX.fullmatch(suffix):
        suffix = ""
    if not suffix and upload.content_type:
        suffix = (mimetypes.guess_extension(upload.content_type.split(";")[0].strip()) or "")
    return suffix


async def _parse_multipart(request, spec, many, max_files):
    if spec.query == "vector":
        raise _wrong_form(spec, "a file upload")
    try:
        form = await request.form(max_files=max_files if many else 1, max_fields=max_files + 8)
    except BodyTooLarge:
        raise
    except Exception as exc:  # malformed multipart, too many parts
        detail = getattr(exc, "detail", exc)  # starlette's HTTPException: no "400: " prefix
        raise ApiError(400, f"could not read the multipart body: {detail}") from exc
    try:
        files = [f for f in form.getlist("file") if not isinstance(f, str)]
        if not files:
            raise ApiError(400, "no file: upload the query file in multipart field 'file'")
        uploads = []
        for upload in files:
            name = os.path.basename(upload.filename or "upload")
            suffix = _suffix(upload)
            if spec.extensions and suffix not in spec.extensions:
                raise ApiError(415, f"{name!r} is not an accepted {spec.kind} file: expected a "
                                    f"name ending in {', '.join(spec.extensions)}")
            data = await upload.read()
            if not data:
                raise ApiError(422, f"the uploaded file {name!r} is empty")
            uploads.append(Upload(name, suffix, data))
        keys = [k for k in form.getlist("key") if isinstance(k, str)] or None
        metadata = [m for m in form.getlist("metadata") if isinstance(m, str)]
    finally:
        await form.close()
    if len(metadata) > 1:
        raise ApiError(422, "give the new items' metadata in one field 'metadata' (a JSON "
                            "object, or a list of objects, one per file)")
    return Query(uploads=uploads, keys=keys, metadata=_json_field(metadata[0], "metadata")
                 if metadata else None)


def _json_field(text, name):
    """A form field holding JSON text, parsed (422 when it is not JSON)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"the field {name!r} is not valid JSON: {exc}") from exc


def _bad_number(name, value):
    """The 422 for a number the index cannot hold (infinite, NaN, beyond float32)."""
    if isinstance(value, int):  # too large for a float at all
        return ApiError(422, f"{name} is beyond the float32 range (|x| > 3.4e+38) that "
                             f"skfindkit indexes hold: an integer of {len(str(abs(value)))} digits")
    if value != value or value in (float("inf"), float("-inf")):
        return ApiError(422, f"{name} must be a finite number, got {value}")
    return ApiError(422, f"{name} is beyond the float32 range (|x| > 3.4e+38) that "
                         f"skfindkit indexes hold: got {value:g}")


def _vector_rows(values, spec, plural):
    rows = values if plural else [values]
    if not isinstance(rows, list) or not rows:
        raise ApiError(422, "'vectors' must be a non-empty list of vectors" if plural
                       else "'vector' must be a list of numbers")
    names = [f"vectors[{r}]" if plural else "vector" for r in range(len(rows))]
    for name, row in zip(names, rows):
        if not isinstance(row, list) or not set(map(type, row)) <= _NUMBER_TYPES:
            raise ApiError(422, f"a vector must be a JSON list of numbers ({name} is not)")
        if spec.n_features is not None and len(row) != spec.n_features:
            raise ApiError(422, f"a vector must have {spec.n_features} numbers "
                                f"(the index's features), got {len(row)} in {name}")
    try:
        array = np.asarray(rows, dtype=np.float64)
        bad = ~(np.abs(array) <= FLOAT32_MAX)  # NaN, infinities and float32 overflow
    except (OverflowError, ValueError):  # integers beyond float64; ragged rows
        array, bad = None, None
    if array is None or array.ndim != 2 or bad.any():
        for name, row in zip(names, rows):
            for i, value in enumerate(row):
                try:
                    ok = abs(float(value)) <= FLOAT32_MAX
                except OverflowError:
                    ok = False
                if not ok:
                    raise _bad_number(f"{name}[{i}]", value)
        raise ApiError(422, "the vectors must all have the same length")
    return array


def _check_unicode(strings, field):
    """Refuse (422) strings JSON can spell but UTF-8 cannot hold (lone surrogates)."""
    for i, value in enumerate(strings):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ApiError(422, f"'{field}' #{i} is not valid Unicode text "
                                    f"({exc.reason} at character {exc.start})") from exc


def _parse_json_object(body, spec, many):
    if not isinstance(body, dict):
        raise ApiError(400, 'the JSON body must be an object: {"text": ...} or {"vector": [...]}')
    allowed = {"text", "vector"} | ({"texts", "vectors", "key", "keys", "metadata"} if many
                                    else {"where", "filter"})
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown} in the JSON body; expected one of "
                            f"{sorted(allowed)}")
    forms = [name for name in ("text", "texts", "vector", "vectors") if name in body]
    if len(forms) != 1:
        raise ApiError(400, 'send exactly one of "text" or "vector"'
                       + (' (or "texts" / "vectors")' if many else ""))
    form = forms[0]
    query = Query()
    if form.startswith("text"):
        if spec.query != "text":
            raise _wrong_form(spec, "a text")
        texts = body[form] if form == "texts" else [body[form]]
        if not isinstance(texts, list) or not texts or not all(
            isinstance(t, str) and t.strip() for t in texts
        ):
            raise ApiError(422, f"{form!r} must be a non-empty text" + ("s" if form == "texts" else ""))
        _check_unicode(texts, form)
        query.texts = texts
    else:
        if spec.query != "vector":
            raise _wrong_form(spec, "a vector")
        query.vectors = _vector_rows(body[form], spec, form == "vectors")
    keys = body.get("keys", [body["key"]] if "key" in body else None)
    if keys is not None and (not isinstance(keys, list) or not all(
            isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool)
                                   and -INT64 <= k < INT64) for k in keys)):
        raise ApiError(422, "'key'/'keys' must be strings or 64-bit integers")
    _check_unicode(keys or (), "keys" if "keys" in body else "key")
    query.keys = keys
    query.where, query.filter = body.get("where"), body.get("filter")
    query.metadata = body.get("metadata")
    return query


async def parse_body(request, spec, *, many=False, max_files=64):
    """The :class:`Query` in a /search (``many=False``) or /items request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        query = await _parse_multipart(request, spec, many, max_files)
    elif content_type == "application/json":
        try:
            body = loads(await request.body())
        except ValueError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ApiError(400, "the JSON body is nested too deeply") from exc
        query = _parse_json_object(body, spec, many)
    else:
        raise ApiError(415, f"unsupported content type {content_type or 'none'!r}: send "
                            "multipart/form-data (field 'file') or application/json")
    if query.keys is not None and len(query.keys) != len(query):
        raise ApiError(422, f"{len(query.keys)} keys for {len(query)} items")
    return query


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")

# /search's query string, as OpenAPI describes it (read by ``search_params``)
SEARCH_PARAMETERS = [
    {"name": "k", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1},
     "description": "how many neighbours to return (default: the index's n_neighbors)"},
    {"name": "where", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "a condition on the metadata columns"},
    {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the item ids allowed in the results, separated by commas"},
]


def search_params(params):
    """``k`` (an int or None), ``where`` and ``filter`` of a /search query string.

    Read directly from the request's query parameters: one dictionary lookup
    each, where a typed endpoint signature would have a generic validator
    inspect every annotation on every request.
    """
    k = params.get("k")
    if k is not None:
        if not _WHOLE_NUMBER.fullmatch(k):
            raise ApiError(422, f"k: expected a whole number (at most 18 digits), got "
                                f"{k[:40]!r}")
        k = int(k)
    return k, params.get("where"), params.get("filter")


def write_uploads(query, spec, folder):
    """The pipeline's raw items for ``query``; uploads become files under ``folder``.

    Returns the items and a map from written paths to upload names (to name
    uploads, not temporary paths, in error messages); the caller deletes the
    paths (the map's keys) when done.
    """
    if query.vectors is not None:
        return query.vectors, {}
    if spec.query == "text" and spec.text_input != "filename":
        return list(query.texts) + [u.data for u in query.uploads], {}
    paths, names = [], {}
    sources = [(u.suffix, u.data, u.name) for u in query.uploads]
    sources += [(".txt", t.encode("utf-8"), "the query text") for t in query.texts]
    try:
        for suffix, data, name in sources:
            fd, path = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=folder)
            names[path] = name
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            paths.append(path)
    except BaseException:
        remove_files(names)
        raise
    return paths, names


def remove_files(paths):
    """Delete temporary upload files, ignoring those already gone."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
