"""Building blocks shared by every enhancement network of :mod:`postfilter`.

``HalfResolutionNet`` is the trunk of the artefact filter, the denoiser and the deblurrer:
pixel-unshuffle by 2 (as FFDNet), one constant plane per conditioning value (QP, noise
sigma, blur sigma), EDSR residual blocks, pixel-shuffle back to a full-resolution
correction.  ``SubPixelUpsampler`` is the super-resolution network (EDSR-baseline body,
ESPCN sub-pixel output) that predicts the detail missing from a bicubic upscale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class HalfResolutionNet(nn.Module):
    """RGB in [0, 1] (N,3,H,W; H, W even) and conditions (N,k) -> restored RGB."""

    def __init__(self, channels: int, blocks: int, conditions: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(4 * 3 + conditions, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.tail = nn.Conv2d(channels, 4 * 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start as the identity
        nn.init.zeros_(self.tail.bias)

    @property
    def context(self) -> int:
        """Pixels of context each output pixel depends on, on each side (full resolution)."""
        return 2 * (len(self.body) * 2 + 2) + 2

    def residual(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The correction to add to ``x``."""
        y = F.pixel_unshuffle(x - 0.5, 2)
        n, _, h, w = y.shape
        planes = cond.to(y.dtype).reshape(cond.shape[0], -1, 1, 1)  # one row or n rows
        planes = planes.expand(n, planes.shape[1], h, w)
        h = self.head(torch.cat([y, planes], dim=1))
        return F.pixel_shuffle(self.tail(self.body(h) + h), 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x, cond)


class SubPixelUpsampler(nn.Module):
    """Low-resolution RGB in [0, 1] (N,3,h,w) -> RGB (N,3,h*scale,w*scale).

    The network works at the low resolution and its pixel-shuffled output is added to the
    bicubic upscale, so it only has to learn the missing detail.
    """

    def __init__(self, scale: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.body_end = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def context(self) -> int:
        """Low-resolution pixels of context on each side (bicubic support included)."""
        return 2 * len(self.body) + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x - 0.5)
        detail = F.pixel_shuffle(self.tail(self.body_end(self.body(h)) + h), self.scale)
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + detail
