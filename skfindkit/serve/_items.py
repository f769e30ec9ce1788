"""What a pipeline searches, and how its indexed items are shown.

The query form comes from the pipeline's first step: an image or audio loader
takes files, a Doc2Vec loader takes texts (or text files), and a pipeline
without a loader takes feature vectors. Indexed items are shown by their keys
(:func:`skfindkit.attach_keys`): a key that names a file is served as a
thumbnail (images), the file itself (sounds) or its text (texts). Only the
integer ids of indexed items are accepted, so no request can name a path, and
a key is served only when it names a file inside the items folder (or the
folder where the server keeps uploaded additions) once links, ``..``,
backslashes and percent-encoding are resolved: a pipeline holding keys such as
``/etc/passwd`` shows them, and serves no bytes for them.
"""

import io
import mimetypes
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path, PureWindowsPath
from urllib.parse import unquote

import numpy as np

from .._app.kinds import kind_of_file
from ._limits import check_pixels
from ._requests import ApiError

__all__ = ["ItemStore", "UnknownItem", "key_to_json"]

_ID = re.compile(r"[0-9]{1,12}")
_CONTROL = re.compile(r"[\x00-\x1f]")
THUMBNAIL_SIDE = 256
TEXT_LIMIT = 1 << 20  # bytes of an indexed text served by /items/{id}


class UnknownItem(LookupError):
    """The id names no indexed item (message says which ids exist)."""


class ItemStore:
    """Map item ids to the files their keys name; make thumbnails.

    Parameters
    ----------
    spec : PipelineSpec
    root : path-like
        Folder keys are resolved in; a key naming anything outside it (or
        outside ``also``) names no file.
    also : sequence of path-like, default=()
        Further folders whose files may be served (where uploads are kept).
    max_pixels : int or None, default=None
        Largest image (width x height) a thumbnail is made of.
    """

    def __init__(self, spec, root, also=(), max_pixels=None):
        self.spec = spec
        self.root = Path(root).resolve()
        self.roots = [self.root] + [Path(folder).resolve() for folder in also]
        self.max_pixels = max_pixels
        self._thumbs = OrderedDict()
        self._thumbs_lock = threading.Lock()
        self._has_file = {}

    def parse_id(self, item_id, n_items):
        """The integer id in ``item_id`` (a URL segment), or UnknownItem."""
        if not _ID.fullmatch(item_id or ""):
            raise UnknownItem(
                f"{item_id[:80]!r} is not an item id: ids are the integers 0..{n_items - 1} "
                "returned by /search"
            )
        value = int(item_id)
        if value >= n_items:
            raise UnknownItem(
                f"no item {value}: the index holds {n_items} items (ids 0..{n_items - 1})"
            )
        return value

    def _inside(self, text):
        """``text`` as a resolved path inside one of the roots, or None."""
        if _CONTROL.search(text) or PureWindowsPath(text).drive:  # NUL..., "C:", UNC shares
            return None
        path = Path(text)
        try:
            resolved = (path if path.is_absolute() else self.root / path).resolve()
        except (OSError, RuntimeError, ValueError):  # link loops, odd names
            return None
        if any(resolved == root or root in resolved.parents for root in self.roots):
            return resolved
        return None

    def confined(self, key):
        """The resolved path ``key`` names inside the roots, or None when any reading
        of it (backslashes as separators, percent-decoded) leads elsewhere."""
        text = str(key)
        readings = {form.replace("\\", "/") for form in (text, unquote(text))} | {text}
        if not text or any(self._inside(reading) is None for reading in readings):
            return None
        return self._inside(text.replace("\\", "/"))

    def check_key(self, key):
        """Refuse (422) a key of a new item that could name something outside the roots."""
        if isinstance(key, str) and self.confined(key) is None:
            shown = repr(key) if len(key) <= 200 else repr(key[:200]) + "..."
            raise ApiError(422, f"the key {shown} names a path outside the items folder "
                                "(absolute, '..', a drive, a link that leaves it, or a "
                                "control character); keys are labels or paths inside it")

    def path_of(self, key):
        """The file a key names inside the roots, or None."""
        if not isinstance(key, (str, os.PathLike)):
            return None
        path = self.confined(os.fspath(key))
        return path if path is not None and path.is_file() else None

    def has_file(self, key):
        """Whether ``key`` names a file (cached: /items/{id} checks again).

        A key with no file at its plain reading under the items folder is told
        apart by one ``stat``: :meth:`path_of` ends with that same check on the
        resolved path, so only keys naming existing files pay for resolving.
        """
        try:
            return self._has_file[key]
        except KeyError:
            pass
        except TypeError:  # unhashable key
            return False
        if not isinstance(key, (str, os.PathLike)):
            return False
        text = os.fspath(key)
        if not isinstance(text, str) or not os.path.isfile(
                os.path.join(self.root, text.replace("\\", "/"))):
            found = False  # path_of would find no file either
        else:
            found = self.path_of(key) is not None
        if len(self._has_file) < 1_000_000:
            self._has_file[key] = found
        return found

    def item_kind(self, path):
        return self.spec.kind if self.spec.kind in ("image", "audio", "text") else kind_of_file(path)

    def content(self, item_id, path):
        """``(bytes or path, media_type)`` to send for item ``item_id`` at ``path``."""
        kind = self.item_kind(path)
        if kind == "image":
            return self._thumbnail(item_id, path), "image/png"
        if kind == "text":
            with open(path, "rb") as handle:
                data = handle.read(TEXT_LIMIT)
            return data.decode("utf-8", errors="replace").encode("utf-8"), "text/plain; charset=utf-8"
        media = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        return Path(path), media

    def _thumbnail(self, item_id, path):
        stamp = (item_id, str(path), os.stat(path).st_mtime_ns)
        with self._thumbs_lock:
            if stamp in self._thumbs:
                self._thumbs.move_to_end(stamp)
                return self._thumbs[stamp]
        from PIL import Image

        try:
            opened = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise ApiError(422, f"item {item_id} has more pixels than the server decodes "
                                f"(max_pixels={self.max_pixels}, --max-pixels)") from exc
        with opened as image:
            check_pixels(image.size, f"item {item_id}", self.max_pixels, status=422)
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            if image.mode not in ("RGB", "RGBA", "L", "LA"):
                image = image.convert("RGBA")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
        data = buffer.getvalue()
        with self._thumbs_lock:
            self._thumbs[stamp] = data
            while len(self._thumbs) > 2048:
                self._thumbs.popitem(last=False)
        return data


def key_to_json(key):
    """A key (numpy scalar, str, path, int) as a JSON value."""
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    return str(key)
