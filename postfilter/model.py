"""The artefact-removal network.

``ArtifactNet`` is an EDSR-style residual CNN (after Kirmemis, Bakar & Tekalp 2018) that
works at half resolution (:class:`~postfilter.layers.HalfResolutionNet`): the RGB image is
pixel-unshuffled by 2, two constant planes are appended, residual blocks predict a
correction, and pixel-shuffle brings it back to full resolution, where it is added to the
decoded image.  The planes are ``(normalised QP, 1)`` when the QP is known.  Blind, a
network with a strength estimator (:mod:`postfilter.estimator`, ``config.estimator``
channels) is told the QP its estimator reads off the picture; one without it gets ``(0, 0)``
planes, a mode it learnt with the QP hidden from a share of the training patches.

What the network is told is its config's ``condition`` kind (:data:`CONDITIONS`): the HEVC
QP (``"qp"``, filters of HEVC/HEIC decodes) or our codec's quality level (``"quality"``,
filters of ``.lcf`` decodes), each normalised from its trained range to -1..1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .estimator import StrengthEstimator, estimate_window
from .layers import HalfResolutionNet


@dataclass(frozen=True)
class Condition:
    """A kind of value a filter is told: its trained range (values outside are clamped) and
    what it measures."""

    low: float
    high: float
    meaning: str

    def normalize(self, value: torch.Tensor | float) -> torch.Tensor | float:
        """``value`` mapped linearly from ``low..high`` to -1..1."""
        return (value - (self.low + self.high) / 2) / ((self.high - self.low) / 2)

    def denormalize(self, value: torch.Tensor | float) -> torch.Tensor | float:
        """The inverse of :meth:`normalize`."""
        return value * ((self.high - self.low) / 2) + (self.low + self.high) / 2


#: The condition kinds: HEVC QP 22..47 -> (QP - 34.5) / 12.5; quality 1..8 -> (q - 4.5) / 3.5.
CONDITIONS = {
    "qp": Condition(22.0, 47.0, "HEVC/HEIC decodes (told the QP)"),
    "quality": Condition(1.0, 8.0, "lcodec decodes (told the quality level)"),
}


@dataclass
class FilterConfig:
    channels: int = 48
    blocks: int = 8
    condition: str = "qp"  # a key of CONDITIONS
    estimator: int = 0  # channels of the blind strength estimator; 0: blind is (0, 0) planes

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown filter condition {self.condition!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FilterConfig:
        """The config of a dict from :meth:`to_dict`; files written before the condition kind
        existed are HEVC filters (``"qp"``)."""
        sizes = {k: int(d[k]) for k in ("channels", "blocks")}
        estimator = int(d.get("estimator", 0))
        return cls(**sizes, condition=str(d.get("condition", "qp")), estimator=estimator)


def qp_conditions(qp: torch.Tensor | None, n: int = 1, kind: str = "qp") -> torch.Tensor:
    """Conditioning rows (N,2): ``(normalised value, 1)`` per value in ``qp`` (N,), or ``n``
    blind rows ``(0, 0)`` when ``qp`` is None.  The values are of the condition ``kind``
    (HEVC QPs, or quality levels for ``"quality"``; the pair caches keep them as ``qp``)."""
    if qp is None:
        return torch.zeros(n, 2)
    qp = torch.as_tensor(qp, dtype=torch.float32).reshape(-1)
    return torch.stack([CONDITIONS[kind].normalize(qp), torch.ones_like(qp)], dim=1)


class ArtifactNet(HalfResolutionNet):
    """Decoded RGB in [0, 1] (N,3,H,W with H, W even) and conditions (N,2) -> restored."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__(config.channels, config.blocks, conditions=2)
        self.config = config
        self.estimator = StrengthEstimator(config.estimator) if config.estimator else None

    def blind_conditions(self, x: torch.Tensor) -> torch.Tensor:
        """Conditioning rows (N,2) for pictures ``x`` (N,3,H,W) coded at an unknown strength:
        ``(estimate, 1)`` with the strength estimator, else ``(0, 0)``."""
        if self.estimator is None:
            return torch.zeros(len(x), 2)
        value = self.estimator(estimate_window(x)).float().clamp(-1, 1)
        return torch.stack([value, torch.ones_like(value)], dim=1)
