"""The mean-scale hyperprior shared by every autoencoder of the project.

A latent ``y`` of ``m`` channels is described by a hyper-latent ``z = round(h_a(y))``
with a learned factorized density; ``h_s(z)`` gives each element of ``y`` a mean and a
log-scale, which select its quantized-Gaussian table when coding
(:mod:`codec.entropy_models`).  The image codec and both latents of the P-frame codec
(motion and residual) use it, with the same attribute names (``h_a``, ``h_s``,
``z_density``) in their weights files.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import entropy_models as em
from .layers import hyper_analysis, hyper_synthesis
from .quantization import quantize, straight_through_round


class MeanScaleHyperprior(nn.Module):
    """Base class: call :meth:`add_hyperprior` in ``__init__``, then :meth:`hyperprior`."""

    m: int

    def add_hyperprior(self, m: int, nh: int, nz: int) -> None:
        """Create ``h_a``, ``h_s`` and ``z_density`` for a latent of ``m`` channels."""
        self.m = m
        self.h_a = hyper_analysis(m, nh, nz)
        self.h_s = hyper_synthesis(nz, nh, m)
        self.z_density = em.FactorizedDensity(nz)

    def split_params(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Hyper-synthesis output to (mean, log_scale)."""
        return params[:, : self.m], params[:, self.m :]

    def hyperprior(
        self, y: Tensor, mode: str, temperature: float = 0.0
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Quantized ``y_hat``, its ``mean``, the bits of each element of ``y_hat`` and the
        bits of ``z`` per batch item, with the quantization proxy ``mode``
        (:func:`codec.quantization.quantize`)."""
        z = self.h_a(y)
        if self.training:
            z_hat, z_lik = self.z_density(z)
        else:  # hard values; the gradient, if any is taken, passes straight through
            z_hat = straight_through_round(z)
            z_lik = self.z_likelihood(z_hat)
        mean, log_scale = self.split_params(self.h_s(z_hat))
        y_hat = quantize(y, mean, mode, temperature)
        y_bits = em.bits(em.gaussian_likelihood(y_hat - mean, em.scale_from_log(log_scale)))
        return y_hat, mean, y_bits, em.bits(z_lik).reshape(y.shape[0], -1).sum(1)

    def z_likelihood(self, z_hat: Tensor) -> Tensor:
        """Likelihood of integer ``z_hat`` under the factorized density (same shape)."""
        b, c, h, w = z_hat.shape
        values = z_hat.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lik = self.z_density.likelihood(values)[0].clamp_min(em.LIKELIHOOD_BOUND)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    def aux_loss(self) -> Tensor:
        """Loss that fits the factorized density's quantiles."""
        return self.z_density.loss()
