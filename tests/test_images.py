"""Image files at the boundary: every kind is read at its full depth, results are written at the
input's depth with its alpha unchanged, and anything less is a warning or a clear refusal."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from safelight.errors import InputError
from safelight.images import ImageWarning, captioned_panels, check_output_path, read_image, write_image
from safelight.tasks import filter as private_filter

RNG = np.random.default_rng(12)


def png16(path, samples):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit grey+alpha or colour):
    samples uint16 (H, W, C), C = 2 (grey+alpha), 3 (RGB) or 4 (RGBA)."""
    h, w, c = samples.shape
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR."""
    data = path.read_bytes()
    return data[24], data[25]


def u16(*shape):
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


def u8(*shape):
    return RNG.integers(0, 256, shape, dtype=np.uint8)


# --- reading: each kind at its full depth -------------------------------------------------------


@pytest.mark.parametrize(
    "make,depth,grey,has_alpha",
    [
        ("grey8", 8, True, False),
        ("grey16", 16, True, False),
        ("la8", 8, True, True),
        ("la16", 16, True, True),
        ("rgb8", 8, False, False),
        ("rgba8", 8, False, True),
        ("rgb16", 16, False, False),
        ("rgba16", 16, False, True),
    ],
)
def test_every_kind_is_read_at_full_depth_with_alpha_apart(tmp_path, make, depth, grey, has_alpha):
    h, w = 13, 17
    channels = (1 if grey else 3) + has_alpha
    samples = (u16 if depth == 16 else u8)(h, w, channels)
    path = tmp_path / f"{make}.png"
    if depth == 16 and channels > 1:
        png16(path, samples)
    else:
        Image.fromarray(samples[..., 0] if channels == 1 else samples).save(path)
    image = read_image(path)
    assert image.bit_depth == depth and image.pixels.dtype == samples.dtype
    colour = samples[..., 0] if grey else samples[..., :3]
    np.testing.assert_array_equal(image.pixels, colour)
    if has_alpha:
        np.testing.assert_array_equal(image.alpha, samples[..., -1])
    else:
        assert image.alpha is None
    np.testing.assert_allclose(image.values, colour / (255.0 if depth == 8 else 65535.0))


def test_a_16bit_grey_png_is_not_clipped_to_white(tmp_path):
    """The issue: 16-bit grey went through convert("L"), which clips at 255 (everything white)."""
    ramp = np.linspace(0, 65535, 40 * 50).astype(np.uint16).reshape(40, 50)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image = read_image(tmp_path / "ramp.png")
    assert image.values.min() == 0.0 and image.values.max() == 1.0
    assert 0.45 < np.median(image.values) < 0.55


def test_16bit_rgb_tiff_is_read_at_full_depth(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = u16(9, 11, 3)
    for compression in (None, "zlib"):
        path = tmp_path / f"rgb16_{compression}.tif"
        tifffile.imwrite(path, rgb, photometric="rgb", compression=compression)
        image = read_image(path)
        assert image.bit_depth == 16
        np.testing.assert_array_equal(image.pixels, rgb)


def test_what_cannot_be_read_as_stored_is_read_with_a_warning(tmp_path):
    Image.fromarray(u8(6, 8, 4), mode="CMYK").save(tmp_path / "cmyk.jpg")
    with pytest.warns(ImageWarning, match="CMYK image converted to 8-bit RGB"):
        assert read_image(tmp_path / "cmyk.jpg").pixels.shape == (6, 8, 3)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "premultiplied.tif", u16(6, 8, 4), photometric="rgb", extrasamples=[1])
    with pytest.warns(ImageWarning, match="cannot read this 16-bit colour layout.*8 bits per sample"):
        assert read_image(tmp_path / "premultiplied.tif").bit_depth == 8


def test_palette_images_become_rgb_and_their_transparency_alpha(tmp_path):
    index = RNG.integers(0, 4, (6, 9), dtype=np.uint8)
    palette = np.array([[250, 0, 0], [0, 240, 0], [0, 0, 230], [9, 8, 7]], dtype=np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(palette.ravel().tolist())
    im.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.bit_depth == 8 and image.alpha is None
    np.testing.assert_array_equal(image.pixels, palette[index])
    im.save(tmp_path / "pt.png", transparency=3)
    image = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(image.pixels, palette[index])
    np.testing.assert_array_equal(image.alpha, np.where(index == 3, 0, 255))


def test_a_palette_of_greys_is_read_as_grey(tmp_path):
    grey = u8(6, 9)
    Image.fromarray(grey).save(tmp_path / "grey.gif")  # GIF stores grey as a palette
    image = read_image(tmp_path / "grey.gif")
    assert image.pixels.shape == (6, 9) and image.bit_depth == 8
    np.testing.assert_array_equal(image.pixels, grey)


def test_an_animated_gif_is_refused_unless_a_frame_is_named(tmp_path):
    frames = [Image.fromarray(np.full((8, 10, 3), level, np.uint8)) for level in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(InputError, match=r"3 frames.*--frame N \(0 to 2\)"):
        read_image(tmp_path / "anim.gif")
    assert (read_image(tmp_path / "anim.gif", frame=0).pixels == 10).all()
    assert (read_image(tmp_path / "anim.gif", frame=1).pixels == 200).all()
    with pytest.raises(InputError, match="0 to 2, got 3"):
        read_image(tmp_path / "anim.gif", frame=3)
    Image.fromarray(u8(5, 5)).save(tmp_path / "still.gif")
    assert read_image(tmp_path / "still.gif").pixels.shape == (5, 5)
    with pytest.raises(InputError, match="1 frame;"):
        read_image(tmp_path / "still.gif", frame=1)


def test_a_float_tiff_is_read_as_it_is_and_refused_outside_0_1(tmp_path):
    values = RNG.random((7, 9)).astype(np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 32 and image.pixels.dtype == np.float32 and image.mode == "F"
    np.testing.assert_array_equal(image.pixels, values)
    Image.fromarray(values * 3 - 1, mode="F").save(tmp_path / "wide.tif")
    with pytest.raises(InputError, match="must lie in \\[0, 1\\]: rescale it first"):
        read_image(tmp_path / "wide.tif")
    values[2, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.tif")


# --- writing: the input's depth where the format holds it, alpha unchanged ---------------------


@pytest.mark.parametrize("kind", ["grey16", "la16", "rgb16", "rgba16", "la8", "rgba8"])
def test_results_are_written_at_the_input_depth_with_its_alpha(tmp_path, kind):
    deep = kind.endswith("16")
    channels = {"grey": 1, "la": 2, "rgb": 3, "rgba": 4}[kind[:-2] if deep else kind[:-1]]
    samples = (u16 if deep else u8)(11, 14, channels)
    src = tmp_path / "in.png"
    if deep and channels > 1:
        png16(src, samples)
    else:
        Image.fromarray(samples[..., 0] if channels == 1 else samples).save(src)
    image = read_image(src)
    out = write_image(tmp_path / "out.png", image.values, like=image)  # float in [0, 1] -> the input's depth
    assert png_header(out) == ((16 if deep else 8), {1: 0, 2: 4, 3: 2, 4: 6}[channels])
    again = read_image(out)
    np.testing.assert_array_equal(again.pixels, image.pixels)
    if image.alpha is not None:
        np.testing.assert_array_equal(again.alpha, image.alpha)


def test_strided_results_are_written_as_they_are(tmp_path):
    planes = u16(3, 7, 9)
    image = np.moveaxis(planes, 0, 2)  # (7, 9, 3), not contiguous
    write_image(tmp_path / "rgb16.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png").pixels, image)


def test_float_tiff_in_float_tiff_out_and_png_is_16bit_with_a_warning(tmp_path):
    values = RNG.random((6, 8)).astype(np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    image = read_image(tmp_path / "f.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "out.tif", image.values, like=image)
    np.testing.assert_array_equal(read_image(tmp_path / "out.tif").pixels, values)
    with pytest.warns(ImageWarning, match="PNG cannot hold float grey samples.*16 bits.*use .tif"):
        write_image(tmp_path / "out.png", image.values, like=image)
    got = read_image(tmp_path / "out.png")
    assert got.bit_depth == 16 and np.abs(got.values - values).max() <= 0.5 / 65535 + 1e-7


def test_a_format_that_cannot_hold_the_depth_or_alpha_says_so(tmp_path):
    Image.fromarray(u16(8, 8)).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    with pytest.warns(ImageWarning, match="JPEG cannot hold 16-bit grey samples.*8 bits"):
        write_image(tmp_path / "out.jpg", image.values, like=image)
    la = u8(8, 8, 2)
    Image.fromarray(la).save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    with pytest.warns(ImageWarning, match="JPEG cannot hold an alpha channel"):
        write_image(tmp_path / "out2.jpg", image.values, like=image)
    png16(tmp_path / "rgb16.png", u16(8, 8, 3))
    image = read_image(tmp_path / "rgb16.png")
    with pytest.warns(ImageWarning, match="TIFF cannot hold 16-bit colour.*use .png"):
        write_image(tmp_path / "out.tif", image.pixels, like=image)
    with pytest.warns(ImageWarning, match="GIF holds at most 256 colours"):
        write_image(tmp_path / "out.gif", u8(8, 8, 3))


def test_floats_outside_0_1_are_refused_not_clipped(tmp_path):
    with pytest.raises(InputError, match="finite and in \\[0, 1\\]"):
        write_image(tmp_path / "o.png", np.full((4, 4), 1.5))
    assert not (tmp_path / "o.png").exists()


def test_the_output_path_and_format_are_checked_before_any_work(tmp_path):
    assert check_output_path(tmp_path / "a.png") == "PNG"
    assert check_output_path(tmp_path / "a.TIF") == "TIFF"
    with pytest.raises(InputError, match="no image format is known for the extension '.xyz'"):
        check_output_path(tmp_path / "a.xyz")
    with pytest.raises(InputError, match="extension '\\(none\\)'"):
        check_output_path(tmp_path / "noext")
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "nodir" / "a.png")
    with pytest.raises(InputError, match="is a directory"):
        check_output_path(tmp_path)


# --- the filter task keeps 16-bit precision ----------------------------------------------------


def test_filter_plaintext_and_rendering_keep_16bit_precision():
    image = np.linspace(1000, 60000, 24 * 30).astype(np.uint16).reshape(24, 30)
    values = private_filter.plaintext(image, "box:3")
    np.testing.assert_allclose(values, private_filter.plaintext(image / 65535.0, "box:3"))
    rendered = private_filter.to_image(values, "box:3", np.uint16)
    assert rendered.dtype == np.uint16 and len(np.unique(rendered)) > 256
    assert private_filter.to_image(values, "box:3", np.float32).dtype == np.float32
    np.testing.assert_array_equal(
        private_filter.to_image(values, "box:3"), np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)
    )


def test_denoise_scales_16bit_images():
    from safelight.tasks import denoise

    image = np.full((4, 5), 65535, np.uint16)
    x, grey = denoise.as_float_image(image)
    assert grey and x.shape == (4, 5, 3) and (x == 1.0).all()  # it was 65535.0 (white after clipping)


# --- captioned panels (the demo's picture) -----------------------------------------------------


def test_captioned_panels_keep_the_panels_and_add_a_written_strip():
    panels = [u8(20, 24, 3) for _ in range(3)]
    sheet = captioned_panels(panels, ["clean", "noisy\nPSNR 20.00 dB / SSIM 0.5000", "grey"])
    scale = sheet.shape[1] // (3 * 24)
    assert scale > 1 and sheet.shape[1] == 3 * 24 * scale  # enlarged so the longest caption fits
    assert sheet.shape[0] > 20 * scale
    for i, panel in enumerate(panels):
        block = sheet[: 20 * scale, i * 24 * scale : (i + 1) * 24 * scale]
        np.testing.assert_array_equal(block, np.repeat(np.repeat(panel, scale, 0), scale, 1))
    strip = sheet[20 * scale :]
    assert (strip == 255).mean() > 0.5 and (strip < 128).any()  # white with dark text
    with pytest.raises(InputError, match="one caption per panel"):
        captioned_panels(panels, ["a"])
