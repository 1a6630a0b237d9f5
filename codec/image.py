"""Reading pictures into the 8-bit RGB arrays the codec works on, and back.

Accepted: anything Pillow opens, 8-bit (16-bit input is reduced to 8 bits),
RGB or grayscale.  Grayscale is coded as RGB and decoded back to one channel.
An alpha channel is dropped (the codec has no alpha plane); callers are told so
through :attr:`Picture.alpha_dropped`.  Palette images are expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Largest picture accepted (pixels); bigger ones are refused, not swapped to death.
MAX_PIXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """The input is not a picture we can code."""


@dataclass
class Picture:
    rgb: np.ndarray  # (H, W, 3) uint8
    channels: int  # 1 = grayscale source, 3 = colour
    alpha_dropped: bool = False


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
    if not path.is_file():
        raise ImageError(f"no such file: {path}")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:  # refuse before decoding the pixels
                raise ImageError(f"image too large: {path} ({im.width}x{im.height})")
            im.load()
            return _from_pil(im)
    except Image.DecompressionBombError:
        raise ImageError(f"image too large: {path} (limit {MAX_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None


def _from_pil(im: Image.Image) -> Picture:
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"image too large: {im.width}x{im.height}")
    if im.width == 0 or im.height == 0:
        raise ImageError("empty image")
    alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    )
    if im.mode.startswith("I;16") or im.mode == "I":
        gray = (np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return _from_array(gray)
    gray = im.mode in ("1", "L", "LA", "La") or (im.mode == "P" and _palette_is_gray(im))
    rgb = np.asarray(im.convert("RGB"))
    return Picture(np.ascontiguousarray(rgb), 1 if gray else 3, alpha)


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
    return Picture(np.ascontiguousarray(a[..., :3]), 3, alpha_dropped=a.shape[2] == 4)


def to_pil(rgb: np.ndarray, channels: int) -> Image.Image:
    """Decoded ``(H, W, 3)`` array to a PIL image, grayscale when the source was."""
    im = Image.fromarray(rgb, "RGB")
    return im.convert("L") if channels == 1 else im
