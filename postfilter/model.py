"""The artefact-removal network and its strength (QP) estimator.

``ArtifactNet`` is an EDSR-style residual CNN (after Kirmemis, Bakar & Tekalp 2018) that
works at half resolution: the RGB image is pixel-unshuffled by 2, a constant plane holding
the normalised QP is appended, residual blocks predict a correction, and pixel-shuffle
brings it back to full resolution, where it is added to the decoded image.
``QPEstimator`` regresses the normalised QP from the decoded image for the blind mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

QP_CENTER, QP_SCALE = 34.5, 12.5  # normalised QP = (QP - center) / scale, QP 22..47 -> -1..1


def normalize_qp(qp: torch.Tensor | float) -> torch.Tensor | float:
    return (qp - QP_CENTER) / QP_SCALE


def denormalize_qp(q: torch.Tensor | float) -> torch.Tensor | float:
    return q * QP_SCALE + QP_CENTER


@dataclass
class FilterConfig:
    channels: int = 32
    blocks: int = 8
    est_channels: int = 24

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FilterConfig:
        return cls(**{k: int(d[k]) for k in ("channels", "blocks", "est_channels")})


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ArtifactNet(nn.Module):
    """Decoded RGB in [0, 1] (N,3,H,W with H, W even) and normalised QP (N,) -> restored."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__()
        c = config.channels
        self.head = nn.Conv2d(4 * 3 + 1, c, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(config.blocks)])
        self.tail = nn.Conv2d(c, 4 * 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def context(self) -> int:
        """Pixels of context each output pixel depends on, on each side (full resolution)."""
        return 2 * (len(self.body) * 2 + 2) + 2

    def residual(self, x: torch.Tensor, qn: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x - 0.5, 2)
        plane = qn.to(y.dtype).view(-1, 1, 1, 1).expand(y.shape[0], 1, *y.shape[2:])
        h = self.head(torch.cat([y, plane], dim=1))
        return F.pixel_shuffle(self.tail(self.body(h) + h), 2)

    def forward(self, x: torch.Tensor, qn: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x, qn)


class QPEstimator(nn.Module):
    """Decoded RGB in [0, 1] (N,3,H,W with H, W multiples of 4) -> normalised QP (N,)."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__()
        c = config.est_channels
        self.features = nn.Sequential(  # leaky: plain ReLUs died in training
            nn.Conv2d(16 * 3, c, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.out = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(F.pixel_unshuffle(x - 0.5, 4))
        return self.out(f.mean(dim=(2, 3))).squeeze(1)


class PostFilterNet(nn.Module):
    """The filter and its estimator, saved and loaded together."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__()
        self.config = config
        self.filter = ArtifactNet(config)
        self.estimator = QPEstimator(config)
