"""Reading and writing image files at the boundary, at their full bit depth, with clear errors.

What comes in: 8-bit, 16-bit and float (TIFF mode ``F``) images, grey or colour, with or
without alpha; palette and bilevel images are expanded to 8-bit RGB(A) / grey. Pixels are kept
in their own dtype (:class:`ImageFile`); ``ImageFile.values`` scales them to [0, 1]. The alpha
channel is held apart, untouched, and put back when the result is written. A file with several
frames (an animated GIF or PNG, a multi-page TIFF) is refused unless a frame is named.

Pillow has no 16-bit colour mode: it decodes a 16-bit RGB(A) or grey+alpha sample to its high
byte. :func:`read_image` decodes such files a second time with the byte order swapped, which
yields the low bytes (same compressed stream, same filters, only the final unpacking differs),
and joins the two. Pillow cannot write 16-bit colour either; :func:`write_image` writes those
PNGs itself (a plain, valid PNG: filter type 0 rows, one zlib stream).

What goes out: the input's depth where the format can hold it (16-bit PNG and TIFF grey, 16-bit
PNG colour and grey+alpha, float TIFF grey); otherwise a lower depth with an
:class:`ImageWarning`. Alpha is never dropped silently: a format without alpha gets a warning.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError


class ImageWarning(UserWarning):
    """A file was read or written with less than it holds (fewer bits, no alpha); the job goes on."""


@dataclass(frozen=True)
class ImageFile:
    """An image as read from a file.

    Attributes
    ----------
    pixels : uint8 or uint16 or float32 array, H x W (grey) or H x W x 3 (colour)
        The samples as stored (float32 only for float files, values in [0, 1]).
    alpha : array H x W of the same dtype as ``pixels``, or None
        The alpha channel, unchanged; :func:`write_image` re-attaches it.
    bit_depth : int
        8, 16, or 32 (float).
    mode : str
        What the file holds, in Pillow's words with the depth made explicit: ``L``, ``LA``,
        ``I;16``, ``LA;16``, ``RGB;16``, ``P``, ``F``, ...
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    mode: str

    @property
    def values(self) -> np.ndarray:
        """The pixels as float64 in [0, 1] (x / 255, x / 65535, or as they are for float)."""
        return _to_unit(self.pixels)


def _to_unit(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    return a.astype(np.float64)


# 16-bit colour rawmodes (less their byte order, B, L or N) that Pillow unpacks to the high byte of
# each sample and can also unpack with the other byte order, which gives the low byte
_SWAPPABLE = ("RGB;16", "RGBA;16", "RGBX;16")


def _swapped(rawmode: str) -> str | None:
    """The same 16-bit layout with the other byte order (N is the host's), or None."""
    base, order = rawmode[:-1], rawmode[-1:]
    if base not in _SWAPPABLE or order not in ("B", "L", "N"):
        return None
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return base + ("L" if order == "B" else "B")


def _with_rawmode(tile, rawmode: str):
    args = tile.args
    return tile._replace(args=rawmode if isinstance(args, str) else (rawmode, *args[1:]))


def _rawmode(tile) -> str | None:
    args = tile.args
    first = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
    return first if isinstance(first, str) else None


def _rawmodes(im) -> set[str]:
    """The rawmodes of a not yet loaded image's tiles (formats without one give none)."""
    return {r for r in map(_rawmode, im.tile) if r is not None}


def _open_frame(p: Path, frame: int):
    from PIL import Image

    im = Image.open(p)
    if frame:
        im.seek(frame)
    return im


def _deep_colour(p: Path, frame: int, im) -> tuple[np.ndarray, str] | None:
    """Full-depth samples of a 16-bit colour or grey+alpha file (``im`` opened, not loaded), or
    None when it has 8-bit samples, or (with an ImageWarning) a 16-bit layout it cannot split:
    Pillow then reads it at 8 bits. Later frames of an animation are composed with the ones
    before: only frame 0 is split."""
    rawmodes = _rawmodes(im)
    if not any(";16" in r for r in rawmodes) or im.mode not in ("RGB", "RGBA"):
        return None
    if rawmodes == {"LA;16B"} and not frame:  # 16-bit grey+alpha PNG: the 4 bytes of each pixel as they are
        im.tile = [_with_rawmode(t, "RGBA") for t in im.tile]
        raw = np.asarray(im).astype(np.uint16)
        return np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=2), "LA;16"
    swapped = {r: _swapped(r) for r in rawmodes}
    if None in swapped.values() or frame:
        warnings.warn(
            f"{p}: Pillow cannot read this 16-bit colour layout ({', '.join(sorted(rawmodes))}) at full "
            "depth; it is read at 8 bits per sample",
            ImageWarning,
            stacklevel=3,
        )
        return None
    high = np.asarray(im)
    with _open_frame(p, frame) as again:
        again.tile = [_with_rawmode(t, swapped[_rawmode(t)]) for t in again.tile]
        low = np.asarray(again)
    return high.astype(np.uint16) << 8 | low, f"{im.mode};16"


