"""Exact fixed-point evaluation of the hyper-synthesis network.

The decoder selects a probability table per symbol from the hyper-synthesis
output, so that output must be identical on every machine, thread count and
device.  Float convolutions are not: their summation order varies.  Here the
weights are rounded to multiples of ``2**-WEIGHT_BITS`` and activations to
multiples of ``2**-FIXED_BITS``; every product and partial sum is then an
integer below ``2**53`` and float64 represents it exactly, so the result does
not depend on the order of the additions.  Rounding back to ``FIXED_BITS``
after each layer uses ``floor``, exact as well.

Magnitudes stay far from the limit: activations below ``2**20``, weights below
``2**16`` and at most a few thousand terms per output give sums below ``2**48``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .entropy_models import FIXED_BITS

WEIGHT_BITS = 12
_ACT_LIMIT = 2.0**20


class IntegerSequential:
    """A Conv2d / ReLU / PixelShuffle ``nn.Sequential`` evaluated in fixed point."""

    def __init__(self, net: nn.Sequential) -> None:
        self.layers: list[tuple[str, object]] = []
        for layer in net:
            if isinstance(layer, nn.Conv2d):
                w = torch.round(layer.weight.detach().double() * 2**WEIGHT_BITS)
                b = torch.round(layer.bias.detach().double() * 2 ** (WEIGHT_BITS + FIXED_BITS))
                if w.abs().max() >= 2**16:
                    raise ValueError("hyper-synthesis weight too large for exact evaluation")
                self.layers.append(("conv", (w, b, layer.stride, layer.padding)))
            elif isinstance(layer, nn.ReLU):
                self.layers.append(("relu", None))
            elif isinstance(layer, nn.PixelShuffle):
                self.layers.append(("shuffle", layer.upscale_factor))
            else:
                raise TypeError(f"cannot evaluate {type(layer).__name__} exactly")

    def __call__(self, z: Tensor) -> Tensor:
        """Output for integer input ``z``, as float64 multiples of ``2**-FIXED_BITS``."""
        a = z.double() * 2**FIXED_BITS  # fixed point, FIXED_BITS fractional bits
        for kind, arg in self.layers:
            if kind == "conv":
                w, b, stride, padding = arg
                acc = F.conv2d(a, w, b, stride=stride, padding=padding)
                a = torch.floor(acc / 2**WEIGHT_BITS).clamp(-_ACT_LIMIT, _ACT_LIMIT)
            elif kind == "relu":
                a = a.clamp_min(0)
            else:
                a = F.pixel_shuffle(a, arg)
        return a / 2**FIXED_BITS
