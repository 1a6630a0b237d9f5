"""Real bytes for one latent with a mean-scale hyperprior (:mod:`codec.hyperprior`).

``z = round(h_a(y))`` is coded with the factorized tables (one per channel); the exact
integer hyper-synthesis (:mod:`codec.integer_net`) turns ``z`` into means and table
indices, and ``round(y - mean)`` is coded with the Gaussian tables.  Nothing that selects
a table comes from anything but ``z``, so encoder and decoder agree on every table on any
machine.  The image coder and the P-frame coder (two latents) both use this.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bitstream.ans import TableSet

from . import entropy_models as em
from .hyperprior import MeanScaleHyperprior
from .integer_net import IntegerSequential


class LatentCoder:
    """Codes the latent of ``net`` with integer frequency tables ``z`` and ``y``."""

    def __init__(self, net: MeanScaleHyperprior, z_tables: np.ndarray, y_tables: TableSet) -> None:
        self.net = net
        self._h_s = IntegerSequential(net.h_s)
        self._z_tables = TableSet(z_tables)
        self._y_tables = y_tables

    def hyper(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Exact means (float64) and scale-table indices from the hyper-latent."""
        mean, log_scale = self.net.split_params(self._h_s(z))
        return mean, em.scale_index(log_scale)

    def encode(self, y: Tensor, mask: Tensor | None = None) -> tuple[bytes, bytes, Tensor]:
        """The ``z`` and ``y`` sections of a (1, m, H, W) latent, and the decoder's ``y_hat``
        (float64); only the elements ``mask`` keeps (default: all) are coded, the others
        decode to the mean."""
        z = torch.round(self.net.h_a(y)).clamp_(-em.Z_TAIL, em.Z_TAIL)
        mean, table = self.hyper(z)
        symbols = torch.round(y.double() - mean).clamp_(-em.Y_TAIL, em.Y_TAIL)
        mask = torch.ones_like(symbols, dtype=torch.bool) if mask is None else mask
        z_data = self._z_tables.encode(z.long().numpy() + em.Z_TAIL, channel_index(z))
        coded = symbols[mask]
        y_data = self._y_tables.encode(coded.long().numpy() + em.Y_TAIL, table[mask].numpy())
        y_hat = mean.clone()
        y_hat[mask] += coded
        return z_data, y_data, y_hat

    def decode(
        self, z_data: bytes, y_data: bytes, zshape: tuple[int, ...], mask: Tensor | None = None
    ) -> Tensor:
        """Inverse of :meth:`encode`: ``y_hat`` (float64) from the sections, the shape of
        ``z`` and the same ``mask``."""
        z_idx = channel_index(torch.empty(zshape))
        z = self._z_tables.decode(z_data, z_idx, z_idx.size) - em.Z_TAIL
        mean, table = self.hyper(torch.from_numpy(z.astype(np.float64)).reshape(zshape))
        mask = torch.ones_like(mean, dtype=torch.bool) if mask is None else mask
        symbols = self._y_tables.decode(y_data, table[mask].numpy(), int(mask.sum()))
        y_hat = mean.clone()
        y_hat[mask] += torch.from_numpy(symbols.astype(np.float64) - em.Y_TAIL)
        return y_hat


def channel_index(z: Tensor) -> np.ndarray:
    """Table index (the channel) of every element of a (1, C, H, W) tensor."""
    c = z.shape[1]
    return np.broadcast_to(np.arange(c).reshape(1, c, 1, 1), z.shape).ravel()