def _frame_of(p: Path, im, frame: int | None) -> int:
    n = getattr(im, "n_frames", 1)
    if frame is None:
        if n > 1:
            raise InputError(
                f"{p} has {n} frames (an animation or a multi-page file); choose one with --frame N (0 to {n - 1})"
            )
        return 0
    if not 0 <= frame < n:
        raise InputError(f"{p} has {n} frame{'s' if n > 1 else ''}; --frame must be in 0 to {n - 1}, got {frame}")
    return frame


def read_image(path: str | os.PathLike, frame: int | None = None) -> ImageFile:
    """Read an image file at its full depth.

    Parameters
    ----------
    path : the file
    frame : int, optional
        Which frame of an animated or multi-page file (0-based); required when it has more than one.

    Returns
    -------
    ImageFile
        ``pixels`` uint8 / uint16 / float32, H x W or H x W x 3; ``alpha`` H x W or None.

    Raises
    ------
    InputError
        Missing, unreadable or empty file; several frames and no ``frame``; float values outside
        [0, 1] or not finite; 32-bit integer samples above 65535.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"input image {p} does not exist")
    try:
        with Image.open(p) as im:
            frame = _frame_of(p, im, frame)
        with _open_frame(p, frame) as im:
            deep = _deep_colour(p, frame, im)
            if deep is not None:
                samples, mode = deep
            else:
                im.load()
                mode = im.mode
                samples = _samples(p, im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read {p} as an image (corrupt or unsupported format): {exc}") from None
    if samples.size == 0:
        raise InputError(f"{p} is an empty image")
    if samples.dtype == np.float32:
        _check_float(p, samples)
    alpha = None
    if samples.ndim == 3 and samples.shape[2] in (2, 4):  # grey+alpha, RGBA: the last channel is alpha
        alpha = np.ascontiguousarray(samples[..., -1])
        samples = samples[..., :-1]
        if samples.shape[2] == 1:
            samples = samples[..., 0]
    depth = 32 if samples.dtype == np.float32 else 16 if samples.dtype == np.uint16 else 8
    return ImageFile(np.ascontiguousarray(samples), alpha, depth, mode)


def _samples(p: Path, im) -> np.ndarray:
    """A loaded single-frame image as uint8 / uint16 / float32 (H, W) or (H, W, C), C in 2, 3, 4."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise InputError(
                f"{p} holds 32-bit integer samples from {a.min()} to {a.max()}; safelight reads "
                "8-bit, 16-bit (0..65535) and float images: convert it first"
            )
        return a.astype(np.uint16)
    if mode == "F":
        return np.asarray(im).astype(np.float32)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):  # expanded; a palette of greys only (as GIF stores grey) gives grey
        has_alpha = mode == "PA" or "transparency" in im.info
        rgb = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return rgb[..., [0, 3]] if has_alpha else rgb[..., 0]
        return rgb
    if mode in ("La", "RGBa"):  # premultiplied alpha
        return np.asarray(im.convert(mode.upper()))
    warnings.warn(f"{p}: {mode} image converted to 8-bit RGB", ImageWarning, stacklevel=3)
    return np.asarray(im.convert("RGB"))


