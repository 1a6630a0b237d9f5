"""Image quality and rate metrics, computed the way published learned-codec results are.

PSNR and MS-SSIM are measured on 8-bit RGB (as CompressAI does), so our numbers can be
compared with the published curves in ``data/kodak_published_rd.csv``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

MAX_DB = 100.0  # identical images: a finite cap keeps results valid (strict) JSON
MS_SSIM_MIN_SIDE = 161  # five scales of an 11-tap window need (11 - 1) * 2**4 + 1 pixels


def rgb_array(img: Image.Image | np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 array of ``img`` (converted to RGB if it is a PIL image)."""
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"))
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    return img


def mse(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Mean squared error over all pixels and channels of two same-size RGB images."""
    x, y = rgb_array(a), rgb_array(b)
    if x.shape != y.shape:
        raise ValueError(f"image sizes differ: {x.shape} vs {y.shape}")
    d = x.astype(np.float64) - y.astype(np.float64)
    return float(np.mean(d * d))


def _psnr_db(e: float) -> float:
    """PSNR in dB of a mean squared error of 8-bit values (peak 255), capped at ``MAX_DB``."""
    return MAX_DB if e == 0 else min(MAX_DB, 10 * math.log10(255.0**2 / e))


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """PSNR in dB of 8-bit RGB (peak 255), capped at ``MAX_DB``."""
    return _psnr_db(mse(a, b))


def plane_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two same-shape arrays on the 8-bit scale (a Y plane, a luma; peak 255),
    capped at ``MAX_DB``."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return _psnr_db(float(np.mean(d * d)))


def ms_ssim(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float | None:
    """MS-SSIM of 8-bit RGB (pytorch-msssim, data_range 255); None if the image is too small.

    Five-scale MS-SSIM is undefined below ``MS_SSIM_MIN_SIDE`` pixels on the short side.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x, y = rgb_array(a), rgb_array(b)
    if x.shape != y.shape:
        raise ValueError(f"image sizes differ: {x.shape} vs {y.shape}")
    if min(x.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None

    def tensor(v: np.ndarray) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32).permute(2, 0, 1)[None]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster for one image, and far faster on a loaded machine
    try:
        with torch.no_grad():
            return float(_ms_ssim(tensor(x), tensor(y), data_range=255))
    finally:
        torch.set_num_threads(threads)


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM on the dB scale, -10 log10(1 - MS-SSIM), capped at ``MAX_DB``."""
    if value is None:
        return None
    return MAX_DB if value >= 1 else min(MAX_DB, -10 * math.log10(1 - value))


def bpp(num_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of a file of ``num_bytes`` bytes coding a ``width`` x ``height`` image."""
    return 8.0 * num_bytes / (width * height)
