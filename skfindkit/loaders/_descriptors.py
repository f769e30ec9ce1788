"""Hand-crafted image descriptors: colour, texture and shape histograms of an image file."""

import numpy as np

from ..utils._safe_tree import loadable

__all__ = ["ImageDescriptors"]


def _l2(vector):
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _color_histogram(rgb, bins=(8, 4, 4)):
    """Joint HSV histogram, square-rooted (Hellinger) and L2-normalised."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(rgb).reshape(-1, 3)
    hist, _ = np.histogramdd(hsv, bins=bins, range=((0, 1), (0, 1), (0, 1)))
    return _l2(np.sqrt(hist.ravel() / hsv.shape[0]))


def _lbp_histogram(gray):
    """Uniform local binary patterns at two radii (rotation-invariant texture)."""
    from skimage.feature import local_binary_pattern

    gray = np.round(gray * 255).astype(np.uint8)
    parts = []
    for points, radius in ((8, 1), (16, 2)):
        codes = local_binary_pattern(gray, points, radius, method="uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=points + 2)
        parts.append(np.sqrt(hist / codes.size))
    return _l2(np.concatenate(parts))


def _hog_symmetric(gray):
    """HOG of the image plus HOG of its mirror image (mirror-invariant shape)."""
    from skimage.feature import hog

    options = dict(orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2),
                   feature_vector=True)
    return _l2(hog(gray, **options) + hog(gray[:, ::-1], **options))


_IMAGE_PARTS = {"color": _color_histogram, "lbp": _lbp_histogram, "hog": _hog_symmetric}


@loadable(former=("skfindkit.features.ImageDescriptors",))  # stored by name: parts, size
class ImageDescriptors:
    """Item -> concatenated hand-crafted descriptors (a picklable function).

    Used as the ``func`` of a :class:`~skfindkit.FunctionVectorLoader`: the
    image is decoded and resized by an :class:`~skfindkit.ImageLoader` and
    each part is L2-normalised and weighted so that every part counts the
    same in a cosine or euclidean distance.

    Parameters
    ----------
    parts : tuple of {"color", "lbp", "hog"}
        ``"color"``: joint HSV colour histogram (8 x 4 x 4 bins);
        ``"lbp"``: uniform local-binary-pattern histograms at radii 1 and 2;
        ``"hog"``: histogram of oriented gradients (16-pixel cells) summed
        with that of the mirrored image, so a mirrored photo matches.
    size : int
        Side of the square the image is resized to first.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit.loaders import ImageDescriptors
    >>> image = np.random.RandomState(0).randint(0, 256, (40, 50, 3), dtype=np.uint8)
    >>> ImageDescriptors(("color", "lbp"))(image).shape
    (156,)
    """

    kind = "image"  # what it reads: image files (see skfindkit._app.kinds)

    def __init__(self, parts=("color", "lbp", "hog"), size=128):
        self.parts = tuple(parts)
        self.size = size

    def __call__(self, item):
        from ._image import ImageLoader

        rgb = ImageLoader(size=(self.size, self.size)).transform([item])[0].astype(np.float64)
        gray = rgb @ np.array([0.2125, 0.7154, 0.0721])
        blocks = [
            _IMAGE_PARTS[part](rgb if part == "color" else gray) for part in self.parts
        ]
        return np.concatenate(blocks) / np.sqrt(len(blocks))

    def __repr__(self):
        return f"ImageDescriptors(parts={self.parts!r}, size={self.size})"
