"""Probability models of the coded symbols, for training (likelihoods) and coding (tables).

Coding never evaluates a float density at decode time.  Every distribution the
coder uses is an integer frequency table computed once when the weights are
exported and stored in the weights file; at run time a symbol only *selects* a
table by an integer index.  Encoder and decoder therefore cannot disagree on a
table, whatever the machine.

* The latent ``y`` uses a quantized Gaussian: its mean comes from the hyperprior,
  its scale is snapped to one of ``NUM_SCALES`` log-spaced scales.
* The hyper-latent ``z`` uses a learned factorized density per channel
  (:class:`FactorizedDensity`, CompressAI's ``EntropyBottleneck``), tabulated over a fixed
  integer range.
* The importance map uses a learned categorical per quality level.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import LowerBound

#: Fractional bits of the fixed-point numbers the hyper-synthesis emits.
FIXED_BITS = 8
#: Tabulated log-scales are ``(LOG_SCALE_MIN_Q + i * LOG_SCALE_STEP_Q) / 2**FIXED_BITS``:
#: integers, so that picking a table from a fixed-point log-scale is integer arithmetic.
LOG_SCALE_MIN_Q = -565  # log(0.11)
LOG_SCALE_STEP_Q = 26  # about 0.1016, 64 scales from 0.11 to 66
NUM_SCALES = 64
LOG_SCALE_MIN = LOG_SCALE_MIN_Q / 2**FIXED_BITS
LOG_SCALE_MAX = (LOG_SCALE_MIN_Q + (NUM_SCALES - 1) * LOG_SCALE_STEP_Q) / 2**FIXED_BITS
#: Symbols of ``y - mean`` are clipped to [-Y_TAIL, Y_TAIL] (the encoder reconstructs
#: with the clipped value, so nothing is lost that the decoder expects).
Y_TAIL = 255
#: Hyper-latent symbols are clipped to [-Z_TAIL, Z_TAIL] likewise.
Z_TAIL = 63
#: Frequencies of every table sum to 2**PRECISION.
PRECISION = 16
LIKELIHOOD_BOUND = 1e-9


class FactorizedDensity(nn.Module):
    """A learned density per channel, the same for every position (Balle et al. 2018,
    appendix 6.1): the cumulative of each channel is a small monotonic network of the value
    (``filters`` hidden widths, ``matrices`` kept positive by a softplus, ``tanh`` gates),
    so the likelihood of a quantized value ``v`` is ``cdf(v + 1/2) - cdf(v - 1/2)``.

    ``quantiles`` (channels, 1, 3) track each channel's ``tail_mass`` tails and median
    through :meth:`loss`, an auxiliary loss on those parameters alone.  CompressAI's
    ``EntropyBottleneck`` (the parts the codec uses), with the same parameter names; its
    coding caches (``_offset``, ``_quantized_cdf``, ``_cdf_length``) are ignored when a
    state dict has them: this codec codes with the tables of :func:`factorized_tables`.
    """

    def __init__(
        self,
        channels: int,
        tail_mass: float = 1e-9,
        init_scale: float = 10.0,
        filters: tuple[int, ...] = (3, 3, 3, 3),
    ) -> None:
        super().__init__()
        self.likelihood_lower_bound = LowerBound(LIKELIHOOD_BOUND)
        self.matrices, self.biases, self.factors = (nn.ParameterList() for _ in range(3))
        widths = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        for i in range(len(filters) + 1):
            init = np.log(np.expm1(1 / scale / widths[i + 1]))
            matrix = torch.full((channels, widths[i + 1], widths[i]), float(init))
            self.matrices.append(nn.Parameter(matrix))
            bias = torch.empty(channels, widths[i + 1], 1)
            self.biases.append(nn.Parameter(nn.init.uniform_(bias, -0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        quantiles = torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1)
        self.quantiles = nn.Parameter(quantiles)
        target = np.log(2 / tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target], dtype=torch.float32))

    def _load_from_state_dict(self, state: dict, prefix: str, *args) -> None:
        for cache in ("_offset", "_quantized_cdf", "_cdf_length"):  # CompressAI's, unused
            state.pop(prefix + cache, None)
        super()._load_from_state_dict(state, prefix, *args)

    def cumulative_logits(self, values: Tensor, stop_gradient: bool = False) -> Tensor:
        """The logit of each channel's cumulative at ``values`` (channels, 1, n)."""
        logits = values
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            matrix, bias = (matrix.detach(), bias.detach()) if stop_gradient else (matrix, bias)
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def likelihood(self, values: Tensor, stop_gradient: bool = False) -> tuple[Tensor, ...]:
        """Likelihood of the unit bins centred on ``values`` (channels, 1, n), and the
        cumulative logits at their lower and upper edges."""
        lower = self.cumulative_logits(values - 0.5, stop_gradient)
        upper = self.cumulative_logits(values + 0.5, stop_gradient)
        return torch.sigmoid(upper) - torch.sigmoid(lower), lower, upper

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z`` (batch, channels, ...) plus uniform noise in training, rounded otherwise,
        and its likelihood (at least :data:`LIKELIHOOD_BOUND`), both shaped as ``z``."""
        perm = (1, 0, *range(2, z.dim()))  # channels first; its own inverse
        x = z.permute(*perm).contiguous()
        values = x.reshape(x.shape[0], 1, -1)
        if self.training:
            values = values + torch.empty_like(values).uniform_(-0.5, 0.5)
        else:
            values = torch.round(values)
        likelihood = self.likelihood_lower_bound(self.likelihood(values)[0])
        shape = x.shape
        return (
            values.reshape(shape).permute(*perm).contiguous(),
            likelihood.reshape(shape).permute(*perm).contiguous(),
        )

    def loss(self) -> Tensor:
        """How far each channel's ``quantiles`` are from its tails and median."""
        logits = self.cumulative_logits(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()


def scale_from_log(log_scale: Tensor) -> Tensor:
    """Training-time scale: ``exp`` clamped to the tabulated range."""
    return torch.exp(log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))


