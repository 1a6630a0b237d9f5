"""The importance-map autoencoder: transforms, quantizer, probability model.

Data flow (training and inference alike)::

    x -> g_a -> (y, importance p) ; y_s = y * gain[q]
    z = h_a(y_s) -> round -> z_hat            (factorized density)
    (mean, log_scale) = h_s(z_hat)            (exact integer net at inference)
    mask = importance levels of p             (categorical per quality)
    y_hat = mean + Q(y_s - mean) where mask, else mean   (Gaussian per symbol)
    x_hat = g_s(y_hat / gain[q])

The rate trained for is the cross-entropy of exactly the symbols the coder
writes: the masked-in residuals of ``y``, every ``z`` symbol and every map level.
One model covers all quality levels through per-quality channel gains, a
per-quality importance offset and a per-quality map distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TypeVar

import torch
from torch import Tensor, nn

from .hyperprior import MeanScaleHyperprior
from .importance import channel_mask, importance_levels
from .layers import analysis_transform, synthesis_transform

#: Rate-distortion trade-offs of the quality levels (loss = bpp + lambda * 255^2 * MSE);
#: those of the shipped model, 0.10 to 0.76 bpp on Kodak (the transforms saturate above).
DEFAULT_LAMBDAS = (0.0003, 0.00064, 0.00136, 0.0029, 0.0062, 0.0132, 0.0281, 0.06)

C = TypeVar("C", bound="QualityConfig")


class QualityConfig:
    """Base of the config dataclasses with a ``lambdas`` field (one per quality level): their
    dict form, as stored in weights files and checkpoints, and the number of levels."""

    lambdas: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: dict) -> C:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def qualities(self) -> int:
        return len(self.lambdas)


@dataclass(frozen=True)
class ModelConfig(QualityConfig):
    """Architecture hyper-parameters; stored in the weights file."""

    n: int = 96  # channels of the main transforms
    m: int = 128  # latent channels
    nz: int = 64  # hyper-latent channels
    nh: int = 96  # channels of the hyper transforms
    levels: int = 16  # importance-map levels (m must be a multiple)
    importance: bool = True  # False: every channel coded everywhere (ablation)
    synthesis_blocks: tuple[int, int, int] = (0, 0, 0)  # residual blocks per g_s stage
    lambdas: tuple[float, ...] = field(default=DEFAULT_LAMBDAS)


class ImportanceCodec(MeanScaleHyperprior):
    """Variable-rate autoencoder with an importance map and a mean-scale hyperprior."""

    #: The image is padded to a multiple of this (the total downsampling of h_a o g_a).
    ALIGN = 64

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        if config.m % config.levels:
            raise ValueError("latent channels must be a multiple of the map levels")
        self.config = config
        c = config
        self.g_a = analysis_transform(c.n, c.m + 1)
        self.g_s = synthesis_transform(c.m, c.n, blocks=c.synthesis_blocks)
        self.add_hyperprior(c.m, c.nh, c.nz)
        q = c.qualities
        # Log-gains start on a ramp so higher qualities quantize more finely.
        ramp = torch.linspace(-1.0, 1.0, q).view(q, 1).expand(q, c.m).clone()
        self.log_gain = nn.Parameter(ramp)
        self.importance_offset = nn.Parameter(torch.linspace(-1.0, 1.0, q))
        self.map_logits = nn.Parameter(torch.zeros(q, c.levels + 1))

    # -- pieces shared by training and coding ---------------------------------------
    def analyse(self, x: Tensor, quality: Tensor) -> tuple[Tensor, Tensor | None]:
        """Scaled latent ``y_s`` and importance ``p`` (None when disabled)."""
        return self.apply_quality(self.g_a(x), quality)

    def apply_quality(self, features: Tensor, quality: Tensor) -> tuple[Tensor, Tensor | None]:
        """Split the analysis output into ``y_s`` and ``p`` for the given quality.

        Kept apart from :meth:`analyse` so an encoder can run ``g_a`` once and
        then try several qualities.
        """
        y, logit = features[:, :-1], features[:, -1:]
        y = y * self.gain(quality)
        if not self.config.importance:
            return y, None
        offset = self.importance_offset[quality].view(-1, 1, 1, 1)
        return y, torch.sigmoid(logit + offset)

    def gain(self, quality: Tensor) -> Tensor:
        return torch.exp(self.log_gain[quality]).view(-1, self.config.m, 1, 1)

    def synthesize(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        return self.g_s(y_hat / self.gain(quality))

    # -- training -------------------------------------------------------------------
    def forward(
        self, x: Tensor, quality: Tensor, mode: str = "hard", temperature: float = 0.0
    ) -> dict[str, Tensor]:
        """Reconstruction and bits per image of each coded part.

        ``mode`` selects the quantization proxy of :func:`codec.quantization.quantize`.
        """
        return self.code_features(self.g_a(x), quality, mode, temperature)

    def code_features(
        self, features: Tensor, quality: Tensor, mode: str = "hard", temperature: float = 0.0
    ) -> dict[str, Tensor]:
        """:meth:`forward` from the analysis output ``features`` (what encoder-side
        refinement, :mod:`codec.refine`, optimises)."""
        y, p = self.apply_quality(features, quality)
        batch = features.shape[0]
        y_hat, mean, y_bits, z_bits = self.hyperprior(y, mode, temperature)
        if p is not None:
            mask = channel_mask(p, self.config.levels, self.config.m)
            y_hat = mean + mask * (y_hat - mean)
            y_bits = y_bits * mask
            levels = importance_levels(p, self.config.levels).long().squeeze(1)
            log_pmf = torch.log_softmax(self.map_logits[quality], dim=-1)  # (B, L+1)
            map_nats = -torch.gather(log_pmf, 1, levels.flatten(1))
            map_bits = map_nats.sum(1) / torch.log(torch.tensor(2.0))
        else:
            map_bits = torch.zeros(batch, device=features.device)
        return {
            "x_hat": self.synthesize(y_hat, quality),
            "y_bits": y_bits.reshape(batch, -1).sum(1),
            "z_bits": z_bits,
            "map_bits": map_bits,
        }
