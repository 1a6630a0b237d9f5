"""Quantizers for the latent during training; hard rounding at inference.

Three proxies for ``round``, all centred on a per-element offset ``mean`` (the
hyperprior's prediction), so the coded symbol is always ``round(y - mean)``:

* :func:`soft_round` -- soft-to-hard assignment to the integer centres
  (Agustsson et al. 2017): ``sum_i softmax(-(y - c_i)^2 / T)_i * c_i``.  With the
  squared distance a high temperature gives (almost) the identity and ``T -> 0``
  gives ``round``, so annealing ``T`` moves training smoothly from an unquantized
  to a quantized latent.  Only the ``2 * SOFT_RADIUS + 1`` centres nearest to
  ``y`` are summed; the others weigh less than ``exp(-6.25 / T)``.
* :func:`straight_through_round` -- hard values forward, identity gradient.
* :func:`noisy` -- the usual additive uniform noise proxy (Balle et al.).
"""

from __future__ import annotations

import torch
from torch import Tensor

SOFT_RADIUS = 2


def soft_round(y: Tensor, temperature: float) -> Tensor:
    """Differentiable soft assignment of ``y`` to the nearby integers."""
    offsets = torch.arange(-SOFT_RADIUS, SOFT_RADIUS + 1, dtype=y.dtype, device=y.device)
    centres = torch.round(y).detach().unsqueeze(-1) + offsets
    weights = torch.softmax(-((y.unsqueeze(-1) - centres) ** 2) / temperature, dim=-1)
    return (weights * centres).sum(-1)


def straight_through_round(y: Tensor) -> Tensor:
    """``round(y)`` forward, gradient of the identity backward."""
    return y + (torch.round(y) - y).detach()


def noisy(y: Tensor) -> Tensor:
    """``y`` plus uniform noise in [-0.5, 0.5): the additive-noise proxy."""
    return y + torch.empty_like(y).uniform_(-0.5, 0.5)


def quantize(y: Tensor, mean: Tensor, mode: str, temperature: float = 0.0) -> Tensor:
    """Quantize ``y`` around ``mean`` with the given training proxy.

    ``mode`` is ``"soft"`` (soft-to-hard at ``temperature``), ``"ste"`` (hard
    forward, straight-through backward), ``"noise"`` or ``"hard"`` (inference).
    """
    residual = y - mean
    if mode == "soft":
        q = soft_round(residual, temperature)
    elif mode == "ste":
        q = straight_through_round(residual)
    elif mode == "noise":
        q = noisy(residual)
    elif mode == "hard":
        q = torch.round(residual)
    else:
        raise ValueError(f"unknown quantization mode {mode!r}")
    return mean + q
