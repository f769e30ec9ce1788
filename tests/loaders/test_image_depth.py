"""ImageLoader scales every source by its own bit depth (issue 13, item 10).

Real files written by Pillow and tifffile: 16-bit PNG and TIFF, 32-bit float
and integer TIFF, next to the 8-bit PNG of the same picture.
"""

import numpy as np
import pytest

pytest.importorskip("PIL")  # the "image" extra
from PIL import Image
from skimage import data

from skfindkit.loaders import ImageLoader, ItemLoadError


@pytest.fixture(scope="module")
def camera():
    """skimage's camera as exact float intensities (a 16-bit-representable ramp)."""
    return data.camera()[::4, ::4].astype(np.float64) / 255  # 128 x 128


def _png16(path, unit):
    Image.fromarray(np.round(unit * 65535).astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")  # a real 16-bit file
    return str(path)


def test_16_bit_png_is_scaled_by_65535(tmp_path, camera):
    path = _png16(tmp_path / "camera16.png", camera)
    out = ImageLoader(size=None, color_mode="grayscale").transform([path])[0, :, :, 0]
    np.testing.assert_allclose(out, camera, atol=1e-6)
    assert (out == 1.0).mean() < 0.01  # not the clipped 97.5 % of white


def test_16_bit_and_8_bit_files_of_one_picture_agree(tmp_path, camera):
    png16 = _png16(tmp_path / "c16.png", camera)
    png8 = tmp_path / "c8.png"
    Image.fromarray(np.round(camera * 255).astype(np.uint8)).save(png8)
    for params in ({"size": None}, {"size": (50, 70)}, {"size": (50, 70), "color_mode": "rgba"},
                   {"size": (64, 64), "color_mode": "grayscale", "interpolation": "bicubic"}):
        out = ImageLoader(**params).transform([png16, str(png8)])
        # 8-bit Pillow rounds after conversion and after each resampling pass
        np.testing.assert_allclose(out[0], out[1], atol=3 / 255, err_msg=str(params))
        assert 0.0 <= out.min() and out.max() <= 1.0
    rgba = ImageLoader(size=None, color_mode="rgba").transform([png16])[0]
    np.testing.assert_array_equal(rgba[..., 0], rgba[..., 2])
    assert (rgba[..., 3] == 1.0).all()


def test_float_and_16_bit_tiff(tmp_path, camera):
    tifffile = pytest.importorskip("tifffile")
    f32 = tmp_path / "camera_f32.tif"
    tifffile.imwrite(f32, camera.astype(np.float32))
    u16 = tmp_path / "camera_u16.tif"
    tifffile.imwrite(u16, np.round(camera * 65535).astype(np.uint16))
    i32 = tmp_path / "camera_i32.tif"
    tifffile.imwrite(i32, np.round(camera * (2**31 - 1)).astype(np.int32))
    assert Image.open(f32).mode == "F" and Image.open(i32).mode == "I"
    out = ImageLoader(size=None, color_mode="grayscale").transform([f32, u16, i32])
    for row in out:
        np.testing.assert_allclose(row[:, :, 0], camera, atol=1e-6)
    bad = tmp_path / "out_of_range.tif"
    tifffile.imwrite(bad, (camera * 40).astype(np.float32))
    with pytest.raises(ItemLoadError, match=r"item 0 .*out_of_range.tif.*\[0, 1\]"):
        ImageLoader().transform([bad])


def test_arrays_are_scaled_by_dtype(camera):
    u16 = np.round(camera * 65535).astype(np.uint16)
    out = ImageLoader(size=None, color_mode="grayscale").transform(
        [u16, camera, camera.astype(np.float32), np.round(camera * 255).astype(np.uint8)]
    )
    for row in out[:3]:  # float kept as it is: no rounding to 8 bits
        np.testing.assert_allclose(row[:, :, 0], camera, atol=1e-6)
    np.testing.assert_allclose(out[3], out[0], atol=0.5 / 255 + 1e-6)
    raw = ImageLoader(size=None, scale="none").transform([u16])
    assert 254 < raw.max() <= 255.0 + 1e-3  # "none": the 0..255 scale of every source