def _check_float(p: Path, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise InputError(f"{p} holds NaN or infinite values; clean the image first")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"{p} holds float values from {lo:g} to {hi:g}; float images must lie in [0, 1]: "
            "rescale it first (nothing is clipped silently)"
        )


def check_output_path(path: str | os.PathLike) -> str:
    """Check before any work that ``path`` can be written: its directory exists and is writable,
    and Pillow has a writer for its extension. Returns the format name (``PNG``, ``TIFF``, ...)."""
    from PIL import Image

    p = Path(path)
    if p.is_dir():
        raise InputError(f"output {p} is a directory; give a file name such as {p / 'out.png'}")
    parent = p.parent
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"output directory {parent} is not writable")
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(
            f"cannot write {p}: no image format is known for the extension "
            f"{p.suffix or '(none)'!r}; use .png, .tif, .jpg, .webp or .bmp"
        )
    return fmt


# the depths each format holds at full precision (8-bit goes everywhere)
_DEEP_GREY = {16: {"PNG", "TIFF"}, 32: {"TIFF"}}
_DEEP_WITH_ALPHA_OR_COLOUR = {16: {"PNG"}, 32: set()}
_ALPHA = {"PNG", "TIFF", "WEBP"}
_EXTENSION = {"PNG": ".png", "TIFF": ".tif"}


def _depth_for(fmt: str, depth: int, layered: bool) -> int:
    """The highest depth <= ``depth`` that ``fmt`` holds (``layered``: colour or alpha)."""
    table = _DEEP_WITH_ALPHA_OR_COLOUR if layered else _DEEP_GREY
    for d in (32, 16):
        if d <= depth and fmt in table.get(d, ()):
            return d
    return 8


def _convert(a: np.ndarray, depth: int) -> np.ndarray:
    """uint8 / uint16 / float [0, 1] samples at ``depth`` (8, 16 or 32 = float32)."""
    unit = _to_unit(a)
    if depth == 32:
        return unit.astype(np.float32)
    top = 255.0 if depth == 8 else 65535.0
    return np.rint(unit * top).astype(np.uint8 if depth == 8 else np.uint16)


def _check_written(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)) or a.size == 0:
        raise InputError(f"an image to write must be H x W or H x W x 3, got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype in (np.uint8, np.uint16):
        return a
    if a.dtype.kind != "f":
        raise InputError(f"an image to write must be uint8, uint16 or float in [0, 1], got {a.dtype}")
    if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
        raise InputError("float values to write must be finite and in [0, 1]; clip or rescale them first")
    return a


def write_image(path: str | os.PathLike, image: np.ndarray, like: ImageFile | None = None) -> Path:
    """Write ``image``; the format follows the file extension.

    Parameters
    ----------
    path : the file (written whole or not at all)
    image : uint8 or uint16 or float array in [0, 1], H x W or H x W x 3
    like : ImageFile, optional
        The file the image was computed from: it is written at ``like``'s depth where the format
        holds it (else lower, with an :class:`ImageWarning`), and ``like.alpha`` is re-attached
        unchanged (a format without alpha drops it with a warning). Without ``like``: the depth
        of ``image`` (float as 8-bit), no alpha.
    """
    from PIL import Image

    fmt = check_output_path(path)
    p = Path(path)
    a = _check_written(image)
    alpha = like.alpha if like is not None else None
    if alpha is not None and alpha.shape != a.shape[:2]:
        raise InputError(f"the alpha channel is {alpha.shape}, the image {a.shape[:2]}: they must match")
    if alpha is not None and fmt not in _ALPHA:
        warnings.warn(
            f"{fmt} cannot hold an alpha channel: {p} is written without the input's alpha "
            "(use .png or .tif to keep it)",
            ImageWarning,
            stacklevel=2,
        )
        alpha = None
    wanted = like.bit_depth if like is not None else {np.dtype(np.uint16): 16}.get(a.dtype, 8)
    layered = a.ndim == 3 or alpha is not None
    depth = _depth_for(fmt, wanted, layered)
    if depth < wanted:
        holders = (_DEEP_WITH_ALPHA_OR_COLOUR if layered else _DEEP_GREY)[wanted]
        keep = " or ".join(_EXTENSION[f] for f in sorted(holders))
        warnings.warn(
            f"{fmt} cannot hold {'float' if wanted == 32 else f'{wanted}-bit'} "
            f"{'colour or alpha' if layered else 'grey'} samples: {p} is written at {depth} bits "
            f"(use {keep or 'another format'} to keep the depth)",
            ImageWarning,
            stacklevel=2,
        )
    if fmt == "GIF" and a.ndim == 3:
        warnings.warn(
            f"GIF holds at most 256 colours: {p} is written with its colours reduced to a palette "
            "(use .png to keep them)",
            ImageWarning,
            stacklevel=2,
        )
    out = _convert(a, depth)
    if alpha is not None:
        out = np.dstack([out, _convert(alpha, depth)])
    tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
    try:
        if depth == 16 and out.ndim == 3:
            _write_png16(tmp, out)
        else:
            Image.fromarray(out).save(tmp, format=fmt)
        os.replace(tmp, p)
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot write {p} as {fmt}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _write_png16(path: Path, a: np.ndarray) -> None:
    """A 16-bit PNG of uint16 (H, W, C), C = 2 (grey+alpha), 3 (RGB) or 4 (RGBA)."""
    h, w, c = a.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(a, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    data = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(data, 6))
            + chunk(b"IEND", b"")
        )


