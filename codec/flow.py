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

:class:`BlockSearch` is the classical alternative, without parameters: coarse-to-fine
integer block matching with a motion penalty, down to full resolution.  Its flows warp far
closer to the frame than the trained :class:`FlowNet`'s, but they are harder to code
(``InterConfig.flow`` chooses; ``codec/weights/TRAINING.md`` has the measurements).
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


def cost_volume(current: Tensor, warped: Tensor, radius: int, block: int = 3) -> Tensor:
    """(B, (2r+1)^2, H, W): at each pixel ``p`` and displacement ``d`` (row-major over
    ``-r..r`` squared, x fastest) the squared difference of ``current`` at ``p`` and
    ``warped`` at ``p + d``, averaged over channels and a ``block`` x ``block`` block."""
    _, _, h, w = current.shape
    padded = F.pad(warped, [radius] * 4, mode="replicate")
    side = 2 * radius + 1
    costs = [
        (current - padded[:, :, dy : dy + h, dx : dx + w]).pow(2).mean(1, keepdim=True)
        for dy in range(side)
        for dx in range(side)
    ]
    return F.avg_pool2d(
        torch.cat(costs, 1), block, stride=1, padding=block // 2, count_include_pad=False
    )


def displacement_grid(radius: int) -> Tensor:
    """(2, (2r+1)^2): the displacements ``(dx, dy)`` of :func:`cost_volume`'s channels."""
    d = torch.arange(2 * radius + 1, dtype=torch.float32) - radius
    return torch.stack(torch.meshgrid(d, d, indexing="ij")[::-1]).reshape(2, -1)


