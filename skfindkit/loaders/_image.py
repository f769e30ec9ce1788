"""ImageLoader: image files, bytes, PIL images or arrays -> pixel arrays (Pillow)."""

import io
import os
from numbers import Integral

import numpy as np

from ..utils import import_optional
from ..utils._optional import Requirement
from ..utils._sklearn_compat import StrOptions
from ._base import BaseVectorLoader, check_file

__all__ = ["ImageLoader"]

_MODES = {"rgb": ("RGB", "rgb"), "grayscale": ("L", "l"), "rgba": ("RGBA", "rgba")}
_SCALES = {"unit": (1 / 255, 0.0), "symmetric": (2 / 255, -1.0), "none": (1.0, 0.0)}
_RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _valid_size(size):
    return size is None or (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, Integral) and v > 0 for v in size)
    )


class ImageLoader(BaseVectorLoader):
    """Load images into arrays ready for Keras (4-D) or scikit-learn (2-D).

    Each item is decoded with Pillow, converted to ``color_mode``, resized to
    ``size`` and scaled; the result is a batch of shape
    ``(n_images, height, width, channels)`` or, with ``flatten=True``,
    ``(n_images, height * width * channels)``.

    Parameters
    ----------
    size : tuple of (int, int) or None, default=(64, 64)
        Output ``(height, width)`` (the Keras ``target_size`` order). ``None``
        keeps each image's own size, which must then be the same for all items.
    color_mode : {"rgb", "grayscale", "rgba"}, default="rgb"
        Channels of the output (3, 1 or 4).
    scale : {"unit", "symmetric", "none"}, default="unit"
        Pixel scaling: ``[0, 1]``, ``[-1, 1]`` or the raw ``0..255`` values.
    flatten : bool, default=False
        Return 2-D ``(n_images, n_pixels * channels)`` rows for scikit-learn
        extractors instead of a 4-D batch.
    interpolation : {"bilinear", "nearest", "bicubic", "lanczos", "box", \
"hamming"}, default="bilinear"
        Pillow resampling filter used when resizing.
    dtype : {"float32", "float64"}, default="float32"
        Output dtype.
    n_jobs : int, default=None
        Number of joblib workers; ``None`` means 1, ``-1`` all cores.
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        Policy for items that fail (missing, empty or corrupt files): raise an
        error naming the item, or warn and put an aligned NaN / zero image.

    Notes
    -----
    Items can be file paths, encoded image ``bytes``, ``PIL.Image.Image``
    objects or arrays of shape ``(h, w)`` or ``(h, w, c)``. A 3-D or 4-D
    numeric array ``X`` is read as a batch of images along its first axis.

    Pixel values are scaled by the image's own bit depth, so that ``"unit"``
    maps black to 0 and white to 1 whatever the source: 8-bit images and
    ``uint8`` or 0..255 integer arrays are divided by 255; 16-bit images
    (16-bit PNG or TIFF, Pillow modes ``I;16*``) and ``uint16`` arrays by
    65535; 32-bit integer TIFFs by their type's maximum; floating-point images
    (32-bit float TIFF, Pillow mode ``F``) and float arrays must hold
    intensities in ``[0, 1]`` (the scikit-image convention) and are kept as
    they are, without rounding to 8 bits. ``scale="none"`` gives every source
    on the 0..255 scale. Pillow reads multi-channel 16-bit files as 8-bit
    (the scale stays right; the low 8 bits are lost).

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import ImageLoader
    >>> images = np.random.RandomState(0).randint(0, 256, (3, 40, 30, 3), dtype=np.uint8)
    >>> ImageLoader(size=(16, 16)).transform(images).shape
    (3, 16, 16, 3)
    >>> ImageLoader(size=(8, 8), color_mode="grayscale", flatten=True).transform(images).shape
    (3, 64)
    """

    _parameter_constraints = {
        **BaseVectorLoader._parameter_constraints,
        "size": [tuple, list, None],
        "color_mode": [StrOptions(set(_MODES))],
        "scale": [StrOptions(set(_SCALES))],
        "flatten": ["boolean"],
        "interpolation": [StrOptions(set(_RESAMPLING))],
        "dtype": [StrOptions({"float32", "float64"})],
    }
    _item_name = "image"
    _kind = "image"
    _requires = Requirement(library="pillow", import_name="PIL", extra="image")

    def __init__(
        self,
        size=(64, 64),
        *,
        color_mode="rgb",
        scale="unit",
        flatten=False,
        interpolation="bilinear",
        dtype="float32",
        n_jobs=None,
        verbose=0,
        on_error="raise",
    ):
        self.size = size
        self.color_mode = color_mode
        self.scale = scale
        self.flatten = flatten
        self.interpolation = interpolation
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.on_error = on_error

    def _check_params(self):
        if not _valid_size(self.size):
            raise ValueError(
                "The 'size' parameter of ImageLoader must be None or a pair of "
                f"positive ints (height, width); got {self.size!r}."
            )

    def _channels(self):
        return len(_MODES[self.color_mode][1])

    def _item_shape(self):
        if self.size is None:
            return None
        shape = (int(self.size[0]), int(self.size[1]), self._channels())
        return (int(np.prod(shape)),) if self.flatten else shape

    def _prepare(self):
        return import_optional("PIL.Image", "image", package="pillow")

    def _open(self, item, Image):
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, (bytes, bytearray)):
            if not item:
                raise ValueError("empty bytes object")
            image = Image.open(io.BytesIO(item))
        elif isinstance(item, (str, os.PathLike)):
            image = Image.open(check_file(item))
        elif isinstance(item, np.ndarray):
            return _array_pixels(item, Image)
        else:
            raise TypeError(
                "an image item must be a path, bytes, a PIL image or an array, "
                f"got {type(item).__name__}"
            )
        image.load()  # decode now: truncated or corrupt data fails here
        return image

    def _load_item(self, item, context):
        # uint8 pixels: 4x less to send back from workers; _finish scales them
        Image = context
        image = self._open(item, Image)
        if not isinstance(image, np.ndarray) and image.mode in _HIGH_DEPTH_MODES:
            image = _unit_pixels(image)
        if isinstance(image, np.ndarray):  # deeper than 8 bits: float32 in [0, 1]
            pixels = self._float_pixels(image, Image)
            return pixels.ravel() if self.flatten else pixels
        mode = _MODES[self.color_mode][0]
        if image.mode != mode:  # convert to the same mode would only copy
            image = image.convert(mode)
        if self.size is not None:
            height, width = self.size
            if image.size != (width, height):
                resample = getattr(Image.Resampling, self.interpolation.upper())
                image = image.resize((int(width), int(height)), resample=resample)
        pixels = np.asarray(image)
        if pixels.ndim == 2:
            pixels = pixels[:, :, np.newaxis]
        return pixels.ravel() if self.flatten else pixels

    def _float_pixels(self, unit, Image):
        """A float image in [0, 1] as float32 pixels on the 0..255 scale.

        Converted to ``color_mode`` as Pillow converts 8-bit images (ITU-R
        601-2 luma for grayscale, alpha dropped or set opaque) and resized
        channel by channel in Pillow's 32-bit float mode (then clipped to
        [0, 1], as 8-bit resizing clips).
        """
        if unit.ndim == 2:
            unit = unit[:, :, np.newaxis]
        color, alpha = unit[:, :, :3], unit[:, :, 3:]
        if self.color_mode == "grayscale":
            channels = [color[:, :, 0] if color.shape[2] == 1 else color @ _LUMA]
        else:
            channels = [color[:, :, min(k, color.shape[2] - 1)] for k in range(3)]
            if self.color_mode == "rgba":
                channels.append(alpha[:, :, 0] if alpha.size else np.ones_like(channels[0]))
        if self.size is not None and channels[0].shape != tuple(self.size):
            height, width = (int(v) for v in self.size)
            resample = getattr(Image.Resampling, self.interpolation.upper())
            channels = [
                np.asarray(Image.fromarray(np.ascontiguousarray(c, np.float32), mode="F")
                           .resize((width, height), resample=resample))
                for c in channels
            ]
        pixels = np.stack(channels, axis=-1).astype(np.float32, copy=False)
        # bicubic and lanczos overshoot; 8-bit Pillow clips, so do the same
        return np.clip(pixels, 0.0, 1.0, out=pixels) * np.float32(255)

    def _output_dtype(self):
        return np.dtype(self.dtype)

    def _finish(self, out):
        """Scale the stacked pixel values in place (``out`` has the output dtype)."""
        if self.scale != "none":
            factor, offset = _SCALES[self.scale]
            out *= np.asarray(factor, dtype=out.dtype)
            if offset:  # adding 0 changes no value here (no -0.0 pixels)
                out += np.asarray(offset, dtype=out.dtype)
        return out

    def _feature_names(self):
        if not self.flatten or self.size is None:
            raise ValueError(
                "ImageLoader has feature names only with flatten=True and a fixed size."
            )
        channels = _MODES[self.color_mode][1]
        height, width = self.size
        return [
            f"pixel_{r}_{c}_{ch}"
            for r in range(height)
            for c in range(width)
            for ch in channels
        ]


