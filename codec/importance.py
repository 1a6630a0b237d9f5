"""Importance map: how many latent channels are coded at each position (Li et al. 2018).

The analysis transform emits one extra channel, squashed to ``p`` in (0, 1).  It is
quantized to ``levels + 1`` integer levels ``k = round(levels * p)``; level ``k``
keeps the first ``k * group`` latent channels at that position (``group =
channels // levels``) and the rest are neither coded nor sent: the decoder puts the
hyperprior's mean there.  The map itself is entropy coded, so it must pay for itself.

During training the hard mask is used forward and the gradient flows through the
soft ramp ``clamp(levels * p - g, 0, 1)`` of channel group ``g``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def importance_levels(p: Tensor, levels: int) -> Tensor:
    """Hard map levels (integers 0..levels, float dtype) of importance ``p`` in (0, 1)."""
    return torch.round(p * levels)


def channel_mask(p: Tensor, levels: int, channels: int) -> Tensor:
    """Mask of shape ``(B, channels, H, W)`` from ``p`` of shape ``(B, 1, H, W)``.

    Hard forward, soft ramp backward (straight through).
    """
    group = channels // levels
    g = torch.arange(channels, device=p.device, dtype=p.dtype).div(group, rounding_mode="floor")
    g = g.view(1, channels, 1, 1)
    soft = torch.clamp(levels * p - g, 0.0, 1.0)
    hard = (g < importance_levels(p, levels)).to(p.dtype)
    return soft + (hard - soft).detach()


def mask_from_levels(levels_map: Tensor, levels: int, channels: int) -> Tensor:
    """Boolean mask ``(B, channels, H, W)`` from integer levels ``(B, 1, H, W)``."""
    group = channels // levels
    g = torch.arange(channels, device=levels_map.device).div(group, rounding_mode="floor")
    return g.view(1, channels, 1, 1) < levels_map
