"""Blind mode's strength estimate: a small CNN that reads the coding strength off a picture.

A decoded picture shows how hard it was coded (blocking on the transform grid, ringing,
lost texture), but only where it has detail: a flat sky looks the same at QP 22 and 42.
``StrengthEstimator`` therefore predicts, at every position of a 1/16-resolution grid, both a
value (the normalised QP or quality, as :data:`postfilter.model.CONDITIONS` maps it) and a
confidence, and returns the confidence-weighted mean over the whole picture.  The filter is
then told that value, as if the user had given it.

Blocking sits on a grid that starts at the picture's top-left corner, so the estimate looks
at a window whose corner lies on a multiple of :data:`GRID` (:func:`estimate_window`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRID = 64  # HEVC's largest coding block: windows start on this grid
WINDOW = 1024  # the estimate looks at a window at most this big
STEP_GAIN = 10.0  # scale of the neighbour differences the estimator is given


class StrengthEstimator(nn.Module):
    """Decoded RGB in [0, 1] (N,3,H,W; H, W multiples of 4) -> normalised strength (N,)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels

        def conv(cin: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, c, 3, stride=stride, padding=1), nn.ReLU()]

        # pixel-unshuffle by 4 keeps each pixel's position within the 4x4 transform grid
        layers = conv(16 * 9) + conv(c) + conv(c, 2) + conv(c) + conv(c, 2) + conv(c)
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 2, 1)  # value, confidence logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the artefacts are small steps between neighbours: given amplified, the network
        # learns several times faster than from the pixels alone
        dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
        dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
        y = torch.cat([x - 0.5, STEP_GAIN * dx, STEP_GAIN * dy], dim=1)
        value, logit = self.out(self.features(F.pixel_unshuffle(y, 4))).float().unbind(1)
        weight = torch.softmax(logit.flatten(1), dim=1)
        return (weight * value.flatten(1)).sum(dim=1)


def estimate_window(x: torch.Tensor) -> torch.Tensor:
    """The part of ``x`` (N,3,H,W) the estimate looks at: a centred window at most
    :data:`WINDOW` square with its top-left corner on the :data:`GRID`, cut to multiples of
    4 (at least 4x4: smaller pictures are padded by replication)."""
    h, w = x.shape[-2:]
    y0, x0 = (max(0, (n - WINDOW) // 2) // GRID * GRID for n in (h, w))
    x = x[..., y0 : y0 + WINDOW, x0 : x0 + WINDOW]
    h4, w4 = (max(4, n // 4 * 4) for n in x.shape[-2:])
    x = x[..., :h4, :w4]
    return F.pad(x, (0, w4 - x.shape[-1], 0, h4 - x.shape[-2]), mode="replicate")