def captioned_panels(panels: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
    """Panels side by side, each with a caption strip under it (Pillow's default font).

    Parameters
    ----------
    panels : uint8 arrays H x W x 3 or H x W (grey), one height
    captions : one per panel; lines separated by ``\\n``

    Returns
    -------
    uint8 array (s*H + strip) x (s * sum W) x 3
        Panels narrower than their caption are enlarged by one integer factor ``s`` for all
        (nearest neighbour: each pixel becomes an s x s block, nothing is interpolated).
    """
    from PIL import Image, ImageDraw, ImageFont

    if len(panels) != len(captions) or not panels:
        raise InputError("give one caption per panel")
    panels = [np.dstack([panel] * 3) if panel.ndim == 2 else panel for panel in map(np.asarray, panels)]
    height = panels[0].shape[0]
    if any(panel.shape[0] != height or panel.shape[2:] != (3,) or panel.dtype != np.uint8 for panel in panels):
        raise InputError("panels must be uint8 H x W x 3 or H x W, all of one height")
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = max(measure.textbbox((0, 0), "Ag", font=font)[3], 1) + 3
    margin = 4
    widest = [max(measure.textbbox((0, 0), line, font=font)[2] for line in text.split("\n")) for text in captions]
    scale = max(1, *(-(-(need + 2 * margin) // panel.shape[1]) for need, panel in zip(widest, panels)))
    strip_h = margin + line_h * max(text.count("\n") + 1 for text in captions) + margin
    columns = []
    for panel, text in zip(panels, captions):
        big = np.repeat(np.repeat(panel, scale, axis=0), scale, axis=1)
        strip = Image.new("RGB", (big.shape[1], strip_h), "white")
        draw = ImageDraw.Draw(strip)
        for i, line in enumerate(text.split("\n")):
            draw.text((margin, margin + i * line_h), line, fill="black", font=font)
        columns.append(np.concatenate([big, np.asarray(strip)], axis=0))
    return np.concatenate(columns, axis=1)


def show_warnings_as_lines() -> None:
    """Show each :class:`ImageWarning` as one line ``safelight: warning: ...`` on stderr (the
    command line's style); other warnings are shown as before."""
    shown = warnings.showwarning
    if getattr(shown, "_safelight_lines", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ImageWarning):
            print(f"safelight: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show._safelight_lines = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def sample_image(name: str = "astronaut") -> np.ndarray:
    """A real photograph shipped with scikit-image (astronaut, coffee, chelsea, camera, ...)."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None:
        raise InputError(f"scikit-image has no sample image {name!r}")
    return np.ascontiguousarray(loader())
