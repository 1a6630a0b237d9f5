"""Building blocks of the transforms, chosen to be cheap on a CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import NonNegative


class GDN(nn.Module):
    """Generalized divisive normalization (Balle, Laparra and Simoncelli 2016):
    ``y[i] = x[i] / sqrt(beta[i] + sum_j gamma[i, j] * x[j]**2)``, or with ``inverse``
    ``x[i] * sqrt(...)``, as in the synthesis transform.  ``beta`` (at least ``beta_min``)
    and ``gamma`` are trained through :class:`codec.ops.NonNegative`; CompressAI's ``GDN``
    with the same parameter names."""

    def __init__(
        self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1
    ) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(beta_min)
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma_reparam = NonNegative()
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(c, c, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """'Same'-padded convolution; ``stride`` 2 halves the resolution."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that exactly doubles the resolution (stride 2)."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


def analysis_transform(n: int, out: int, cin: int = 3) -> nn.Sequential:
    """Image (``cin`` channels: RGB, or 2 for a flow field) to latent (``out`` channels)
    at 1/16 resolution.

    A pixel-unshuffle stem does the first halving for free, so the only
    full-resolution work is a reshuffle of the pixels.
    """
    return nn.Sequential(
        nn.PixelUnshuffle(2),
        conv(4 * cin, n, 3, 1),
        GDN(n),
        conv(n, n),
        GDN(n),
        conv(n, n),
        GDN(n),
        conv(n, out),
    )


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))``, two 3x3 convolutions of ``n`` channels.  The second
    starts at zero, so a block added to a trained network leaves its output unchanged
    until training moves it."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv1 = conv(n, n, 3, 1)
        self.conv2 = conv(n, n, 3, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def synthesis_transform(
    m: int, n: int, cout: int = 3, blocks: tuple[int, int, int] = (0, 0, 0)
) -> nn.Sequential:
    """Latent (``m`` channels, 1/16 resolution) back to an image of ``cout`` channels.

    ``blocks[i]`` residual blocks follow the i-th upsampling stage (at 1/8, 1/4 and 1/2
    resolution): decoder capacity that costs the encoder nothing.
    """
    layers: list[nn.Module] = []
    for cin, count in zip((m, n, n), blocks, strict=True):
        layers += [deconv(cin, n), GDN(n, inverse=True)]
        layers += [ResidualBlock(n) for _ in range(count)]
    return nn.Sequential(*layers, conv(n, 4 * cout, 3, 1), nn.PixelShuffle(2))


def hyper_analysis(m: int, n: int, nz: int) -> nn.Sequential:
    """Latent to hyper-latent ``z`` at a further 1/4 resolution."""
    return nn.Sequential(
        conv(m, n, 3, 1),
        nn.LeakyReLU(inplace=True),
        conv(n, n),
        nn.LeakyReLU(inplace=True),
        conv(n, nz),
    )


def hyper_synthesis(nz: int, n: int, m: int) -> nn.Sequential:
    """Hyper-latent to per-symbol (mean, log-scale), ``2 * m`` channels.

    Only Conv2d, ReLU and PixelShuffle: the decoder runs this network in exact
    integer arithmetic (:mod:`codec.integer_net`), so it may hold nothing else.
    """
    return nn.Sequential(
        conv(nz, n, 3, 1),
        nn.ReLU(),
        conv(n, 4 * n, 3, 1),
        nn.PixelShuffle(2),
        nn.ReLU(),
        conv(n, 4 * n, 3, 1),
        nn.PixelShuffle(2),
        nn.ReLU(),
        conv(n, 2 * m, 3, 1),
    )
