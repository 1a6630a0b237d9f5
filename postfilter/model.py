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

from .layers import HalfResolutionNet

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


class ArtifactNet(HalfResolutionNet):
    """Decoded RGB in [0, 1] (N,3,H,W with H, W even) and normalised QP (N,) -> restored."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__(config.channels, config.blocks, conditions=1)

    def residual(self, x: torch.Tensor, qn: torch.Tensor) -> torch.Tensor:
        return super().residual(x, qn.reshape(-1, 1))

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