def scale_index(log_scale: Tensor) -> Tensor:
    """Index (int64) of the nearest tabulated scale.

    Exact for fixed-point inputs (multiples of ``2**-FIXED_BITS``): every step
    is an integer operation carried in float64, so all machines agree.
    """
    q = torch.round(log_scale.double() * 2**FIXED_BITS)
    idx = torch.floor((q - LOG_SCALE_MIN_Q + LOG_SCALE_STEP_Q // 2) / LOG_SCALE_STEP_Q)
    return idx.clamp(0, NUM_SCALES - 1).to(torch.int64)


def scale_table() -> np.ndarray:
    """The tabulated scales, float64 (used only when exporting tables)."""
    q = LOG_SCALE_MIN_Q + LOG_SCALE_STEP_Q * np.arange(NUM_SCALES)
    return np.exp(q / 2**FIXED_BITS)


def gaussian_likelihood(residual: Tensor, scale: Tensor) -> Tensor:
    """Probability of the unit bin around ``residual`` (= value - mean) under N(0, scale)."""
    r = residual.abs()  # symmetric: evaluate in the left tail for precision
    upper = _std_normal_cdf((0.5 - r) / scale)
    lower = _std_normal_cdf((-0.5 - r) / scale)
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


def _std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def bits(likelihood: Tensor) -> Tensor:
    """Information content in bits."""
    return -torch.log2(likelihood)


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies (int64, each >= 1, rows summing to ``2**precision``).

    Deterministic largest-remainder rounding of each row of ``pmf``; used only
    when exporting weights, never while coding.
    """
    pmf = np.atleast_2d(np.asarray(pmf, dtype=np.float64))
    total = 1 << precision
    n = pmf.shape[1]
    pmf = pmf / pmf.sum(axis=1, keepdims=True)
    spare = total - n  # every symbol gets 1, the rest is shared out
    raw = pmf * spare
    freq = np.floor(raw).astype(np.int64)
    remainder = raw - freq
    for row in range(pmf.shape[0]):
        short = spare - int(freq[row].sum())
        order = np.argsort(-remainder[row], kind="stable")[:short]
        freq[row, order] += 1
    return freq + 1


def gaussian_tables() -> np.ndarray:
    """Frequency tables ``(NUM_SCALES, 2 * Y_TAIL + 1)`` of the quantized Gaussians.

    The end symbols carry the tail mass beyond them.
    """
    from scipy.special import ndtr

    k = np.arange(-Y_TAIL, Y_TAIL + 1, dtype=np.float64)
    rows = []
    for s in scale_table():
        upper = ndtr((k + 0.5) / s)
        lower = ndtr((k - 0.5) / s)
        upper[-1], lower[0] = 1.0, 0.0
        rows.append(upper - lower)
    return quantize_pmf(np.stack(rows))


def factorized_tables(bottleneck: FactorizedDensity) -> np.ndarray:
    """Frequency tables ``(C, 2 * Z_TAIL + 1)`` of a :class:`FactorizedDensity`."""
    channels = bottleneck.quantiles.shape[0]
    k = torch.arange(-Z_TAIL, Z_TAIL + 1, dtype=torch.float32)
    values = k.view(1, 1, -1).expand(channels, 1, -1)
    with torch.no_grad():
        _, lower, upper = bottleneck.likelihood(values)
        cdf_lo = torch.sigmoid(lower).squeeze(1).double()
        cdf_hi = torch.sigmoid(upper).squeeze(1).double()
    cdf_lo[:, 0] = 0.0
    cdf_hi[:, -1] = 1.0
    pmf = (cdf_hi - cdf_lo).clamp_min(0).numpy()
    return quantize_pmf(pmf)


def categorical_tables(logits: Tensor) -> np.ndarray:
    """Frequency tables of categorical distributions given by ``logits`` rows."""
    with torch.no_grad():
        pmf = torch.softmax(logits.double(), dim=-1).numpy()
    return quantize_pmf(pmf)
