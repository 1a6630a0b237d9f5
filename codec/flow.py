"""Motion: a small coarse-to-fine optical-flow estimator and backward warping.

Flows are *backward*: ``flow[:, :, i, j] = (dx, dy)`` in pixels says that pixel ``(i, j)``
of the current frame is found at ``(i + dy, j + dx)`` in the reference, and
``warp(reference, flow)`` predicts the current frame.

:class:`FlowNet` follows SpyNet (Ranjan and Black 2017): at each level of an image
pyramid a small CNN sees the current frame, the reference warped by the upsampled flow
of the coarser level and that flow, and adds a correction.  The finest level is at half
resolution and its flow is upsampled: full-resolution motion detail costs four times as
much and is mostly spent on noise.  Only the encoder runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """``x`` (B, C, H, W) sampled at ``p + flow[p]`` (bilinear, edges replicated)."""
    _, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def upsample_flow(flow: Tensor, factor: int = 2) -> Tensor:
    """A flow at ``factor`` times the resolution (vectors scaled to the new pixels)."""
    up = F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
    return up * factor


def _level_net(channels: int) -> nn.Sequential:
    """One pyramid level: (current, warped reference, flow) -> flow correction."""
    c = channels
    last = nn.Conv2d(c // 2, 2, 5, padding=2)
    nn.init.zeros_(last.weight)  # start from "no correction"
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(8, c, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(c, c, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(c, c // 2, 5, padding=2),
        nn.ReLU(inplace=True),
        last,
    )


class FlowNet(nn.Module):
    """Pyramid flow estimator: ``levels`` levels from 1/2**levels to 1/2 resolution."""

    def __init__(self, levels: int = 4, channels: int = 24) -> None:
        super().__init__()
        self.nets = nn.ModuleList(_level_net(channels) for _ in range(levels))

    def pyramid_flows(self, current: Tensor, reference: Tensor) -> list[Tensor]:
        """Flows from the coarsest level to the finest (1/2 resolution); the frames' sides
        must be multiples of ``2 ** levels``."""
        cur, ref = [current], [reference]
        for _ in self.nets:
            cur.append(F.avg_pool2d(cur[-1], 2))
            ref.append(F.avg_pool2d(ref[-1], 2))
        coarsest = cur[-1]
        flow = coarsest.new_zeros(coarsest.shape[0], 2, *coarsest.shape[2:])
        flows = []
        for k, net in enumerate(self.nets):
            level = len(self.nets) - k  # pyramid index: 1/2**level resolution
            if k:
                flow = upsample_flow(flow)
            warped = warp(ref[level], flow)
            flow = flow + net(torch.cat([cur[level], warped, flow], dim=1))
            flows.append(flow)
        return flows

    def forward(self, current: Tensor, reference: Tensor) -> Tensor:
        """Full-resolution backward flow from ``current`` to ``reference``."""
        return upsample_flow(self.pyramid_flows(current, reference)[-1])
