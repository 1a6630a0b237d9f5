"""The P-frame network: motion estimation, motion coding, motion compensation, residual coding.

Data flow (training and coding alike), for frame ``x`` and the previous *decoded* frame
``r``, both padded to a multiple of ``ALIGN``::

    flow     = BlockSearch(x, r) or FlowNet(x, r)              encoder only (config.flow)
    flow_hat = motion autoencoder(flow)                        hyperprior latent, coded
    pred     = warp(r, flow_hat) + mc(warp(r, flow_hat), flow_hat)
    res_hat  = residual autoencoder(x - pred)                  hyperprior latent, coded
    x_hat    = pred + res_hat

or, with ``conditional`` set (conditional coding, as DCVC: the prediction is context rather
than something to subtract)::

    res_hat  = residual autoencoder(x, pred)                   hyperprior latent, coded
    x_hat    = refine(pred + res_hat, pred)

Both autoencoders are the image codec's transforms (:mod:`codec.layers`) and hyperprior
(:mod:`codec.hyperprior`), without an importance map, with per-quality channel gains
trained for the image model's lambdas, so quality ``q`` of a P-frame aims at the same
trade-off as quality ``q`` of an I-frame.

The probability path is exact: every table index comes from a hyper-latent through the
integer hyper-synthesis (:class:`codec.latent_coder.LatentCoder`), never from float
features of the reference, so the entropy decoder cannot lose sync on any machine.  The
*pixels* of the prediction and of the residual are float computations: on the same machine
they are bit-exact (one thread, see :mod:`codec.determinism`), across machines
(say a GPU encoder and a CPU decoder) they may differ in the last bits, and that drift can
build up from P-frame to P-frame but never past the next I-frame: it is bounded by the GOP.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from .flow import BlockSearch, FlowNet, warp
from .hyperprior import MeanScaleHyperprior
from .layers import analysis_transform, synthesis_transform
from .model import DEFAULT_LAMBDAS, QualityConfig

#: The motion autoencoder codes ``flow * FLOW_SCALE`` (flows are tens of pixels; the
#: transforms prefer inputs near unit size) and decodes ``flow_hat / FLOW_SCALE``.
FLOW_SCALE = 0.25


@dataclass(frozen=True)
class InterConfig(QualityConfig):
    """Architecture hyper-parameters; stored in the weights file."""

    # The encoder's motion estimation: "learned" (FlowNet), "search" (BlockSearch) or "both"
    # (the motion coder analyses the two flows side by side).
    flow: str = "learned"
    search_penalty: float = 0.002  # BlockSearch's motion penalty (flow "search" or "both")
    flow_levels: int = 4  # pyramid levels of the flow estimator (finest: 1/2 resolution)
    flow_channels: int = 24
    flow_radius: int = 2  # search radius of each level's cost volume (pixels of that level)
    nm: int = 48  # motion transform channels
    mm: int = 64  # motion latent channels
    mz: int = 32  # motion hyper-latent channels
    n: int = 64  # residual transform channels
    m: int = 96  # residual latent channels
    nz: int = 48  # residual hyper-latent channels
    mc: int = 32  # motion-compensation CNN channels (0: plain warping)
    conditional: int = 0  # channels of the conditional decoder's refinement (0: residual coding)
    lambdas: tuple[float, ...] = field(default=DEFAULT_LAMBDAS)


class LatentAutoencoder(MeanScaleHyperprior):
    """One coded signal: ``cin`` channels analysed (the signal, and any context the encoder
    sees), ``cout`` synthesized (default ``cin``); transforms, hyperprior, per-quality
    gains."""

    def __init__(
        self, cin: int, n: int, m: int, nz: int, qualities: int, cout: int | None = None
    ) -> None:
        super().__init__()
        self.g_a = analysis_transform(n, m, cin)
        self.g_s = synthesis_transform(m, n, cout or cin)
        self.add_hyperprior(m, n, nz)
        ramp = torch.linspace(-1.0, 1.0, qualities).view(qualities, 1).expand(qualities, m)
        self.log_gain = nn.Parameter(ramp.clone())

    def gain(self, quality: Tensor) -> Tensor:
        return torch.exp(self.log_gain[quality]).view(-1, self.m, 1, 1)

    def analyse(self, x: Tensor, quality: Tensor) -> Tensor:
        """The scaled latent ``y`` whose rounding is coded."""
        return self.g_a(x) * self.gain(quality)

    def synthesize(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        return self.g_s(y_hat / self.gain(quality))

    def forward(
        self, x: Tensor, quality: Tensor, mode: str, temperature: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """Reconstruction and bits per batch item (``y`` and ``z``)."""
        y_hat, _, y_bits, z_bits = self.hyperprior(self.analyse(x, quality), mode, temperature)
        return self.synthesize(y_hat, quality), y_bits.flatten(1).sum(1) + z_bits


class Refinement(nn.Module):
    """Corrects an RGB picture from it and ``context`` channels, at half resolution; starts
    as the identity (last layer zero).  Motion compensation refines the warped reference
    given the flow; the conditional decoder refines its reconstruction given the
    prediction."""

    def __init__(self, context: int, channels: int) -> None:
        super().__init__()
        last = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            nn.PixelUnshuffle(2),
            nn.Conv2d(4 * (3 + context), channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            last,
            nn.PixelShuffle(2),
        )

    def forward(self, picture: Tensor, context: Tensor) -> Tensor:
        return picture + self.net(torch.cat([picture, context], dim=1))


class InterCodec(nn.Module):
    """Variable-rate P-frame codec: flow estimation, coded flow, prediction, coded residual."""

    #: Frames are padded to a multiple of this (the downsampling of h_a o g_a).
    ALIGN = 64

    def __init__(self, config: InterConfig = InterConfig()) -> None:
        super().__init__()
        self.config = c = config
        if c.flow not in ("learned", "search", "both"):
            raise ValueError(f"unknown flow estimator {c.flow!r}")
        if c.flow == "search":
            self.flow = BlockSearch(c.flow_levels, c.flow_radius, c.search_penalty)
        else:
            self.flow = FlowNet(c.flow_levels, c.flow_channels, c.flow_radius)
        self.search = None  # the second flow of "both"
        if c.flow == "both":
            self.search = BlockSearch(c.flow_levels, c.flow_radius, c.search_penalty)
        flows = 2 if c.flow == "both" else 1
        self.motion = LatentAutoencoder(2 * flows, c.nm, c.mm, c.mz, c.qualities, cout=2)
        cin = 6 if c.conditional else 3
        self.residual = LatentAutoencoder(cin, c.n, c.m, c.nz, c.qualities, cout=3)
        self.mc = Refinement(2, c.mc) if c.mc else None
        self.fusion = Refinement(3, c.conditional) if c.conditional else None

    def motion_input(self, x: Tensor, reference: Tensor) -> Tensor:
        """What the motion coder analyses (encoder only): the flow from ``x`` to
        ``reference``, and with ``flow="both"`` the block search's beside it, times
        ``FLOW_SCALE``."""
        flow = self.flow(x, reference)
        if self.search is not None:
            flow = torch.cat([flow, self.search(x, reference)], dim=1)
        return flow * FLOW_SCALE

    def predict(self, reference: Tensor, flow_hat: Tensor) -> Tensor:
        """The motion-compensated prediction from the reference and the decoded flow."""
        warped = warp(reference, flow_hat)
        return warped if self.mc is None else self.mc(warped, flow_hat * FLOW_SCALE)

    def residual_input(self, x: Tensor, prediction: Tensor) -> Tensor:
        """What the residual coder analyses: the frame beside its prediction (conditional
        coding) or the frame minus its prediction (residual coding)."""
        if self.fusion is None:
            return x - prediction
        return torch.cat([x, prediction], dim=1)

    def reconstruct(self, prediction: Tensor, decoded: Tensor) -> Tensor:
        """The frame from its prediction and the residual coder's output."""
        x_hat = prediction + decoded
        return x_hat if self.fusion is None else self.fusion(x_hat, prediction)

    def forward(
        self,
        x: Tensor,
        reference: Tensor,
        quality: Tensor,
        mode: str = "hard",
        temperature: float = 0.0,
    ) -> dict[str, Tensor]:
        """Reconstruction, prediction and bits per item (motion, residual) of a P-frame.

        ``x`` and ``reference`` are (B, 3, H, W) in [0, 1] with H, W multiples of ALIGN.
        """
        flow_hat, motion_bits = self.motion(
            self.motion_input(x, reference), quality, mode, temperature
        )
        prediction = self.predict(reference, flow_hat / FLOW_SCALE)
        decoded, residual_bits = self.residual(
            self.residual_input(x, prediction), quality, mode, temperature
        )
        return {
            "x_hat": self.reconstruct(prediction, decoded),
            "prediction": prediction,
            "motion_bits": motion_bits,
            "residual_bits": residual_bits,
        }

    def with_conditional_coding(self, channels: int) -> InterCodec:
        """A conditional-coding copy of this residual-coding model that codes exactly as it
        does until trained: the analysis sees ``(x, prediction)`` through first-layer
        weights ``(W, -W)``, which is ``W`` applied to ``x - prediction``, and the decoder's
        refinement starts as the identity."""
        if self.fusion is not None:
            raise ValueError("this model already codes conditionally")
        model = InterCodec(replace(self.config, conditional=channels))
        state = self.state_dict()
        key = "residual.g_a.1.weight"  # after the pixel-unshuffle: channel c*4+k of input c
        state[key] = torch.cat([state[key], -state[key]], dim=1)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("fusion.") for k in missing):
            raise ValueError(f"cannot convert: missing {missing}, unexpected {unexpected}")
        return model

    def with_flow(self, flow: str, search_penalty: float = 0.002) -> InterCodec:
        """A copy of this model with other motion estimation (``InterConfig.flow``), every
        other part kept.  A learned estimator is kept where both have one (a new one starts
        untrained); a flow the motion coder did not analyse before enters through
        first-layer weights of zero, so converting ``learned`` to ``both`` starts from this
        model's coding (up to float summation order).  Only the encoder runs the
        estimators."""
        model = InterCodec(replace(self.config, flow=flow, search_penalty=search_penalty))
        state = self.state_dict()
        if isinstance(model.flow, FlowNet) != isinstance(self.flow, FlowNet):
            state = {k: v for k, v in state.items() if not k.startswith("flow.")}
        key = "motion.g_a.1.weight"  # after the pixel-unshuffle: channel c*4+k of input c
        weight, wanted = state[key], model.state_dict()[key].shape[1]
        extra = weight.new_zeros(weight.shape[0], max(wanted - weight.shape[1], 0), 3, 3)
        state[key] = torch.cat([weight[:, :wanted], extra], dim=1)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("flow.") for k in missing):
            raise ValueError(f"cannot convert: missing {missing}, unexpected {unexpected}")
        return model

    def aux_loss(self) -> Tensor:
        """Quantile losses of both factorized densities."""
        return self.motion.aux_loss() + self.residual.aux_loss()