class FlowLevel(nn.Module):
    """One pyramid level: (current, warped reference, flow so far) -> flow correction."""

    def __init__(self, channels: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        side = 2 * radius + 1
        grid = displacement_grid(radius)
        self.register_buffer("displacements", grid.view(1, 2, side * side, 1, 1), False)
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


def pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """``x`` and its ``levels`` successive 2x2 means (index ``k``: 1/2**k resolution)."""
    out = [x]
    for _ in range(levels):
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def median_of_3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """The elementwise median of three tensors."""
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def median3(flow: Tensor) -> Tensor:
    """The 3x3 median of each flow component (edges replicated): removes isolated wrong
    matches and keeps motion boundaries sharp, as a mean would not.  Exact, by elementwise
    minima and maxima: with each column of a window sorted into (low, middle, high), the
    median of the nine is the median of the largest low, the median middle and the
    smallest high; each column's sort serves three windows.  Several times faster on the
    CPU than ``Tensor.median`` over unfolded patches."""
    h, w = flow.shape[2:]
    padded = F.pad(flow, [1] * 4, mode="replicate")
    a, b, c = padded[:, :, 0:h], padded[:, :, 1 : h + 1], padded[:, :, 2 : h + 2]
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    middle = torch.maximum(low, torch.minimum(high, c))
    low, high = torch.minimum(low, c), torch.maximum(high, c)

    def columns(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return t[..., 0:w], t[..., 1 : w + 1], t[..., 2 : w + 2]

    low0, low1, low2 = columns(low)
    high0, high1, high2 = columns(high)
    largest_low = torch.maximum(torch.maximum(low0, low1), low2)
    smallest_high = torch.minimum(torch.minimum(high0, high1), high2)
    return median_of_3(largest_low, median_of_3(*columns(middle)), smallest_high)


def box_sums(x: Tensor, block: int) -> Tensor:
    """Sums of ``x`` (..., H + block - 1, W + block - 1) over every ``block`` x ``block``
    window: (..., H, W).  Separable slice additions, several times faster on the CPU than
    ``avg_pool2d``."""
    h, w = x.shape[-2] - block + 1, x.shape[-1] - block + 1
    rows = x[..., 0:h, :] + x[..., 1 : h + 1, :]
    for k in range(2, block):
        rows += x[..., k : k + h, :]
    out = rows[..., 0:w] + rows[..., 1 : w + 1]
    for k in range(2, block):
        out += rows[..., k : k + w]
    return out


def window_sizes(n: int, block: int) -> Tensor:
    """How many of ``n`` positions each centred window of ``block`` covers (fewer at edges)."""
    i, half = torch.arange(n), block // 2
    return (i + half).clamp(max=n - 1) - (i - half).clamp(min=0) + 1


class BlockSearch(nn.Module):
    """A flow estimator without parameters: coarse-to-fine block matching with a motion
    penalty, as classical encoders search motion.

    At each level of an image pyramid, from 1/2**levels to full resolution, the reference
    is warped by the upsampled coarser flow, every integer displacement within ``radius``
    pixels of that level is scored by its squared difference over a 5x5 block plus
    ``penalty`` times the squared length of the displacement, the cheapest is
    added, and a 3x3 median removes isolated wrong matches.  The penalty settles the ties of
    flat regions on the coarser flow instead of on noise (a learned flow's failure there):
    its unit is the block's mean squared error in [0, 1] per squared pixel of that level.
    Warped by it, the reference of a training-clip frame pair is 6 to 10 dB closer to the
    frame than warped by the trained :class:`FlowNet` (``benchmarks.inter_prediction``).
    Encoder only, and not trained.
    """

    BLOCK = 5  # side of the matched blocks

    def __init__(self, levels: int = 4, radius: int = 2, penalty: float = 0.002) -> None:
        super().__init__()
        self.levels, self.radius, self.penalty = levels, radius, penalty
        grid = displacement_grid(radius)
        self.register_buffer("displacements", grid, False)
        self.register_buffer("lengths", grid.pow(2).sum(0).view(1, -1, 1, 1), False)

    @torch.no_grad()
    def forward(self, current: Tensor, reference: Tensor) -> Tensor:
        """Full-resolution backward flow from ``current`` to ``reference`` (sides multiples
        of ``2 ** levels``)."""
        cur, ref = pyramid(current, self.levels), pyramid(reference, self.levels)
        flow = None
        for level in range(self.levels, -1, -1):
            c = cur[level]
            flow = c.new_zeros(c.shape[0], 2, *c.shape[2:]) if flow is None else upsample_flow(flow)
            best = self.best_displacements(c, warp(ref[level], flow))
            flow = median3(flow + self.displacements[:, best].transpose(0, 1))
        return flow

    def best_displacements(self, current: Tensor, warped: Tensor) -> Tensor:
        """(B, H, W): at each pixel the index of the cheapest displacement, the first of
        equals.  Costs as :func:`cost_volume` with 5x5 blocks plus the penalty, computed
        one displacement at a time into a running minimum: far faster on the CPU than a
        whole cost volume and an ``argmin`` over its channels (the data stays in cache)."""
        b, channels, h, w = current.shape
        r, side, half = self.radius, 2 * self.radius + 1, self.BLOCK // 2
        padded = F.pad(warped, [r] * 4, mode="replicate")
        area = window_sizes(h, self.BLOCK).view(h, 1) * window_sizes(w, self.BLOCK).view(1, w)
        area = area.to(current.dtype) * channels
        # Squared differences summed over channels, in a zero border for the block sums.
        diff = current.new_zeros(b, h + 2 * half, w + 2 * half)
        inner = diff[:, half : half + h, half : half + w]
        best_cost, best = None, torch.zeros(b, h, w, dtype=torch.long, device=current.device)
        better = torch.empty(b, h, w, dtype=torch.bool, device=current.device)
        for k, penalty in enumerate((self.penalty * self.lengths).view(-1).tolist()):
            dy, dx = divmod(k, side)
            torch.sum((current - padded[:, :, dy : dy + h, dx : dx + w]).pow_(2), 1, out=inner)
            cost = box_sums(diff, self.BLOCK).div_(area).add_(penalty)
            if best_cost is None:
                best_cost = cost
                continue
            torch.lt(cost, best_cost, out=better)
            torch.minimum(best_cost, cost, out=best_cost)
            best.masked_fill_(better, k)
        return best


class FlowNet(nn.Module):
    """Pyramid flow estimator: ``levels`` levels from 1/2**levels to 1/2 resolution, each
    searching ``radius`` pixels of its own resolution around the coarser level's flow."""

    def __init__(self, levels: int = 4, channels: int = 24, radius: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(FlowLevel(channels, radius) for _ in range(levels))

    def pyramid_flows(self, current: Tensor, reference: Tensor) -> list[Tensor]:
        """Flows from the coarsest level to the finest (1/2 resolution); the frames' sides
        must be multiples of ``2 ** levels``."""
        cur, ref = pyramid(current, len(self.nets)), pyramid(reference, len(self.nets))
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
