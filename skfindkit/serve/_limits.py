"""What one upload may cost to decode, checked from its header before it is decoded.

A small compressed file can declare a huge image (a 329 KB PNG of 13000 x
13000 16-bit pixels decodes to gigabytes) or hours of audio (silence
compresses to almost nothing). Images are refused beyond ``max_pixels``
(width x height, read by Pillow without decoding) and sounds beyond
``max_seconds`` (frames and sampling rate from the file's header, read by
soundfile); at most ``max_decodes`` uploads are decoded at once. Pillow
picks its decoder from the bytes, not the name: an image upload is decoded
only in one of the common web formats (whatever its name says: a ``.jpg``
holding PNG bytes is fine) or in the format Pillow registers for its name's
ending (a ``.pgm`` is decoded as PPM, a ``.png`` holding PPM bytes is refused),
and only for the endings the service accepts (not, say, EPS, which Pillow
hands to Ghostscript).
"""

import math
import os
import threading
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

from ._requests import ApiError

__all__ = ["DecodeSlots", "check_limits", "check_pixels", "check_uploads"]

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SECONDS = 300.0
SAMPLES_PER_SECOND = 2 * 48_000  # the sample budget of one second: 48 kHz stereo
DECODE_WAIT_S = 30.0  # how long a request waits for a decode slot before a 503
# Pillow's names of the common web formats, decoded whatever the upload's name says
# (MPO: JPEG files with several pictures, as phone cameras write them)
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF", "TIFF", "WEBP")


def _formats_of(path):
    """Pillow's names of the formats a file named like ``path`` may hold."""
    from PIL import Image

    ending = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ending)
    return () if fmt is None else (fmt,)


def check_limits(*, max_pixels, max_seconds, max_decodes):
    """Raise ValueError for a limit that is not a positive number (an int where counted)."""
    for name, value in (("max_pixels", max_pixels), ("max_decodes", max_decodes)):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if (not isinstance(max_seconds, Real) or isinstance(max_seconds, bool)
            or not 0 < max_seconds < math.inf):
        raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")


def check_pixels(size, name, max_pixels, status=413):
    """Refuse (``status``) an image of ``size`` (width, height) above ``max_pixels``."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ApiError(status, f"{name} is {width} x {height} pixels ({width * height:,}), more "
                               f"than the server's limit of max_pixels={max_pixels:,} "
                               "(--max-pixels)")


def _check_image(path, name, max_pixels):
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only
                size, fmt = image.size, image.format
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"{name} declares more pixels than the server decodes "
                            f"(max_pixels={max_pixels:,}, --max-pixels): {exc}") from exc
    except Exception:  # not an image Pillow reads: the loader's error names it (422)
        return
    if fmt not in IMAGE_FORMATS + _formats_of(path):
        raise ApiError(415, f"{name} is a {fmt} image; the server decodes "
                            f"{', '.join(IMAGE_FORMATS)} images, or the format "
                            "its name says")
    check_pixels(size, name, max_pixels)


def _check_audio(path, name, max_seconds):
    import soundfile

    try:
        info = soundfile.info(path)  # reads the header only
    except Exception as exc:
        raise ApiError(422, f"could not read {name} as audio: {exc}") from exc
    seconds = info.frames / info.samplerate if info.samplerate > 0 else float("inf")
    if seconds > max_seconds or info.frames * info.channels > max_seconds * SAMPLES_PER_SECOND:
        raise ApiError(413, f"{name} holds {seconds:.2f} s of audio ({info.channels} channel(s) "
                            f"at {info.samplerate} Hz), more than the server's limit of "
                            f"max_seconds={max_seconds:g} (--max-seconds)")


def check_uploads(names, kind, max_pixels, max_seconds):
    """Refuse uploads (``{path: upload name}``) of ``kind`` that would decode too large."""
    for path, name in names.items():
        if kind == "image":
            _check_image(path, repr(name), max_pixels)
        elif kind == "audio":
            _check_audio(path, repr(name), max_seconds)


class DecodeSlots:
    """At most ``n`` decodes at once; a request that waits ``DECODE_WAIT_S`` gets a 503."""

    def __init__(self, n):
        self._slots = threading.BoundedSemaphore(n)

    @contextmanager
    def hold(self):
        if not self._slots.acquire(timeout=DECODE_WAIT_S):
            raise ApiError(503, "the server is busy decoding other uploads, retry later")
        try:
            yield
        finally:
            self._slots.release()
