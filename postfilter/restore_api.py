"""Run the restoration networks (:mod:`postfilter.restore`) on pictures, in overlapping tiles.

``denoise``, ``super_resolve`` and ``deblur`` take and return PIL images (grayscale stays
grayscale, alpha is passed through, resized for super-resolution); :class:`RestoreRunner`
works on HxWx3 uint8 arrays and, for the benchmark, on float tensors.  Tiles overlap by the
network's context, so tiled output equals untiled output up to float rounding (rarely one
grey level: the summation order of a convolution can depend on its input's size, and on the
thread count).  Decoders, which must give the same pixels every time, run the networks on
one thread (:func:`codec.determinism.one_thread`) in the default tiles, which depend only
on the picture size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec.image import to_picture, to_pil, upright
from evaluation.metrics import rgb_array

from . import restore
from .api import pad_to, rgb_tensor, rgb_uint8, tile_windows, tiles_progress
from .weights import RESTORE_WEIGHTS, PostFilterError, load_restorer

DEFAULT_TILE = 512  # tile side in input pixels
ESTIMATE_SIDE = 1024  # the blind noise estimate looks at a centred crop at most this big


def check_sigma(sigma: float, high: float = restore.NOISE_MAX) -> float:
    """``sigma`` (noise std on the 0..255 scale) if it lies in 0..``high``, else ValueError."""
    if not 0 <= sigma <= high:
        raise ValueError(f"noise sigma must be between 0 and {high:g}, got {sigma:g}")
    return float(sigma)


def check_blur(blur: float) -> float:
    """``blur`` (Gaussian blur std in pixels) if it is in the trained range, else ValueError."""
    if not restore.BLUR_MIN <= blur <= restore.BLUR_MAX:
        lo, hi = restore.BLUR_MIN, restore.BLUR_MAX
        raise ValueError(f"blur sigma must be between {lo:g} and {hi:g}, got {blur:g}")
    return float(blur)


def check_scale(scale: int) -> int:
    """``scale`` if it is a trained super-resolution factor (2 or 4), else ValueError."""
    if scale not in (2, 4):
        raise ValueError(f"super-resolution scale must be 2 or 4, got {scale}")
    return scale


def check_conditions(
    task: str, sigma: float | None, blur: float | None
) -> tuple[float | None, float | None]:
    """The (sigma, blur) a ``task`` network is told, validated; ValueError outside its range.

    Denoising without ``sigma`` is blind (None); deblurring without ``sigma`` assumes 0.
    """
    if task == "denoise":
        return (None if sigma is None else check_sigma(sigma)), None
    if task == "deblur":
        if blur is None:
            raise ValueError("deblurring needs the blur sigma")
        return check_sigma(sigma or 0.0, restore.DEBLUR_NOISE_MAX), check_blur(blur)
    if sigma is not None or blur is not None:
        raise ValueError("super-resolution takes no noise or blur sigma")
    return None, None


class RestoreRunner:
    """A loaded restoration network: ``runner(rgb, sigma, blur)`` restores HxWx3 uint8."""

    def __init__(self, weights: Path | str) -> None:
        self.net, meta = load_restorer(weights)
        self.model_id: str = meta["model_id"]
        self.task: str = self.net.config.task
        self.scale: int = self.net.config.scale

    @property
    def context(self) -> int:
        """Overlap (input pixels) that makes tiled output equal to untiled output."""
        return self.net.context

    def estimate_sigma(self, x: torch.Tensor | np.ndarray) -> float:
        """The noise sigma (0..50) read off a centred crop of ``x`` (denoise only), with
        :func:`postfilter.restore.estimate_noise_sigma`.

        ``x`` is an HxWx3 uint8 array or a (1,3,H,W) float tensor in [0, 1].
        """
        if self.task != "denoise":
            raise ValueError(f"{self.model_id} is a {self.task} network, it estimates no noise")
        if isinstance(x, torch.Tensor):
            x = x[0].permute(1, 2, 0).numpy() * 255.0
        else:
            x = rgb_array(x)
        h, w = x.shape[:2]
        y0, x0 = max(0, (h - ESTIMATE_SIDE) // 2), max(0, (w - ESTIMATE_SIDE) // 2)
        crop = x[y0 : y0 + ESTIMATE_SIDE, x0 : x0 + ESTIMATE_SIDE]
        return min(restore.estimate_noise_sigma(crop), restore.NOISE_MAX)

    def _conditions(
        self, x: torch.Tensor | np.ndarray, sigma: float | None, blur: float | None, tile: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The checked conditioning tensors; denoising without ``sigma`` estimates it."""
        if tile < 16 or tile % 2:
            raise ValueError(f"tile size must be even and at least 16, got {tile}")
        sigma, blur = check_conditions(self.task, sigma, blur)
        if self.task == "denoise" and sigma is None:
            sigma = self.estimate_sigma(x)
        return (
            None if sigma is None else torch.tensor([sigma]),
            None if blur is None else torch.tensor([blur]),
        )

    def _tiles(
        self, x: torch.Tensor | np.ndarray, cond: tuple, tile: int, progress: bool = False
    ) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """(output rows, output columns, restored (1,3,h,w) float tile) covering the output.

        ``x`` is a (1,3,H,W) float tensor or an HxWx3 uint8 array (converted tile by tile, so
        a large picture never exists as floats); H and W even for the half-resolution nets.
        """
        is_array = isinstance(x, np.ndarray)
        h, w = x.shape[:2] if is_array else x.shape[-2:]
        windows = tile_windows(h, w, tile, self.context, self.scale)
        for (rows, cols), (in_rows, in_cols), place in tiles_progress(windows, progress):
            part = self.net(rgb_tensor(x[rows, cols]) if is_array else x[..., rows, cols], *cond)
            yield *place, part[..., in_rows, in_cols]

    @torch.no_grad()
    def restore(
        self,
        x: torch.Tensor,
        sigma: float | None = None,
        blur: float | None = None,
        tile: int = DEFAULT_TILE,
    ) -> torch.Tensor:
        """The restored (1,3,H*scale,W*scale) float tensor (unclipped) of ``x`` (1,3,H,W).

        Denoising without ``sigma`` estimates it (:func:`check_conditions` for the ranges).
        ``tile`` is the side of the tiles in input pixels; the result does not depend on it,
        up to float rounding.
        """
        cond = self._conditions(x, sigma, blur, tile)
        k, (h, w) = self.scale, x.shape[-2:]
        if k == 1:
            x = pad_to(x, 2)  # the half-resolution trunk needs even sizes
        out = x.new_empty(1, 3, x.shape[-2] * k, x.shape[-1] * k)
        for rows, cols, part in self._tiles(x, cond, tile):
            out[..., rows, cols] = part
        return out[..., : h * k, : w * k]

    @torch.no_grad()
    def __call__(
        self,
        rgb: np.ndarray,
        sigma: float | None = None,
        blur: float | None = None,
        tile: int = DEFAULT_TILE,
        progress: bool = False,
    ) -> np.ndarray:
        """Restored HxWx3 uint8 (times the scale for super-resolution) of ``rgb``; as
        :meth:`restore`, without holding the whole picture as floats.  ``progress``: a bar
        over the tiles of a large picture."""
        rgb = rgb_array(rgb)
        cond = self._conditions(rgb, sigma, blur, tile)
        k, (h, w) = self.scale, rgb.shape[:2]
        if k == 1 and (h % 2 or w % 2):
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        out = np.empty((rgb.shape[0] * k, rgb.shape[1] * k, 3), np.uint8)
        for rows, cols, part in self._tiles(rgb, cond, tile, progress):
            out[rows, cols] = rgb_uint8(part)
        return out[: h * k, : w * k]


