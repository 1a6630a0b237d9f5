"""P-frames to bytes and back with a loaded inter model: the :class:`PFrameCoder` of
:mod:`codec.video`.

Encoding: pad both frames -> flow -> motion latent (:class:`LatentCoder`: real bytes) ->
decoded flow -> prediction -> residual latent (real bytes) -> reconstruction.  The encoder
builds the prediction and the reconstruction from the *decoded* latents with exactly the
decoder's code (:meth:`InterCoder._predict`, :meth:`InterCoder._reconstruct`), inside
:func:`one_thread`, so on one machine the decoder reproduces the encoder's
reconstruction bit for bit, whatever the thread count.  Table selection is exact
everywhere (see :mod:`codec.inter_model` for what may drift across machines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bitstream import BitstreamError
from bitstream.ans import TableSet
from bitstream.pframe import pack_pframe, unpack_pframe

from .determinism import one_thread
from .errors import check_quality
from .inter_model import FLOW_SCALE
from .inter_weights import LoadedInter, load_inter_weights
from .latent_coder import LatentCoder
from .tiling import LATENT_STRIDE, pad_edges

SECTIONS = 4  # motion z, motion y, residual z, residual y


class InterCoder:
    """A loaded P-frame model: ``InterCoder(path).encode(frame, reference, quality)``."""

    def __init__(self, weights: LoadedInter | str | Path) -> None:
        if not isinstance(weights, LoadedInter):
            weights = load_inter_weights(weights)
        self.net = weights.network.eval()
        self.model_id = weights.model_id
        self.digest = weights.digest
        y_tables = TableSet(weights.tables["y"])
        self._motion = LatentCoder(self.net.motion, weights.tables["motion_z"], y_tables)
        self._residual = LatentCoder(self.net.residual, weights.tables["residual_z"], y_tables)

    @property
    def qualities(self) -> int:
        """Number of quality levels; valid qualities are 1..qualities."""
        return self.net.config.qualities

    @torch.no_grad()
    def encode(
        self, frame: np.ndarray, reference: np.ndarray, quality: int
    ) -> tuple[bytes, np.ndarray]:
        """The payload of ``frame`` predicted from ``reference`` (both (H, W, 3) uint8) and
        the frame the decoder will reconstruct from it."""
        if frame.shape != reference.shape or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError("frame and reference must be (H, W, 3) arrays of one size")
        quality = check_quality(quality, self.qualities)
        x, ref = self._pad(frame), self._pad(reference)
        q = torch.tensor([quality - 1])
        motion_z, motion_y, motion_hat = self._motion.encode(
            self.net.motion.analyse(self.net.motion_input(x, ref), q)
        )
        prediction = self._predict(ref, motion_hat, q)
        residual_z, residual_y, residual_hat = self._residual.encode(
            self.net.residual.analyse(self.net.residual_input(x, prediction), q)
        )
        recon = self._reconstruct(prediction, residual_hat, q, frame.shape)
        payload = pack_pframe(quality, [motion_z, motion_y, residual_z, residual_y])
        return payload, recon

    @torch.no_grad()
    def decode(self, payload: bytes, reference: np.ndarray) -> np.ndarray:
        """The frame coded in ``payload``, predicted from ``reference``."""
        quality, (motion_z, motion_y, residual_z, residual_y) = unpack_pframe(payload, SECTIONS)
        if not 1 <= quality <= self.qualities:
            raise BitstreamError(f"quality {quality} out of range for this P-frame model")
        ref = self._pad(reference)
        q = torch.tensor([quality - 1])
        lh, lw = ref.shape[2] // LATENT_STRIDE, ref.shape[3] // LATENT_STRIDE
        c = self.net.config
        motion_hat = self._motion.decode(motion_z, motion_y, (1, c.mz, lh // 4, lw // 4))
        prediction = self._predict(ref, motion_hat, q)
        residual_hat = self._residual.decode(residual_z, residual_y, (1, c.nz, lh // 4, lw // 4))
        return self._reconstruct(prediction, residual_hat, q, reference.shape)

    def _pad(self, rgb: np.ndarray) -> Tensor:
        """(1, 3, H', W') float in [0, 1], edge-padded to a multiple of ALIGN."""
        rgb = pad_edges(rgb, self.net.ALIGN)
        return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)

    def _predict(self, reference: Tensor, motion_hat: Tensor, q: Tensor) -> Tensor:
        """The prediction from the decoded motion latent (float32, on one thread: the
        same on every run of one machine)."""
        with one_thread():
            flow = self.net.motion.synthesize(motion_hat.float(), q) / FLOW_SCALE
            return self.net.predict(reference, flow)

    def _reconstruct(
        self, prediction: Tensor, residual_hat: Tensor, q: Tensor, shape: tuple[int, ...]
    ) -> np.ndarray:
        """The decoded frame (uint8, cropped to ``shape``) from the prediction and the
        decoded residual latent."""
        with one_thread():
            decoded = self.net.residual.synthesize(residual_hat.float(), q)
            x = self.net.reconstruct(prediction, decoded)
        x = x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        h, w = shape[:2]
        return np.ascontiguousarray(x[0, :, :h, :w].permute(1, 2, 0).numpy())
