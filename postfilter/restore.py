"""Restoration networks (y = Hx + n): denoising, super-resolution and deblurring.

One :class:`Restorer` per weights file, for one task:

- ``denoise``: additive white Gaussian noise of any sigma in 0..50 (on the 0..255 scale).
  A :class:`~postfilter.layers.HalfResolutionNet` told the noise level through a constant
  plane (FFDNet); blind mode reads the sigma off the picture (:func:`estimate_noise_sigma`).
- ``sr2``, ``sr4``: bicubic-downscaled pictures, upscaled by 2 or 4 with a
  :class:`~postfilter.layers.SubPixelUpsampler`.
- ``deblur``: a known Gaussian blur (sigma 0.5..3 pixels) plus Gaussian noise (sigma 0..25),
  both told to a :class:`~postfilter.layers.HalfResolutionNet`.

The degradation functions here define the tasks: training and the benchmark both use them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .layers import HalfResolutionNet, SubPixelUpsampler

TASKS = ("denoise", "sr2", "sr4", "deblur")
NOISE_MAX = 50.0  # denoising range of sigma, on the 0..255 scale
BLUR_MIN, BLUR_MAX = 0.5, 3.0  # deblurring range of the Gaussian blur sigma, in pixels
DEBLUR_NOISE_MAX = 25.0  # deblurring range of the noise sigma


def normalize_sigma(sigma: torch.Tensor | float) -> torch.Tensor | float:
    """Noise sigma (0..255 scale) -> the network's conditioning value, 0..50 -> -1..1."""
    return sigma / (NOISE_MAX / 2) - 1


def normalize_blur(blur: torch.Tensor | float) -> torch.Tensor | float:
    """Blur sigma (pixels) -> conditioning value, 0.5..3 -> -1..1."""
    return (blur - (BLUR_MIN + BLUR_MAX) / 2) / ((BLUR_MAX - BLUR_MIN) / 2)


@dataclass(frozen=True)
class RestoreConfig:
    task: str
    channels: int = 48
    blocks: int = 8

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (expected one of {', '.join(TASKS)})")

    @property
    def scale(self) -> int:
        """The upscaling factor (1 for the tasks that keep the size)."""
        return int(self.task[2:]) if self.task.startswith("sr") else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RestoreConfig:
        ints = {k: int(d[k]) for k in ("channels", "blocks")}
        return cls(task=str(d["task"]), **ints)


class Restorer(nn.Module):
    """The network of one task."""

    def __init__(self, config: RestoreConfig) -> None:
        super().__init__()
        self.config = config
        c, b = config.channels, config.blocks
        if config.scale > 1:
            self.net: nn.Module = SubPixelUpsampler(config.scale, c, b)
        else:
            self.net = HalfResolutionNet(c, b, conditions=2 if config.task == "deblur" else 1)

    @property
    def context(self) -> int:
        """Input pixels of context each output pixel needs, on each side."""
        return self.net.context

    def conditions(self, sigma: torch.Tensor | None, blur: torch.Tensor | None) -> torch.Tensor:
        """Conditioning rows (N,k) for the task from per-image sigma / blur (N,)."""
        if self.config.task == "denoise":
            return normalize_sigma(sigma).view(-1, 1)
        return torch.stack([normalize_blur(blur), normalize_sigma(sigma)], dim=1)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | None = None, blur: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.config.scale > 1:
            return self.net(x)
        return self.net(x, self.conditions(sigma, blur))


# -- degradations ---------------------------------------------------------------------
def add_noise(x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (N,3,H,W in [0, 1]) plus white Gaussian noise of std ``sigma``/255 (N,), unclipped."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + noise * (sigma.to(x.dtype) / 255).view(-1, 1, 1, 1)


def gaussian_kernel(blur: float) -> torch.Tensor:
    """The normalised 1-D Gaussian of std ``blur`` pixels, radius ceil(3 * blur)."""
    r = max(1, math.ceil(3 * blur))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * blur**2))
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, blur: float) -> torch.Tensor:
    """``x`` (N,3,H,W) blurred with a separable Gaussian, reflected at the borders."""
    k = gaussian_kernel(blur).to(x.dtype)
    r = k.numel() // 2
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def bicubic_downscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 uint8 -> (H//scale)x(W//scale)x3 uint8 with Pillow's antialiased bicubic, after
    cropping H and W to multiples of ``scale`` (the SR benchmarks' convention)."""
    h, w = (rgb.shape[0] // scale) * scale, (rgb.shape[1] // scale) * scale
    img = Image.fromarray(np.ascontiguousarray(rgb[:h, :w]))
    return np.asarray(img.resize((w // scale, h // scale), Image.BICUBIC))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16..235 scale, as the SR literature computes PSNR-Y."""
    x = rgb.astype(np.float64)
    return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255


def psnr_y(ref: np.ndarray, out: np.ndarray, border: int) -> float:
    """PSNR on Y with ``border`` pixels shaved on each side (SR convention)."""
    a, b = rgb_to_y(ref), rgb_to_y(out)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse > 0 else float("inf")


def estimate_noise_sigma(rgb: np.ndarray) -> float:
    """Blind estimate of white Gaussian noise sigma (0..255 scale) in an HxWx3 picture.

    Donoho's robust estimator: the median absolute value of the finest diagonal Haar
    detail, divided by 0.6745, per channel; the median over channels.  Image texture adds
    a little (about 3 on clean CBSD68 pictures, under 1 from sigma 25 up); the denoiser
    tolerates overestimates better than underestimates.
    """
    x = rgb.astype(np.float64)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    x = x[:h, :w]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.median(np.median(np.abs(hh), axis=(0, 1)) / 0.6745))
