"""Enhance decoded pictures with the post-filter, told the QP or blind, in overlapping tiles."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation.metrics import rgb_array

from .model import denormalize_qp, normalize_qp
from .weights import load_weights

QP_MIN, QP_MAX = 22.0, 47.0  # the trained range; QPs outside it are clamped
DEFAULT_TILE = 512
ESTIMATE_SIDE = 1024  # the blind estimate looks at a centred crop at most this big


def rgb_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (1,3,H,W) float in [0, 1]."""
    return torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]


def rgb_uint8(x: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) float -> HxWx3 uint8, clipped and rounded."""
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` (...,H,W) padded at the bottom and right, replicating edges, to multiples."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


class PostFilter:
    """A loaded post-filter: ``pf(rgb, qp)`` restores an HxWx3 uint8 array."""

    def __init__(self, weights: Path | str | None = None) -> None:
        self.net, meta = load_weights(weights)
        self.model_id: str = meta["model_id"]
        self._scale_qp, self._scale = meta["residual_scale"]

    def residual_scale(self, qp: float) -> float:
        """The safety factor on the predicted correction at ``qp`` (from the weights file)."""
        return float(np.interp(qp, self._scale_qp, self._scale))

    @property
    def context(self) -> int:
        """Overlap (pixels) that makes tiled output equal to untiled output."""
        return self.net.filter.context

    @torch.no_grad()
    def estimate_qp(self, rgb: np.ndarray) -> float:
        """The QP the estimator reads off the picture (blind mode)."""
        h, w = rgb.shape[:2]
        y, x = max(0, (h - ESTIMATE_SIDE) // 2), max(0, (w - ESTIMATE_SIDE) // 2)
        crop = pad_to(rgb_tensor(rgb[y : y + ESTIMATE_SIDE, x : x + ESTIMATE_SIDE]), 4)
        return float(denormalize_qp(self.net.estimator(crop)))

    @torch.no_grad()
    def __call__(
        self, rgb: np.ndarray, qp: float | None = None, tile: int = DEFAULT_TILE
    ) -> np.ndarray:
        """Restored copy of ``rgb`` (HxWx3 uint8); the QP is estimated when ``qp`` is None."""
        rgb = rgb_array(rgb)
        if tile < 16 or tile % 2:
            raise ValueError(f"tile size must be even and at least 16, got {tile}")
        qp = min(max(self.estimate_qp(rgb) if qp is None else qp, QP_MIN), QP_MAX)
        qn = torch.tensor([normalize_qp(qp)])
        h, w = rgb.shape[:2]
        x = pad_to(rgb_tensor(rgb), 2)
        hp, wp = x.shape[-2:]
        m = self.context
        res = torch.empty_like(x)
        for y0 in range(0, hp, tile):
            for x0 in range(0, wp, tile):
                y1, x1 = min(y0 + tile, hp), min(x0 + tile, wp)
                ya, xa = max(0, y0 - m), max(0, x0 - m)
                part = x[..., ya : min(hp, y1 + m), xa : min(wp, x1 + m)]
                r = self.net.filter.residual(part, qn)
                res[..., y0:y1, x0:x1] = r[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
        return rgb_uint8((x + self.residual_scale(qp) * res)[..., :h, :w])


@functools.lru_cache(maxsize=4)
def load_filter(weights: str | None = None) -> PostFilter:
    """The post-filter of a weights file (default: the shipped one), loaded once."""
    return PostFilter(weights)


def enhance(
    image: Image.Image,
    qp: float | None = None,
    *,
    weights: Path | str | None = None,
    tile: int = DEFAULT_TILE,
) -> Image.Image:
    """Remove HEVC/HEIC coding artefacts from a decoded picture; blind when ``qp`` is None.

    ``qp`` is the HEVC QP the picture was coded with (an HEIC ``quality`` q maps to QP
    ``postfilter.heic.quality_to_qp(q)``).  An alpha channel is passed through unchanged.
    """
    pf = load_filter(None if weights is None else str(weights))
    out = Image.fromarray(pf(rgb_array(image), qp, tile))
    if "A" in image.getbands():
        out.putalpha(image.getchannel("A"))
    return out
