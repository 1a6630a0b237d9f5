"""Motion: a small coarse-to-fine optical-flow estimator and backward warping.

Flows are *backward*: ``flow[:, :, i, j] = (dx, dy)`` in pixels says that pixel ``(i, j)``
of the current frame is found at ``(i + dy, j + dx)`` in the reference, and
``warp(reference, flow)`` predicts the current frame.

:class:`FlowNet` is coarse to fine, as SpyNet (Ranjan and Black 2017) and PWC-Net (Sun et
al. 2018): at each level of an image pyramid the reference is warped by the upsampled flow
of the coarser level, a local *cost volume* compares the current frame with that warped
reference at every displacement within ``radius`` pixels (block matching: the squared
difference summed over 3x3 blocks), and the level's correction is the cost volume's
soft-argmin plus a small CNN's refinement.  The soft-argmin gives a useful flow before any
training (a SpyNet-style CNN that must learn motion from raw pixels did not move from zero
flow in thousands of CPU steps); the CNN learns what block matching gets wrong (flat and
occluded regions, the aperture problem).  The finest level is at half resolution and its
flow is upsampled: full-resolution motion detail costs four times as much and is mostly
spent on noise.  Only the encoder runs it.
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


def cost_volume(current: Tensor, warped: Tensor, radius: int) -> Tensor:
    """(B, (2r+1)^2, H, W): at each pixel ``p`` and displacement ``d`` (row-major over
    ``-r..r`` squared, x fastest) the squared difference of ``current`` at ``p`` and
    ``warped`` at ``p + d``, averaged over channels and a 3x3 block."""
    _, _, h, w = current.shape
    padded = F.pad(warped, [radius] * 4, mode="replicate")
    side = 2 * radius + 1
    costs = [
        (current - padded[:, :, dy : dy + h, dx : dx + w]).pow(2).mean(1, keepdim=True)
        for dy in range(side)
        for dx in range(side)
    ]
    return F.avg_pool2d(torch.cat(costs, 1), 3, stride=1, padding=1, count_include_pad=False)


class FlowLevel(nn.Module):
    """One pyramid level: (current, warped reference, flow so far) -> flow correction."""

    def __init__(self, channels: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        side = 2 * radius + 1
        d = torch.arange(side, dtype=torch.float32) - radius
        grid = torch.stack(torch.meshgrid(d, d, indexing="ij")[::-1])  # (2: dx, dy, side, side)
        self.register_buffer("displacements", grid.reshape(1, 2, side * side, 1, 1), False)
        self.log_sharpness = nn.Parameter(torch.tensor(2.3))  # softmax sharpness e^2.3 = 10
        c = channels
        last = nn.Conv2d(c, 2, 3, padding=1)
        nn.init.zeros_(last.weight)  # start from the soft-argmin alone
        nn.init.zeros_(last.bias)
        self.refine = nn.Sequential(
            nn.Conv2d(side * side + 10, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
            last,
        )

    def forward(self, current: Tensor, warped: Tensor, flow: Tensor) -> Tensor:
        cost = cost_volume(current, warped, self.radius)
        cost = cost / (cost.mean(1, keepdim=True) + 1e-4)  # contrast-invariant, ~1 on average
        weights = torch.softmax(-self.log_sharpness.exp() * cost, dim=1).unsqueeze(1)
        matched = (weights * self.displacements).sum(2)
        features = torch.cat([cost, current, warped, flow, matched], dim=1)
        return matched + self.refine(features)


class FlowNet(nn.Module):
    """Pyramid flow estimator: ``levels`` levels from 1/2**levels to 1/2 resolution, each
    searching ``radius`` pixels of its own resolution around the coarser level's flow."""

    def __init__(self, levels: int = 4, channels: int = 24, radius: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(FlowLevel(channels, radius) for _ in range(levels))

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
            flow = flow + net(cur[level], warped, flow)
            flows.append(flow)
        return flows

    def forward(self, current: Tensor, reference: Tensor) -> Tensor:
        """Full-resolution backward flow from ``current`` to ``reference``."""
        return upsample_flow(self.pyramid_flows(current, reference)[-1])