# Pillow modes deeper than 8 bits; 16-bit PNG/TIFF open as I;16*, 32-bit
# integer TIFF as I, 32-bit float TIFF as F
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# Pillow's RGB -> L conversion (ITU-R 601-2 luma)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT = 258, 339


def _check_unit_range(array):
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError(
            "a floating-point image must hold finite values in [0, 1]; got range "
            f"[{np.nanmin(array)}, {np.nanmax(array)}]"
        )
    return array.astype(np.float32, copy=False)


def _unit_pixels(image):
    """Pixels of a Pillow image deeper than 8 bits, as float32 in [0, 1]."""
    pixels = np.asarray(image)
    if image.mode == "F":
        return _check_unit_range(pixels)
    if image.mode.startswith("I;16"):
        return (pixels / 65535.0).astype(np.float32)
    # mode I: 32-bit integers; the TIFF header says what they hold
    tags = getattr(image, "tag_v2", {})
    bits = tags.get(_TIFF_BITS_PER_SAMPLE)
    bits = bits[0] if isinstance(bits, tuple) else bits
    if bits is None:  # Pillow widens some 16-bit sources to I
        bits = 16 if pixels.min() >= 0 and pixels.max() <= 65535 else 32
    fmt = tags.get(_TIFF_SAMPLE_FORMAT, 1)
    signed = (fmt[0] if isinstance(fmt, tuple) else fmt) == 2
    if pixels.min() < 0:
        raise ValueError(
            f"a {bits}-bit integer image must hold non-negative intensities; got "
            f"minimum {pixels.min()}"
        )
    top = 2 ** (int(bits) - 1 if signed else int(bits)) - 1
    return (pixels.astype(np.uint32) / top).astype(np.float32)


def _array_pixels(array, Image):
    """An image array as a Pillow 8-bit image, or float32 in [0, 1] when deeper."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"an image array must have shape (h, w) or (h, w, 1|3|4), got {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        return (array / 65535.0).astype(np.float32)
    if array.dtype.kind == "f":
        return _check_unit_range(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind in "iu" and array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                "an integer image array must hold values in 0..255 (uint16: "
                f"0..65535); got range [{array.min()}, {array.max()}]"
            )
        array = array.astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"unsupported image array dtype {array.dtype}")
    return Image.fromarray(array)