@functools.lru_cache(maxsize=4)
def load_runner(weights: str) -> RestoreRunner:
    """The runner of a restoration weights file, loaded once."""
    return RestoreRunner(weights)


def runner_for(task: str, weights: Path | str | None = None) -> RestoreRunner:
    """The runner of ``weights`` (default: the shipped file of ``task``), checked to do ``task``."""
    path = str(RESTORE_WEIGHTS[task] if weights is None else weights)
    runner = load_runner(path)
    if runner.task != task:
        raise PostFilterError(f"{path} holds a {runner.task} network, not {task}")
    return runner


def restore_image(
    image: Image.Image,
    runner: RestoreRunner,
    sigma: float | None = None,
    blur: float | None = None,
    tile: int = DEFAULT_TILE,
    progress: bool = False,
) -> Image.Image:
    """``runner`` on a PIL image turned upright (its EXIF orientation) and in sRGB (its ICC
    profile), as :mod:`codec.image` reads pictures; grayscale stays grayscale, alpha is
    kept (resized for super-resolution).  ``progress``: a bar over the tiles of a large
    picture."""
    image = upright(image)[0]
    pic = to_picture(image)
    out = to_pil(runner(pic.rgb, sigma, blur, tile, progress), pic.channels)
    if pic.alpha_dropped:
        alpha = image.convert("RGBA" if pic.channels == 3 else "LA").getchannel("A")
        out.putalpha(alpha.resize(out.size, Image.Resampling.BICUBIC))
    return out


def denoise(
    image: Image.Image,
    sigma: float | None = None,
    *,
    weights: Path | str | None = None,
    tile: int = DEFAULT_TILE,
) -> Image.Image:
    """Remove white Gaussian noise of std ``sigma`` (0..50 on the 0..255 scale) from ``image``.

    With ``sigma`` None (blind) the noise level is estimated from the picture.
    """
    check_conditions("denoise", sigma, None)  # before loading the network
    return restore_image(image, runner_for("denoise", weights), sigma, None, tile)


def super_resolve(
    image: Image.Image,
    scale: int,
    *,
    weights: Path | str | None = None,
    tile: int = DEFAULT_TILE,
) -> Image.Image:
    """``image`` upscaled by ``scale`` (2 or 4); ``tile`` is in input pixels."""
    return restore_image(image, runner_for(f"sr{check_scale(scale)}", weights), None, None, tile)


def deblur(
    image: Image.Image,
    blur_sigma: float,
    sigma: float = 0.0,
    *,
    weights: Path | str | None = None,
    tile: int = DEFAULT_TILE,
) -> Image.Image:
    """Undo a Gaussian blur of std ``blur_sigma`` pixels (0.5..3) with noise of std ``sigma``
    (0..25 on the 0..255 scale)."""
    check_conditions("deblur", sigma, blur_sigma)  # before loading the network
    return restore_image(image, runner_for("deblur", weights), sigma, blur_sigma, tile)
