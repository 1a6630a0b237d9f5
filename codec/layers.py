"""Building blocks of the transforms, chosen to be cheap on a CPU."""

from __future__ import annotations

from torch import nn

from .compressai_parts import GDN


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """'Same'-padded convolution; ``stride`` 2 halves the resolution."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that exactly doubles the resolution (stride 2)."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


def subpel_conv(cin: int, cout: int, scale: int = 2) -> nn.Sequential:
    """3x3 convolution followed by pixel shuffle: upsampling without transposed conv."""
    return nn.Sequential(conv(cin, cout * scale * scale, 3, 1), nn.PixelShuffle(scale))


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


def synthesis_transform(m: int, n: int, cout: int = 3) -> nn.Sequential:
    """Latent (``m`` channels, 1/16 resolution) back to an image of ``cout`` channels."""
    return nn.Sequential(
        deconv(m, n),
        GDN(n, inverse=True),
        deconv(n, n),
        GDN(n, inverse=True),
        deconv(n, n),
        GDN(n, inverse=True),
        conv(n, 4 * cout, 3, 1),
        nn.PixelShuffle(2),
    )


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
