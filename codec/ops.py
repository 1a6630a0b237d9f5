"""Bounded parameters for training: a lower bound whose gradient can lift a value off the
bound, and the non-negative reparametrization GDN trains its parameters in.

These and the layers built on them (:class:`codec.layers.GDN`,
:class:`codec.entropy_models.FactorizedDensity`) compute exactly what CompressAI's classes
of the same names compute, with the same parameter and buffer names, so weights move
between the two (``tests/test_compressai_parity.py`` checks it).  They live here because
importing CompressAI loads all of it, point-cloud datasets and ``torch_geometric``
included: about 4.5 s of every ``lcodec encode`` or ``decode`` on a 2-core machine, for
two small layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)``; the gradient passes where ``x`` is above the bound or where it
    would move ``x`` up (a value stuck at the bound can still leave it)."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        x, bound = ctx.saved_tensors
        return ((x >= bound) | (grad < 0)) * grad, None


class LowerBound(nn.Module):
    """``max(x, bound)`` with :class:`_LowerBound`'s gradient (buffer ``bound``)."""

    bound: Tensor

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: Tensor) -> Tensor:
        return _LowerBound.apply(x, self.bound)


class NonNegative(nn.Module):
    """A parameter ``p`` stands for ``max(p, sqrt(minimum + pedestal))**2 - pedestal``
    (``pedestal = 2**-36``): at least ``minimum``, with gradients that do not vanish near
    zero as those of a plain square would.  :meth:`init` inverts it."""

    pedestal: Tensor

    def __init__(self, minimum: float = 0.0, offset: float = 2**-18) -> None:
        super().__init__()
        self.register_buffer("pedestal", torch.tensor([offset**2]))
        self.lower_bound = LowerBound((minimum + offset**2) ** 0.5)

    def init(self, value: Tensor) -> Tensor:
        """The parameter that stands for ``value``."""
        return torch.sqrt(torch.max(value + self.pedestal, self.pedestal))

    def forward(self, p: Tensor) -> Tensor:
        return self.lower_bound(p) ** 2 - self.pedestal
