"""Reading pictures into the 8-bit RGB arrays the codec works on, and back.

Accepted: anything Pillow opens, 8-bit (16-bit input is reduced to 8 bits),
RGB or grayscale.  Grayscale is coded as RGB and decoded back to one channel.
The file keeps pixels and nothing else, so what a viewer would have applied is applied
here: a picture is turned upright as its EXIF orientation says, and colours with an
embedded ICC profile other than sRGB are converted to sRGB (CMYK included).  An alpha
channel is dropped (the codec has no alpha plane), and of an animation or a multi-page
file only the first frame is coded.  Each of these changes is listed, in words, in
:attr:`Picture.changes`.  Palette images are expanded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from bitstream.container import MAX_PIXELS

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """The input is not a picture we can code."""


@dataclass
class Picture:
    rgb: np.ndarray  # (H, W, 3) uint8
    channels: int  # 1 = grayscale source, 3 = colour
    alpha_dropped: bool = False
    changes: list[str] = field(default_factory=list)  # what was done to the input, in words


def to_picture(image: Image.Image | np.ndarray | str | Path) -> Picture:
    """Normalise a path, PIL image or ``uint8`` array (H, W[, C]) to a :class:`Picture`."""
    if isinstance(image, (str, Path)):
        return _open(Path(image))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise ImageError(f"cannot code an object of type {type(image).__name__}")


def _open(path: Path) -> Picture:
    return _from_pil(open_image(path))


def open_image(path: Path) -> Image.Image:
    """The picture in ``path`` (any format Pillow reads), its pixels loaded; ImageError for
    a missing, unreadable or too large file (refused before its pixels are decoded)."""
    if not path.is_file():
        raise ImageError(
            f"{path} is a folder, not a picture" if path.is_dir() else f"no such file: {path}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(f"image too large: {path} ({im.width}x{im.height})")
                # an animation or multi-page file counts its frames while the file is open
                # (counting reads the file, past the first frame: go back to it)
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                im.load()
                return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large: {path} (limit {MAX_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None


def _from_pil(im: Image.Image) -> Picture:
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"image too large: {im.width}x{im.height}")
    if im.width == 0 or im.height == 0:
        raise ImageError("empty image")
    if im.mode == "F":
        raise ImageError("32-bit float pictures are not supported (convert to 8 or 16 bits)")
    changes = []
    if getattr(im, "n_frames", 1) > 1:
        changes.append(f"first of {im.n_frames} frames")
    im, turned = upright(im)
    if turned:
        changes.append("turned upright as its EXIF orientation says")
    alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    )
    if alpha:
        changes.append("alpha channel dropped")
    if _is_deep(im):
        return Picture(pixels(im)[0], 1, changes=changes)
    rgb, change = _to_srgb(im)
    if change:
        changes.append(change)
    return Picture(np.ascontiguousarray(rgb), channels_of(im), alpha, changes)


def pixels(im: Image.Image) -> tuple[np.ndarray, int]:
    """The (H, W, 3) uint8 pixels of ``im`` as they are (no colour management, alpha left
    out; 16- and 32-bit grayscale keep their top 8 bits of 16), and its channels: 1 for a
    grayscale picture, else 3."""
    if _is_deep(im):
        gray = (np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2)), 1
    return np.ascontiguousarray(np.asarray(im.convert("RGB"))), channels_of(im)


def channels_of(im: Image.Image) -> int:
    """1 for a grayscale picture (a palette of grays included), else 3."""
    gray = _is_deep(im) or im.mode in ("1", "L", "LA", "La")
    return 1 if gray or (im.mode == "P" and _palette_is_gray(im)) else 3


def _is_deep(im: Image.Image) -> bool:
    """Whether ``im`` holds 16- or 32-bit integer (grayscale) samples."""
    return im.mode.startswith("I;16") or im.mode == "I"


def upright(im: Image.Image) -> tuple[Image.Image, bool]:
    """``im`` turned as its EXIF orientation tag says viewers show it, and whether it was."""
    if im.getexif().get(ExifTags.Base.Orientation, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(im), True
    return im, False


def _to_srgb(im: Image.Image) -> tuple[np.ndarray, str | None]:
    """RGB pixels of ``im`` in sRGB, and what was done about its ICC profile (None where it
    has none, or an sRGB or grayscale one).  An unreadable profile is ignored, as viewers
    ignore it."""
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "RGBA", "CMYK", "P"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            name = ImageCms.getProfileDescription(source).strip() or "unnamed"
            if "srgb" not in name.lower():
                mode = "CMYK" if im.mode == "CMYK" else "RGB"
                srgb = ImageCms.createProfile("sRGB")
                rgb = ImageCms.profileToProfile(im.convert(mode), source, srgb, outputMode="RGB")
                return np.asarray(rgb), f"colours converted from ICC profile '{name}' to sRGB"
        except (ImageCms.PyCMSError, OSError, ValueError) as e:
            return np.asarray(im.convert("RGB")), f"unreadable ICC profile ignored ({e})"
    return np.asarray(im.convert("RGB")), None


def _palette_is_gray(im: Image.Image) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _from_array(a: np.ndarray) -> Picture:
    if a.dtype != np.uint8:
        raise ImageError(f"arrays must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"expected an array (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {a.shape[1]}x{a.shape[0]}")
    if a.shape[2] == 1:
        return Picture(np.ascontiguousarray(np.repeat(a, 3, axis=2)), 1)
    alpha = a.shape[2] == 4
    changes = ["alpha channel dropped"] if alpha else []
    return Picture(np.ascontiguousarray(a[..., :3]), 3, alpha, changes)


def to_pil(rgb: np.ndarray, channels: int) -> Image.Image:
    """Decoded ``(H, W, 3)`` array to a PIL image, grayscale when the source was."""
    im = Image.fromarray(rgb, "RGB")
    return im.convert("L") if channels == 1 else im
